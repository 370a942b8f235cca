"""`tinypipe init DIR --data FOLDER`: a project.yaml written from the user's own recordings (CSV or WAV folders), which
the data stage then reads as it is; bad folders stop with exit 2 and write nothing."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import REPO, tinypipe
from tests.test_input_scaling import write_raw_recordings
from tinypipe.scaffold import _unit_seconds


def write_csv_class(root: Path, name: str, count: int, lengths: tuple[int, int], header: str, row) -> None:
    rng = np.random.default_rng(len(name))
    for i in range(count):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        n = int(rng.integers(*lengths))
        (folder / f"rec_{i}.csv").write_text(header + "\n" + "".join(row(k, rng) + "\n" for k in range(n)))


def init(tmp_path: Path, data: str, project: str = "proj"):
    return tinypipe("init", project, "--data", data, cwd=tmp_path)


def test_raw_counts_in_a_fixed_split_become_a_standardised_project_the_data_stage_reads(tmp_path):
    write_raw_recordings(tmp_path)  # recordings/{train,test}/{wave,rest}/*.csv, int16 counts, no time column
    made = init(tmp_path, "recordings")
    assert made.returncode == 0, made.stderr
    assert "check sensor.sample_rate_hz" in made.stdout and "raw counts, standardised" in made.stdout
    text = (tmp_path / "proj" / "project.yaml").read_text()
    assert "CHECK: no time column" in text and "the split you fixed" in text
    doc = yaml.safe_load(text)
    assert doc["sensor"]["axes"] == ["x", "y", "z"] and doc["data"]["normalize"] == "standard"
    assert doc["data"] == {**doc["data"], "source": "csv", "path": "../recordings", "classes": ["rest", "wave"]}
    assert doc["sensor"]["window"] == 50 and doc["data"]["hop"] == 25  # 1 s at the guessed 50 Hz fits 60 samples
    assert doc["model"]["layers"][-1] == {"type": "dense", "units": 2}
    ran = tinypipe("run", "proj", "--until", "data", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    shown = tinypipe("data", "proj", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "rest" in shown.stdout and "standard" in shown.stdout


@pytest.mark.parametrize("time_header, step, rate", [("timestamp_ms", 10, 100), ("t", 0.04, 25),
                                                     ("time_us", 2000, 500), ("time", 20, 50)])
def test_the_rate_comes_from_a_time_column_and_text_and_time_columns_are_not_axes(tmp_path, time_header, step,
                                                                                    rate):
    for name in ("up", "down"):
        write_csv_class(tmp_path / "imu", name, 4, (150, 300), f"{time_header},label,ax,ay",
                        lambda k, rng, n=name: f"{k * step:g},{n},{rng.normal():.4f},{rng.normal():.4f}")
    made = init(tmp_path, "imu/")
    assert made.returncode == 0, made.stderr
    doc = yaml.safe_load((tmp_path / "proj" / "project.yaml").read_text())
    assert doc["sensor"]["axes"] == ["ax", "ay"] and doc["sensor"]["sample_rate_hz"] == rate
    shortest = min(len(f.read_text().splitlines()) - 1 for f in (tmp_path / "imu").rglob("*.csv"))
    assert doc["sensor"]["window"] == min(rate, shortest)  # about a second, within the shortest recording
    assert "normalize" not in doc["data"]  # floats in physical units: taken as they are
    assert f"{time_header}, label ignored" in made.stdout
    ran = tinypipe("run", "proj", "--until", "data", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr


def test_an_absolute_data_path_stays_absolute_and_a_relative_one_is_relative_to_project_yaml(tmp_path):
    write_raw_recordings(tmp_path)
    assert init(tmp_path, str(tmp_path / "recordings"), "a").returncode == 0
    assert yaml.safe_load((tmp_path / "a" / "project.yaml").read_text())["data"]["path"] == str(tmp_path / "recordings")
    assert init(tmp_path, "recordings", "deeper/b").returncode == 0
    assert yaml.safe_load((tmp_path / "deeper" / "b" / "project.yaml").read_text())["data"]["path"] == "../../recordings"


def test_a_time_column_unit_is_read_from_its_name_or_else_its_step():
    assert _unit_seconds("timestamp_ms", 10) == 1e-3 and _unit_seconds("millis", 5) == 1e-3
    assert _unit_seconds("time_us", 2000) == 1e-6 and _unit_seconds("t", 0.01) == 1.0
    assert _unit_seconds("time", 20) == 1e-3  # a step of 20 seconds is no sensor: milliseconds


def test_wav_clips_get_mfcc_features_and_the_headers_rate(tmp_path):
    import subprocess
    import sys

    subprocess.run([sys.executable, str(REPO / "pipelines" / "keywords" / "make_data.py"), str(tmp_path / "clips"),
                    "--per-class", "3", "--seconds", "0.3"], check=True, capture_output=True, timeout=120)
    made = init(tmp_path, "clips")
    assert made.returncode == 0, made.stderr
    doc = yaml.safe_load((tmp_path / "proj" / "project.yaml").read_text())
    assert doc["sensor"] == {"kind": "microphone", "axes": ["mic"], "sample_rate_hz": 8000, "window": 1024}
    assert doc["features"]["kind"] == "mfcc" and doc["data"]["source"] == "wav"
    assert doc["data"]["classes"] == ["chirp", "high", "low", "noise"]
    ran = tinypipe("run", "proj", "--until", "features", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr


@pytest.mark.parametrize("setup, data, message", [
    ("mismatch", "bad", "bad/b/1.csv: its columns (x, z) are not those of bad/a/1.csv (x, y)"),
    ("none", "nowhere", "--data nowhere: no such folder"),
    ("file", "one.csv", "--data one.csv: a file, not a folder of recordings"),
    ("empty", "empty", "--data empty: no .csv or .wav recordings in it"),
    ("mixed", "mixed", "holds both .csv and .wav recordings"),
    ("one-class", "one", "has 1 class folder(s); a classifier needs 2 or more"),
    ("short", "short", "the shortest recording has 3 samples"),
    ("headerless", "numbers", "row 1: no header row"),
    ("semicolons", "semi", "semi/a/1.csv row 1: fields separated by semicolons, not commas"),
])
def test_a_folder_that_cannot_be_read_is_exit_2_and_writes_nothing(tmp_path, setup, data, message):
    root = tmp_path / data
    if setup == "file":
        root.write_text("x\n1\n")
    elif setup == "mismatch":
        for cls, header in (("a", "x,y"), ("b", "x,z")):
            (root / cls).mkdir(parents=True)
            (root / cls / "1.csv").write_text(f"{header}\n1,2\n")
    elif setup == "empty":
        (root / "a").mkdir(parents=True)
    elif setup == "mixed":
        for cls, name in (("a", "1.csv"), ("b", "1.wav")):
            (root / cls).mkdir(parents=True)
            (root / cls / name).write_text("x\n1\n")
    elif setup == "one-class":
        (root / "a").mkdir(parents=True)
        (root / "a" / "1.csv").write_text("x\n1\n")
    elif setup == "short":
        for cls in ("a", "b"):
            (root / cls).mkdir(parents=True)
            (root / cls / "1.csv").write_text("x\n1\n2\n3\n")
    elif setup == "semicolons":
        for cls in ("a", "b"):
            (root / cls).mkdir(parents=True)
            (root / cls / "1.csv").write_text("t;ax;ay\n0;1,5;2\n")
    elif setup == "headerless":
        for cls in ("a", "b"):
            (root / cls).mkdir(parents=True)
            (root / cls / "1.csv").write_text("1,2\n3,4\n")
    made = init(tmp_path, data)
    assert made.returncode == 2, made.stdout + made.stderr
    assert message in made.stderr, made.stderr
    assert "hint:" in made.stderr and "Traceback" not in made.stderr
    assert not (tmp_path / "proj").exists()


def test_init_data_never_overwrites_a_project(tmp_path):
    write_raw_recordings(tmp_path)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "project.yaml").write_text("name: mine\n")
    made = init(tmp_path, "recordings")
    assert made.returncode == 2 and "already exists" in made.stderr
    assert (tmp_path / "proj" / "project.yaml").read_text() == "name: mine\n"
