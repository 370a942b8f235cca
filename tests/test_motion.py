"""The motion example end to end on real recordings: BasicMotions (smartwatch accelerometer + gyroscope, bundled
with the `aeon` package, `pip install -e '.[examples]'`) laid out as CSV folders by `make_data.py`, trained,
quantized and run on the emulator; the accuracy is on the dataset's own test recordings."""

import importlib.util
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REPO, run_json, store_entry

MOTION = REPO / "pipelines" / "motion"
CLASSES = ["badminton", "running", "standing", "walking"]

needs_aeon = pytest.mark.skipif(importlib.util.find_spec("aeon") is None,
                                reason="aeon is not installed: pip install -e '.[examples]'")


@needs_aeon
def test_make_data_lays_out_the_bundled_recordings_as_csv_folders(tmp_path):
    proc = subprocess.run([sys.executable, str(MOTION / "make_data.py"), str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for split in ("train", "test"):
        assert sorted(p.name for p in (tmp_path / "data" / split).iterdir()) == CLASSES
        assert [len(list((tmp_path / "data" / split / c).glob("*.csv"))) for c in CLASSES] == [10, 10, 10, 10]
    first = (tmp_path / "data" / "train" / "standing").glob("*.csv").__next__().read_text().splitlines()
    assert first[0] == "t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z" and len(first) == 101
    rows = np.array([line.split(",") for line in first[1:]], dtype=float)
    assert rows[:, 0].tolist() == [i / 10 for i in range(100)] and np.isfinite(rows).all()


@needs_aeon
@pytest.mark.slow
def test_motion_example_runs_end_to_end_on_real_recordings(tmp_path):
    project = tmp_path / "motion"
    shutil.copytree(MOTION, project, ignore=shutil.ignore_patterns("data", ".tinypipe", "tinypipe.lock"))
    subprocess.run([sys.executable, str(project / "make_data.py")], check=True, capture_output=True, timeout=120)
    (result,) = run_json(project)["results"]  # about 30 s here: 96 training windows, 40 epochs
    assert result["bit_exact"] is True
    assert result["accuracy_device"] == result["accuracy_host"]
    assert result["accuracy_host"] > 0.85, result["accuracy_host"]  # chance is 0.25; measured 0.967
    entry = store_entry(project, "mps2-an386-native", "data")
    manifest = json.loads((entry / "recordings.json").read_text())
    assert len(manifest["test"]) == 40 and all(n == 3 for n in manifest["test"].values())
    assert all(name.startswith("test/") for name in manifest["test"])
    run = json.loads((store_entry(project, "mps2-an386-native", "run") / "run.json").read_text())
    assert run["confusion"]["classes"] == CLASSES and sum(map(sum, run["confusion"]["matrix"])) == 120
