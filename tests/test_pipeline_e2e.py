"""The gesture example end to end on the real tools: TensorFlow, tflite-micro, rustc, arm gcc, QEMU.

One full run is shared by the tests below (session fixture); each then checks one promise of the Foundation:
bit-exact device outputs, a no-op second run without TensorFlow, minimal reruns after an edit with
`status --why` naming the key, and crash safety under SIGKILL.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import GESTURE, REPO, by_stage, fresh_example, run_json, store_entry, tinypipe, tinypipe_cmd

pytestmark = pytest.mark.slow


def shared_keys(stage: str) -> set[str]:
    """Keys of the session's user-level store entries of `stage` (shared stages, e.g. the toolchain)."""
    store = Path(os.environ["TINYPIPE_CACHE"]) / "store"
    metas = [p / "meta.json" for p in store.iterdir()] if store.is_dir() else []
    return {m.parent.name for m in metas if m.is_file() and json.loads(m.read_text())["stage"] == stage}


@pytest.fixture(scope="session")
def gesture(tmp_path_factory):
    """A private copy of pipelines/gesture, built once; and the toolchain entries the shared store held before."""
    project = fresh_example(GESTURE, tmp_path_factory.mktemp("gesture"))
    toolchains_before = shared_keys("toolchain")
    doc = run_json(project)
    return project, doc, toolchains_before


@pytest.fixture
def poisoned_tensorflow(tmp_path):
    """A `tensorflow` package that fails on import, shadowing the real one through PYTHONPATH."""
    fake = tmp_path / "poison" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('tensorflow was imported during a no-op run')\n")
    return {"PYTHONPATH": str(fake.parent)}


def test_first_run_is_bit_exact_and_accurate(gesture):
    project, doc, toolchains_before = gesture
    stages = by_stage(doc)
    assert list(stages) == ["data", "train", "quantize", "reference", "codegen", "toolchain", "crates", "firmware",
                            "build", "run"]
    assert {s for s, status in stages.items() if status != "ran"} <= {"toolchain"}
    # the toolchain lives in the user-level store: cached exactly when an earlier test of the session built it
    # (or, with pytest-xdist, when another worker committed it while this run was starting)
    toolchain_key = json.loads((project / "tinypipe.lock").read_text())["variants"]["mps2-an386-native"][
        "toolchain"]["key"]
    if toolchain_key in toolchains_before or not os.environ.get("PYTEST_XDIST_WORKER"):
        assert stages["toolchain"] == ("cached" if toolchain_key in toolchains_before else "ran")
    else:
        assert stages["toolchain"] in ("ran", "cached")
    (row,) = doc["results"]
    assert row["variant"] == "mps2-an386-native" and row["board"] == "mps2-an386" and row["engine"] == "native"
    assert row["bit_exact"] is True
    assert row["accuracy_device"] == row["accuracy_host"]
    assert row["accuracy_host"] >= 0.9
    assert row["instructions_per_inference"] > 1000
    assert row["flash_bytes"] > row["arena_bytes"] > 0
    assert set(row) >= {"variant", "board", "engine", "instructions_per_inference", "flash_bytes", "ram_bytes",
                        "arena_bytes", "accuracy_host", "accuracy_device", "bit_exact"}


def test_the_real_time_loop_keeps_up_at_the_declared_rate(gesture):
    project, doc, _ = gesture
    (row,) = doc["results"]
    realtime = row["realtime"]
    run = json.loads((store_entry(project, row["variant"], "run") / "run.json").read_text())
    # 64 samples at 50 Hz under -icount shift=0 (1 ns per instruction): 1.28 s = 1.28e9 instructions
    assert realtime["sample_rate_hz"] == 50 and realtime["hop"] == 64
    assert realtime["period_instructions"] == 1_280_000_000
    assert realtime["windows"] == run["n"] and realtime["deadline_misses"] == 0
    assert realtime["unit"] == "instructions"
    # the slowest window is preprocessing + inference, and its inference is the model's (interrupts add a few)
    assert abs(realtime["features_instructions"] + realtime["inference_instructions"]
               - realtime["worst_window_instructions"]) <= 1
    assert realtime["features_instructions"] > 0
    assert realtime["inference_instructions"] >= run["instructions_min"]
    assert realtime["worst_window_instructions"] < realtime["period_instructions"]
    assert 0 < realtime["margin"] < 1


FAST = """\
name: gesture-fast
seed: 7
sensor: {{kind: accelerometer, axes: [x, y, z], sample_rate_hz: {rate}, window: 64}}
data: {{source: npz, path: windows.npz, classes: [wave, tap, none]}}
model: {{path: model.tflite}}
target: {{board: mps2-an386}}
budgets: {{deadline_misses_max: 0}}
"""


def test_an_absurd_sample_rate_misses_deadlines_and_fails_the_budget(gesture, tmp_path):
    """The gesture model at a rate it cannot keep up with, reusing the session's trained model and data
    (`model.path`, `data.source: npz`) so nothing is trained again."""
    source, _, _ = gesture
    project = tmp_path / "fast"
    project.mkdir()
    shutil.copyfile(store_entry(source, "mps2-an386-native", "quantize") / "model.tflite", project / "model.tflite")
    with np.load(store_entry(source, "mps2-an386-native", "data") / "data.npz") as data:
        np.savez(project / "windows.npz", **data)
    # 2.5 MHz: 10 SysTick ticks, 400 instructions per sample, 25,600 per hop of 64 samples: under half a window
    (project / "project.yaml").write_text(FAST.format(rate=2_500_000))

    proc = tinypipe("run", str(project), "--json")
    assert proc.returncode == 1, proc.stderr[-4000:]
    (row,) = json.loads(proc.stdout)["results"]
    realtime = row["realtime"]
    assert row["bit_exact"] is True  # the replay before the loop is unaffected
    assert realtime["period_instructions"] == 25_600 and realtime["sample_rate_hz"] == 2_500_000
    assert 0 < realtime["deadline_misses"] <= realtime["windows"]
    assert realtime["worst_window_instructions"] > realtime["period_instructions"]
    assert re.search(r"check failed: mps2-an386-native: the real-time loop missed \d+ of \d+ window deadlines, over "
                     r"the budget 0 \(budgets\.deadline_misses_max\): the slowest window took [\d,]+ instructions "
                     r"\(features [\d,]+ \+ inference [\d,]+\) of a period of 25,600 \(64 samples at 2,500,000 Hz\)",
                     proc.stderr), proc.stderr[-4000:]

    (project / "project.yaml").write_text(FAST.format(rate=10_000_000))
    proc = tinypipe("run", str(project))
    assert proc.returncode == 2, proc.stderr[-4000:]
    assert "sensor.sample_rate_hz: 1e+07 Hz is too fast for the real-time loop on mps2-an386" in proc.stderr
    assert "lower sensor.sample_rate_hz to at most 3,125,000 Hz" in proc.stderr


def test_out_dir_points_at_the_current_artifacts(gesture):
    project, _, _ = gesture
    out = project / ".tinypipe" / "out" / "mps2-an386-native"
    assert (out / "firmware.elf").resolve() == (store_entry(project, "mps2-an386-native", "build")
                                                / "firmware.elf").resolve()
    assert {p.name for p in out.iterdir()} == {"firmware.elf", "firmware.bin", "firmware.hex", "size.json", "model.rs",
                                                 "run.json"}


def test_a_locked_run_of_the_built_project_passes_and_builds_nothing(gesture):
    project, _, _ = gesture
    lock = (project / "tinypipe.lock").read_text()
    doc = run_json(project, "--locked")
    assert set(by_stage(doc).values()) == {"cached"}
    assert (project / "tinypipe.lock").read_text() == lock


def test_second_run_runs_nothing_and_never_imports_tensorflow(gesture, poisoned_tensorflow):
    project, _, _ = gesture
    doc = run_json(project, env=poisoned_tensorflow)
    assert set(by_stage(doc).values()) == {"cached"}
    assert len(doc["stages"]) == 10
    assert doc["results"][0]["bit_exact"] is True  # results come from the store


def test_editing_quantization_reruns_only_quantize_and_below(gesture, tmp_path):
    project, _, _ = gesture
    edited = tmp_path / "edited"
    shutil.copytree(project, edited)
    text = (edited / "project.yaml").read_text()
    assert "representative_samples: 100" in text
    (edited / "project.yaml").write_text(text.replace("representative_samples: 100", "representative_samples: 60"))

    why = tinypipe("status", str(edited), "--why")
    assert why.returncode == 0, why.stderr
    assert "quantize   stale" in why.stdout
    assert "because config quantization.representative_samples: 100 -> 60" in why.stdout
    assert "data       cached" in why.stdout and "train      cached" in why.stdout

    stages = by_stage(run_json(edited))
    assert stages["data"] == stages["train"] == "cached"
    assert stages["quantize"] == "ran" and stages["reference"] == "ran"
    assert stages["toolchain"] == "cached"


def test_a_matrix_over_the_native_modes_trades_instructions_for_flash(gesture, tmp_path):
    """`native.optimize` swept on the built project (a copy, store and all): `balanced` is the cell the project
    had, with the same keys (everything cached); `size` builds smaller, slower firmware, still bit-exact."""
    project, _, _ = gesture
    modes = tmp_path / "modes"
    shutil.copytree(project, modes)
    with (modes / "project.yaml").open("a") as f:
        f.write("\nmatrix:\n  native.optimize: [balanced, size]\n")
    doc = run_json(modes)
    ran = {(s["stage"], s["variant"]) for s in doc["stages"] if s["status"] != "cached"}
    # everything the balanced cell needs, and everything upstream, comes from the store
    assert ran == {(stage, "mps2-an386-native-optimize_size") for stage in ("codegen", "firmware", "build", "run")}
    rows = {r["optimize"]: r for r in doc["results"]}
    balanced, size = rows["balanced"], rows["size"]
    assert size["variant"] == "mps2-an386-native-optimize_size" and size["sweep"] == {"native.optimize": "size"}
    assert balanced["bit_exact"] is size["bit_exact"] is True
    assert size["app_flash_bytes"] < balanced["app_flash_bytes"]
    assert size["instructions_per_inference"] > balanced["instructions_per_inference"]
    assert size["arena_bytes"] == balanced["arena_bytes"]
    cargo = (store_entry(modes, "mps2-an386-native-optimize_size", "firmware") / "project" / "Cargo.toml").read_text()
    assert '\nopt-level = "z"\n' in cargo
    table = tinypipe("report", str(modes)).stdout
    assert "mps2-an386-native-optimize_balanced" in table and "mps2-an386-native-optimize_size" in table


def test_sigkill_mid_stage_leaves_no_partial_entry(tmp_path):
    project = tmp_path / "killed"
    project.mkdir()
    text = (GESTURE / "project.yaml").read_text().replace("epochs: 30", "epochs: 400")
    (project / "project.yaml").write_text(text)
    store = project / ".tinypipe" / "store"
    proc = subprocess.Popen(tinypipe_cmd() + ["run", str(project), "--until", "train"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # wait until data is stored and train is writing its temporary
            lock = project / "tinypipe.lock"
            if lock.exists() and "data" in lock.read_text() and any(
                    p.name.startswith(".tmp-") for p in store.iterdir()):
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("train never started")
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    entries = [p for p in store.iterdir() if not p.name.startswith(".tmp-")]
    assert len(entries) == 1 and (entries[0] / "meta.json").exists()  # data only, whole
    assert json.loads((entries[0] / "meta.json").read_text())["stage"] == "data"

    (project / "project.yaml").write_text(text.replace("epochs: 400", "epochs: 2"))
    doc = run_json(project, "--until", "train")
    assert by_stage(doc) == {"data": "cached", "train": "ran"}
    assert not [p for p in store.iterdir() if p.name.startswith(".tmp-")]  # the killed run's temporary is swept


def test_verify_rebuilds_every_stage_bit_for_bit(gesture):
    project, _, _ = gesture
    proc = tinypipe("verify", str(project), "--json")
    assert proc.returncode == 0, proc.stderr
    verdicts = json.loads(proc.stdout)
    assert [v["stage"] for v in verdicts] == ["data", "train", "quantize", "reference", "codegen", "toolchain",
                                              "crates", "firmware", "build"]
    assert all(v["same"] and v["rebuilt"] == v["locked"] for v in verdicts)
    # what tinypipe cannot pin down (TensorFlow's float arithmetic on another CPU) is said, here and in the lock
    caveats = {v["stage"]: v["caveat"] for v in verdicts if v["caveat"]}
    assert set(caveats) == {"train", "quantize"} and "another CPU instruction set" in caveats["train"]
    assert json.loads((project / "tinypipe.lock").read_text())["caveats"] == caveats


def test_verify_refuses_a_lock_that_is_not_current(gesture, tmp_path):
    project, _, _ = gesture
    edited = tmp_path / "edited"
    shutil.copytree(project, edited)
    text = (edited / "project.yaml").read_text()
    (edited / "project.yaml").write_text(text.replace("seed: 7", "seed: 8"))
    proc = tinypipe("verify", str(edited))
    assert proc.returncode == 2
    assert "tinypipe.lock is not current: the inputs of data (mps2-an386-native) changed" in proc.stderr


def test_report_html_shows_the_measured_results(gesture, tmp_path):
    project, doc, _ = gesture
    out = tmp_path / "report.html"
    proc = tinypipe("report", str(project), "--html", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    row = doc["results"][0]
    assert f"<td>{row['instructions_per_inference']:,}</td>" in page
    assert f"{row['accuracy_device'] * 100:.1f}%" in page
    assert "Flash and RAM against the board&#x27;s capacity" in page and "Confusion matrix on the device" in page
    # the Data section: windows per split, and one plot of example training windows per class
    assert "<h2>Data</h2>" in page and '<table class="data">' in page
    assert [c for c in ("wave", "tap", "none") if f"<h3>{c}: 3 example windows</h3>" in page] == ["wave", "tap", "none"]


def test_show_prints_where_the_generated_rust_is(gesture):
    project, _, _ = gesture
    proc = tinypipe("show", str(project))
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("mps2-an386-native codegen:")  # the stage's id: codegen:<store key prefix>
    entry = Path(first.split(": ", 1)[1])
    assert first.split(": ", 1)[0].split(" ", 1)[1] == f"codegen:{entry.name[:12]}"
    assert "pub fn invoke(" in (entry / "model.rs").read_text()
