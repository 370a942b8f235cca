"""`data.source: csv`: the user's own recordings — reading, windowing, the split by recording (no leakage), clear
errors before anything is stored, the recordings as a stage input (content, not mtimes), and one run end to end.
`data.source: npz`: windows the user cut, checked and split.

The data stage is called directly where a test checks what it writes, and through the CLI where the promise is
about the run (exit code, store, `status --why`)."""

import json
import os
import shutil

import numpy as np
import pytest

from tests.helpers import SHARED, by_stage, run_data, run_json, store_entry, tinypipe
from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant
from tinypipe.core.errors import UserError
from tinypipe.stages import _recordings, data
from tinypipe.stages._ml import MicroModel, require_takes_windows

TINY_MODEL = {"layers": [{"type": "conv1d", "filters": 4, "kernel_size": 3, "strides": 2},
                         {"type": "flatten"}, {"type": "dense", "units": 2}], "epochs": 8}


def write_recording(path, columns: dict[str, np.ndarray]) -> None:
    """One CSV recording: a header naming `columns`, then one row per sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(columns)
    rows = [",".join(names)] + [",".join(f"{columns[c][i]:.5f}" for c in names)
                                for i in range(len(columns[names[0]]))]
    path.write_text("\n".join(rows) + "\n")


def accel(n: int, level: float, rng) -> dict[str, np.ndarray]:
    cols = {"timestamp": np.arange(n) / 50.0}
    cols.update({a: level + rng.normal(0, 0.05, n) for a in ("x", "y", "z")})
    return cols


def project_yaml(root, data: dict, window: int = 16, axes=("x", "y", "z"), model=TINY_MODEL, seed: int = 3):
    doc = {"name": "rec", "seed": seed, "sensor": {"axes": list(axes), "window": window},
           "data": {"source": "csv", "path": "recordings", **data}, "model": model}
    (root / "project.yaml").write_text(json.dumps(doc))  # JSON is YAML


def variant_for(root, **data_fields) -> Variant:
    window = data_fields.pop("window", 16)
    project = Project(name="t", seed=3, sensor={"axes": ["x", "y", "z"], "window": window},
                      data={"source": "csv", "path": "recordings", **data_fields}, model=TINY_MODEL)
    return Variant(name="t", project=project, board=BOARDS["mps2-an386"], engine="native", project_dir=root)


def store_entries(root) -> list[str]:
    store = root / ".tinypipe" / "store"
    return sorted(p.name for p in store.iterdir()) if store.is_dir() else []


@pytest.fixture
def two_classes(tmp_path):
    """recordings/{still,moving}/rec_NN.csv, 6 recordings each of 40-70 samples, with a timestamp column."""
    rng = np.random.default_rng(0)
    for name, level in (("still", 0.0), ("moving", 1.0)):
        for i in range(6):
            write_recording(tmp_path / "recordings" / name / f"rec_{i:02d}.csv", accel(40 + 6 * i, level, rng))
    return tmp_path


# --- reading and windowing --------------------------------------------------------------------------------------

def test_class_folders_become_sorted_classes_and_windows_are_cut_with_the_hop(two_classes, tmp_path):
    summary, arrays, logs = run_data(variant_for(two_classes, hop=8), tmp_path / "out")
    assert json.loads((tmp_path / "out" / "classes.json").read_text()) == ["moving", "still"]
    manifest = json.loads((tmp_path / "out" / "recordings.json").read_text())
    lengths = {f"{c}/rec_{i:02d}.csv": 40 + 6 * i for c in ("still", "moving") for i in range(6)}
    # a recording of n samples gives floor((n - window) / hop) + 1 windows
    assert {name: n for split in manifest.values() for name, n in split.items()} == \
        {name: (n - 16) // 8 + 1 for name, n in lengths.items()}
    assert summary["recordings"] == {"train": 8, "val": 2, "test": 2}
    assert summary["windows"] == sum((n - 16) // 8 + 1 for n in lengths.values())
    assert summary["counts"]["test"] == {c: sum(n for name, n in manifest["test"].items() if name.startswith(c))
                                         for c in ("moving", "still")}
    assert arrays["x_train"].shape[1:] == (16, 3) and arrays["x_train"].dtype == np.float32
    # the timestamp column is ignored: "moving" windows sit near 1 g, "still" ones near 0
    assert abs(arrays["x_train"][arrays["y_train"] == 0].mean() - 1.0) < 0.05
    assert any(line.startswith("  test: moving") for line in logs)


def test_axes_pick_columns_by_name_in_their_order(tmp_path):
    for name, sign in (("a", 1.0), ("b", -1.0)):
        for i in range(3):
            n = 20
            write_recording(tmp_path / "recordings" / name / f"r{i}.csv",
                            {"z": np.full(n, 3.0), "t": np.arange(n), "x": np.full(n, sign), "y": np.full(n, 2.0)})
    _, arrays, _ = run_data(variant_for(tmp_path, window=8), tmp_path / "out")
    assert arrays["x_test"][0, 0].tolist() == [float(1 - 2 * arrays["y_test"][0]), 2.0, 3.0]


def test_data_classes_selects_and_orders_the_folders(two_classes, tmp_path):
    write_recording(two_classes / "recordings" / "junk" / "r.csv", accel(30, 5.0, np.random.default_rng(1)))
    summary, arrays, _ = run_data(variant_for(two_classes, classes=["still", "moving"]), tmp_path / "out")
    assert json.loads((tmp_path / "out" / "classes.json").read_text()) == ["still", "moving"]
    assert abs(arrays["x_train"][arrays["y_train"] == 1].mean() - 1.0) < 0.05  # label 1 is now "moving"
    assert set(summary["counts"]["train"]) == {"still", "moving"}


def test_short_recordings_are_dropped_and_counted_or_padded_with_their_last_sample(two_classes, tmp_path):
    rng = np.random.default_rng(4)
    for i in range(6, 11):  # enough recordings that the short one never holds a split's only windows of a class
        write_recording(two_classes / "recordings" / "still" / f"rec_{i:02d}.csv", accel(50, 0.0, rng))
    short = two_classes / "recordings" / "still" / "rec_short.csv"
    write_recording(short, {"x": np.arange(5.0), "y": np.zeros(5), "z": np.ones(5)})
    summary, _, logs = run_data(variant_for(two_classes, window=40), tmp_path / "drop")
    assert summary["dropped"] == 1
    assert any(line.startswith("1 recording(s) shorter than the window (40 samples) dropped: still/rec_short.csv")
               for line in logs)
    summary, _, _ = run_data(variant_for(two_classes, window=40, short="pad"), tmp_path / "pad")
    assert summary["dropped"] == 0
    samples = _recordings.read_recording(short, "short.csv", ["x", "y", "z"])
    padded = _recordings.cut_windows(samples, 8, 8, "pad")
    assert padded.shape == (1, 8, 3) and padded[0, :, 0].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]


def test_a_fixed_split_keeps_the_test_folder_and_carves_validation_from_train(tmp_path):
    rng = np.random.default_rng(2)
    for split, count in (("train", 5), ("test", 2)):
        for name, level in (("a", 0.0), ("b", 1.0)):
            for i in range(count):
                write_recording(tmp_path / "recordings" / split / name / f"{split}_{i}.csv", accel(32, level, rng))
    run_data(variant_for(tmp_path), tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "recordings.json").read_text())
    assert sorted(manifest["test"]) == [f"test/{c}/test_{i}.csv" for c in "ab" for i in range(2)]
    # split.val / (split.train + split.val) = 0.15 / 0.85 of 5 recordings rounds to 1 per class
    assert len(manifest["val"]) == 2 and len(manifest["train"]) == 8
    assert all(name.startswith("train/") for name in [*manifest["val"], *manifest["train"]])


# --- no leakage: the split is by recording ---------------------------------------------------------------------

def nearest_neighbour_accuracy(x_train, y_train, x_test, y_test) -> float:
    """1-NN on whole windows: it can only be right above chance by recognising a recording it has seen."""
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    distances = ((flat_test[:, None, :] - flat_train[None, :, :]) ** 2).sum(axis=2)
    return float((y_train[distances.argmin(axis=1)] == y_test).mean())


def test_windows_of_one_recording_never_sit_in_two_splits(tmp_path):
    """Each recording is its own random constant signature plus noise, and its class is a coin flip: the class is
    not in the signal at all. A split by window lets a model memorise recordings (1-NN scores ~1.0); the split by
    recording leaves it at chance."""
    rng = np.random.default_rng(11)
    labels = rng.permutation([0, 1] * 20)
    for i, label in enumerate(labels):
        signature = rng.normal(0, 1, 3)
        n = 120
        write_recording(tmp_path / "recordings" / "ab"[label] / f"rec_{i:02d}.csv",
                        {a: signature[j] + rng.normal(0, 0.05, n) for j, a in enumerate("xyz")})
    variant = variant_for(tmp_path, hop=8)
    p = variant.project
    read = lambda path, name: _recordings.read_recording(path, name, ["x", "y", "z"])  # noqa: E731
    rec = _recordings.load(tmp_path / "recordings", "recordings", None, read, ".csv", 3, 16, 8, "drop",
                           p.data.split, p.seed)
    names = {split: {rec.recordings[split][i] for i in np.unique(rec.sources[split])} for split in rec.sources}
    assert not names["train"] & names["test"] and not names["train"] & names["val"] and \
        not names["val"] & names["test"]
    assert len(names["test"]) >= 2 and len(names["train"]) >= 20

    _, arrays, _ = run_data(variant, tmp_path / "out")
    by_recording = nearest_neighbour_accuracy(arrays["x_train"], arrays["y_train"], arrays["x_test"],
                                              arrays["y_test"])
    # the same windows split by window, as `stratified_split` does for generated data
    x = np.concatenate([arrays[f"x_{s}"] for s in ("train", "val", "test")])
    y = np.concatenate([arrays[f"y_{s}"] for s in ("train", "val", "test")])
    train, _, test = data.stratified_split(y, p.data.split, p.seed)
    by_window = nearest_neighbour_accuracy(x[train], y[train], x[test], y[test])
    assert by_window > 0.95, by_window  # leakage: the test windows' recordings were seen in training
    assert by_recording < 0.8, by_recording  # chance is 0.5; the class is not in the signal


# --- bad data: exit 2 before anything is stored, the file and the row named -----------------------------------

def _good(root):
    rng = np.random.default_rng(5)
    for name in ("a", "b"):
        for i in range(4):
            write_recording(root / "recordings" / name / f"r{i}.csv", accel(32, float(name == "b"), rng))


BAD_DATA = {
    "nan": (lambda r: (r / "a" / "r1.csv").write_text("t,x,y,z\n0,1,2,3\n1,1,nan,3\n"),
            "recordings/a/r1.csv row 3, column 'y': 'nan' is not a finite number"),
    "text": (lambda r: (r / "a" / "r1.csv").write_text("t,x,y,z\n0,1,2,3\n1,1,2,3\n2,oops,2,3\n"),
             "recordings/a/r1.csv row 4, column 'x': 'oops' is not a number"),
    "empty value": (lambda r: (r / "a" / "r1.csv").write_text("t,x,y,z\n0,1,,3\n"),
                    "recordings/a/r1.csv row 2, column 'y': '' is not a number"),
    "ragged row": (lambda r: (r / "b" / "r0.csv").write_text("t,x,y,z\n0,1,2,3\n1,1,2\n"),
                   "recordings/b/r0.csv row 3: 3 fields, the header has 4"),
    "not utf-8": (lambda r: (r / "a" / "r2.csv").write_bytes(b"t,x,y,z\n0,1,2,3\n0,\xff\xfe,2,3\n"),
                  "recordings/a/r2.csv row 3: not UTF-8 text (byte 18: b'\\xff')"),
    "no header": (lambda r: (r / "a" / "r0.csv").write_text("0,1,2,3\n1,1,2,3\n"),
                  "recordings/a/r0.csv row 1: no header row (the first row is numbers: 0,1,2,3)"),
    "semicolons": (lambda r: (r / "a" / "r1.csv").write_text("t;x;y;z\n0;1,5;2;3\n"),
                   "recordings/a/r1.csv row 1: fields separated by semicolons, not commas ('t;x;y;z')"),
    "tabs": (lambda r: (r / "b" / "r2.csv").write_text("t\tx\ty\tz\n0\t1\t2\t3\n"),
             "recordings/b/r2.csv row 1: fields separated by tabs, not commas ('t\\tx\\ty\\tz')"),
    "missing column": (lambda r: (r / "b" / "r3.csv").write_text("time,x,y,zz\n0,1,2,3\n"),
                       "recordings/b/r3.csv: no column 'z' (columns found: time, x, y, zz)"),
    "empty class": (lambda r: [f.unlink() for f in (r / "b").iterdir()],
                    "data.path: recordings/b/ holds no .csv recording"),
    "too few recordings": (lambda r: [(r / "b" / f"r{i}.csv").unlink() for i in (1, 2, 3)],
                           "data.path: recordings/b/ has 1 recording(s); the split needs at least 3 "
                           "(1 test, 1 validation, 1 training)"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_recordings_are_a_user_error_naming_the_file_and_row_and_store_nothing(tmp_path, case):
    _good(tmp_path)
    project_yaml(tmp_path, {})
    spoil, message = BAD_DATA[case]
    spoil(tmp_path / "recordings")
    proc = tinypipe("run", str(tmp_path), "--until", "data")
    assert proc.returncode == 2, proc.stderr
    assert f"error in data (rec): {message}\n  hint: " in proc.stderr.replace("mps2-an386-native", "rec")
    assert store_entries(tmp_path) == []


@pytest.mark.parametrize("data_fields, message", [
    ({"classes": ["a", "c"]}, "data.classes: class 'c' has no folder recordings/c/ (class folders there: a, b)"),
    ({"path": "nowhere"}, "data.path: folder not found: "),
])
def test_a_listed_class_without_a_folder_or_a_missing_folder_is_a_user_error(tmp_path, data_fields, message):
    _good(tmp_path)
    project_yaml(tmp_path, data_fields)
    proc = tinypipe("run", str(tmp_path), "--until", "data")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert store_entries(tmp_path) == []


def test_csv_needs_a_path_npz_needs_classes_and_the_generator_takes_neither():
    with pytest.raises(ValueError, match="`source: csv` needs `path`"):
        Project(name="t", data={"source": "csv"}, model=TINY_MODEL)
    with pytest.raises(ValueError, match="reads none of `path`, `hop` and `short`"):
        Project(name="t", data={"hop": 4}, model=TINY_MODEL)
    with pytest.raises(ValueError, match="`source: npz` needs `path`, the .npz file, and `classes`"):
        Project(name="t", data={"source": "npz", "path": "w.npz"}, model=TINY_MODEL)
    assert Project(name="t", model=TINY_MODEL).data.classes == ["wave", "tap", "none"]
    assert Project(name="t", data={"source": "csv", "path": "r"}, model=TINY_MODEL).data.classes is None


@pytest.mark.parametrize("text, message", [
    ("", "e.csv: the file is empty"),
    ("\n\n", "e.csv: the file is empty"),
    ("t,x\n\n", "e.csv: a header and no samples"),
    ("t,x\n0,1\n\n1,oops\n", "e.csv row 4, column 'x': 'oops' is not a number"),  # blank lines keep numbering
])
def test_read_recording_rejects_empty_files_and_counts_rows_as_lines(tmp_path, text, message):
    (tmp_path / "e.csv").write_text(text)
    with pytest.raises(UserError) as err:
        _recordings.read_recording(tmp_path / "e.csv", "e.csv", ["x"])
    assert err.value.message == message


def test_read_recording_takes_crlf_a_byte_order_mark_and_blank_lines(tmp_path):
    (tmp_path / "r.csv").write_bytes(b"\xef\xbb\xbftime, x ,y\r\n0,1.5,2\r\n\r\n1,-1e-3,4\r\n\r\n")
    samples = _recordings.read_recording(tmp_path / "r.csv", "r.csv", ["y", "x"])
    assert samples.dtype == np.float32 and samples.tolist() == [[2.0, 1.5], [4.0, np.float32(-1e-3)]]


# --- the recordings are an input: by content, named by `status --why` -------------------------------------------

def test_editing_a_recording_reruns_data_touching_one_does_not_and_why_names_an_added_file(tmp_path):
    _good(tmp_path)
    project_yaml(tmp_path, {})
    assert by_stage(run_json(tmp_path, "--until", "data")) == {"data": "ran"}

    rec = tmp_path / "recordings" / "a" / "r1.csv"
    stat = rec.stat()
    os.utime(rec, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert by_stage(run_json(tmp_path, "--until", "data")) == {"data": "cached"}

    write_recording(tmp_path / "recordings" / "b" / "r9.csv", accel(32, 1.0, np.random.default_rng(9)))
    why = tinypipe("status", str(tmp_path), "--why")
    assert "because config data.files: 1 file added: b/r9.csv\n" in why.stdout, why.stdout
    assert why.stdout.count("data.files") == 1

    rec.write_text(rec.read_text().replace("\n0.0", "\n0.5", 1))
    why = tinypipe("status", str(tmp_path), "--why")
    assert "config data.files: 1 file changed: a/r1.csv" in why.stdout, why.stdout
    assert by_stage(run_json(tmp_path, "--until", "data")) == {"data": "ran"}


def test_a_generator_project_keys_its_data_as_before():
    variant = Variant(name="t", project=Project(name="t", model=TINY_MODEL), board=BOARDS["mps2-an386"])
    assert set(data.STAGE.config(variant)["data"]) == {"source", "classes", "samples_per_class", "split"}


# --- end to end -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_own_recordings_run_end_to_end_and_the_device_matches_the_host(tmp_path):
    """Ragged recordings with a timestamp column and a fixed train/test split, through every stage to QEMU."""
    rng = np.random.default_rng(21)
    for split, count in (("train", 8), ("test", 3)):
        for name, freq in (("wave", 2.0), ("rest", 0.0)):
            for i in range(count):
                n = int(rng.integers(16, 90))  # some shorter than the window: padded
                t = np.arange(n) / 50.0
                swing = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3)) if freq else np.zeros(n)
                write_recording(tmp_path / "recordings" / split / name / f"{name}_{i:02d}.csv",
                                {"timestamp": t, "x": swing + rng.normal(0, 0.05, n),
                                 "y": 0.5 * swing + rng.normal(0, 0.05, n), "z": 1.0 + rng.normal(0, 0.05, n)})
    project_yaml(tmp_path, {"hop": 8, "short": "pad"}, window=24, model={**TINY_MODEL, "epochs": 30})
    doc = run_json(tmp_path)  # about 15 s here with a warm toolchain: 14 test windows, host accuracy 0.93
    (result,) = doc["results"]
    assert result["bit_exact"] is True
    assert result["accuracy_device"] == result["accuracy_host"]
    assert result["accuracy_host"] > 0.8


# --- data.source: npz -------------------------------------------------------------------------------------------

def npz_variant(root, classes=("a", "b", "c"), window=8) -> Variant:
    project = Project(name="t", seed=3, sensor={"axes": ["x", "y"], "window": window},
                      data={"source": "npz", "path": "windows.npz", "classes": list(classes)}, model=TINY_MODEL)
    return Variant(name="t", project=project, board=BOARDS["mps2-an386"], engine="native", project_dir=root)


def windows(n_per_class=20, classes=3, window=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    return rng.normal(y[:, None, None], 0.1, (len(y), window, 2)), y


def test_npz_windows_are_split_by_window_or_as_the_file_fixes_it(tmp_path):
    x, y = windows()
    np.savez(tmp_path / "windows.npz", x=x, y=y)
    summary, arrays, _ = run_data(npz_variant(tmp_path), tmp_path / "whole")
    assert summary["counts"]["test"] == {"a": 3, "b": 3, "c": 3} and summary["split"] == "by window"
    assert sum(len(arrays[f"y_{s}"]) for s in ("train", "val", "test")) == 60
    assert arrays["x_train"].dtype == np.float32 and arrays["x_train"].shape[1:] == (8, 2)

    np.savez(tmp_path / "windows.npz", x_train=x[::2], y_train=y[::2], x_test=x[1::2], y_test=y[1::2])
    summary, arrays, logs = run_data(npz_variant(tmp_path), tmp_path / "fixed")
    assert np.array_equal(arrays["x_test"], x[1::2].astype(np.float32)) and summary["split"] == "fixed"
    assert summary["val"] == 6 and summary["train"] == 24  # 0.15 / 0.85 of 10 windows per class rounds to 2
    assert "validation carved from x_train" in logs[0]

    np.savez(tmp_path / "windows.npz", x_train=x[::3], y_train=y[::3], x_val=x[1::3], y_val=y[1::3],
             x_test=x[2::3], y_test=y[2::3])
    summary, arrays, _ = run_data(npz_variant(tmp_path), tmp_path / "with-val")
    assert np.array_equal(arrays["y_val"], y[1::3])


BAD_NPZ = {
    "wrong shape": (lambda x, y: {"x": x[:, :4], "y": y},
                    "windows.npz: x is float64 [60, 4, 2]; sensor.window and sensor.axes need numbers of shape "
                    "[windows, 8, 2]"),
    "nan": (lambda x, y: {"x": np.where(np.arange(60)[:, None, None] == 7, np.nan, x), "y": y},
            "windows.npz: x[7, 0, 0] is nan, not a finite number"),
    "label out of range": (lambda x, y: {"x": x, "y": np.where(np.arange(60) == 4, 5, y)},
                           "windows.npz: y[4] is 5; data.classes has 3 classes (labels 0 to 2)"),
    "float labels": (lambda x, y: {"x": x, "y": y.astype(float)},
                     "windows.npz: y is float64 [60]; it needs one integer label per window of x (60)"),
    "a class with no window": (lambda x, y: {"x": x[:40], "y": y[:40]}, "windows.npz: y has no window of class 'c'"),
    "wrong names": (lambda x, y: {"x": x, "labels": y},
                    "windows.npz: arrays labels, x; expected x and y, or x_train, y_train, x_test and y_test "
                    "(optionally x_val and y_val)"),
    "objects": (lambda x, y: {"x": x, "y": np.array([None] * 60, dtype=object)},
                "windows.npz: Object arrays cannot be loaded when allow_pickle=False"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_bad_npz_windows_are_a_user_error_naming_the_array(tmp_path, case):
    make, message = BAD_NPZ[case]
    np.savez(tmp_path / "windows.npz", **make(*windows()))
    with pytest.raises(UserError) as err:
        run_data(npz_variant(tmp_path), tmp_path / "out")
    assert err.value.message == message


def test_npz_that_is_no_npz_stops_the_run_before_the_store_and_edits_rerun_data(tmp_path):
    (tmp_path / "project.yaml").write_text(json.dumps({
        "name": "rec", "sensor": {"axes": ["x", "y"], "window": 8},
        "data": {"source": "npz", "path": "windows.npz", "classes": ["a", "b", "c"]}, "model": TINY_MODEL}))
    (tmp_path / "windows.npz").write_text("x,y\n1,2\n")
    proc = tinypipe("run", str(tmp_path), "--until", "data")
    assert proc.returncode == 2 and "error in data (mps2-an386-native): windows.npz: not a NumPy .npz file" in \
        proc.stderr, proc.stderr
    assert store_entries(tmp_path) == []
    x, y = windows()
    np.savez(tmp_path / "windows.npz", x=x, y=y)
    assert by_stage(run_json(tmp_path, "--until", "data")) == {"data": "ran"}
    np.savez(tmp_path / "windows.npz", x=x + 1, y=y)
    why = tinypipe("status", str(tmp_path), "--why")
    assert "because config data.files: 1 file changed: windows.npz\n" in why.stdout, why.stdout


# --- an imported .tflite evaluated on the user's data -----------------------------------------------------------

HELLO_WORLD = SHARED / "models" / "hello_world_int8.tflite"  # input [1, 1] int8, output [1, 1] int8


def test_an_imported_tflite_that_does_not_take_the_recordings_is_a_user_error_naming_both_shapes(tmp_path):
    _good(tmp_path)
    (tmp_path / "hello.tflite").write_bytes(HELLO_WORLD.read_bytes())
    project_yaml(tmp_path, {}, model={"path": "hello.tflite"})
    proc = tinypipe("run", str(tmp_path), "--until", "reference")
    assert proc.returncode == 2, proc.stderr
    assert ("error in quantize (mps2-an386-native): model.path: hello.tflite takes input [1, 1], but the data "
            "windows are [16, 3] (sensor.window x sensor.axes)\n  hint: ") in proc.stderr, proc.stderr
    assert not any((entry / "model.tflite").exists() for entry in (tmp_path / ".tinypipe" / "store").iterdir())


def test_an_imported_model_must_output_one_score_per_class_and_dimensions_of_size_one_do_not_count():
    micro = MicroModel(HELLO_WORLD.read_bytes())
    assert micro.takes(np.zeros((5, 1, 1))) and micro.takes(np.zeros((5, 1))) and not micro.takes(np.zeros((5, 2)))
    require_takes_windows(micro, np.zeros((5, 1, 1)), 1, "hello.tflite")
    with pytest.raises(UserError) as err:
        require_takes_windows(micro, np.zeros((5, 1, 1)), 2, "hello.tflite")
    assert err.value.message == "model.path: hello.tflite outputs 1 score(s), but data.classes has 2 class(es)"


@pytest.mark.slow
def test_an_imported_tflite_gets_real_accuracy_on_the_recordings_and_matches_the_device(tmp_path):
    """Train on recordings once, export the .tflite, then import it in a second project over the same recordings:
    host accuracy is measured on the real test split (the same number as the model's own project), the device
    agrees, and its outputs are bit-exact."""
    trained, imported = tmp_path / "trained", tmp_path / "imported"
    rng = np.random.default_rng(8)
    for name, level in (("still", 0.0), ("moving", 1.0)):
        for i in range(6):
            write_recording(trained / "recordings" / name / f"rec_{i:02d}.csv", accel(48, level, rng))
    project_yaml(trained, {"hop": 8}, model={**TINY_MODEL, "epochs": 30})
    first = run_json(trained, "--until", "reference")
    assert by_stage(first)["reference"] == "ran"
    model = store_entry(trained, "mps2-an386-native", "quantize") / "model.tflite"
    reference = json.loads((store_entry(trained, "mps2-an386-native", "reference") / "reference.json").read_text())

    shutil.copytree(trained / "recordings", imported / "recordings")
    (imported / "model.tflite").write_bytes(model.read_bytes())
    project_yaml(imported, {"hop": 8}, model={"path": "model.tflite"})
    (result,) = run_json(imported)["results"]
    assert isinstance(result["accuracy_host"], float) and result["accuracy_host"] == reference["accuracy_host"]
    assert result["accuracy_host"] > 0.8  # measured 1.0 on its 10 test windows; chance is 0.5
    assert result["accuracy_device"] == result["accuracy_host"]
    assert result["bit_exact"] is True
    summary = json.loads((store_entry(imported, "mps2-an386-native", "reference") / "reference.json").read_text())
    assert summary["inputs"] == "data" and summary["n"] == reference["n"]
    run = json.loads((store_entry(imported, "mps2-an386-native", "run") / "run.json").read_text())
    assert run["confusion"]["classes"] == ["moving", "still"]
    assert sum(map(sum, run["confusion"]["matrix"])) == reference["n"]


# --- `tinypipe data`: what the data stage stored --------------------------------------------------------------

def test_tinypipe_data_shows_windows_per_class_and_split_and_each_recordings_length(two_classes):
    project_yaml(two_classes, {"hop": 8})
    proc = tinypipe("data", str(two_classes))
    assert proc.returncode == 2 and "data (mps2-an386-native) is not built for the current config" in proc.stderr
    assert f"run `tinypipe run {two_classes} --until data` first" in proc.stderr, proc.stderr

    run_json(two_classes, "--until", "data")
    proc = tinypipe("data", str(two_classes), "--json")
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    manifest = json.loads((store_entry(two_classes, "mps2-an386-native", "data") / "recordings.json").read_text())
    assert doc["classes"] == ["moving", "still"] and doc["source"] == "csv" and doc["window"] == 16
    assert doc["recordings"] == {split: {name: {"windows": n, "samples": 40 + 6 * int(name[-6:-4])}
                                         for name, n in names.items()} for split, names in manifest.items()}
    assert {split: sum(counts.values()) for split, counts in doc["windows"].items()} == \
        {split: sum(names.values()) for split, names in manifest.items()}

    text = tinypipe("data", str(two_classes)).stdout.splitlines()
    assert text[0] == "data (mps2-an386-native): csv recordings, windows of 16 samples x 3 axes"
    assert text[2].split() == ["split", "moving", "still", "total", "recordings", "samples", "min/median/max"]
    assert [line.split()[0] for line in text[3:6]] == ["train", "val", "test"]
    train = text[3].split()
    assert int(train[3]) == doc["windows"]["train"]["moving"] + doc["windows"]["train"]["still"]
    assert int(train[4]) == 8
