"""Stage `train`: a Keras model from `model.layers` (or an imported `.keras` file), trained deterministically.

The classifier head: the stack is used as written when it ends with a linear `dense` of one unit per class;
otherwise tinypipe appends one (after a `flatten` when the stack still has a time axis). `model.softmax` adds a
Softmax layer after it. The same seed gives the same weights: Keras' global seeds are set from `seed`,
TensorFlow's op determinism is on and it runs one thread (`_ml.quiet_tensorflow`). What that cannot pin down
(another CPU instruction set or TensorFlow build) is the stage's `caveat`, recorded in the lock.

Training runs on a model with a dynamic batch (so `model.batch_size` applies); the weights are then copied into
the same stack built on `Input(batch_size=1)`, which is what `model.keras` holds: a dynamic batch makes the
TFLite converter emit SHAPE/STRIDED_SLICE/PACK around Conv1D and Flatten.

Imports: `model.path: x.keras` is taken as already trained (epochs, batch size and learning rate are ignored)
and is only re-pinned to batch 1 and evaluated. `model.path: x.tflite` skips training altogether: this stage
writes just `imported.json` and the quantize stage copies the file (and hashes it into its own key).

Outputs: `model.keras` and `train_log.json` (history, val and float test accuracy), or `imported.json`. The
summary repeats the Keras history (`{metric: [value per epoch]}`: loss, accuracy, val_loss, val_accuracy; empty
for an imported model) for the report's training curves.
"""

from __future__ import annotations

import time

from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_json, read_json
from tinypipe.stages._ml import TENSORFLOW_CAVEAT, format_accuracy, model_source, quiet_tensorflow
from tinypipe.stages._scaling import model_data, model_split
from tinypipe.stages.base import Stage, StageContext, StageResult


def _config(variant) -> dict:
    c = variant.config
    source = model_source(variant)
    if source.kind == "tflite":
        return {"model": {"import": "tflite"}}  # nothing is trained: the file's hash keys the quantize stage
    return {"seed": c["seed"], "model": c["model"], **source.key()}


STAGE = Stage(name="train", version="3", needs=("data",), uses=("features",), config=_config,
              description="build and train the Keras model", caveat=TENSORFLOW_CAVEAT)


def _keras_layer(keras, spec, name):
    if spec.type == "conv1d":
        return keras.layers.Conv1D(spec.filters, spec.kernel_size, strides=spec.strides, padding=spec.padding,
                                   activation=spec.activation, name=name)
    if spec.type == "maxpool1d":
        return keras.layers.MaxPooling1D(spec.pool_size, name=name)
    if spec.type == "avgpool1d":
        return keras.layers.AveragePooling1D(spec.pool_size, name=name)
    if spec.type == "flatten":
        return keras.layers.Flatten(name=name)
    if spec.type == "dense":
        return keras.layers.Dense(spec.units, activation=spec.activation, name=name)
    if spec.type == "dropout":
        return keras.layers.Dropout(spec.rate, name=name)
    raise AssertionError(f"layer type {spec.type!r} has no Keras mapping")  # the schema admits no other


def _has_head(layers, num_classes) -> bool:
    last = layers[-1] if layers else None
    return last is not None and last.type == "dense" and last.units == num_classes and last.activation == "linear"


def build_model(keras, layers, window, axes, num_classes, softmax, batch_size):
    """The Sequential for `model.layers`; layer names are fixed so two builds save identical files."""
    stack = [_keras_layer(keras, spec, f"{i:02d}_{spec.type}") for i, spec in enumerate(layers)]
    try:
        model = keras.Sequential([keras.Input(shape=(window, axes), batch_size=batch_size, name="window"), *stack],
                                 name="tinypipe")
    except ValueError as exc:
        raise UserError(f"model.layers: the stack does not fit a window of {window} x {axes}: {exc}",
                        "shrink kernel or pool sizes, or raise sensor.window") from exc
    if not _has_head(layers, num_classes):
        if len(model.output_shape) > 2:
            model.add(keras.layers.Flatten(name="head_flatten"))
        model.add(keras.layers.Dense(num_classes, name="head_dense"))
    if len(model.output_shape) != 2:
        raise UserError(f"model.layers[{len(layers) - 1}]: the last dense sees a sequence of shape "
                        f"{tuple(model.output_shape[1:])}, so the model would not output one score per class",
                        "add a `flatten` before the last `dense`")
    if softmax:
        model.add(keras.layers.Softmax(name="softmax"))
    return model


def _predict_labels(model, x):
    import numpy as np

    batch = model.inputs[0].shape[0]
    return np.argmax(model.predict(x, batch_size=batch or 256, verbose=0), axis=-1)


def _accuracy(model, x, y):
    import numpy as np

    return float(np.mean(_predict_labels(model, x) == y)) if len(y) else None


def _import_keras(keras, path, window, axes, num_classes):
    """Load a trained .keras model and return (dynamic-batch copy, batch-1 copy) sharing its weights."""
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise UserError(f"model.path: cannot load {path} as a Keras model: {exc}",
                        "save the model with Keras 3 `model.save('x.keras')`") from exc
    shape = tuple(model.inputs[0].shape[1:])
    if shape != (window, axes):
        raise UserError(f"model.path: {path.name} takes input {shape}, but the data windows are {(window, axes)}",
                        "match sensor.window and sensor.axes to the model")
    outputs = model.outputs[0].shape[-1]
    if outputs != num_classes:
        raise UserError(f"model.path: {path.name} outputs {outputs} scores, but data.classes has {num_classes}",
                        "list one class per model output in data.classes")
    copies = []
    for batch in (None, 1):
        clone = keras.models.clone_model(model, input_tensors=keras.Input(shape=(window, axes), batch_size=batch))
        clone.set_weights(model.get_weights())
        copies.append(clone)
    return copies


def _train(keras, ctx, p, split, num_classes):
    """Seeded training of `model.layers`; returns (dynamic-batch model, batch-1 model, history, parameter count)."""
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(p.seed)
    tf.config.experimental.enable_op_determinism()
    window, axes = split["x_train"].shape[1:]
    model = build_model(keras, p.model.layers, window, axes, num_classes, p.model.softmax, None)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=p.model.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not p.model.softmax),
        metrics=["accuracy"],
    )
    epochs = p.model.epochs

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            message = f"loss {logs.get('loss', float('nan')):.4f} acc {logs.get('accuracy', float('nan')):.3f}"
            if "val_accuracy" in logs:
                message += f" val_acc {logs['val_accuracy']:.3f}"
            ctx.progress(epoch + 1, epochs, message)

    validation = (split["x_val"], split["y_val"]) if len(split["y_val"]) else None
    history = model.fit(split["x_train"], split["y_train"], batch_size=p.model.batch_size, epochs=epochs,
                        validation_data=validation, shuffle=True, verbose=0, callbacks=[Progress()])
    export = build_model(keras, p.model.layers, window, axes, num_classes, p.model.softmax, 1)
    export.set_weights(model.get_weights())
    history = {k: [float(v) for v in values] for k, values in sorted(history.history.items())}
    params = int(sum(np.prod(w.shape) for w in model.get_weights()))
    return model, export, history, params


def _renumber_shared_objects(node, ids: dict):
    """Replace `shared_object_id` values (memory addresses) with 0, 1, 2 … in order of first appearance."""
    if isinstance(node, dict):
        return {k: ids.setdefault(v, len(ids)) if k == "shared_object_id" else _renumber_shared_objects(v, ids)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_renumber_shared_objects(v, ids) for v in node]
    return node


def save_reproducibly(model, path) -> None:
    """`model.save` to a .keras zip, then drop what depends on the clock or the process (zip entry times,
    `date_saved`, `shared_object_id`s that are Python `id()`s), so the same weights give the same bytes and the
    store hash of this stage's output is stable across runs."""
    import io
    import json
    import zipfile

    from tinypipe.core.fs import atomic_write_bytes

    raw = io.BytesIO()
    tmp = path.with_name(f".{path.name}.unstamped.keras")
    model.save(tmp)
    try:
        with zipfile.ZipFile(tmp) as src, zipfile.ZipFile(raw, "w") as dst:
            for info in src.infolist():
                content = src.read(info)
                if info.filename == "metadata.json":
                    metadata = json.loads(content)
                    metadata.pop("date_saved", None)
                    content = json.dumps(metadata, sort_keys=True).encode()
                elif info.filename == "config.json":
                    content = json.dumps(_renumber_shared_objects(json.loads(content), {})).encode()
                fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
                fixed.compress_type = info.compress_type
                dst.writestr(fixed, content)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_bytes(path, raw.getvalue())


def run(ctx: StageContext) -> StageResult:
    p = ctx.variant.project
    source = model_source(ctx.variant)
    if source.kind == "tflite":
        atomic_write_json(ctx.out / "imported.json", {"import": "tflite", "path": p.model.path})
        return {"imported": "tflite"}

    started = time.monotonic()
    quiet_tensorflow()
    import keras

    data_dir = model_data(ctx.inputs)  # the data stage's windows, or the features computed from them
    split = model_split(data_dir)  # the declared input scaling applied
    num_classes = len(read_json(data_dir / "classes.json"))  # csv: data.classes may be unset
    window, axes = split["x_train"].shape[1:]
    if source.kind == "keras":
        model, export = _import_keras(keras, source.path, window, axes, num_classes)
        history, params = {}, int(model.count_params())
    else:
        model, export, history, params = _train(keras, ctx, p, split, num_classes)

    val_accuracy = _accuracy(model, split["x_val"], split["y_val"])
    test_accuracy = _accuracy(model, split["x_test"], split["y_test"])
    save_reproducibly(export, ctx.out / "model.keras")
    log = {"history": history, "val_accuracy": val_accuracy, "test_accuracy_float": test_accuracy,
           "params": params, "source": source.kind}
    atomic_write_json(ctx.out / "train_log.json", log)
    seconds = time.monotonic() - started
    ctx.log(f"val accuracy {format_accuracy(val_accuracy)}, float test accuracy {format_accuracy(test_accuracy)}, "
            f"{params} parameters, {seconds:.1f} s")
    return {"val_accuracy": val_accuracy, "test_accuracy_float": test_accuracy, "params": params,
            "seconds": round(seconds, 2), "history": history}
