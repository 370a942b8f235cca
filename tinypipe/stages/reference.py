"""Stage `reference`: the host TFLM interpreter's outputs on the test windows — the oracle every engine matches.

Test windows are quantized with the model's input scale and zero point exactly as TFLite's QUANTIZE kernel
does (float32 divide, round half away from zero, add the zero point, clamp; see `tflite.io.quantize_input`), then run
one by one through the tflite-micro host interpreter. Imports numpy and tflite_micro only, never TensorFlow.

With the user's own data (`data.source: csv` or `npz`) the inputs are always its test windows and their labels, so an
imported `.tflite` gets a real host and device accuracy (a model that does not take the windows stopped the run in
`quantize`). With the built-in generator, when an imported model does not take the data's windows (a reference
model such as KWS benchmarked as is), the inputs are seeded uniform random tensors instead: outputs are still the
bit-exact oracle, but there is no accuracy (`inputs: "random"`, `accuracy_host: null`, and no `labels.bin`, so the
device has none either).

Outputs (row-major, no headers): `test_inputs.bin` (N x input_len elements of the input dtype, int8 by default),
`test_outputs.bin` (N x output_len elements of the output dtype), `labels.bin` (uint8 N; only for the data's
windows), and `reference.json`
{n, input_len, output_len, input_shape, output_shape, input_dtype, output_dtype, input_scale, input_zero_point,
output_scale, output_zero_point, inputs, accuracy_host, classes}. With a declared input scaling (`_scaling`) the
inputs are made from the raw windows by the integer step the firmware runs, `test_raw.bin` holds those raw windows
(int16 little-endian, N x input_len) and `raw_input` in reference.json the step's per-axis multiplier, bias and
shift. With features (`features.kind` not raw) the inputs are the features stage's standardised features,
`test_raw.bin` holds the raw sensor windows they came from, `test_features.bin` the int16 features (N x input_len)
and `features` in reference.json the spec the firmware renders (`stages/_features`).
"""

from __future__ import annotations

from tinypipe.core.fs import atomic_write_bytes, atomic_write_json, read_json
from tinypipe.stages import _scaling
from tinypipe.stages._ml import MicroModel, format_accuracy, load_split, require_takes_windows
from tinypipe.stages.base import Stage, StageContext, StageResult

RAW_INPUTS = "test_raw.bin"  # with a declared input scaling: the raw int16 test windows the firmware replays
FEATURE_VALUES = "test_features.bin"  # with features: the host's int16 features of those windows

STAGE = Stage(name="reference", version="3", needs=("quantize", "data"), uses=("features",),
              config=lambda variant: {},
              description="host TFLM outputs on the test set (the bit-exact oracle)")


def random_inputs(micro: MicroModel, n: int, seed: int):
    """Seeded inputs spanning the input dtype's whole range, for models that do not take the data's windows."""
    import numpy as np

    rng = np.random.default_rng([seed, 3_000_017])
    dtype = np.dtype(micro.input.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=(n, micro.input.size)).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=(n, micro.input.size)).astype(dtype)


def run(ctx: StageContext) -> StageResult:
    import numpy as np

    p = ctx.variant.project
    micro = MicroModel(ctx.input("quantize", "model.tflite").read_bytes())
    split = load_split(_scaling.model_data(ctx.inputs))
    classes = read_json(_scaling.model_data(ctx.inputs) / "classes.json")
    x, y = split["x_test"], split["y_test"].astype(np.uint8)
    if p.data.source != "generator":  # the user's own data: an imported model is evaluated on it, or the run stops
        require_takes_windows(micro, x, len(classes), p.model.path or "the model")
    scaling = _scaling.load(_scaling.model_data(ctx.inputs))
    features = read_json(ctx.input("features", "features.json")) if "features" in ctx.inputs else None
    if micro.fits(x):
        inputs = _scaling.model_inputs(micro, x, scaling).reshape(len(x), micro.input.size)
        origin = "data"
    else:
        ctx.log(f"the model takes {list(micro.input.shape)}, not the data's windows "
                f"{list(x.shape[1:])}: using {len(x)} seeded random inputs (no accuracy)")
        inputs, origin = random_inputs(micro, len(x), p.seed), "random"
    outputs = np.stack([micro.invoke(row).reshape(micro.output.size) for row in inputs])

    accuracy = None
    if origin == "data" and micro.output.size == len(classes):
        accuracy = float(np.mean(np.argmax(outputs, axis=1) == y))
    atomic_write_bytes(ctx.out / "test_inputs.bin", np.ascontiguousarray(inputs).tobytes())
    atomic_write_bytes(ctx.out / "test_outputs.bin", np.ascontiguousarray(outputs).tobytes())
    if origin == "data":
        atomic_write_bytes(ctx.out / "labels.bin", y.tobytes())
    fixed = None
    if scaling is not None and origin == "data":  # the firmware gets the raw windows and makes `inputs` itself
        fixed = scaling.fixed_point(micro.input.scale, micro.input.zero_point)
        raw = x if features is None else load_split(ctx.inputs["features"], "raw.npz")["x_test"]
        atomic_write_bytes(ctx.out / RAW_INPUTS, np.ascontiguousarray(raw.reshape(len(raw), -1), dtype="<i2").tobytes())
        if features is not None:  # what the device must compute from them before the int8 step, value for value
            atomic_write_bytes(ctx.out / FEATURE_VALUES,
                               np.ascontiguousarray(x.reshape(len(x), -1), dtype="<i2").tobytes())
    summary = {
        "n": int(len(inputs)), "input_len": micro.input.size, "output_len": micro.output.size,
        "input_shape": list(micro.input.shape), "output_shape": list(micro.output.shape),
        "input_dtype": np.dtype(micro.input.dtype).name, "output_dtype": np.dtype(micro.output.dtype).name,
        "input_scale": micro.input.scale, "input_zero_point": micro.input.zero_point,
        "output_scale": micro.output.scale, "output_zero_point": micro.output.zero_point,
        "inputs": origin, "accuracy_host": accuracy, "classes": classes,
    }
    if fixed is not None:
        summary["raw_input"] = {"axes": len(fixed.shift), **fixed.as_json(), "scaling": scaling.as_json()}
    if features is not None and fixed is not None:
        summary["features"] = features
    atomic_write_json(ctx.out / "reference.json", summary)
    ctx.log(f"{len(inputs)} test windows through host TFLM, accuracy {format_accuracy(accuracy)}")
    return {"n": summary["n"], "accuracy_host": accuracy, "inputs": origin}
