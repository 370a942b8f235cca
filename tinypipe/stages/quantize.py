"""Stage `quantize`: the trained Keras model -> a full-integer int8 `.tflite`, checked on the host TFLM.

Calibration uses `quantization.representative_samples` training windows, picked by a generator seeded from
`seed`. With `quantization.io: int8` the model's input and output tensors are int8 too (what the firmware
feeds); with `float32` the converter keeps float I/O and adds QUANTIZE/DEQUANTIZE at the edges.

An imported `model.path: x.tflite` enters here: the file is copied as is (its sha256 is part of this stage's
key; the train stage only left a marker) and checked by the same host interpreter. With the user's own data
(`data.source: csv` or `npz`) it must take the data's windows (same shape, dimensions of size 1 aside) and output
one score per class, or the run stops with exit 2 naming both shapes: its accuracy is then measured on the test split.

With a declared input scaling (`_scaling`) the float model is calibrated on scaled windows, and the int8 accuracy
is measured on inputs made from the raw windows by the integer step the firmware runs.

Outputs: `model.tflite` and `quant.json` (input/output scale and zero point, builtin op names, int8 accuracy on
the test split from the tflite-micro host interpreter, Keras float accuracy on the test split).
"""

from __future__ import annotations

import time

from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_bytes, atomic_write_json, read_json
from tinypipe.stages import _scaling
from tinypipe.stages._ml import (TENSORFLOW_CAVEAT, MicroModel, builtin_op_names, captured_output,
                                 format_accuracy, load_split, model_source, probe_untrusted_model,
                                 quiet_tensorflow, require_takes_windows)
from tinypipe.stages.base import Stage, StageContext, StageResult


def _config(variant) -> dict:
    c = variant.config
    return {"seed": c["seed"], "quantization": c["quantization"], **model_source(variant).key()}


STAGE = Stage(name="quantize", version="2", needs=("train", "data"), uses=("features",),
              config=_config,
              description="int8 post-training quantization to .tflite", caveat=TENSORFLOW_CAVEAT)


def representative_indices(n_train: int, count: int, seed: int):
    """Which training windows calibrate the activation ranges: `count` distinct ones, seeded, in index order."""
    import numpy as np

    rng = np.random.default_rng([seed, 2_000_003])
    return np.sort(rng.choice(n_train, size=min(count, n_train), replace=False))


def convert(model, x_representative, io_dtype: str) -> bytes:
    """Keras model (batch 1) -> int8 .tflite bytes."""
    import numpy as np
    import tensorflow as tf

    def representative_dataset():
        for window in x_representative:
            yield [window[None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io_dtype == "int8":
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    # the Keras 3 export path prints "Saved artifact at …" and the MLIR passes print to fd 2: keep them for errors
    with captured_output() as output:
        try:
            return bytes(converter.convert())
        except Exception as exc:
            raise RuntimeError(f"TFLite conversion failed: {exc}\n{output()[-4000:]}") from exc


def host_accuracy(micro: MicroModel, x, y, num_classes: int, scaling=None):
    """Top-1 accuracy of the .tflite on the host TFLM interpreter; None when an imported model does not take
    the data's windows or does not output one score per class (a reference model benchmarked as is). With a
    declared input scaling, `x` is raw and reaches the model through the same integer step as on the device."""
    import numpy as np

    if not len(y) or not micro.fits(x) or micro.output.size != num_classes:
        return None
    inputs = _scaling.model_inputs(micro, x, scaling)
    predicted = np.array([int(np.argmax(micro.invoke(window))) for window in inputs])
    return float(np.mean(predicted == y))


def run(ctx: StageContext) -> StageResult:
    p = ctx.variant.project
    started = time.monotonic()
    source = model_source(ctx.variant)
    split = load_split(_scaling.model_data(ctx.inputs))  # raw windows (or features)
    scaling = _scaling.load(_scaling.model_data(ctx.inputs))
    accuracy_float = None
    if source.kind == "tflite":
        from tinypipe.tflite.check import check_model
        from tinypipe.tflite.reader import parse_model

        model_bytes = source.path.read_bytes()
        check_model(parse_model(model_bytes, str(source.path)))  # bounds, then values, before any interpreter
        probe_untrusted_model(model_bytes, str(source.path))
    else:
        quiet_tensorflow()
        import keras

        model = keras.models.load_model(ctx.input("train", "model.keras"), compile=False)
        pick = representative_indices(len(split["x_train"]), p.quantization.representative_samples, p.seed)
        x_train = split["x_train"] if scaling is None else scaling.apply(split["x_train"])
        model_bytes = convert(model, x_train[pick], p.quantization.io)
        accuracy_float = read_json(ctx.input("train", "train_log.json"))["test_accuracy_float"]

    try:
        micro = MicroModel(model_bytes)
    except Exception as exc:  # the TFLM runtime raises RuntimeError/ValueError with its own log
        if source.kind != "tflite":
            raise  # our converter settings made a model TFLM rejects: a bug, not the user's to fix
        raise UserError(f"model.path: {source.path} does not load in the host TFLM interpreter: {exc}",
                        "import a .tflite flatbuffer made of builtin ops that TFLM supports") from exc
    num_classes = len(read_json(_scaling.model_data(ctx.inputs) / "classes.json"))
    if source.kind == "tflite" and p.data.source != "generator":  # the user's own data: evaluate on it, or stop
        require_takes_windows(micro, split["x_test"], num_classes, p.model.path)
    accuracy_host = host_accuracy(micro, split["x_test"], split["y_test"], num_classes, scaling)
    ops = builtin_op_names(model_bytes)
    atomic_write_bytes(ctx.out / "model.tflite", model_bytes)
    atomic_write_json(ctx.out / "quant.json", {
        "input_scale": micro.input.scale, "input_zero_point": micro.input.zero_point,
        "output_scale": micro.output.scale, "output_zero_point": micro.output.zero_point,
        "input": micro.input.as_json(), "output": micro.output.as_json(),
        "ops": ops, "accuracy_host": accuracy_host, "accuracy_float": accuracy_float,
        "source": source.kind,
    })
    seconds = time.monotonic() - started
    ctx.log(f"{len(model_bytes)} B .tflite, ops {', '.join(ops)}; test accuracy int8 "
            f"{format_accuracy(accuracy_host)}, float {format_accuracy(accuracy_float)}")
    return {"tflite_bytes": len(model_bytes), "accuracy_host": accuracy_host, "accuracy_float": accuracy_float,
            "ops": ops, "seconds": round(seconds, 2)}
