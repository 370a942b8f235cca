"""The microphone example end to end: generated sound (`pipelines/keywords/make_data.py`: hums, whistles, chirps,
noise bursts as 8 kHz WAV files), MFCC features in fixed point, a 1-D CNN, int8 on the emulated Cortex-M4F. The
device computes the MFCCs from the raw samples it replays and they must equal the host's byte for byte; its
outputs must equal the host TFLM oracle's; the real-time loop samples at 8 kHz and reports the split."""

import json
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest

from tests.helpers import REPO, run_json, store_entry

KEYWORDS = REPO / "pipelines" / "keywords"
CLASSES = ["chirp", "high", "low", "noise"]


def make_data(out, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(KEYWORDS / "make_data.py"), str(out), *args], capture_output=True,
                          text=True, timeout=120, check=True)


def test_make_data_writes_the_same_mono_16_bit_recordings_from_the_same_seed(tmp_path):
    make_data(tmp_path / "a", "--per-class", "2", "--seconds", "0.25")
    make_data(tmp_path / "b", "--per-class", "2", "--seconds", "0.25")
    make_data(tmp_path / "c", "--per-class", "2", "--seconds", "0.25", "--seed", "1")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.wav"))
    assert [str(f) for f in files] == [f"{c}/rec_0{i}.wav" for c in CLASSES for i in range(2)]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)
    with wave.open(str(tmp_path / "a" / files[0]), "rb") as clip:
        assert (clip.getnchannels(), clip.getsampwidth(), clip.getframerate(), clip.getnframes()) == (1, 2, 8000, 2000)
        samples = np.frombuffer(clip.readframes(2000), "<i2")
    assert 1000 < np.abs(samples.astype(int)).max() <= 32767  # sound well above the background hiss


@pytest.mark.slow
def test_keywords_example_runs_end_to_end_with_device_mfccs_equal_to_the_hosts(tmp_path):
    project = tmp_path / "keywords"
    shutil.copytree(KEYWORDS, project, ignore=shutil.ignore_patterns("data", ".tinypipe", "tinypipe.lock"))
    make_data(project / "data", "--per-class", "8", "--seconds", "0.45")  # 5 windows each
    text = (project / "project.yaml").read_text()
    assert "epochs: 30" in text
    (project / "project.yaml").write_text(text.replace("epochs: 30", "epochs: 12"))  # 144 windows: enough here
    (result,) = run_json(project)["results"]
    run = json.loads((store_entry(project, "mps2-an386-native", "run") / "run.json").read_text())
    # every test window's MFCCs, computed on the device from its raw samples, equal the host's; so do the int8
    # inputs made from them and every output byte
    assert run["features_bit_exact"] is True and run["feature_mismatches"]["count"] == 0
    assert run["inputs_bit_exact"] is True and result["bit_exact"] is True
    assert result["accuracy_device"] == result["accuracy_host"] and result["accuracy_host"] >= 0.9
    assert run["confusion"]["classes"] == CLASSES
    reference = json.loads((store_entry(project, "mps2-an386-native", "reference") / "reference.json").read_text())
    assert reference["input_shape"][1:] == [7, 10]  # 7 frames of 10 MFCCs per 1024-sample window
    # the real-time loop at the declared 8 kHz, a window every 512 samples: features and inference both measured
    realtime = result["realtime"]
    assert (realtime["sample_rate_hz"], realtime["hop"], realtime["deadline_misses"]) == (8000, 512, 0)
    assert realtime["windows"] > 0 and realtime["features_instructions"] > realtime["inference_instructions"] > 0
    assert realtime["worst_window_instructions"] >= realtime["features_instructions"] + realtime[
        "inference_instructions"]
