"""The ML stages (data, train, quantize, reference) called directly, on real TensorFlow and the host TFLM.

One small pipeline (200 windows per class, 20 epochs, the recommended gesture stack) is run once per session
and shared; each test checks one promise. Stages are called through `run(ctx)` with a hand-made StageContext,
as the engine does, without the engine.
"""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REPO, SHARED
from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant
from tinypipe.core.errors import UserError
from tinypipe.stages import data, quantize, reference, train
from tinypipe.tflite.io import quantize_input
from tinypipe.stages._ml import builtin_op_names
from tinypipe.stages.base import StageContext

# The recommended gesture stack: 819 parameters, float and int8 test accuracy 0.97-1.0 over seeds at 30 epochs.
GESTURE_LAYERS = [
    {"type": "conv1d", "filters": 8, "kernel_size": 5, "activation": "relu"},
    {"type": "maxpool1d", "pool_size": 4},
    {"type": "conv1d", "filters": 16, "kernel_size": 3, "activation": "relu"},
    {"type": "maxpool1d", "pool_size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 3},
]
INT8_BUILTINS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
                 "SOFTMAX", "EXPAND_DIMS", "SQUEEZE"}


def make_variant(project_dir=None, **project) -> Variant:
    project.setdefault("name", "t")
    project.setdefault("data", {"samples_per_class": 200})
    project.setdefault("model", {"layers": GESTURE_LAYERS, "epochs": 20})
    return Variant(name="t", project=Project(**project), board=BOARDS["mps2-an386"], engine="native",
                   project_dir=project_dir)


def run_stage(module, variant, out, inputs=None, progress=None):
    out.mkdir(parents=True)
    ctx = StageContext(variant=variant, inputs=inputs or {}, out=out, project_dir=variant.project_dir or out,
                       _log=lambda message: None, _progress=progress or (lambda done, total, message: None))
    return module.run(ctx)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """data -> train -> quantize -> reference for the gesture stack; returns the stage output dirs and results."""
    root = tmp_path_factory.mktemp("ml")
    variant = make_variant()
    dirs = {name: root / name for name in ("data", "train", "quantize", "reference")}
    epochs_seen = []
    results = {
        "data": run_stage(data, variant, dirs["data"]),
        "train": run_stage(train, variant, dirs["train"], {"data": dirs["data"]},
                           progress=lambda done, total, message: epochs_seen.append((done, total, message))),
        "quantize": run_stage(quantize, variant, dirs["quantize"], {"data": dirs["data"], "train": dirs["train"]}),
        "reference": run_stage(reference, variant, dirs["reference"],
                               {"data": dirs["data"], "quantize": dirs["quantize"]}),
    }
    return {"variant": variant, "dirs": dirs, "results": results, "epochs_seen": epochs_seen, "root": root}


# --- data ------------------------------------------------------------------------------------------------------

def test_data_is_deterministic_from_the_seed(pipeline, tmp_path):
    again = run_stage(data, pipeline["variant"], tmp_path / "again")
    assert again == pipeline["results"]["data"]
    assert digest(tmp_path / "again" / "data.npz") == digest(pipeline["dirs"]["data"] / "data.npz")
    run_stage(data, make_variant(seed=1), tmp_path / "other")
    with np.load(tmp_path / "other" / "data.npz") as other, np.load(pipeline["dirs"]["data"] / "data.npz") as first:
        assert not np.array_equal(other["x_train"], first["x_train"])


def test_data_is_balanced_and_split_by_the_fractions(pipeline):
    assert json.loads((pipeline["dirs"]["data"] / "classes.json").read_text()) == ["wave", "tap", "none"]
    with np.load(pipeline["dirs"]["data"] / "data.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert sorted(arrays) == ["x_test", "x_train", "x_val", "y_test", "y_train", "y_val"]
    for split, per_class in (("train", 140), ("val", 30), ("test", 30)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        assert x.shape == (3 * per_class, 64, 3) and x.dtype == np.float32
        assert np.issubdtype(y.dtype, np.integer)
        assert np.bincount(y, minlength=3).tolist() == [per_class] * 3
        assert not (np.diff(y) == 0).all()  # shuffled, not class-major
    assert pipeline["results"]["data"]["counts"]["test"] == {"wave": 30, "tap": 30, "none": 30}


def test_generated_windows_are_physical_accelerometer_readings(pipeline):
    with np.load(pipeline["dirs"]["data"] / "data.npz") as npz:
        x, y = npz["x_train"], npz["y_train"]
    wave, tap, none = (x[y == label] for label in range(3))
    # at rest the reading is gravity: about 1 g, mostly on z
    magnitude = np.linalg.norm(none, axis=2).mean(axis=1)
    assert np.all((magnitude > 0.8) & (magnitude < 1.2))
    assert none[:, :, 2].mean() > 0.85
    # a tap peaks far above 1 g; a wave swings in the x/y plane far more than a device at rest
    assert np.median(np.abs(tap).max(axis=(1, 2))) > 2.0
    assert np.median(wave[:, :, :2].std(axis=1).max(axis=1)) > 4 * np.median(none[:, :, :2].std(axis=1).max(axis=1))


def test_data_rejects_an_unknown_class_and_names_the_known_ones(tmp_path):
    variant = make_variant(data={"classes": ["wave", "jump"], "samples_per_class": 10})
    with pytest.raises(UserError) as err:
        run_stage(data, variant, tmp_path / "out")
    assert err.value.message == "data.classes: the built-in accelerometer generator does not know class 'jump'"
    assert err.value.hint == "use classes from: wave, tap, none (or load your own data)"


def test_data_selects_and_orders_the_configured_axes(pipeline, tmp_path):
    run_stage(data, make_variant(sensor={"axes": ["z", "x"]}), tmp_path / "zx")
    with np.load(tmp_path / "zx" / "data.npz") as zx, np.load(pipeline["dirs"]["data"] / "data.npz") as xyz:
        assert np.array_equal(zx["x_test"], xyz["x_test"][:, :, [2, 0]])


# --- train -----------------------------------------------------------------------------------------------------

def test_trained_model_is_accurate_and_reports_progress(pipeline):
    log = json.loads((pipeline["dirs"]["train"] / "train_log.json").read_text())
    assert pipeline["results"]["train"]["val_accuracy"] > 0.9
    assert log["test_accuracy_float"] > 0.9
    assert len(log["history"]["loss"]) == 20
    assert [(done, total) for done, total, _ in pipeline["epochs_seen"]] == [(e, 20) for e in range(1, 21)]
    assert pipeline["epochs_seen"][-1][2].startswith("loss ")


def test_training_twice_with_the_same_seed_gives_the_same_bytes(pipeline, tmp_path):
    run_stage(train, pipeline["variant"], tmp_path / "again", {"data": pipeline["dirs"]["data"]})
    for name in ("model.keras", "train_log.json"):
        assert digest(tmp_path / "again" / name) == digest(pipeline["dirs"]["train"] / name), name


def test_a_stack_without_a_class_head_gets_one(tmp_path):
    import keras

    from tinypipe.config.schema import Model

    layers = Model(layers=[{"type": "conv1d", "filters": 4, "kernel_size": 3}]).layers
    model = train.build_model(keras, layers, 16, 3, 5, softmax=True, batch_size=1)
    assert model.output_shape == (1, 5)
    assert [layer.name for layer in model.layers][-3:] == ["head_flatten", "head_dense", "softmax"]

    on_a_sequence = Model(layers=[{"type": "conv1d", "filters": 4, "kernel_size": 3},
                                  {"type": "dense", "units": 5}]).layers
    with pytest.raises(UserError, match=r"model.layers\[1\]: the last dense sees a sequence of shape \(14, 5\)"):
        train.build_model(keras, on_a_sequence, 16, 3, 5, softmax=False, batch_size=1)


def test_a_stack_too_deep_for_the_window_is_a_user_error():
    import keras

    from tinypipe.config.schema import Model

    layers = Model(layers=[{"type": "conv1d", "filters": 4, "kernel_size": 9}]).layers
    with pytest.raises(UserError, match=r"model.layers: the stack does not fit a window of 8 x 3"):
        train.build_model(keras, layers, 8, 3, 3, softmax=False, batch_size=1)


def test_an_imported_keras_model_is_evaluated_not_retrained(pipeline, tmp_path):
    shutil.copy(pipeline["dirs"]["train"] / "model.keras", tmp_path / "mine.keras")
    variant = make_variant(project_dir=tmp_path, model={"path": "mine.keras"})
    assert train.STAGE.config(variant)["model_file"]["sha256"] == digest(tmp_path / "mine.keras")
    result = run_stage(train, variant, tmp_path / "out", {"data": pipeline["dirs"]["data"]})
    assert result["val_accuracy"] == pipeline["results"]["train"]["val_accuracy"]
    assert json.loads((tmp_path / "out" / "train_log.json").read_text())["history"] == {}


# --- quantize --------------------------------------------------------------------------------------------------

def test_quantized_model_is_int8_end_to_end(pipeline):
    model_bytes = (pipeline["dirs"]["quantize"] / "model.tflite").read_bytes()
    quant = json.loads((pipeline["dirs"]["quantize"] / "quant.json").read_text())
    assert quant["input"]["dtype"] == "int8" and quant["output"]["dtype"] == "int8"
    assert quant["input"]["shape"] == [1, 64, 3] and quant["output"]["shape"] == [1, 3]
    assert quant["output_scale"] == pytest.approx(1 / 256) and quant["output_zero_point"] == -128  # softmax
    assert set(quant["ops"]) <= INT8_BUILTINS and quant["ops"] == builtin_op_names(model_bytes)
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(quant["ops"])
    # every tensor is int8, but biases (int32) and reshape's shape operand (int32)
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    graph = schema.Model.GetRootAs(model_bytes, 0).Subgraphs(0)
    types = {graph.Tensors(i).Type() for i in range(graph.TensorsLength())}
    assert types <= {schema.TensorType.INT8, schema.TensorType.INT32}
    assert quant["accuracy_float"] > 0.9 and quant["accuracy_host"] > 0.9
    assert abs(quant["accuracy_host"] - quant["accuracy_float"]) <= 0.05


def test_quantization_is_reproducible(pipeline, tmp_path):
    inputs = {"data": pipeline["dirs"]["data"], "train": pipeline["dirs"]["train"]}
    run_stage(quantize, pipeline["variant"], tmp_path / "again", inputs)
    for name in ("model.tflite", "quant.json"):
        assert digest(tmp_path / "again" / name) == digest(pipeline["dirs"]["quantize"] / name), name


def test_float_io_keeps_float_tensors_at_the_edges(pipeline, tmp_path):
    variant = make_variant(quantization={"io": "float32"})
    inputs = {"data": pipeline["dirs"]["data"], "train": pipeline["dirs"]["train"]}
    run_stage(quantize, variant, tmp_path / "q", inputs)
    quant = json.loads((tmp_path / "q" / "quant.json").read_text())
    assert quant["input"]["dtype"] == "float32" and {"QUANTIZE", "DEQUANTIZE"} <= set(quant["ops"])
    run_stage(reference, variant, tmp_path / "r", {"data": pipeline["dirs"]["data"], "quantize": tmp_path / "q"})
    ref = json.loads((tmp_path / "r" / "reference.json").read_text())
    assert ref["input_dtype"] == "float32"
    assert (tmp_path / "r" / "test_inputs.bin").stat().st_size == ref["n"] * ref["input_len"] * 4
    assert ref["accuracy_host"] > 0.9


# --- reference -------------------------------------------------------------------------------------------------

def test_reference_files_have_the_documented_layout(pipeline):
    ref_dir = pipeline["dirs"]["reference"]
    ref = json.loads((ref_dir / "reference.json").read_text())
    assert ref["n"] == 90 and ref["input_len"] == 192 and ref["output_len"] == 3
    assert ref["input_shape"] == [1, 64, 3] and ref["output_shape"] == [1, 3]
    assert ref["classes"] == ["wave", "tap", "none"] and ref["inputs"] == "data"
    assert (ref_dir / "test_inputs.bin").stat().st_size == 90 * 192
    assert (ref_dir / "test_outputs.bin").stat().st_size == 90 * 3
    labels = np.fromfile(ref_dir / "labels.bin", dtype=np.uint8)
    with np.load(pipeline["dirs"]["data"] / "data.npz") as npz:
        assert labels.tolist() == npz["y_test"].tolist()
    quant = json.loads((pipeline["dirs"]["quantize"] / "quant.json").read_text())
    assert ref["accuracy_host"] == quant["accuracy_host"]


def test_reference_outputs_replay_bit_exactly(pipeline, host_tflm, tmp_path):
    ref_dir = pipeline["dirs"]["reference"]
    inputs = np.fromfile(ref_dir / "test_inputs.bin", dtype=np.int8).reshape(90, 192)
    outputs = np.fromfile(ref_dir / "test_outputs.bin", dtype=np.int8).reshape(90, 3)
    micro = host_tflm((pipeline["dirs"]["quantize"] / "model.tflite").read_bytes())
    replayed = np.stack([micro.invoke(row).reshape(3) for row in inputs])
    assert np.array_equal(replayed, outputs)
    run_stage(reference, pipeline["variant"], tmp_path / "again",
              {"data": pipeline["dirs"]["data"], "quantize": pipeline["dirs"]["quantize"]})
    for name in ("test_inputs.bin", "test_outputs.bin", "labels.bin", "reference.json"):
        assert digest(tmp_path / "again" / name) == digest(ref_dir / name), name


def test_input_quantization_rounds_half_away_from_zero_like_tflite():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, 200.0, -200.0], dtype=np.float32)
    assert quantize_input(x, 1.0, 0, np.int8).tolist() == [1, 2, 3, -1, -2, 0, 127, -128]
    assert quantize_input(np.float32([0.25]), 0.5, -3, np.int8).tolist() == [-2]


def test_stage_modules_import_without_numpy_or_tensorflow_and_reference_runs_without_tensorflow(pipeline):
    script = f"""
import sys
from pathlib import Path
import tinypipe.stages.data, tinypipe.stages.train, tinypipe.stages.quantize, tinypipe.stages.reference
assert 'numpy' not in sys.modules and 'tensorflow' not in sys.modules, 'a stage module imports heavy modules'
from tinypipe.stages.base import StageContext
from tinypipe.config.schema import Project, Variant
from tinypipe.config.boards import BOARDS
variant = Variant(name="t", project=Project(name="t", model={{"layers": [{{"type": "flatten"}}]}}),
                  board=BOARDS["mps2-an386"], engine="native")
out = Path({str(pipeline["root"] / "subprocess-reference")!r})
out.mkdir()
inputs = {{"data": Path({str(pipeline["dirs"]["data"])!r}), "quantize": Path({str(pipeline["dirs"]["quantize"])!r})}}
tinypipe.stages.reference.run(StageContext(variant=variant, inputs=inputs, out=out, project_dir=out))
assert 'tensorflow' not in sys.modules, 'reference imported tensorflow'
assert 'keras' not in sys.modules, 'reference imported keras'
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (pipeline["root"] / "subprocess-reference" / "test_outputs.bin").read_bytes() == \
        (pipeline["dirs"]["reference"] / "test_outputs.bin").read_bytes()


# --- an imported .tflite ---------------------------------------------------------------------------------------

@pytest.fixture
def hello_world(tmp_path):
    model = SHARED / "models" / "hello_world_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} not found (set TINYPIPE_SHARED)")
    shutil.copy(model, tmp_path / "hello.tflite")
    return tmp_path


def test_an_imported_tflite_skips_training_and_is_copied(pipeline, hello_world):
    variant = make_variant(project_dir=hello_world, model={"path": "hello.tflite"})
    dirs = {"data": pipeline["dirs"]["data"], "train": hello_world / "train", "quantize": hello_world / "quantize"}
    assert run_stage(train, variant, dirs["train"], {"data": dirs["data"]}) == {"imported": "tflite"}
    assert sorted(p.name for p in dirs["train"].iterdir()) == ["imported.json"]
    result = run_stage(quantize, variant, dirs["quantize"], {"data": dirs["data"], "train": dirs["train"]})
    assert (dirs["quantize"] / "model.tflite").read_bytes() == (hello_world / "hello.tflite").read_bytes()
    assert result["accuracy_host"] is None and result["accuracy_float"] is None  # a sine model: no classes
    run_stage(reference, variant, hello_world / "reference", {"data": dirs["data"], "quantize": dirs["quantize"]})
    ref = json.loads((hello_world / "reference" / "reference.json").read_text())
    assert ref["inputs"] == "random" and ref["accuracy_host"] is None and ref["input_len"] == 1
    assert not (hello_world / "reference" / "labels.bin").exists()  # the data's labels are not these inputs'


def test_an_imported_tflite_keys_quantize_by_content(hello_world):
    variant = make_variant(project_dir=hello_world, model={"path": "hello.tflite"})
    before = quantize.STAGE.config(variant)
    assert before["model_file"] == {"kind": "tflite", "sha256": digest(hello_world / "hello.tflite")}
    assert train.STAGE.config(variant) == {"model": {"import": "tflite"}}
    with open(hello_world / "hello.tflite", "ab") as f:
        f.write(b"\0")
    assert quantize.STAGE.config(variant) != before


def test_a_missing_model_file_is_a_user_error(tmp_path):
    variant = make_variant(project_dir=tmp_path, model={"path": "nope.tflite"})
    with pytest.raises(UserError) as err:
        quantize.STAGE.config(variant)
    assert err.value.message == f"model.path: file not found: {tmp_path / 'nope.tflite'}"
    assert err.value.hint == "fix the path; a relative path starts at project.yaml's directory"


def test_an_imported_file_tflm_cannot_load_is_a_user_error(pipeline, tmp_path):
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer")
    variant = make_variant(project_dir=tmp_path, model={"path": "broken.tflite"})
    with pytest.raises(UserError) as err:
        run_stage(quantize, variant, tmp_path / "q", {"data": pipeline["dirs"]["data"], "train": tmp_path})
    assert err.value.message.startswith(f"{tmp_path / 'broken.tflite'}: not a .tflite model")
