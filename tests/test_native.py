"""The native engine against the oracle: .tflite reader, code generator, `tinyml-kernels`, codegen stage.

Bit-exactness is checked on the host: the kernels crate and a generated `model.rs` are compiled with rustc
(std) into a small program that runs the model on inputs read from stdin and writes, for each input, the
output of every operator (through `invoke_with_hook`) and the model output. The host tflite-micro interpreter
(preserving all tensors) gives the same tensors; every byte must match. Compiled programs are cached for the
session.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import build_trace_firmware, native_variant, parse_trace, rustc_for, timed, timings_report
from tinypipe.core.errors import UserError
from tinypipe.engines.native.generate import KERNELS_DIR, generate, reported_ops
from tinypipe.engines.native import quant
from tinypipe.engines.native.lower import lower
from tinypipe.engines.native.plan import plan_arena
from tinypipe.engines.native import codegen
from tinypipe.stages.base import StageContext
from tinypipe.tflite import parse_model, read_model

RUSTC = shutil.which("rustc")
pytestmark = pytest.mark.skipif(RUSTC is None, reason="needs rustc")
TIMINGS: dict[str, float] = {}

SHARED_MODELS = {  # name: (random inputs checked, ops in order of first use)
    "hello_world_int8": 64,
    "micro_speech_quantized": 24,
    "kws_ref_model": 16,
    "ad01_int8": 64,
    "person_detect": 3,
}

HOST_MAIN = r"""
use std::io::{Read, Write};

use tinyml_kernels::Element;

#[path = "model.rs"]
#[allow(dead_code, reason = "the harness calls `invoke_with_hook`, not the rest of the model's API")]
mod model;

fn main() {
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).expect("stdin");
    let data: Vec<i8> = data.iter().map(|b| *b as i8).collect();
    let mut arena = vec![0i8; model::ARENA_BYTES];
    let arena: &mut [i8; model::ARENA_BYTES] = arena.as_mut_slice().try_into().expect("arena");
    let mut input = vec![model::Input::default(); model::INPUT_LEN];
    let mut output = vec![model::Output::default(); model::OUTPUT_LEN];
    let mut output_bytes = vec![0i8; model::OUTPUT_LEN * <model::Output as Element>::BYTES];
    let mut bytes = Vec::new();
    for chunk in data.chunks_exact(model::INPUT_LEN * <model::Input as Element>::BYTES) {
        tinyml_kernels::load(&mut input, chunk);
        model::invoke_with_hook(arena, &input, &mut output, &mut |_, y: &[i8]| {
            bytes.extend(y.iter().map(|v| *v as u8))
        });
        tinyml_kernels::store(&mut output_bytes, &output);
        bytes.extend(output_bytes.iter().map(|v| *v as u8));
    }
    std::io::stdout().write_all(&bytes).expect("stdout");
}
"""


report_timings = timings_report(TIMINGS, "native timing")


# --- host harness --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def host_build(tmp_path_factory):
    """compile(model_bytes, name) -> (program path, codegen info); the kernels rlib is built once."""
    root = tmp_path_factory.mktemp("native-host")
    rlib = root / "libtinyml_kernels.rlib"
    subprocess.run([RUSTC, "--edition", "2021", "--crate-type", "rlib", "--crate-name", "tinyml_kernels",
                    "-C", "opt-level=3", "-D", "warnings", str(KERNELS_DIR / "src" / "lib.rs"), "-o", str(rlib)],
                   check=True, capture_output=True, text=True)
    built: dict[str, tuple[Path, dict]] = {}

    def compile_model(model_bytes: bytes, name: str, optimize: str = "balanced") -> tuple[Path, dict]:
        if optimize != "balanced":
            name = f"{name}-{optimize}"
        if name not in built:
            work = root / name
            work.mkdir()
            generated = generate(model_bytes, f"{name}.tflite", optimize)
            (work / "model.rs").write_text(generated.model_rs)
            (work / "main.rs").write_text(HOST_MAIN)
            result = subprocess.run([RUSTC, "--edition", "2021", "-C", "opt-level=3", "-D", "warnings",
                                     "--extern", f"tinyml_kernels={rlib}", str(work / "main.rs"),
                                     "-o", str(work / "run")], capture_output=True, text=True)
            assert result.returncode == 0, result.stderr[-4000:]
            built[name] = (work / "run", generated.info)
        return built[name]

    return compile_model


def random_inputs(model_bytes: bytes, count: int, rng) -> np.ndarray:
    """Seeded inputs for a model: int8 over the whole range; float32 around the range of the QUANTIZE that
    reads it, a quarter of them exactly on a rounding tie `(k + 0.5) * scale` and a few far outside."""
    graph = parse_model(model_bytes).main
    x_t = graph.tensors[graph.inputs[0]]
    shape = (count, *x_t.shape)
    if x_t.dtype == "int8":
        return rng.integers(-128, 128, size=shape, dtype=np.int8)
    quantize = next(o for o in graph.operators if o.op == "QUANTIZE" and o.inputs[0] == x_t.index)
    q = graph.tensors[quantize.outputs[0]].quantization
    scale, zp = q.scale[0], q.zero_point[0]
    k = rng.integers(-128 - zp, 128 - zp, size=shape)
    x = (k + rng.uniform(-0.5, 0.5, size=shape)) * scale
    ties = rng.random(shape) < 0.25
    x = np.where(ties, (k + np.where(rng.random(shape) < 0.5, 0.5, -0.5)) * scale, x)
    x = np.where(rng.random(shape) < 0.02, rng.normal(0, 1000 * scale, size=shape), x)
    return x.astype(np.float32)


def assert_bit_exact(model_bytes: bytes, name: str, count: int, host_build, host_tflm, seed: int = 0,
                     optimize: str = "balanced") -> dict:
    """Every computing operator's output tensor and the model output, byte for byte with the oracle."""
    program, info = host_build(model_bytes, name, optimize)
    computed = reported_ops(info)
    graph = parse_model(model_bytes).main
    tensors = [o["output_tensor"] for o in computed] + [graph.outputs[0]]
    inputs = random_inputs(model_bytes, count, np.random.default_rng(seed))
    result = subprocess.run([str(program)], input=inputs.tobytes(), capture_output=True, check=True)
    ours = result.stdout
    sizes = [graph.tensors[t].nbytes for t in tensors]
    assert len(ours) == count * sum(sizes)
    oracle = host_tflm(model_bytes, trace=True)
    expected = [oracle.trace(x, tensors) for x in inputs]
    at = 0
    for n, per_input in enumerate(expected):
        for t, size, ref in zip(tensors, sizes, per_input):
            got = np.frombuffer(ours[at:at + size], dtype=ref.dtype)
            at += size
            if got.tobytes() != ref.tobytes():
                bad = np.flatnonzero(got.view(np.uint8) != ref.view(np.uint8)) // ref.itemsize
                op = next((o for o in computed if o["output_tensor"] == t), {"op": "model output", "index": "-"})
                pytest.fail(f"{name}: input {n}, op {op['index']} {op['op']} (tensor {t}): {len(set(bad))} of "
                            f"{ref.size} values differ, first at {bad[0]}: ours {got[bad[0]]}, TFLM {ref[bad[0]]}")
    return info


# --- the shared reference models -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SHARED_MODELS))
def test_shared_model_is_bit_exact_with_tflm(name, shared_dir, host_build, host_tflm):
    model_bytes = (shared_dir / "models" / f"{name}.tflite").read_bytes()
    info = assert_bit_exact(model_bytes, name, SHARED_MODELS[name], host_build, host_tflm)
    assert info["arena_lower_bound"] <= info["arena_bytes"]


def test_codegen_summary_of_reference_models(shared_dir):
    """MAC counts match the published MLPerf Tiny figures; arenas reach their lower bound and beat TFLM's."""
    tflm_arena = {"kws_ref_model": 22_820, "person_detect": 82_308, "ad01_int8": 2_580,
                  "micro_speech_quantized": 6_836}
    macs = {"kws_ref_model": 2.66e6, "ad01_int8": 0.264e6, "person_detect": 7.16e6}
    for name in SHARED_MODELS:
        info = generate((shared_dir / "models" / f"{name}.tflite").read_bytes(), name).info
        if name in macs:
            assert abs(info["macs"] - macs[name]) / macs[name] < 0.01, (name, info["macs"])
        if name in tflm_arena:
            assert info["arena_bytes"] < tflm_arena[name]
        assert info["arena_bytes"] == info["arena_lower_bound"], name
        assert info["input"]["dtype"] == info["output"]["dtype"] == "int8"


def test_generated_code_names_only_the_kernel_variants_it_uses(shared_dir):
    """Flash: a per-tensor fully connected layer stores one `Rescale` for all its rows (per-channel layers one
    each), and every requantizing call names its `<GENERAL, FULL>` variant, so the others are not linked."""
    def model_rs(name: str) -> str:
        return generate((shared_dir / "models" / f"{name}.tflite").read_bytes(), name).model_rs

    def rescale_lengths(text: str) -> list[int]:
        return [int(n) for n in re.findall(r"static RS\d+: \[Rs; (\d+)\]", text)]

    ad01, kws = model_rs("ad01_int8"), model_rs("kws_ref_model")
    assert rescale_lengths(ad01) == [1] * 10  # ten per-tensor FCs (128, ..., 8, ..., 640 rows)
    assert rescale_lengths(kws) == [64] * 9 + [1]  # per-channel convs, then the per-tensor FC
    assert "k::fully_connected_s8::<false, true>(&P0, x, &W0, &BF0, &RS0, y);" in ad01


# --- small Keras models converted in the test ----------------------------------------------------------------


def _convert(model, shape, seed: int, dtypes: tuple[str, str] = ("int8", "int8")) -> bytes:
    """Full-integer conversion; `dtypes`: the input and output dtypes ("float32" keeps QUANTIZE/DEQUANTIZE)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(32):
            yield [rng.normal(0.0, 1.0, size=(1, *shape)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = getattr(tf, dtypes[0])
    converter.inference_output_type = getattr(tf, dtypes[1])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return bytes(converter.convert())


def _keras_specs(keras):
    L = keras.layers

    def seq(shape, *layers):
        return keras.Sequential([keras.Input(shape, batch_size=1), *layers]), shape

    return {
        # the gesture example's stack: Conv1D -> MaxPool1D -> ... -> Flatten -> Dense -> softmax
        "gesture": lambda: seq((64, 3), L.Conv1D(8, 5, activation="relu"), L.MaxPooling1D(4),
                               L.Conv1D(16, 3, activation="relu"), L.MaxPooling1D(2), L.Flatten(), L.Dense(3),
                               L.Softmax()),
        # stride 2 SAME, relu6, depthwise multiplier 2 VALID, 1x1, SAME pools with clipped windows, odd channels
        "odd_2d": lambda: seq((13, 11, 3), L.Conv2D(5, 3, strides=2, padding="same", activation="relu6"),
                              L.DepthwiseConv2D(3, depth_multiplier=2, padding="valid", activation="relu"),
                              L.Conv2D(7, 1), L.AveragePooling2D(2, padding="same"),
                              L.MaxPooling2D(3, strides=2, padding="same"), L.Flatten(), L.Dense(6), L.Softmax()),
        # dilation in conv and depthwise, depthwise stride 2 with 6 channels (a block of 4 plus 2), 3x2 kernel
        "dilated": lambda: seq((17, 15, 6), L.Conv2D(6, 3, dilation_rate=2, padding="same", activation="relu"),
                               L.DepthwiseConv2D(3, strides=2, padding="same"),
                               L.DepthwiseConv2D((2, 3), dilation_rate=(2, 1), padding="same", activation="relu6"),
                               L.Conv2D(9, (3, 2), strides=(2, 1), padding="valid"),
                               L.AveragePooling2D((4, 7)), L.Flatten(), L.Dense(4)),
        # Conv1D stride 2 SAME, average and SAME max pooling in 1-D, two dense layers, no softmax
        "conv1d_stride": lambda: seq((50, 5), L.Conv1D(6, 4, strides=2, padding="same", activation="relu"),
                                     L.AveragePooling1D(3), L.Conv1D(10, 1), L.MaxPooling1D(2, padding="same"),
                                     L.Flatten(), L.Dense(12, activation="relu"), L.Dense(5)),
        # 1x1 convs with channel counts that are not multiples of 4 (odd out_c: a zero row in the pair),
        # depthwise multiplier 4 (blocked, one input channel per block) and 3 (per channel), a stride-2 1x1
        "pointwise_odd": lambda: seq((7, 5, 6), L.Conv2D(5, 1, activation="relu"),
                                     L.DepthwiseConv2D(3, depth_multiplier=4, padding="same"),
                                     L.Conv2D(3, 1, strides=2),
                                     L.DepthwiseConv2D((3, 2), depth_multiplier=3, padding="valid"),
                                     L.Flatten(), L.Dense(7)),
        # person_detect's first layer in small: one input channel, multiplier 8, stride 2 SAME, odd sizes
        "depthwise_broadcast": lambda: seq((11, 9, 1), L.DepthwiseConv2D(3, strides=2, depth_multiplier=8,
                                                                         padding="same", activation="relu"),
                                           L.Conv2D(6, 1), L.Conv2D(4, (2, 3), padding="same"), L.Flatten(),
                                           L.Dense(5)),
        # standalone RELU, RELU6, LEAKY_RELU; ADD, SUB; MUL broadcasting a 1x1x6 tensor and a constant [6]
        # vector, ADD broadcasting one channel; 7x5 with 6 channels (not a multiple of 4)
        "elementwise": lambda: _elementwise(keras),
        # LOGISTIC, TANH, HARD_SWISH, QUANTIZE; PAD, PADV2, TRANSPOSE, STRIDED_SLICE; CONCATENATION along
        # channels, rows and flat vectors; 6 channels
        "activations_and_copies": lambda: _activations_and_copies(keras),
        # MEAN: global average pooling (axes 1, 2), keep_dims, the channel axis, one spatial axis
        "means": lambda: _means(keras),
        # biases the converter quantizes to +-2^30 (tiny weights, large biases: the shape of trained MobileNets
        # that reach the short requantization path's limit) beside ordinary channels, in conv, depthwise and FC
        "wide_accumulators": lambda: _wide_accumulators(keras),
        # optimize: ram writes the first three over their input row by row (at the peak, bytes kept level):
        # depthwise stride 1 SAME, conv with dilation 2, depthwise 5x3 multiplier 2 stride 2 (padded above);
        # then a 1x1 conv and a VALID 3x2 conv, stride 2x1, that stay layer by layer; odd sizes
        "ram_chain": lambda: seq((17, 13, 8), L.DepthwiseConv2D(3, padding="same", activation="relu"),
                                 L.Conv2D(8, 3, dilation_rate=2, padding="same"),
                                 L.DepthwiseConv2D((5, 3), strides=2, depth_multiplier=2, padding="same",
                                                   activation="relu6"),
                                 L.Conv2D(18, 1), L.Conv2D(16, (3, 2), strides=(2, 1), padding="valid"),
                                 L.Flatten(), L.Dense(4)),
        # optimize: ram runs the first layers in row bands (patch-based): stride 2 SAME conv on an odd 35x29x1,
        # dilated depthwise, 1x1 widening, VALID stride 2 depthwise, then layer by layer
        "ram_patch": lambda: seq((35, 29, 1), L.Conv2D(8, 3, strides=2, padding="same", activation="relu6"),
                                 L.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu"),
                                 L.Conv2D(24, 1, activation="relu6"), L.DepthwiseConv2D(3, strides=2, padding="valid"),
                                 L.Conv2D(12, 1), L.Flatten(), L.Dense(3)),
        # global max pooling converts to REDUCE_MAX: not supported by the native engine
        "with_reduce_max": lambda: seq((9, 7, 4), L.Conv2D(5, 3), L.GlobalMaxPooling2D(), L.Dense(3)),
        # appended (these three), so that the models above keep their seeds
        "pointwise_clamped": lambda: _pointwise_clamped(keras),
        # ADD and SUB at their edges: operands with zero points -128 and 127 and scales apart, fused RELU and
        # RELU6, a channel broadcast, odd sizes (the table-driven kernel, and in `size` mode TFLM's arithmetic)
        "add_edges": lambda: _add_edges(keras),
        # depthwise RELU6 outputs whose activation range is open at one end only, [-100, 127] and [-128, -28]
        # (their quantization patched after conversion: `_CLAMP_PATCHES`), stride 1 and 2, 8 channels
        "depthwise_clamps": lambda: seq((9, 7, 8), L.DepthwiseConv2D(3, padding="same", activation="relu6"),
                                        L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6"),
                                        L.Conv2D(4, 1), L.Flatten(), L.Dense(3)),
        # convolutions whose windows lie inside the input on most pixels (the DSP path's gathering assembly
        # loop, pixel pairs starting at odd columns): a first layer 3x3x3 stride 2 SAME on 15x13 (its first
        # column padded) clamped to [-128, -28] (`_CLAMP_PATCHES`), 3x2 VALID over 8 channels (whole words), 3x3
        # SAME over 6 channels (runs of 18 bytes, rounded up)
        "conv_windows": lambda: seq((15, 13, 3), L.Conv2D(8, 3, strides=2, padding="same", activation="relu6"),
                                    L.Conv2D(6, (3, 2), padding="valid", activation="relu6"),
                                    L.Conv2D(4, 3, padding="same"), L.Flatten(), L.Dense(3)),
    }


# per model: the outputs of its first operators (by position) -> (scale or None to keep it, zero point) patched
# into the converted model, TFLM and the native engine both reading the patched ones; RELU6 at scale 0.06 ends at 100
# steps above the zero point
_CLAMP_PATCHES = {"depthwise_clamps": {0: (None, -100), 1: (0.06, -128)}, "conv_windows": {0: (0.06, -128)}}


def _patch_quantization(data: bytes, patches: dict[int, tuple[float | None, int]]) -> bytes:
    """Operator `k`'s output tensor's (per-tensor) scale and zero point replaced, in place."""
    from tinypipe.tflite.reader import _Bytes, _Table

    out, buf = bytearray(data), _Bytes(data)
    graph = parse_model(data).main
    tensors = _Table(buf, buf.unpack("I", 0, "root"), "model").tables(2, "subgraphs")[0].tables(0, "tensors")
    for k, (scale, zero_point) in patches.items():
        q = tensors[graph.operators[k].outputs[0]].table(4, "quantization")
        (scale_at, _), (zp_at, _) = q._vector(2, 4, "scale"), q._vector(3, 8, "zero_point")
        if scale is not None:
            struct.pack_into("<f", out, scale_at, scale)
        struct.pack_into("<q", out, zp_at, zero_point)
    return bytes(out)


def _elementwise(keras):
    L = keras.layers
    x = keras.Input((5, 7, 3), batch_size=1)
    a = L.Conv2D(6, 1)(x)
    y = L.Add()([L.ReLU()(a), L.LeakyReLU(0.2)(a)])
    y = L.Subtract()([y, L.ReLU(6.0)(a)])
    y = L.Multiply()([y, L.Conv2D(6, (5, 7))(x)])
    y = keras.ops.multiply(y, np.linspace(-1.0, 2.0, 6).astype("float32"))
    y = L.Add()([y, L.Conv2D(1, 1)(x)])
    return keras.Model(x, y), (5, 7, 3)


def _pointwise_clamped(keras):
    """A 1x1 RELU conv on 8 channels whose output shares a concatenation's range with a linear one: its RELU
    clamps at the zero point (above -128), so the DSP path's 1x1 loop clamps (conv_1x1_stream without FULL);
    35 pixels, an odd count."""
    L = keras.layers
    x = keras.Input((5, 7, 8), batch_size=1)
    y = L.Concatenate()([L.Conv2D(6, 1, activation="relu")(x), L.Conv2D(4, 1)(x)])
    return keras.Model(x, L.Dense(3)(L.Flatten()(y))), (5, 7, 8)


def _add_edges(keras):
    L = keras.layers
    x = keras.Input((5, 3, 6), batch_size=1)
    pos = L.ReLU()(L.Conv2D(6, 1)(x))  # >= 0: zero point -128
    neg = L.Conv2D(6, 1, kernel_initializer=keras.initializers.Constant(-0.7))(pos)  # <= 0: zero point 127
    y = L.ReLU()(L.Add()([pos, neg]))  # ADD with RELU fused
    s = L.Subtract()([neg, L.Conv2D(6, 1)(x)])
    t = L.ReLU(6.0)(L.Add()([s, L.Conv2D(1, 1)(x)]))  # broadcast along channels, RELU6 fused
    return keras.Model(x, L.Concatenate()([y, s, t, L.Add()([y, y])])), (5, 3, 6)


def _activations_and_copies(keras):
    L = keras.layers
    x = keras.Input((7, 5, 3), batch_size=1)
    a = L.Conv2D(6, 1)(x)
    # concatenating tensors of different scales: the converter requantizes them with QUANTIZE int8 -> int8
    acts = L.Concatenate()([L.Activation("sigmoid")(a), L.Activation("tanh")(a), L.Activation("hard_swish")(a), a])
    padded = L.ZeroPadding2D(((1, 2), (0, 3)))(a)  # PAD
    padded_v2 = keras.ops.pad(a, [[0, 0], [2, 1], [1, 1], [0, 0]], constant_values=0.5)  # QUANTIZE, PADV2
    sliced = a[:, 1:6:2, ::-1, 1:5]  # STRIDED_SLICE, stepping backwards along the width
    rows = L.Concatenate(axis=1)([L.Permute((2, 1, 3))(padded)[:, :, :5, :],  # TRANSPOSE, STRIDED_SLICE
                                  L.Conv2D(6, 1)(padded_v2)[:, :, :5, :]])
    y = L.Concatenate()([L.Flatten()(acts), L.Flatten()(sliced), L.Flatten()(rows)])
    return keras.Model(x, y), (7, 5, 3)


def _wide_accumulators(keras):
    L = keras.layers
    rng = np.random.default_rng(3)

    def kernel(shape, tiny_channels):
        """Normal weights, except the last axis' `tiny_channels`: 1e-4 as large, so their bias quantizes huge."""
        scale = np.array([5e-5 if c in tiny_channels else 0.3 for c in range(shape[-1])], dtype="float32")
        return rng.normal(0, 1, size=shape).astype("float32") * scale

    x = keras.Input((6, 6, 4), batch_size=1)
    conv, depthwise, dense = L.Conv2D(4, 3, padding="same"), L.DepthwiseConv2D(3, padding="same"), L.Dense(5)
    model = keras.Model(x, dense(L.Flatten()(depthwise(conv(x)))))
    conv.set_weights([kernel((3, 3, 4, 4), (2, 3)), np.array([0.1, -0.2, 50, -35], "float32")])
    depthwise.set_weights([kernel((3, 3, 4), (2, 3)).reshape(3, 3, 4, 1) / 10, np.array([0, 0.5, 40, -45], "float32")])
    dense.set_weights([kernel((144, 5), (0, 1, 2, 4)) / 50, np.array([30, -20, 45, 0, 10], "float32")])
    return model, (6, 6, 4)


def _means(keras):
    L = keras.layers
    x = keras.Input((9, 7, 4), batch_size=1)
    a = L.Conv2D(5, 3)(x)
    means = [L.GlobalAveragePooling2D()(a), keras.ops.mean(a, axis=(1, 2), keepdims=True),
             keras.ops.mean(a, axis=-1), keras.ops.mean(a, axis=1, keepdims=True)]
    y = L.Concatenate()([L.Flatten()(m) for m in means])
    return keras.Model(x, L.Dense(6)(y)), (9, 7, 4)


@pytest.fixture(scope="session")
def keras_models():
    """name -> .tflite bytes: int8 I/O, and three with float32 at one or both ends (QUANTIZE float32 -> int8
    after the input, DEQUANTIZE int8 -> float32 before the output)."""
    pytest.importorskip("tensorflow")
    from tinypipe.stages._ml import quiet_tensorflow

    quiet_tensorflow()
    import keras

    models = {}
    for seed, (name, build) in enumerate(_keras_specs(keras).items()):
        keras.utils.set_random_seed(seed + 1)
        model, shape = build()
        models[name] = _convert(model, shape, seed)
        if name in _CLAMP_PATCHES:
            models[name] = _patch_quantization(models[name], _CLAMP_PATCHES[name])
    for seed, (name, base, io) in enumerate([("float_io", "gesture", ("float32", "float32")),
                                             ("float_in", "odd_2d", ("float32", "int8")),
                                             ("float_out", "pointwise_odd", ("int8", "float32"))]):
        keras.utils.set_random_seed(99 + seed)
        model, shape = _keras_specs(keras)[base]()
        models[name] = _convert(model, shape, 99 + seed, io)
    return models


FLOAT_IO = ["float_io", "float_in", "float_out"]
KERAS_CHECKED = ["gesture", "odd_2d", "dilated", "conv1d_stride", "pointwise_odd", "depthwise_broadcast",
                 "elementwise", "pointwise_clamped", "activations_and_copies", "means", "wide_accumulators",
                 "add_edges", "depthwise_clamps", "conv_windows", *FLOAT_IO]
# the odd shapes of conv, depthwise and fully connected layers: the edges of the ARMv7-M assembly loops (a last
# quad of pixels with fewer than four, odd channel counts, partial depthwise blocks, multipliers of four)
ODD_SHAPES = ["gesture", "odd_2d", "dilated", "conv1d_stride", "pointwise_odd", "depthwise_broadcast"]
# `optimize: size` on the device: the int8 depthwise kernel's three blockings (four adjacent channels, four of
# one input channel, one at a time), padding, dilation and clamps, the general path, packed biases and rescales
SIZE_KERAS = ["odd_2d", "dilated", "pointwise_odd", "depthwise_broadcast", "depthwise_clamps", "wide_accumulators"]


@pytest.mark.parametrize("name", KERAS_CHECKED)
def test_keras_model_is_bit_exact_with_tflm(name, keras_models, host_build, host_tflm):
    assert_bit_exact(keras_models[name], f"keras_{name}", 40, host_build, host_tflm, seed=5)


@pytest.mark.parametrize("name", SIZE_KERAS)
def test_keras_model_is_bit_exact_with_tflm_in_size_mode(name, keras_models, host_build, host_tflm):
    model_rs = generate(keras_models[name], f"{name}.tflite", "size").model_rs
    assert "k::depthwise_conv2d_s8_compact" in model_rs and "k::depthwise_conv2d_s8(" not in model_rs
    assert_bit_exact(keras_models[name], f"keras_{name}_size", 20, host_build, host_tflm, seed=8, optimize="size")


def test_add_edges_take_the_tables_and_size_mode_tflms_arithmetic(keras_models, host_build, host_tflm):
    data = keras_models["add_edges"]
    graph = parse_model(data).main
    binary = [op for op in graph.operators if op.op in ("ADD", "SUB")]
    assert sorted(op.op for op in binary) == ["ADD", "ADD", "ADD", "SUB"]
    assert {op.options.get("fused_activation") for op in binary} >= {"RELU", "RELU6"}
    zero_points = {graph.tensors[i].quantization.zero_point[0] for op in binary for i in op.inputs}
    assert {-128, 127} <= zero_points
    assert generate(data, "add_edges.tflite").model_rs.count("k::add_s8_table") == 4
    size = generate(data, "add_edges.tflite", "size").model_rs
    assert "k::add_s8_table" not in size and size.count("k::add_s8") == 4
    assert_bit_exact(data, "keras_add_edges_size", 20, host_build, host_tflm, seed=6, optimize="size")


def test_depthwise_clamps_are_open_at_one_end(keras_models):
    steps = [s for s in lower(parse_model(keras_models["depthwise_clamps"])).steps if s.op == "DEPTHWISE_CONV_2D"]
    assert [(s.params["act_min"], s.params["act_max"]) for s in steps] == [(-100, 127), (-128, -28)]
    assert all(s.general_channels == 0 and s.params["in_c"] % 4 == 0 for s in steps)


@pytest.mark.parametrize("sub", [False, True])
def test_add_tables_give_tflms_arithmetic_for_every_pair_of_bytes(sub):
    """`quant.add_tables` with `AddTable::requantize`'s formula against TFLM's three MultiplyByQuantizedMultiplier,
    for all 65,536 operand pairs of layers with zero points at the ends and scales apart (each side's shift
    differs), both signs of the output offset."""
    cases = [((0.02, 0.5, 0.3), (-128, 127, -128)), ((0.7, 0.01, 0.05), (127, -128, 127)),
             ((0.013, 0.0131, 0.026), (3, -7, 0)), ((1e-3, 2e-3, 4e-4), (-128, -128, 90))]
    shifts = set()
    for (s1, s2, so), (za, zb, zo) in cases:
        params = quant.add_params(s1, s2, so, sub)
        shifts.add(params["a_shift"] - params["b_shift"])
        tables, output = quant.add_tables(params, -za, -zb, zo, sub)
        scaled = [np.array([quant.multiply_by_quantized_multiplier((v - z) << 20, params[f"{n}_multiplier"],
                                                                   params[f"{n}_shift"]) for v in range(-128, 128)])
                  for n, z in (("a", za), ("b", zb))]
        raw = np.add.outer(scaled[0], -scaled[1] if sub else scaled[1])  # [a + 128, b + 128]
        order = np.arange(-128, 128) & 255  # the tables are indexed by the byte
        assert np.array_equal(np.add.outer(np.array(tables[:256])[order], np.array(tables[256:])[order]), 2 * raw)
        for r in np.unique(raw):
            tflm = quant.multiply_by_quantized_multiplier(int(r), params["output_multiplier"], params["output_shift"])
            assert quant.add_table_output(2 * int(r), **output) == tflm + zo, (params, int(r))
    assert len(shifts) > 1


def test_keras_conv1d_lowers_through_reshape_and_conv2d(keras_models):
    ops = [o.op for o in parse_model(keras_models["gesture"]).main.operators]
    assert ops == ["RESHAPE", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
                   "SOFTMAX"]
    info = generate(keras_models["gesture"], "gesture.tflite").info
    assert [o["kernel"] for o in info["ops"]][:2] == ["alias", "conv2d_s8"]


def test_elementwise_model_uses_every_new_kernel(keras_models):
    ops = [o.op for o in parse_model(keras_models["elementwise"]).main.operators]
    assert sorted(ops) == ["ADD", "ADD", "CONV_2D", "CONV_2D", "CONV_2D", "LEAKY_RELU", "MUL", "MUL", "RELU",
                           "RELU6", "SUB"]
    generated = generate(keras_models["elementwise"], "elementwise.tflite")
    model_rs = generated.model_rs
    # every binary operator writes over an operand that dies with it: four read a second arena tensor, and one
    # MUL reads its constant operand from flash
    op_names = {o["index"]: o["op"] for o in generated.info["ops"]}
    in_place = sorted(op_names[i] for i in generated.info["in_place_ops"])
    assert in_place == ["ADD", "ADD", "MUL", "MUL", "RELU6", "SUB"]
    assert model_rs.count("k::split_in_place(arena, ") == 4 and "k::split_inputs(" not in model_rs
    assert re.search(r"k::mul_s8_in_place::<false>\(&P(\d+), &C\1_1\[\.\.\], y\);", model_rs)
    assert re.search(r"static C\d+_1: \[i8; 6\]", model_rs)
    # the activation tables: RELU and LEAKY_RELU read `a`, which later operators read too; RELU6 is its last reader
    assert model_rs.count("k::lookup_s8(") == 2 and model_rs.count("k::lookup_s8_in_place(") == 1


def test_activations_and_copies_model_uses_tables_and_strided_copies(keras_models):
    data = keras_models["activations_and_copies"]
    ops = [o.op for o in parse_model(data).main.operators]
    assert {op: ops.count(op) for op in sorted(set(ops))} == {
        "CONCATENATION": 3, "CONV_2D": 2, "HARD_SWISH": 1, "LOGISTIC": 1, "PAD": 1, "PADV2": 1, "QUANTIZE": 3,
        "RESHAPE": 3, "STRIDED_SLICE": 3, "TANH": 1, "TRANSPOSE": 1}
    model_rs = generate(data, "activations_and_copies.tflite").model_rs
    # six tables; the QUANTIZEs that requantize LOGISTIC's and TANH's outputs for the concatenation overwrite them
    assert model_rs.count("k::lookup_s8(") + model_rs.count("k::lookup_s8_in_place(") == 6
    assert model_rs.count("k::lookup_s8_in_place(") == 2 and model_rs.count("k::strided_copy_s8(") == 6
    assert "const P19: k::Concatenation<3> = k::Concatenation {" in model_rs


def test_unsupported_op_names_op_index_shapes_and_the_tflm_engine(keras_models):
    with pytest.raises(UserError) as caught:
        generate(keras_models["with_reduce_max"], "model.tflite")
    assert caught.value.message == (
        "model.tflite: operator 1 (REDUCE_MAX) with inputs [int8[1, 7, 5, 5], int32[2]] and outputs [int8[1, 5]]: "
        "operator not supported by the native engine")
    assert caught.value.hint.startswith("use `engine: tflm` for this model (the native engine supports: "
                                        "FULLY_CONNECTED, CONV_2D,")


def test_layers_beyond_the_short_path_take_the_general_one_and_only_they(keras_models, shared_dir):
    """The converter's +-2^30 biases: their channels' doubled accumulators would overflow int32, so those
    channels sum in plain int32 (undoubled biases) and requantize with TFLM's general path: in conv and FC
    every channel of the layer (they share their inputs), in depthwise only those. The other depthwise
    channels keep the short path, and every other model's layers keep the fast one."""
    graph = parse_model(keras_models["wide_accumulators"]).main
    conv_bias = graph.tensors[graph.operators[0].inputs[2]]
    assert sorted(set(struct.unpack("<4i", conv_bias.data)[2:])) == [-(1 << 30), 1 << 30]
    generated = generate(keras_models["wide_accumulators"], "wide.tflite")
    assert [(o["op"], o["general_channels"]) for o in generated.info["ops"]] == [
        ("CONV_2D", 4), ("DEPTHWISE_CONV_2D", 2), ("RESHAPE", 0), ("FULLY_CONNECTED", 5)]
    assert ("// op 0 CONV_2D 1x6x6x4 -> 1x6x6x4, 3x3 stride 1x1 SAME NONE, TFLM's general requantization for 4 "
            "of 4 channels (plain int32 sums)") in generated.model_rs

    def bias_arg(name: str) -> list[float]:
        values = re.search(rf"static {name}: \[i32; 4\] = \[\s*([^\]]*)\]", generated.model_rs).group(1)
        return [int(v) / (1 << 30) for v in values.replace(",", " ").split()]

    # the zero point folded in; not doubled (doubled, they would wrap around to about -+2^31)
    assert [round(v, 3) for v in bias_arg("B20")[2:]] == [1.0, -1.0]
    depthwise = bias_arg("B21")  # per channel: the short-path channels' doubled, the general ones' not
    assert max(map(abs, depthwise[:2])) < 0.001 and [round(v, 3) for v in depthwise[2:]] == [1.0, -1.0]
    assert "k::fully_connected_s8::<true, true>" in generated.model_rs
    for name in SHARED_MODELS:
        info = generate((shared_dir / "models" / f"{name}.tflite").read_bytes(), name).info
        assert not any(o["general_channels"] for o in info["ops"]), name


def test_float_io_models_quantize_and_dequantize_at_the_edges(keras_models):
    graph = parse_model(keras_models["float_io"]).main
    ops = [o.op for o in graph.operators]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    assert [graph.tensors[graph.inputs[0]].dtype, graph.tensors[graph.outputs[0]].dtype] == ["float32", "float32"]
    generated = generate(keras_models["float_io"], "float_io.tflite")
    assert "pub type Input = f32;" in generated.model_rs and "pub type Output = f32;" in generated.model_rs
    assert [o["kernel"] for o in generated.info["ops"]][::9] == ["quantize_f32_s8", "dequantize_s8_f32"]
    assert generated.info["input"]["dtype"] == "float32"
    float_in, float_out = (generate(keras_models[n], f"{n}.tflite").model_rs for n in ("float_in", "float_out"))
    assert "pub type Input = f32;" in float_in and "pub type Output = i8;" in float_in
    assert "pub type Input = i8;" in float_out and "pub type Output = f32;" in float_out
    assert "k::quantize_f32(x, INPUT_SCALE, INPUT_ZERO_POINT)" in float_out


# --- the reader ----------------------------------------------------------------------------------------------

def test_reader_decodes_reference_models(shared_dir):
    from tinypipe.stages._ml import builtin_op_names

    kws = read_model(shared_dir / "models" / "kws_ref_model.tflite")
    ops = [o.op for o in kws.main.operators]
    assert ops.count("CONV_2D") == 5 and ops.count("DEPTHWISE_CONV_2D") == 4
    first = kws.main.operators[0]
    assert first.options == {"padding": "SAME", "stride_w": 2, "stride_h": 2, "fused_activation": "RELU",
                             "dilation_w": 1, "dilation_h": 1}
    assert kws.main.tensors[first.inputs[1]].shape == (64, 10, 4, 1)
    assert kws.main.tensors[first.inputs[1]].quantization.per_channel
    micro = read_model(shared_dir / "models" / "micro_speech_quantized.tflite").main
    assert micro.operators[0].options == {"new_shape": (-1, 49, 40, 1)}
    assert micro.operators[1].options["depth_multiplier"] == 8
    assert micro.operators[3].options == {"beta": 1.0}
    for path in sorted((shared_dir / "models").glob("*.tflite")):
        data = path.read_bytes()
        model = parse_model(data, path.name)
        assert sorted({o.op for o in model.main.operators}) == builtin_op_names(data)
        for t in model.main.tensors:
            if t.is_constant and t.dtype in ("int8", "int32"):
                assert len(t.data) == t.nbytes


@pytest.mark.parametrize("name", ["hello_world_int8", "kws_ref_model", "micro_speech_quantized"])
def test_reader_rejects_truncated_files(name, shared_dir):
    data = (shared_dir / "models" / f"{name}.tflite").read_bytes()
    rng = random.Random(1)
    cuts = sorted({0, 3, 7, 8, 12, *(rng.randrange(len(data)) for _ in range(150))})
    rejected = 0
    for cut in cuts:
        try:
            parse_model(data[:cut], f"{name}.tflite")
        except UserError as exc:
            assert exc.message.startswith(f"{name}.tflite: "), exc.message
            rejected += 1
    assert rejected == len(cuts)  # the buffers sit at the end: every cut loses data something points at


@pytest.mark.parametrize("name", ["hello_world_int8", "kws_ref_model"])
def test_reader_survives_random_mutations(name, shared_dir):
    """Any corruption gives a model or a UserError: never another exception, never a hang."""
    data = (shared_dir / "models" / f"{name}.tflite").read_bytes()
    rng = random.Random(7)
    outcomes = {"ok": 0, "user_error": 0}
    slowest = 0.0
    for _ in range(400):
        mutant = bytearray(data)
        for _ in range(rng.choice((1, 2, 8, 64))):
            mutant[rng.randrange(len(mutant))] = rng.randrange(256)
        started = time.perf_counter()
        try:
            parse_model(bytes(mutant), "mutant.tflite")
            outcomes["ok"] += 1
        except UserError as exc:
            assert exc.message.startswith("mutant.tflite: ")
            outcomes["user_error"] += 1
        slowest = max(slowest, time.perf_counter() - started)
    TIMINGS[f"slowest of 400 mutated {name} parses"] = slowest
    assert outcomes["user_error"] > 0


def test_reader_rejects_non_tflite_files(tmp_path):
    with pytest.raises(UserError, match=r"x\.tflite: not a \.tflite model: only 3 bytes"):
        parse_model(b"abc", "x.tflite")
    with pytest.raises(UserError, match=r"not a \.tflite model: file identifier is b'PK\\x03\\x04'"):
        parse_model(b"PK\x03\x04" * 8, "x.tflite")
    with pytest.raises(UserError, match="cannot read the model"):
        read_model(tmp_path / "missing.tflite")


def test_reader_follows_builtin_code_over_deprecated_code(keras_models):
    """Schema 3a: the real op code is the larger of `builtin_code` and the int8 `deprecated_builtin_code`
    (which holds 127 for codes that do not fit); old files (the reference models) only set the latter."""
    from tinypipe.tflite.reader import _Bytes, _Table

    data = bytearray(keras_models["gesture"])
    before = [o.op for o in parse_model(bytes(data)).main.operators]
    buf = _Bytes(bytes(data))
    root = _Table(buf, buf.unpack("I", 0, "root"), "model")
    patched = 0
    for code in root.tables(1, "operator_codes"):
        deprecated, builtin = code._field(0, 1, "deprecated"), code._field(3, 4, "builtin_code")
        if deprecated is not None and builtin is not None:
            data[deprecated] = 0  # as if the converter had written ADD (0) there
            patched += 1
    assert patched
    assert [o.op for o in parse_model(bytes(data)).main.operators] == before


# --- code-generation-time arithmetic and planning ------------------------------------------------------------

def test_quantize_multiplier_matches_tflm_semantics():
    assert quant.quantize_multiplier(0.0) == (0, 0)
    assert quant.quantize_multiplier(0.5) == (1 << 30, 0)
    assert quant.quantize_multiplier(1.0) == (1 << 30, 1)
    # q rounds up to 2^31: halved, shift + 1
    assert quant.quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    # ties round away from zero (std::round)
    assert quant.quantize_multiplier(0.5 + 2.0 ** -32) == ((1 << 30) + 1, 0)
    assert quant.quantize_multiplier(2.0 ** -40) == (0, 0)  # below 2^-31: flushed to zero
    assert quant.activation_range("RELU6", 0.0235294, -128) == (-128, 127)
    assert quant.activation_range("RELU", 0.1, 5) == (5, 127)
    assert quant.softmax_params(1.0, 0.09173192083835602) == (1575942400, 23, -248)


def test_in_place_ops_overwrite_only_tensors_nothing_reads_later(shared_dir, keras_models):
    """In place, an operator's output takes the bytes of an input that no later operator reads (nor the model
    output); the arena never grows from it, and the plan reports each placement order it tried."""
    models = {p.stem: p.read_bytes() for p in (shared_dir / "models").glob("*.tflite")}
    models.update(keras_models)
    models.pop("with_reduce_max")
    in_place_total = 0
    for name, data in models.items():
        program = lower(parse_model(data, name))
        sizes = {t.index: t.nbytes for t in program.tensors}
        plan = plan_arena(program.steps, sizes, program.input, program.output, program.alias_of)
        apart = plan_arena(program.steps, sizes, program.input, program.output, program.alias_of, in_place=False)
        assert plan.size <= apart.size and plan.lower_bound <= apart.lower_bound, name
        assert set(plan.strategies) == {"largest_first", "first_written", "longest_lived"}
        assert plan.size == min(plan.strategies.values()) == plan.strategies[plan.strategy]
        position = {s.index: i for i, s in enumerate(program.steps)}
        for op_index, tensor in plan.in_place.items():
            step = program.steps[position[op_index]]
            assert tensor in step.in_place_inputs and plan.offset(step.output) == plan.offset(tensor)
            # the bytes overwritten hold `tensor` and its reshapes: none may be read afterwards
            root = program.alias_of.get(tensor, tensor)
            same_bytes = {root} | {u for u, o in program.alias_of.items() if o == root}
            later = [s.index for s in program.steps[position[op_index] + 1:]
                     if same_bytes & {s.input, *s.more_inputs}]
            assert not later and program.output not in same_bytes, (name, op_index, later)
        in_place_total += len(plan.in_place)
    assert in_place_total >= 10


@pytest.mark.parametrize("scale,zero_point", [(0.0235294122248888, -3), (1e-3, 127), (3.5, -128), (1.0, 0)])
def test_quantize_thresholds_give_tflm_arithmetic_on_every_kind_of_float(scale, zero_point):
    """Cores without an FPU quantize float32 by counting thresholds (convert.rs): the same outputs as TFLM's
    division and rounding (tinypipe.tflite.io.quantize_input) on random bit patterns, rounding ties,
    subnormals, zeros and infinities."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2 ** 32, size=100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    ties = ((rng.integers(-300, 300, size=50_000) + 0.5) * np.float32(scale)).astype(np.float32)
    near = rng.normal(0, 200 * scale, size=50_000).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 3.4e38, -3.4e38], dtype=np.float32)
    x = np.concatenate([x[~np.isnan(x)], ties, near, special])
    thresholds = np.array(quant.quantize_thresholds(scale, zero_point), dtype=np.uint64)
    assert np.all(np.diff(thresholds.astype(np.int64)) >= 0)
    keys = quant.f32_order_keys(x.view(np.uint32))
    ours = np.searchsorted(thresholds, keys, side="right").astype(np.int64) - 128
    expected = quant.quantize_input(x, scale, zero_point, np.int8).astype(np.int64)
    bad = np.flatnonzero(ours != expected)
    assert bad.size == 0, f"{bad.size} differ, first {x[bad[0]]!r}: thresholds {ours[bad[0]]}, TFLM {expected[bad[0]]}"


def test_arena_plan_never_overlaps_live_tensors(shared_dir, keras_models):
    models = {p.stem: p.read_bytes() for p in (shared_dir / "models").glob("*.tflite")}
    models.update({k: v for k, v in keras_models.items() if k in ("gesture", "odd_2d", "dilated")})
    for name, data in models.items():
        program = lower(parse_model(data, name))
        sizes = {t.index: t.nbytes for t in program.tensors}
        plan = plan_arena(program.steps, sizes, program.input, program.output, program.alias_of)
        buffers = list(plan.buffers.values())
        for i, a in enumerate(buffers):
            assert 0 <= a.offset and a.offset + a.size <= plan.size
            for b in buffers[i + 1:]:
                if a.overlaps(b):
                    assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (name, a, b)
        assert plan.lower_bound <= plan.size


RAM_MODELS = {"person_detect": 1, "kws_ref_model": 2}  # shared models checked in `optimize: ram`, inputs each
RAM_KERAS = ["ram_chain", "ram_patch"]


def _ram_cases(shared_dir, keras_models) -> dict[str, bytes]:
    models = {name: (shared_dir / "models" / f"{name}.tflite").read_bytes() for name in RAM_MODELS}
    return {**models, **{name: keras_models[name] for name in RAM_KERAS}}


def test_ram_plan_overlaps_only_tied_pairs_and_lowers_the_arena(shared_dir, keras_models):
    """`optimize: ram`: a convolution (or a patch of them) writes over its own input only where no output row
    lands on input rows still to be read (the check rows.rs asserts at compile time); no other buffers live at
    the same time share bytes; the arena shrinks (person_detect: to at most 0.5x its layer-by-layer arena, with
    a patch) and the default plan overlaps nothing."""
    from tinypipe.engines.native.generate import _plan_ram
    from tinypipe.engines.native.overlap import row_geometry
    from tinypipe.engines.native.patch import schedule

    models = {p.stem: p.read_bytes() for p in (shared_dir / "models").glob("*.tflite")}
    models.update({name: keras_models[name] for name in RAM_KERAS})
    for name, data in models.items():
        program = lower(parse_model(data, name))
        sizes = {t.index: t.nbytes for t in program.tensors}
        default = plan_arena(program.steps, sizes, program.input, program.output, program.alias_of)
        patch, plan = _plan_ram(program)
        assert not default.overlapped and plan.lower_bound <= plan.size <= default.size, name
        tied = set()
        for step in schedule(program, patch):
            if step.index not in plan.overlapped:
                continue
            src, dst = plan.offset(step.input), plan.offset(step.output)
            if step is patch:
                assert src - dst == patch.overlap()[2], name
            else:
                assert row_geometry(step).fits(src, dst), (name, step.index)
            tied.add(frozenset((plan.alias_of.get(step.input, step.input), plan.alias_of.get(step.output, step.output))))
        buffers = list(plan.buffers.values())
        for i, a in enumerate(buffers):
            assert 0 <= a.offset and a.offset + a.size <= plan.size
            for b in buffers[i + 1:]:
                if a.overlaps(b) and frozenset((a.tensor, b.tensor)) not in tied:
                    assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (name, a, b)
    person = generate(models["person_detect"], "person_detect.tflite", "ram").info
    assert person["arena_bytes"] <= 0.5 * person["arena_layer_by_layer"] and person["patch"]["extra_macs"] > 0
    inner = person["patch"]["ops"]
    assert [person["ops"][i]["kernel"] for i in inner] == [person["ops"][i]["kernel"].split("_band")[0] + "_band"
                                                           for i in inner]
    assert all(person["ops"][int(op)]["kernel"].endswith("_rows") for op in person["overlapped_ops"]
               if int(op) not in inner)
    assert sorted(generate(models["ram_chain"], "ram_chain.tflite", "ram").info["overlapped_ops"]) == ["0", "1", "2"]
    assert generate(models["ram_patch"], "ram_patch.tflite", "ram").info["patch"]["ops"][0] == 0
    assert generate(models["person_detect"], "person_detect.tflite").info["patch"] is None


@pytest.mark.parametrize("name", [*RAM_KERAS, *RAM_MODELS])
def test_ram_mode_is_bit_exact_with_tflm(name, shared_dir, keras_models, host_build, host_tflm):
    data = _ram_cases(shared_dir, keras_models)[name]
    info = assert_bit_exact(data, name, RAM_MODELS.get(name, 8), host_build, host_tflm, seed=5, optimize="ram")
    assert info["arena_bytes"] < info["arena_layer_by_layer"]


def test_size_mode_codes_fc_weights_where_that_saves_flash(shared_dir, host_build, host_tflm):
    """`optimize: size`: ad01_int8's fully connected weights entropy-coded (entropy.py) in the layers where that
    saves flash, decoded a row at a time, byte for byte with TFLM; the 8-wide
    bottleneck's two small layers would save too little and stay plain; other modes code nothing."""
    from tinypipe.engines.native.lower import CODED_MIN_SAVING

    data = (shared_dir / "models" / "ad01_int8.tflite").read_bytes()
    info = assert_bit_exact(data, "ad01_int8", 2, host_build, host_tflm, seed=7, optimize="size")
    coded = {c["op"]: c for c in info["compressed_weights"]}
    assert sorted(coded) == [0, 1, 2, 3, 6, 7, 8, 9]
    for op in info["ops"]:
        assert op["kernel"] == ("fully_connected_s8_coded" if op["index"] in coded else "fully_connected_s8")
        if op["index"] in coded:
            assert coded[op["index"]]["bytes"] - coded[op["index"]]["coded_bytes"] >= CODED_MIN_SAVING
    # trained weights carry about 5.2 bits per byte: the coded layers take under 0.7 of their flash
    assert sum(c["coded_bytes"] for c in coded.values()) < 0.7 * sum(c["bytes"] for c in coded.values())
    assert "compressed_weights" not in generate(data, "ad01_int8.tflite", "balanced").info


# --- the stage ------------------------------------------------------------------------------------------------

def test_codegen_stage_writes_model_rs_and_codegen_json(tmp_path, shared_dir):
    quantize = tmp_path / "quantize"
    quantize.mkdir()
    shutil.copyfile(shared_dir / "models" / "kws_ref_model.tflite", quantize / "model.tflite")
    out = tmp_path / "out"
    out.mkdir()
    logs = []
    ctx = StageContext(variant=native_variant(), inputs={"quantize": quantize}, out=out, project_dir=tmp_path,
                       _log=logs.append)
    summary = codegen.run(ctx)
    assert sorted(p.name for p in out.iterdir()) == ["codegen.json", "model.rs"]
    info = json.loads((out / "codegen.json").read_text())
    assert summary["arena_bytes"] == info["arena_bytes"] == 16_000
    assert summary["input_len"] == 490 and summary["output_len"] == 12
    assert info["input"]["zero_point"] == 83 and info["output"]["zero_point"] == -128
    assert len(info["ops"]) == 13 and info["weight_bytes"] > 20_000
    model_rs = (out / "model.rs").read_text()
    for item in ("pub const INPUT_LEN: usize = 490;", "pub const OUTPUT_LEN: usize = 12;",
                 "pub type Input = i8;", "pub fn invoke(input: &[Input], output: &mut [Output])",
                 "static W0: [u32; 1600]", "k::conv2d_s8_widened(&P0,"):
        assert item in model_rs
    # the DSP board's flash holds the model four times: filters pre-widened to int16 pairs (twice the words);
    # a core without the DSP extension keeps them int8
    assert info["widened_weights"] is True
    plain = tmp_path / "plain"
    plain.mkdir()
    codegen.run(StageContext(variant=native_variant("mps2-an385"), inputs={"quantize": quantize}, out=plain,
                             project_dir=tmp_path, _log=logs.append))
    assert json.loads((plain / "codegen.json").read_text())["widened_weights"] is False
    assert "static W0: [u32; 640]" in (plain / "model.rs").read_text()
    assert ".unwrap()" not in model_rs and ".expect(" not in model_rs and "if let Some" not in model_rs
    # every operator's arena ranges are asserted at compile time, naming it; the one panic is the unreachable
    # run-time fallback, which names the operator too (never an operator skipped)
    assert re.search(r'const _: \(\) = assert!\(k::io_fits\(ARENA_BYTES, .*"op \d+ \w+: its arena ranges', model_rs)
    assert model_rs.count("panic!") == 1 and "the arena plan is broken at operator {}" in model_rs
    assert "native model: 13 ops" in logs[0]


def test_codegen_key_follows_kernels_and_generator_edits(tmp_path, monkeypatch):
    crate = tmp_path / "kernels"
    shutil.copytree(KERNELS_DIR, crate, ignore=shutil.ignore_patterns("target"))
    monkeypatch.setenv("TINYPIPE_KERNELS", str(crate))
    variant = native_variant()
    config = codegen.STAGE.config(variant)
    assert config["engine"] == "native" and config["cpu"] == "cortex-m4" and "dsp" in config["features"]
    with timed(TIMINGS, "codegen key, asked again"):
        assert codegen.STAGE.config(variant) == config
    (crate / "src" / "pool.rs").write_text((crate / "src" / "pool.rs").read_text() + "\n// edit\n")
    assert codegen.STAGE.config(variant)["source"] != config["source"]


# --- the crate builds for the Cortex-M targets ------------------------------------------------------------------

@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an385"])  # thumbv7em-none-eabihf M4F, thumbv7m-none-eabi M3
def test_kernels_and_generated_model_build_no_std_for_cortex_m(board, tmp_path, shared_dir, rust_toolchain):
    variant = native_variant(board)
    rustc, sysroot = rustc_for(rust_toolchain(board))
    flags = ["--target", variant.triple, "-C", f"target-cpu={variant.cpu}", "-C", "opt-level=3", "-C", "panic=abort",
             "-D", "warnings", *sysroot]
    if variant.triple.startswith("thumbv7em-"):
        flags += ["--cfg", "tinyml_dsp"]  # what the crate's build.rs sets under cargo: the DSP path
    elif variant.triple.startswith("thumbv7m-"):
        flags += ["--cfg", "tinyml_armv7m"]  # and the ARMv7-M assembly of the portable path
    env = {**os.environ, "RUSTC_BOOTSTRAP": "0"}
    subprocess.run([rustc, "--edition", "2021", "--crate-type", "rlib", "--crate-name", "tinyml_kernels",
                    *flags, str(KERNELS_DIR / "src" / "lib.rs"), "--out-dir", str(tmp_path)],
                   check=True, capture_output=True, text=True, env=env)
    (tmp_path / "model.rs").write_text(generate((shared_dir / "models" / "kws_ref_model.tflite").read_bytes(),
                                                "kws").model_rs)
    (tmp_path / "lib.rs").write_text("#![no_std]\n#[path = \"model.rs\"]\npub mod model;\n")
    result = subprocess.run([rustc, "--edition", "2021", "--crate-type", "rlib", "--crate-name", "app",
                             *flags, "--extern", f"tinyml_kernels={tmp_path / 'libtinyml_kernels.rlib'}",
                             str(tmp_path / "lib.rs"), "--out-dir", str(tmp_path)],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


# --- on the emulator: the DSP path (mps2-an386, Cortex-M4F), the portable path (mps2-an385, Cortex-M3) and the
# Helium path (mps3-an547, Cortex-M55) ---------------------------------------------------------------------------

QEMU_TOOLS = bool(shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-ld")
                  and Path("/usr/bin/cargo").exists())
DEVICE_INPUTS = {"hello_world_int8": 8, "micro_speech_quantized": 3, "kws_ref_model": 3, "ad01_int8": 6,
                 "person_detect": 1}


# The Helium path (M55) runs conv, depthwise and fully connected layers on MVE: the models with those, odd shapes
# and the general requantization path (which stays on the DSP path) exercise both sides of its dispatch
MVE_INPUTS = {"kws_ref_model": 2, "ad01_int8": 2}
MVE_CHECKED = ["gesture", "odd_2d", "dilated", "conv1d_stride", "pointwise_odd", "depthwise_broadcast",
               "wide_accumulators"]
# The micro:bit (Cortex-M0, 16 KB RAM) runs the Thumb-1 assembly loops (`armv6m`) on the models that fit it
M0_INPUTS = {"micro_speech_quantized": 2}
M0_CHECKED = []


@pytest.mark.skipif(not QEMU_TOOLS, reason="needs qemu-system-arm, gcc-arm-none-eabi and Debian's cargo")
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an385", "mps3-an547", "microbit"])
def test_every_operator_is_bit_exact_on_qemu(board, shared_dir, keras_models, rust_toolchain, host_tflm, tmp_path):
    """One firmware per board holding reference models and small Keras models (on the DSP board all of them,
    with their odd shapes; on the Cortex-M3, whose float32 is in software, the odd shapes, the float32 I/O ones and
    the general requantization path; on the M55 the conv, depthwise and fully connected ones of the Helium path; on the DSP
    board also ram_chain and ram_patch in `optimize: ram`, convolutions row by row over their input and the
    first layers in row bands, and ad01_int8 in `optimize: size` with entropy-coded weights):
    every operator's output for seeded random inputs, byte for byte with TFLM."""
    from tinypipe.runners import qemu

    counts = dict({"mps3-an547": MVE_INPUTS, "microbit": M0_INPUTS}.get(board, DEVICE_INPUTS))
    models = {name: (shared_dir / "models" / f"{name}.tflite").read_bytes() for name in counts}
    keras = {"mps2-an386": KERAS_CHECKED,
             "mps2-an385": [*ODD_SHAPES, *FLOAT_IO, "wide_accumulators"], "microbit": M0_CHECKED}.get(board, MVE_CHECKED)
    for name in keras:
        models[f"keras_{name}"] = keras_models[name]
        counts[f"keras_{name}"] = 4
    optimize = {}
    if board in ("mps2-an386", "mps2-an385"):
        for name in SIZE_KERAS:
            models[f"size_{name}"], counts[f"size_{name}"], optimize[f"size_{name}"] = keras_models[name], 4, "size"
    if board == "mps2-an386":  # `optimize: ram`: row by row over the input, patch-based (the shared models: host)
        for name in RAM_KERAS:
            models[f"ram_{name}"], counts[f"ram_{name}"], optimize[f"ram_{name}"] = keras_models[name], 4, "ram"
        # `optimize: size`: entropy-coded fully connected weights, decoded a row at a time (the DSP dot product)
        models["size_ad01_int8"], counts["size_ad01_int8"], optimize["size_ad01_int8"] = models["ad01_int8"], 2, "size"
    rng = np.random.default_rng(11)
    cases = {name: (data, random_inputs(data, counts[name], rng)) for name, data in models.items()}
    names = list(cases)
    variant = native_variant(board)
    elf = build_trace_firmware(cases, variant, rust_toolchain(board), tmp_path, optimize)
    result = qemu.run_elf(elf, variant.board.qemu_machine)
    assert result.returncode == 0 and "\ndone" in result.output, result.output[-3000:]
    outputs, ops, ticks = parse_trace(result.output)
    for m, name in enumerate(names):
        data, inputs = cases[name]
        info = generate(data, name, optimize.get(name, "balanced")).info
        assert optimize.get(name) != "ram" or info["arena_bytes"] < info["arena_layer_by_layer"], name
        assert name != "size_ad01_int8" or info["compressed_weights"], name
        computed = reported_ops(info)
        graph = parse_model(data).main
        tensors = [o["output_tensor"] for o in computed] + [graph.outputs[0]]
        oracle = host_tflm(data, trace=True)
        expected = [oracle.trace(x, tensors) for x in inputs]
        for i, per_input in enumerate(expected):
            assert (m, i) in ticks, f"{name}: input {i} was not run"
            got = [ops[(m, i)].get(o["index"], b"") for o in computed] + [outputs.get((m, i, 0), b"")]
            for o, g, ref in zip(computed + [{"index": "-", "op": "model output"}], got, per_input):
                if g != ref.tobytes():
                    g = np.frombuffer(g[:len(g) // ref.itemsize * ref.itemsize], dtype=ref.dtype)
                    bad = np.flatnonzero(g.view(np.uint8) != ref.view(np.uint8)) // ref.itemsize \
                        if g.size == ref.size else [0]
                    pytest.fail(f"{board} {name}: input {i}, op {o['index']} {o['op']}: {len(bad)} of {ref.size} "
                                f"values differ (got {g.size} values), first at {bad[0]}")
