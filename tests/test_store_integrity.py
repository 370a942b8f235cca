"""A store that cannot lie, and one writer at a time: corrupt entries are detected, set aside and rebuilt; a lock
file of the wrong shape is a clear error; a second run waits for the first; a killed run takes its tools along."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import GESTURE, REPO, fresh_example, tinypipe_cmd
from tinypipe.core.errors import UserError
from tinypipe.engine.lock import Lock
from tinypipe.engine.pipeline import writer_lock
from tinypipe.engine.store import CORRUPT_DIR, Store


def committed(tmp_path: Path) -> tuple[Store, str]:
    store = Store(tmp_path / "store")
    tmp = store.begin()
    (tmp / "model.tflite").write_bytes(bytes(range(256)) * 4)
    (tmp / "sub").mkdir()
    (tmp / "sub" / "x.txt").write_text("x")
    key = "ab" * 32
    store.commit(tmp, key, {"stage": "quantize"})
    return store, key


def test_an_intact_entry_is_trusted_and_a_copy_with_new_mtimes_is_rehashed_once(tmp_path):
    store, key = committed(tmp_path)
    assert store.lookup(key)["key"] == key
    os.utime(store.path(key) / "model.tflite", (1, 1))  # same bytes, another mtime (a copy without -p)
    warnings = []
    store.warn = warnings.append
    assert store.lookup(key) is not None and warnings == []
    assert json.loads((store.path(key) / "meta.json").read_text())["files"]["model.tflite"][1] == 1_000_000_000


@pytest.mark.parametrize("damage", ["flip", "truncate", "extra", "meta"])
def test_a_corrupt_entry_is_set_aside_with_a_warning(tmp_path, damage):
    store, key = committed(tmp_path)
    entry = store.path(key)
    if damage == "flip":
        data = bytearray((entry / "model.tflite").read_bytes())
        data[100] ^= 0x10
        (entry / "model.tflite").write_bytes(bytes(data))
    elif damage == "truncate":
        (entry / "model.tflite").write_bytes(b"\0" * 10)
    elif damage == "extra":
        (entry / "planted.rs").write_text("evil")
    else:
        (entry / "meta.json").write_text('{"key": "' + key[:10])
    warnings = []
    store.warn = warnings.append
    assert store.lookup(key) is None
    assert not entry.exists() and len(list((store.root / CORRUPT_DIR).iterdir())) == 1
    assert len(warnings) == 1 and "is corrupt" in warnings[0] and "rebuilding" in warnings[0]
    assert key not in store.keys()


def test_paranoid_lookup_hashes_even_an_unchanged_signature(tmp_path):
    store, key = committed(tmp_path)
    path = store.path(key) / "model.tflite"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # a forger who restores size and mtime
    assert store.lookup(key) is not None  # the cheap check cannot see it...
    store.paranoid = True
    store.warn = lambda message: None
    assert store.lookup(key) is None  # ...the full hash does


@pytest.mark.parametrize("content,message", [
    ("[]", "an array, not a JSON object"), ("null", "null, not a JSON object"),
    ('{"version": 1}', "`variants` must map"), ('{"version": 1, "variants": {"v": {"data": 3}}}', "`variants` must map"),
    ('{"version": 9, "variants": {}}', "lock schema version 9"), ("{", "not valid JSON"), (b"\xff\xfe", "not valid JSON"),
])
def test_a_lock_file_of_the_wrong_shape_is_a_user_error(tmp_path, content, message):
    path = tmp_path / "tinypipe.lock"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError) as err:
        Lock(path, "p")
    assert message in err.value.message and err.value.hint


def test_a_lock_path_that_is_a_directory_is_a_user_error(tmp_path):
    (tmp_path / "tinypipe.lock").mkdir()
    with pytest.raises(UserError, match="cannot read the lock file"):
        Lock(tmp_path / "tinypipe.lock", "p")


def test_the_writer_lock_refuses_or_waits_while_another_process_holds_it(tmp_path):
    state = tmp_path / ".tinypipe"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from tinypipe.engine.pipeline import "
         "writer_lock\nwith writer_lock(Path(sys.argv[1]), True, print):\n print('held', flush=True); time.sleep(2)\n"
         " Path(sys.argv[2]).touch()", str(state), str(tmp_path / "releasing")], cwd=REPO, stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"another tinypipe run \\(PID {holder.pid}\\)"):
            with writer_lock(state, False, print):
                pass
        said = []
        with writer_lock(state, True, said.append):
            assert (tmp_path / "releasing").exists()  # we got the lock only once the holder let it go
        assert said and f"waiting for the run with PID {holder.pid}" in said[0]
    finally:
        holder.kill()
        holder.wait()


# --- end to end on the gesture example (real tools) ---------------------------------------------------------


def tinypipe(*args, env=None, timeout=900):
    return subprocess.run(tinypipe_cmd() + list(args), capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def fresh(tmp_path: Path, name: str) -> Path:
    return fresh_example(GESTURE, tmp_path, name)


def entry_of(project: Path, stage: str) -> Path:
    for meta in (project / ".tinypipe" / "store").glob("*/meta.json"):
        if json.loads(meta.read_text())["stage"] == stage:
            return meta.parent
    raise AssertionError(f"no {stage} entry")


@pytest.mark.slow
def test_a_flipped_byte_is_warned_rebuilt_and_named_by_verify(tmp_path):
    project = fresh(tmp_path, "flip")
    assert tinypipe("run", str(project), "-q").returncode == 0

    def flip() -> None:
        model = entry_of(project, "quantize") / "model.tflite"
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0x01
        model.write_bytes(bytes(data))

    flip()
    proc = tinypipe("run", str(project), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "is corrupt: the files of this quantize entry no longer match their recorded hash" in proc.stderr
    doc = json.loads(proc.stdout)
    statuses = {s["stage"]: s["status"] for s in doc["stages"]}
    assert statuses["quantize"] == "ran" and statuses["train"] == "cached"
    assert doc["results"][0]["bit_exact"] is True
    flip()
    proc = tinypipe("verify", str(project))
    assert proc.returncode == 1, proc.stderr
    assert "the stored output of quantize (mps2-an386-native) differs from its recorded hash" in proc.stderr


@pytest.mark.slow
def test_a_second_run_waits_for_the_first_and_finds_everything_cached(tmp_path):
    project = fresh(tmp_path, "twice")
    first = subprocess.Popen(tinypipe_cmd() + ["run", str(project), "-q"], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    lock = project / ".tinypipe" / "lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
        assert time.monotonic() < deadline, "the first run never took the writer lock"
        time.sleep(0.05)
    refused = tinypipe("run", str(project), "--no-wait")
    assert refused.returncode == 2 and f"another tinypipe run (PID {first.pid})" in refused.stderr
    second = tinypipe("run", str(project), "--json")
    assert first.wait(timeout=900) == 0
    assert second.returncode == 0, second.stderr
    assert f"waiting for the run with PID {first.pid}" in second.stderr
    assert {s["status"] for s in json.loads(second.stdout)["stages"]} == {"cached"}


def marked(marker: str, names: tuple[str, ...] = ()) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"TINYPIPE_TEST_MARK={marker}".encode() not in (proc / "environ").read_bytes():
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if not names or any(n in cmd for n in names):
            found.append(f"{proc.name}: {cmd[:120]}")
    return found


@pytest.mark.slow
def test_sigkill_during_build_leaves_no_tool_running(tmp_path):
    project = fresh(tmp_path, "killed")
    assert tinypipe("run", str(project), "--until", "firmware", "-q").returncode == 0
    marker = uuid.uuid4().hex
    run = subprocess.Popen(tinypipe_cmd() + ["run", str(project), "-q"], cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env={**os.environ, "TINYPIPE_TEST_MARK": marker})
    deadline = time.monotonic() + 120
    while not marked(marker, ("cargo", "rustc")):
        assert run.poll() is None and time.monotonic() < deadline, "never saw cargo or rustc run"
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 5
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked(marker) == []
    # the next run sweeps the killed run's temporary entry and builds normally
    proc = tinypipe("run", str(project), "--json")
    assert proc.returncode == 0, proc.stderr
    assert not list((project / ".tinypipe" / "store").glob(".tmp-*"))


@pytest.mark.slow
def test_a_full_disk_is_exit_2_and_leaves_the_store_consistent(tmp_path):
    """The project on a 256 KiB tmpfs: the data stage's output does not fit."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        project = fresh(disk, "full")
        proc = tinypipe("run", str(project), "--until", "data")
        assert proc.returncode == 2, proc.stderr
        assert "no space left on the device" in proc.stderr and "the store is unchanged" in proc.stderr
        assert "Traceback" not in proc.stderr
        store = project / ".tinypipe" / "store"
        assert [p.name for p in store.iterdir()] == [] if store.is_dir() else True
        status = tinypipe("status", str(project), "--json")
        states = {s["stage"]: s["state"] for s in json.loads(status.stdout)}
        assert status.returncode == 0 and states["data"] == "new"  # (toolchain may be in the shared cache)
    finally:
        subprocess.run(["umount", str(disk)])
