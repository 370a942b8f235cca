"""The CLI as a person uses it: under a real pseudo-terminal (pexpect), where the live progress display draws.

Each command must finish in bounded time with the right exit code; Ctrl-C must end a run with 130, kill every
process it started and leave no partial store entry; the cursor is shown again at the end.
"""

import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import pexpect
import pytest

from tests.helpers import GESTURE, REPO, fresh_example

pytestmark = pytest.mark.slow

SHOW_CURSOR = "\x1b[?25h"


def spawn(args: list[str], marker: str | None = None, cwd: Path = REPO, cols: int = 80) -> pexpect.spawn:
    env = dict(os.environ)
    env.pop("NO_COLOR", None)
    env["TERM"] = "xterm-256color"
    if marker:
        env["TINYPIPE_TEST_MARK"] = marker  # inherited by every process the run starts: found later in /proc
    return pexpect.spawn(sys.executable, ["-m", "tinypipe", *args], cwd=str(cwd), env=env, encoding="utf-8",
                         codec_errors="replace", dimensions=(40, cols), timeout=60)


def finish(child: pexpect.spawn, timeout: float) -> tuple[int, str]:
    """Read to the end (within `timeout` s); the exit code and everything the terminal showed."""
    child.expect(pexpect.EOF, timeout=timeout)
    child.close()
    code = child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus
    return code, child.before


def processes_with(marker: str) -> list[str]:
    """Live processes whose environment carries the marker (anything a run started that outlived it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"TINYPIPE_TEST_MARK={marker}".encode() in environ and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def fresh_gesture(tmp_path: Path, name: str = "gesture", extra: str = "") -> Path:
    return fresh_example(GESTURE, tmp_path, name, extra)


def store_temporaries(project: Path) -> list[Path]:
    store = project / ".tinypipe" / "store"
    return sorted(store.glob(".tmp-*")) if store.is_dir() else []


@pytest.fixture(scope="module")
def ran_in_terminal(tmp_path_factory):
    """A fresh copy of the gesture example, run to the end under a terminal; what the terminal showed."""
    project = fresh_gesture(tmp_path_factory.mktemp("tty"))
    code, screen = finish(spawn(["run", str(project)]), timeout=900)
    return project, code, screen


def test_run_in_a_terminal_finishes_with_the_results(ran_in_terminal):
    project, code, screen = ran_in_terminal
    assert code == 0, screen[-3000:]
    assert "tinypipe results" in screen and "mps2-an386-native" in screen
    assert "bit-exact" in screen
    assert screen.rstrip().endswith("cached") or "stage(s) ran" in screen
    assert SHOW_CURSOR in screen, "the cursor was hidden by the live display and never shown again"


def test_status_check_is_a_ci_gate(ran_in_terminal, tmp_path):
    project, code, _ = ran_in_terminal
    assert code == 0
    check, screen = finish(spawn(["status", str(project), "--check"]), timeout=60)
    assert check == 0, screen
    copy = tmp_path / "edited"
    shutil.copytree(project, copy)
    config = copy / "project.yaml"
    config.write_text(config.read_text().replace("epochs: 30", "epochs: 31"))
    assert "epochs: 31" in config.read_text()
    check, screen = finish(spawn(["status", str(copy), "--check"]), timeout=60)
    assert check == 1, screen
    assert "would run" in screen


def test_ctrl_c_mid_train_ends_with_130_and_leaves_nothing_behind(tmp_path):
    project = fresh_gesture(tmp_path)
    marker = uuid.uuid4().hex
    child = spawn(["run", str(project)], marker=marker)
    child.expect("train ", timeout=300)  # the live display shows the train stage running
    time.sleep(2.0)  # well inside training (about 10 s)
    assert processes_with(marker), "the run's worker process should be alive mid-train"
    child.sendintr()
    code, screen = finish(child, timeout=10)
    assert code == 130, screen[-2000:]
    assert "interrupted" in screen
    assert SHOW_CURSOR in screen
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with(marker) == []
    assert store_temporaries(project) == []
    stages = {e.name for e in (project / ".tinypipe" / "store").iterdir() if not e.name.startswith(".")}
    states = [json.loads((project / ".tinypipe" / "store" / k / "meta.json").read_text())["stage"] for k in stages]
    assert "train" not in states and "data" in states


def test_two_jobs_on_a_matrix_in_a_terminal(tmp_path):
    project = fresh_gesture(tmp_path, extra="\nmatrix:\n  board: [mps2-an386, netduinoplus2]\n")
    code, screen = finish(spawn(["run", str(project), "-j", "2"]), timeout=900)
    assert code == 0, screen[-3000:]
    assert "mps2-an386-native" in screen and "netduinoplus2-native" in screen
    assert SHOW_CURSOR in screen


def test_a_device_output_that_differs_from_the_oracle_fails_the_check_with_exit_1(ran_in_terminal, tmp_path):
    project, code, _ = ran_in_terminal
    assert code == 0
    copy = tmp_path / "tampered"
    shutil.copytree(project, copy)
    store = copy / ".tinypipe" / "store"
    metas = {k.name: json.loads((k / "meta.json").read_text()) for k in store.iterdir() if (k / "meta.json").is_file()}
    reference = next(k for k, m in metas.items() if m["stage"] == "reference")
    oracle = store / reference / "test_outputs.bin"
    data = bytearray(oracle.read_bytes())
    data[0] ^= 0x01  # the oracle now disagrees with the device on window 0
    stat = oracle.stat()
    oracle.write_bytes(bytes(data))
    # keep size and mtime, so the store's cheap integrity check trusts the entry (`--paranoid` would not)
    os.utime(oracle, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.rmtree(store / next(k for k, m in metas.items() if m["stage"] == "run"))
    code, screen = finish(spawn(["run", str(copy)]), timeout=300)
    assert code == 1, screen[-3000:]
    assert "differ from the host TFLM oracle" in screen
    assert "internal error" not in screen


SUBCOMMANDS = [
    (["status", "{p}", "--why"], 0, "cached"),
    (["status", "{p}", "--json"], 0, '"state"'),
    (["plan", "{p}"], 0, "cached"),
    (["report", "{p}"], 0, "tinypipe results"),
    (["report", "{p}", "--json"], 0, '"results"'),
    (["show", "{p}"], 0, "model.rs"),
    (["show", "{p}", "buidl"], 2, "did you mean 'build'"),
    (["run", "{p}", "--until", "trian"], 2, "did you mean 'train'"),
    (["run", "{p}"], 0, "tinypipe results"),
    (["gc", "{p}", "--dry-run"], 0, "would delete"),
    (["data", "{p}"], 0, "split wave tap none total"),
    (["export", "{p}", "--crate", "{tmp}/crate"], 0, "crate gesture 0.1.0 in {tmp}/crate"),
    (["boards"], 0, "mps2-an386"),
    (["boards", "--json"], 0, '"triple"'),
    (["boards", "mps2-an368"], 2, "did you mean 'mps2-an386'"),
    (["doctor"], 0, "qemu-system-arm"),
    (["doctor", "--json"], 0, '"tools"'),
    (["init", "{tmp}/my proj"], 0, "next: tinypipe run '{tmp}/my proj'"),
    (["init", "{p}"], 2, "error"),
    (["--help"], 0, "exit codes"),
    (["run", "--help"], 0, "examples"),
    ([], 2, "COMMAND"),
]


@pytest.mark.parametrize("args,expected_code,expected_text", SUBCOMMANDS, ids=lambda v: " ".join(v) if
                         isinstance(v, list) else None)
def test_every_subcommand_in_a_terminal(ran_in_terminal, tmp_path, args, expected_code, expected_text):
    project, code, _ = ran_in_terminal
    assert code == 0
    fill = {"p": str(project), "tmp": str(tmp_path)}
    argv = [a.format(**fill) for a in args]
    got, screen = finish(spawn(argv, cwd=tmp_path), timeout=120)
    assert got == expected_code, screen[-3000:]
    flat = " ".join(screen.replace("\r", "").split())
    assert " ".join(expected_text.format(**fill).split()) in flat, screen[-3000:]
    assert "Traceback" not in screen


def test_a_report_after_an_edit_says_why_its_cells_are_empty(ran_in_terminal, tmp_path):
    project, code, _ = ran_in_terminal
    assert code == 0
    copy = tmp_path / "edited"
    shutil.copytree(project, copy)
    got, screen = finish(spawn(["report", str(copy)]), timeout=120)
    assert got == 0 and "have not run" not in screen, screen[-3000:]  # all ran: no note
    config = copy / "project.yaml"
    config.write_text(config.read_text().replace("epochs:", "epochs: 1  # was", 1))
    got, screen = finish(spawn(["report", str(copy)]), timeout=120)
    assert got == 0, screen[-3000:]
    flat = " ".join(screen.replace("\r", "").split())
    assert "1 of 1 variant(s) have stages that have not run for the project as it is now (train," in flat, flat
    assert f"tinypipe run {copy}` runs them" in flat and "--why` says what changed" in flat
