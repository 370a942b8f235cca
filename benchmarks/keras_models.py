"""The two models of `benchmarks/engines.py` that are not in ../shared/models, built here with Keras: random
weights (seeded), int8-quantized with random calibration data (seeded), so every run measures the same bytes.

- `resnet8`: the shape of MLPerf Tiny's image classification model: a 32x32x3 input, a 3x3 convolution of 16
  channels, three residual stacks of 3x3 convolutions (16, 32, 64 channels; the last two strided, with a 1x1
  strided shortcut) joined by ADD, average pooling and a dense layer of 10 classes.
- `mobilenet_v1_025_96`: Keras's MobileNetV1 with width 0.25 on a 96x96x3 input (MLPerf Tiny's visual wake
  words shape), 2 classes, ending in their logits: with random weights the logits are so small that the final
  SOFTMAX's quantization is one TFLM itself aborts on (beta * input scale * 2^26 not above 1: a TFLITE_CHECK in
  PreprocessSoftmaxScaling, SIGABRT in the host interpreter), so neither engine can run it.

The .tflite files are cached in the user-level cache (`benchmarks/keras/<name>-<seed>-<hash of this file>.tflite`,
so editing a builder builds anew): TensorFlow is imported only to build one that is missing.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from tinypipe.core.fs import atomic_write_bytes
from tinypipe.core.paths import user_cache_dir

NAMES = ("resnet8", "mobilenet_v1_025_96")
SEED = 0
CALIBRATION_SAMPLES = 32


def _resnet8(keras):
    layers = keras.layers

    def conv_bn(x, filters: int, kernel: int, stride: int, relu: bool = True):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same")(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = conv_bn(inputs, 16, 3, 1)
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = conv_bn(x, filters, 3, stride)
        y = conv_bn(y, filters, 3, 1, relu=False)
        shortcut = x if stride == 1 else layers.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = layers.ReLU()(layers.Add()([shortcut, y]))
    x = layers.AveragePooling2D(pool_size=8)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _mobilenet(keras):
    inputs = keras.Input((96, 96, 3), batch_size=1)
    return keras.applications.MobileNet(input_tensor=inputs, alpha=0.25, weights=None, classes=2,
                                        classifier_activation=None)


def _build(name: str, seed: int) -> bytes:
    import numpy as np
    import tensorflow as tf

    from tinypipe.stages.quantize import convert

    tf.keras.utils.set_random_seed(seed)
    model = {"resnet8": _resnet8, "mobilenet_v1_025_96": _mobilenet}[name](tf.keras)
    shape = model.input_shape[1:]
    calibration = np.random.default_rng(seed).uniform(-1, 1, size=(CALIBRATION_SAMPLES, *shape)).astype(np.float32)
    return convert(model, calibration, "int8")


def model_bytes(name: str, seed: int = SEED) -> bytes:
    builder = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    path = user_cache_dir() / "benchmarks" / "keras" / f"{name}-{seed}-{builder}.tflite"
    if not path.is_file():
        print(f"{name}: building it with Keras (random weights, seed {seed}) and quantizing it", file=sys.stderr,
              flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, _build(name, seed))
    return path.read_bytes()
