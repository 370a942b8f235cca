"""A declared input scaling (`sensor.scale`/`sensor.offset`, `data.normalize: standard`): the float model learns
`(raw - offset) * scale`, and raw int16 samples become the int8 model input through one fixed-point step per axis,
the same on the host (numpy, `stages/_scaling.py`) and on the device (`tinyml_kernels::quantize_raw_i16`)."""

import json
import re
from fractions import Fraction

import numpy as np
import pytest

from tests.helpers import run_data, run_json, store_entry, tinypipe
from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant
from tinypipe.stages import _scaling, data

TINY_MODEL = {"layers": [{"type": "conv1d", "filters": 4, "kernel_size": 3, "strides": 2},
                         {"type": "flatten"}, {"type": "dense", "units": 2}], "epochs": 20}


def exact_step(raw: int, multiplier: int, bias: int, shift: int) -> int:
    """The fixed-point step with rational arithmetic: (raw * m + b) / 2^shift, halves away from zero, clamped."""
    value = Fraction(raw * multiplier + bias, 2 ** shift)
    magnitude = int(abs(value) + Fraction(1, 2))
    return max(-128, min(127, magnitude if value >= 0 else -magnitude))


@pytest.mark.parametrize("offset, scale, input_scale, zero_point", [
    (0.0, 1 / 4096, 0.0078125, -1),  # ties: raw multiples of 16 land on halves
    (1987.43, 0.000252615, 0.0213, 7),
    (-32768.0, 2.5e-5, 0.00393, -128),
    (16384.0, 0.5, 2.0, 0),  # multiplier 0.25
])
def test_quantize_raw_is_the_fixed_point_step_and_within_one_step_of_the_float_path(offset, scale, input_scale,
                                                                                     zero_point):
    scaling = _scaling.InputScaling([offset], [scale], "sensor")
    fixed = scaling.fixed_point(input_scale, zero_point)
    raw = np.concatenate([np.arange(-32768, 32768, 13), [-32768, -1, 0, 1, 32767]]).astype(np.int16)
    got = _scaling.quantize_raw(raw[:, None], fixed)[:, 0]
    m, b, k = fixed.multiplier[0], fixed.bias[0], fixed.shift[0]
    assert 2 ** 30 <= m < 2 ** 31 or k == _scaling.MAX_SHIFT
    assert got.tolist() == [exact_step(int(r), m, b, k) for r in raw]
    float_path = np.clip(np.round((raw.astype(np.float64) - offset) * scale / input_scale + zero_point), -128, 127)
    assert np.abs(got - float_path).max() <= 1


def test_a_scaling_that_clips_nearly_everything_is_a_user_error():
    from tinypipe.core.errors import UserError

    with pytest.raises(UserError, match="axis 0: raw samples map onto the model's int8 input with multiplier "
                                        "1e\\+05 and offset 0: nearly every sample would clip"):
        _scaling.InputScaling([0.0], [100.0], "sensor").fixed_point(0.001, 0)


def write_raw_recordings(root, counts=(("train", 6), ("test", 2)), seed=5, integer=True) -> None:
    """recordings/{train,test}/{wave,rest}/*.csv: int16-range raw counts (an accelerometer at 4096 counts per g,
    resting at 16384 on z), ragged lengths."""
    rng = np.random.default_rng(seed)
    for split, count in counts:
        for name, freq in (("wave", 2.0), ("rest", 0.0)):
            for i in range(count):
                n = int(rng.integers(60, 120))
                t = np.arange(n) / 50.0
                swing = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3)) if freq else np.zeros(n)
                cols = [2000 + 8000 * swing + rng.normal(0, 300, n), -1000 + 3000 * swing + rng.normal(0, 300, n),
                        16384 + rng.normal(0, 300, n)]
                rows = zip(*[np.round(c).astype(int) if integer else c / 4096 for c in cols])
                path = root / "recordings" / split / name / f"{name}_{i:02d}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("x,y,z\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows))


def scaled_doc(**changes) -> dict:
    doc = {"name": "scaled", "seed": 3, "sensor": {"axes": ["x", "y", "z"], "window": 24},
           "data": {"source": "csv", "path": "recordings", "hop": 8, "normalize": "standard"}, "model": TINY_MODEL}
    for section, fields in changes.items():
        doc[section] = {**doc[section], **fields}
    return doc


def test_normalize_standard_is_fitted_on_the_training_split_only_and_the_windows_stay_raw(tmp_path):
    write_raw_recordings(tmp_path)
    project = Project(**scaled_doc())
    variant = Variant(name="t", project=project, board=BOARDS["mps2-an386"], engine="native", project_dir=tmp_path)
    out = tmp_path / "out"
    summary, arrays, logs = run_data(variant, out)
    x_train, x_test = arrays["x_train"].astype(np.float64), arrays["x_test"]
    scaling = json.loads((out / "scaling.json").read_text())
    assert scaling["how"] == "standard" and summary["scaling"] == scaling
    assert np.allclose(scaling["offset"], x_train.reshape(-1, 3).mean(axis=0), rtol=1e-12)
    assert np.allclose(scaling["scale"], 1 / x_train.reshape(-1, 3).std(axis=0), rtol=1e-12)
    everything = np.concatenate([x_train.reshape(-1, 3), x_test.reshape(-1, 3)]).mean(axis=0)
    assert not np.allclose(scaling["offset"], everything, rtol=1e-6)  # the test split did not take part
    assert np.array_equal(x_test, np.round(x_test)) and x_test.max() > 8000  # raw counts, not normalized
    assert any(line.startswith("input scaling (standard): offset [") for line in logs)
    model_x = _scaling.model_split(out)["x_train"]
    assert abs(model_x.mean()) < 1e-3 and np.allclose(model_x.reshape(-1, 3).std(axis=0), 1, atol=1e-4)


def test_a_declared_scaling_needs_raw_int16_samples_exit_2_and_nothing_stored(tmp_path):
    write_raw_recordings(tmp_path, integer=False)
    (tmp_path / "project.yaml").write_text(json.dumps(scaled_doc(sensor={"scale": 0.01}, data={"normalize": "none"})))
    proc = tinypipe("run", str(tmp_path), "--until", "data")
    assert proc.returncode == 2, proc.stderr
    assert "with a declared input scaling the recordings must be raw int16 samples (whole numbers from -32768 " \
           "to 32767)\n  hint: store the sensor's raw readings (ADC counts)" in proc.stderr, proc.stderr
    store = tmp_path / ".tinypipe" / "store"
    assert not store.is_dir() or not any(store.iterdir())


@pytest.mark.parametrize("changes, message", [
    ({"sensor": {"scale": [1.0, 2.0]}}, "`sensor.scale` has 2 values for 3 axes"),
    ({"sensor": {"offset": 5}}, "give `sensor.scale`/`sensor.offset` or `data.normalize`, not both"),
    ({"sensor": {"scale": -1.0}, "data": {"normalize": "none"}}, "`sensor.scale` must be positive"),
    ({"quantization": {"io": "float32"}}, "needs your own raw recordings (`data.source: csv`, `wav` or `npz`) and "
                                          "`quantization.io: int8`"),
])
def test_scaling_config_errors(changes, message):
    doc = scaled_doc()
    doc["quantization"] = {}
    for section, fields in changes.items():
        doc[section] = {**doc[section], **fields}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        Project(**doc)
    with pytest.raises(ValueError, match="needs your own raw recordings"):
        Project(name="g", sensor={"scale": 0.5}, model=TINY_MODEL)


def test_a_project_without_scaling_keys_its_sensor_as_before():
    variant = Variant(name="t", project=Project(name="t", model=TINY_MODEL), board=BOARDS["mps2-an386"])
    assert set(data.STAGE.config(variant)["sensor"]) == {"kind", "axes", "sample_rate_hz", "window"}


@pytest.mark.slow
def test_raw_int16_recordings_normalized_run_on_qemu_bit_exact_with_the_device_making_the_hosts_inputs(tmp_path):
    """Raw int16-range CSV recordings with `normalize: standard`, through every stage to QEMU: the firmware gets
    the raw windows, makes the int8 inputs itself (printed as `in` lines) and must match the host byte for byte."""
    write_raw_recordings(tmp_path)
    (tmp_path / "project.yaml").write_text(json.dumps(scaled_doc()))
    (result,) = run_json(tmp_path)["results"]  # about 20 s with a warm toolchain: 26 test windows
    assert result["bit_exact"] is True
    assert result["accuracy_device"] == result["accuracy_host"] and result["accuracy_host"] > 0.8

    reference = store_entry(tmp_path, "mps2-an386-native", "reference")
    meta = json.loads((reference / "reference.json").read_text())
    scaling = json.loads((store_entry(tmp_path, "mps2-an386-native", "data") / "scaling.json").read_text())
    assert meta["raw_input"]["scaling"] == scaling
    raw = np.fromfile(reference / "test_raw.bin", dtype="<i2").reshape(meta["n"], -1, 3)
    # the step recomputed here from the scaling and the model's input quantization, in exact arithmetic
    fixed = _scaling.InputScaling(scaling["offset"], scaling["scale"], "standard").fixed_point(
        meta["input_scale"], meta["input_zero_point"])
    expected = np.array([[[exact_step(int(r), fixed.multiplier[a], fixed.bias[a], fixed.shift[a])
                           for a, r in enumerate(sample)] for sample in window] for window in raw], dtype=np.int8)
    host = np.fromfile(reference / "test_inputs.bin", dtype=np.int8).reshape(expected.shape)
    assert np.array_equal(host, expected)

    run_entry = store_entry(tmp_path, "mps2-an386-native", "run")
    device = {int(line.split()[1]): bytes.fromhex(line.split()[2])
              for line in (run_entry / "qemu.log").read_text().splitlines() if line.startswith("in ")}
    assert len(device) == meta["n"]
    assert b"".join(device[i] for i in range(meta["n"])) == host.tobytes()
    run = json.loads((run_entry / "run.json").read_text())
    assert run["inputs_bit_exact"] is True and run["input_mismatches"]["count"] == 0
    firmware = store_entry(tmp_path, "mps2-an386-native", "firmware") / "project"
    assert (firmware / "data" / "test_inputs.bin").read_bytes() == raw.astype("<i2").tobytes()
    default = re.search(r"^default = \[(.*)\]$", (firmware / "Cargo.toml").read_text(), re.M)
    assert default and '"raw-input"' in default.group(1).split(", ")
    # the real-time loop ran on the same raw readings, through the same step, and kept up at the declared rate
    assert run["realtime"] is not None and run["realtime"]["deadline_misses"] == 0, run["realtime"]
