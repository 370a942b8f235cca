"""The random-layer property test: seeded random conv / depthwise / fully connected layers (one, or two in a row)
with extreme numbers, converted by TensorFlow to full int8, must be accepted by the native engine and give TFLM's
bytes — on the host (the kernels' portable code compiled for x86) and on QEMU (mps2-an386: the DSP path;
mps2-an385: the Cortex-M3 path), every operator's output for random and extreme inputs.

The extremes: weights of +-127 everywhere, biases that push a channel's accumulator past the short
requantization path's 2^30 (and large ones below it), input zero points of -128 and 127 (from calibration data
that is all positive or all negative), RELU/RELU6 outputs with zero point -128 and above it (an activation range
narrower than int8's), per-channel weight scales equal or
spread over up to six decades, and zero-sum weights calibrated on near-constant inputs, whose narrow output range
gives multipliers near and above 1: the multipliers run from about 2^-41 (flushed to zero, as TFLM does) to
2^10 in the default cases (2^-49 to 2^19 over a soak of 300). The inputs: random, near-constant (rounding off
the clamp), all -128, all 127, alternating, the zero point.

Case `i` is drawn from seed `TINYPIPE_PROPTEST_SEED + i` (default seed 0): a failure names the case, its seed and
the command that reruns it alone. TINYPIPE_PROPTEST_CASES raises the count for a soak run (default 24).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import re
import subprocess
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import build_trace_firmware, native_variant, parse_trace
from tinypipe.engines.native.generate import KERNELS_DIR, generate
from tinypipe.tflite import parse_model

CASES = int(os.environ.get("TINYPIPE_PROPTEST_CASES", "24"))
FIRST_SEED = int(os.environ.get("TINYPIPE_PROPTEST_SEED", "0"))
RUSTC = shutil.which("rustc")
QEMU_TOOLS = bool(shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-ld")
                  and Path("/usr/bin/cargo").exists())
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected")
INPUTS_PER_CASE = 10  # 4 random, 2 near-constant, then all -128, all 127, alternating -128/127, the zero point
SHORT_PATH_ACC_LIMIT = 1 << 30


# --- drawing a case: plain data, from its seed alone ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Layer:
    kind: str  # "conv", "depthwise" or "dense"
    out_channels: int  # conv filters, depthwise multiplier, dense units
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "valid"
    activation: str = "linear"  # linear (NONE), relu, relu6
    # normal; saturated: +-the channel's magnitude everywhere (int8 +-127); zero_sum: normal, less their mean, so
    # near-constant inputs cancel out and the output range is narrow (large multipliers, small right shifts)
    weights: str = "normal"
    channel_scales: tuple[float, ...] = ()  # per output channel: the weights' magnitude
    bias_targets: tuple[int, ...] = ()  # per output channel: the quantized bias aimed at (int32 units)

    def describe(self) -> str:
        if self.kind == "dense":
            shape = f"Dense({self.out_channels})"
        else:
            name = "Conv2D" if self.kind == "conv" else "DepthwiseConv2D"
            shape = (f"{name}({self.out_channels}, {self.kernel}, strides={self.strides}, "
                     f"dilation={self.dilation}, {self.padding})")
        scales = ", ".join(f"{s:.0e}" for s in self.channel_scales)
        return (f"{shape} {self.activation}, {self.weights} weights, channel scales [{scales}], "
                f"bias targets {list(self.bias_targets)}")


@dataclasses.dataclass(frozen=True)
class Case:
    seed: int
    input_shape: tuple[int, ...]  # without the batch
    input_range: tuple[float, float]  # the calibration data's: [0, hi] gives zero point -128, [lo, 0] 127
    calibration_noise: float  # 0: uniform calibration samples; else near-constant ones, noise relative to the range
    layers: tuple[Layer, ...]

    @property
    def name(self) -> str:
        return f"case_{self.seed}"

    def describe(self) -> str:
        layers = "; ".join(layer.describe() for layer in self.layers)
        samples = (f"near-constant samples (noise {self.calibration_noise:.0e})" if self.calibration_noise
                   else "uniform samples")
        return f"seed {self.seed}: input {self.input_shape}, {samples} over {self.input_range}: {layers}"


def draw_case(seed: int) -> Case:
    """Case `seed`: the kind of the first layer and the input zero point's extreme cycle with the seed, so any
    run of 12 consecutive seeds has each kind with each kind of input range; the rest is random."""
    rng = np.random.default_rng(seed)
    kind = ("conv", "depthwise", "dense")[seed % 3]
    lo_hi = [(0.0, 1.0), (-1.0, 0.0), (-1.0, 1.0), (-0.25, 3.0)][(seed // 3) % 4]
    spread = float(10.0 ** rng.uniform(-2, 2))
    input_range = (lo_hi[0] * spread, lo_hi[1] * spread)
    if kind == "dense":
        input_shape: tuple[int, ...] = (int(rng.integers(1, 65)),)
    else:
        input_shape = (int(rng.integers(1, 11)), int(rng.integers(1, 11)), int(rng.integers(1, 7)))
    first = _draw_layer(rng, kind, input_shape)
    layers = [first]
    if rng.random() < 0.3:  # a second layer reads the first's requantized output
        layers.append(_draw_layer(rng, "dense" if kind == "dense" else str(rng.choice(["conv", "depthwise", "dense"])),
                                  _output_shape(input_shape, first)))
    noise = float(10.0 ** rng.uniform(-4, -2)) if rng.random() < 0.4 else 0.0
    return Case(seed, input_shape, input_range, noise, tuple(layers))


def _draw_layer(rng, kind: str, input_shape: tuple[int, ...]) -> Layer:
    if kind == "dense":
        out = int(rng.integers(1, 17))
        geometry: dict = {}
    else:
        h, w, c = input_shape
        out = int(rng.integers(1, 9)) if kind == "conv" else int(rng.integers(1, 5))
        padding = str(rng.choice(["same", "valid"]))
        dilated = rng.random() < 0.25
        strides = (1, 1) if dilated else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        if kind == "depthwise":  # TensorFlow's depthwise kernel takes equal strides only
            strides = (strides[0], strides[0])
        dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if dilated else (1, 1)
        # VALID needs the (dilated) kernel to fit in the input
        limit = [(n - 1) // d + 1 if padding == "valid" else 4 for n, d in zip((h, w), dilation)]
        kernel = (int(rng.integers(1, min(4, limit[0]) + 1)), int(rng.integers(1, min(4, limit[1]) + 1)))
        geometry = dict(kernel=kernel, strides=strides, dilation=dilation, padding=padding)
    channels = out if kind != "depthwise" else out * input_shape[-1]
    # the channels' weight magnitudes: equal, within a decade, or spread over six (where some channels'
    # multipliers fall below 2^-25 and take the general path)
    decades = float(rng.choice([0, 1, 6]))
    base = rng.uniform(-5, 1 - decades)
    scales = tuple(float(10.0 ** (base + rng.uniform(0, decades))) for _ in range(channels))
    biases = str(rng.choice(["small", "large", "beyond"], p=[0.5, 0.25, 0.25]))
    return Layer(kind=kind, out_channels=out, activation=str(rng.choice(["linear", "relu", "relu6"])),
                 weights=str(rng.choice(["normal", "saturated", "zero_sum"])), channel_scales=scales,
                 bias_targets=tuple(_bias_target(rng, biases) for _ in range(channels)), **geometry)


def _bias_target(rng, regime: str) -> int:
    """A quantized bias, either sign: "small" (zero or below 2^12: the output range comes from the products,
    multipliers stay large enough for the short path), "large" (some up to 2^30 less 2^23, more than a first
    layer's largest sum of products: tiny multipliers), "beyond" (a third at or beyond 2^30, up to int32's
    end)."""
    magnitudes = [0, int(rng.integers(1, 1 << 12))]
    if regime != "small":
        magnitudes += [int(rng.integers(1 << 20, 1 << 28)),
                       int(rng.integers(1 << 29, SHORT_PATH_ACC_LIMIT - (1 << 23)))]
    if regime == "beyond" and rng.random() < 0.33:
        magnitudes = [SHORT_PATH_ACC_LIMIT + int(rng.integers(0, 1 << 29)), (1 << 31) - 1]
    return int(rng.choice(magnitudes)) * int(rng.choice([-1, 1]))


def _output_shape(input_shape: tuple[int, ...], layer: Layer) -> tuple[int, ...]:
    if layer.kind == "dense":
        return (layer.out_channels,)
    h, w, c = input_shape
    size = []
    for n, k, s, d in zip((h, w), layer.kernel, layer.strides, layer.dilation):
        span = (k - 1) * d + 1
        size.append(-(-n // s) if layer.padding == "same" else (n - span) // s + 1)
    return (*size, c * layer.out_channels if layer.kind == "depthwise" else layer.out_channels)


# --- a case as a Keras model, converted by TensorFlow -------------------------------------------------------------

def _input_scale(case: Case) -> float:
    lo, hi = case.input_range
    return (hi - lo) / 255.0


def _keras_layer(keras, layer: Layer):
    L = keras.layers
    if layer.kind == "dense":
        return L.Dense(layer.out_channels, activation=layer.activation)
    common = dict(strides=layer.strides, dilation_rate=layer.dilation, padding=layer.padding,
                  activation=layer.activation)
    if layer.kind == "conv":
        return L.Conv2D(layer.out_channels, layer.kernel, **common)
    return L.DepthwiseConv2D(layer.kernel, depth_multiplier=layer.out_channels, **common)


def _set_weights(keras_layer, layer: Layer, input_scale: float, rng) -> None:
    """Weights of each channel's magnitude (saturated: all +-magnitude) and biases at their targets, in the units
    the converter will quantize them in (the input scale times the channel's weight scale)."""
    kernel = keras_layer.get_weights()[0]
    scales = np.array(layer.channel_scales, dtype=np.float64)
    shape = kernel.shape
    flat_channels = shape[:-2] + (shape[-2] * shape[-1],) if layer.kind == "depthwise" else shape
    if layer.weights == "saturated":
        values = rng.choice([-1.0, 1.0], size=flat_channels)
    else:
        values = rng.normal(0.0, 1.0, size=flat_channels)
    taps = tuple(range(len(flat_channels) - 1))
    if layer.weights == "zero_sum":
        values = values - values.mean(axis=taps, keepdims=True)
    else:
        values[(0,) * len(taps) + (slice(None),)] = 1.0  # each channel's largest weight is exactly 1
    values = values / np.maximum(np.abs(values).max(axis=taps, keepdims=True), 1e-30)
    kernel = (values * scales).reshape(shape).astype(np.float32)
    # per channel for conv/depthwise, one scale for the whole of a dense layer
    weight_scales = scales / 127.0 if layer.kind != "dense" else np.full_like(scales, scales.max() / 127.0)
    bias = np.array(layer.bias_targets, dtype=np.float64) * input_scale * weight_scales
    keras_layer.set_weights([kernel, bias.astype(np.float32)])


def build_model(keras, case: Case):
    """The case's layers with their weights set; a later layer's biases are aimed using the scale the converter
    will give its input (the previous layer's float output range on the calibration data, zero included)."""
    rng = np.random.default_rng(case.seed + 1_000_003)
    x = keras.Input(case.input_shape, batch_size=1)
    y, values, scale = x, np.concatenate(calibration_data(case)), _input_scale(case)
    for layer in case.layers:
        if layer.kind == "dense" and len(y.shape) > 2:
            y, values = keras.layers.Flatten()(y), values.reshape(len(values), -1)
        keras_layer = _keras_layer(keras, layer)
        y = keras_layer(y)
        _set_weights(keras_layer, layer, scale, rng)
        values = np.asarray(keras_layer(values))
        scale = (max(float(values.max()), 0.0) - min(float(values.min()), 0.0)) / 255.0 or 1.0
    return keras.Model(x, y)


def calibration_data(case: Case, count: int = 16) -> list[np.ndarray]:
    """Samples over the case's input range, holding both ends so the range is exact: uniform, or each near one
    value (noise relative to the range; the first two constant at the ends)."""
    rng = np.random.default_rng(case.seed + 2_000_003)
    lo, hi = case.input_range
    shape = (1, *case.input_shape)
    if case.calibration_noise:
        noise = case.calibration_noise * (hi - lo)
        samples = [np.full(shape, lo), np.full(shape, hi)]
        samples += [np.clip(rng.uniform(lo, hi) + rng.uniform(-noise, noise, size=shape), lo, hi)
                    for _ in range(count - 2)]
    else:
        samples = [rng.uniform(lo, hi, size=shape) for _ in range(count)]
        first = samples[0].reshape(-1)
        first[0], first[-1] = lo, hi
    return [sample.astype(np.float32) for sample in samples]


def convert(keras, case: Case) -> bytes:
    import tensorflow as tf

    model = build_model(keras, case)
    samples = calibration_data(case)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return narrow_activation_ranges(bytes(converter.convert()), case)


def narrow_activation_ranges(model: bytes, case: Case) -> bytes:
    """About half the RELU/RELU6 layers' outputs get a zero point above -128 (drawn from [-100, 63], scale
    kept), so that their activation range is narrower than int8's, as the converter gives some layers of a
    MobileNet calibrated on few samples; a second layer reads the same tensor with the same numbers. Drawn from
    a generator of its own, so the rest of a case does not depend on it."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    rng = np.random.default_rng(case.seed + 4_000_003)
    fused = {schema.ActivationFunctionType.RELU, schema.ActivationFunctionType.RELU6}
    tree = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = tree.subgraphs[0]
    reshapes = {schema.BuiltinOperator.RESHAPE, schema.BuiltinOperator.SQUEEZE, schema.BuiltinOperator.EXPAND_DIMS}
    edited: dict[int, int] = {}  # tensor -> its new zero point
    for op in graph.operators:
        code = tree.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) in reshapes and op.inputs[0] in edited:
            edited[op.outputs[0]] = edited[op.inputs[0]]  # a reshape keeps its input's numbers
        elif getattr(op.builtinOptions, "fusedActivationFunction", None) in fused and rng.random() < 0.5:
            edited[op.outputs[0]] = int(rng.integers(-100, 64))
    if not edited:
        return model
    for tensor, zero_point in edited.items():
        graph.tensors[tensor].quantization.zeroPoint = [zero_point]
    builder = flatbuffers.Builder(0)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def inputs_for(case: Case, zero_point: int) -> np.ndarray:
    """Random int8 inputs; two near one value (+-2), where zero-sum weights cancel and the outputs stay off the
    clamp, so their rounding shows; then the extremes: all -128, all 127, alternating, the zero point."""
    rng = np.random.default_rng(case.seed + 3_000_003)
    shape = (1, *case.input_shape)
    n = int(np.prod(shape))
    extremes = [np.full(n, -128), np.full(n, 127), np.where(np.arange(n) % 2 == 0, -128, 127), np.full(n, zero_point)]
    near_constant = [np.clip(rng.integers(-128, 128) + rng.integers(-2, 3, size=n), -128, 127) for _ in range(2)]
    random = rng.integers(-128, 128, size=(INPUTS_PER_CASE - len(extremes) - 2, n))
    return np.concatenate([random, np.stack(near_constant + extremes)]).astype(np.int8).reshape(-1, *shape)


# --- the cases, converted once for the module ----------------------------------------------------------------------

@dataclasses.dataclass
class Converted:
    case: Case
    model: bytes
    inputs: np.ndarray  # [n, 1, ...] int8
    info: dict  # codegen.json: the native engine accepted the model

    @property
    def rerun(self) -> str:
        return (f"TINYPIPE_PROPTEST_SEED={self.case.seed} TINYPIPE_PROPTEST_CASES=1 "
                f"pytest tests/test_random_layers.py")


# For a multiplier of 2^31 or more TFLM's MultiplyByQuantizedMultiplier computes `x * (1 << shift)` with a shift
# of 31 or more: undefined C++ (x86 masks the count to 5 bits, Arm's LSL gives 0 from 32 on). The native engine
# refuses such a layer, and only such: a case whose layer's output range collapsed in calibration (a dead ReLU
# after huge biases, say) can draw one.
UNDEFINED_IN_TFLM = re.compile(r"its quantization cannot be reproduced: multiplier \S+ is too large \(2\^(\d+)\)")
REFUSED: list[str] = []  # the cases refused for that reason, for the summary


@pytest.fixture(scope="module")
def random_layers(request) -> list[Converted]:
    """The module's cases, converted by TensorFlow and generated by the native engine. A refusal fails here,
    naming the case, unless TFLM's own arithmetic is undefined for the layer (`UNDEFINED_IN_TFLM`)."""
    pytest.importorskip("tensorflow")
    from tinypipe.core.errors import UserError
    from tinypipe.stages._ml import quiet_tensorflow

    quiet_tensorflow()
    import keras

    converted = []
    for seed in range(FIRST_SEED, FIRST_SEED + CASES):
        case = draw_case(seed)
        model = convert(keras, case)
        try:
            info = generate(model, f"{case.name}.tflite").info
        except UserError as exc:
            undefined = UNDEFINED_IN_TFLM.search(exc.message)
            if undefined and int(undefined.group(1)) > 30:
                REFUSED.append(f"{case.describe()}: {exc.message}")
                continue
            pytest.fail(f"the native engine refused {case.describe()}:\n{exc.message}\n"
                        f"rerun: TINYPIPE_PROPTEST_SEED={seed} TINYPIPE_PROPTEST_CASES=1 "
                        f"pytest tests/test_random_layers.py")
        zero_point = info["input"]["zero_point"]
        converted.append(Converted(case, model, inputs_for(case, zero_point), info))
    print_summary(request, converted)
    return converted


def coverage(layers: list[Converted]) -> dict[str, object]:
    """What the converted cases exercise: zero points, requantization paths, activations, multiplier exponents."""
    shifts, general, short, clamped, activations = [], 0, 0, 0, set()
    for layer in layers:
        graph = parse_model(layer.model).main
        for op in graph.operators:
            if op.op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                continue
            x, w, y = (graph.tensors[t].quantization for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
            shifts += [math.frexp(x.scale[0] * s / y.scale[0])[1] for s in w.scale]
            activations.add(op.options.get("fused_activation", "NONE"))
        for op in layer.info["ops"]:
            if op["kernel"] != "alias":
                general += op["general_channels"] > 0
                short += op["general_channels"] == 0
                clamped += "clamp_after" in op
    return {"input zero points": sorted({layer.info["input"]["zero_point"] for layer in layers} & {-128, 127}),
            "output zero point -128": sum(layer.info["output"]["zero_point"] == -128 for layer in layers),
            "layers on the general path": general, "layers on the short path": short,
            "short-path layers with a narrow activation range (full-range kernel, then clamp_s8)": clamped,
            "fused activations": sorted(activations), "multiplier exponents": (min(shifts), max(shifts)),
            "refused (undefined in TFLM)": len(REFUSED)}


def print_summary(request, layers: list[Converted]) -> None:
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\nrandom layers: {len(layers)} cases from seed {FIRST_SEED}: "
                            + "; ".join(f"{k} {v}" for k, v in coverage(layers).items()))
        for refused in REFUSED:
            reporter.write_line(f"refused, TFLM's arithmetic undefined: {refused}")


@pytest.mark.skipif(CASES < 24 or FIRST_SEED != 0, reason="pins the default cases (seeds 0 to 23 or more)")
def test_the_cases_reach_every_extreme(random_layers):
    """The generator does what the module promises (a change that stopped drawing an extreme fails here)."""
    seen = coverage(random_layers)
    assert seen["input zero points"] == [-128, 127]
    assert seen["output zero point -128"] > 0
    assert seen["layers on the general path"] > 0 and seen["layers on the short path"] > 0
    assert seen["short-path layers with a narrow activation range (full-range kernel, then clamp_s8)"] > 0
    assert seen["fused activations"] == ["NONE", "RELU", "RELU6"]
    low, high = seen["multiplier exponents"]
    assert low <= -20 and high >= 0, seen


# --- checking traces against the oracle ----------------------------------------------------------------------------

def assert_traces_match(where: str, layers: list[Converted], output: str, host_tflm) -> None:
    """Every computing operator's output and the model output, for every case and input, byte for byte with the
    host TFLM interpreter; `output`: the trace program's (`op m i op hex`, `out m i 0 hex` lines)."""
    outputs, ops, _ = parse_trace(output)
    failures = []
    for m, layer in enumerate(layers):
        computed = [o for o in layer.info["ops"] if o["kernel"] != "alias"]
        graph = parse_model(layer.model).main
        tensors = [o["output_tensor"] for o in computed] + [graph.outputs[0]]
        oracle = host_tflm(layer.model, trace=True)
        for i, x in enumerate(layer.inputs):
            expected = oracle.trace(x, tensors)
            got = [ops.get((m, i), {}).get(o["index"], b"") for o in computed] + [outputs.get((m, i, 0), b"")]
            for o, g, ref in zip(computed + [{"index": "-", "op": "model output"}], got, expected):
                if g == ref.tobytes():
                    continue
                ours = np.frombuffer(g, dtype=np.int8)
                detail = f"got {ours.size} values, expected {ref.size}"
                if ours.size == ref.size:
                    bad = np.flatnonzero(ours != ref)
                    detail = (f"{bad.size} of {ref.size} values differ, first at {bad[0]}: ours {ours[bad[0]]}, "
                              f"TFLM {ref[bad[0]]}")
                failures.append(f"{where}: {layer.case.describe()}\n  input {i} ({x.reshape(-1)[:8].tolist()}...), "
                                f"op {o['index']} {o['op']}: {detail}\n  rerun: {layer.rerun}")
                break
    if failures:
        pytest.fail(f"{len(failures)} mismatches:\n" + "\n".join(failures[:10]), pytrace=False)


# --- the host: the kernels' portable code, compiled for this machine ---------------------------------------------

HOST_MAIN_HEAD = """\
#[allow(dead_code, reason = "the program calls `invoke_with_hook`, not the rest of each model's API")]
mod model;

fn hex_line(tag: &str, idx: [usize; 3], values: &[i8]) {
    let hex: String = values.iter().map(|v| format!("{:02x}", *v as u8)).collect();
    println!("{} {} {} {} {}", tag, idx[0], idx[1], idx[2], hex);
}

fn main() {
"""


def host_trace_main(names: list[str]) -> str:
    """main.rs printing what `harness.trace_main` prints on the device (`op` and `out` lines, then `done`)."""
    body = "".join(f"""    {{
        use model::{name} as md;
        let mut arena = vec![0i8; md::ARENA_BYTES];
        let arena: &mut [i8; md::ARENA_BYTES] = arena.as_mut_slice().try_into().expect("arena");
        let mut output = [0 as md::Output; md::OUTPUT_LEN];
        for (i, input) in md::inputs().chunks_exact(md::INPUT_LEN).enumerate() {{
            md::invoke_with_hook(arena, input, &mut output, &mut |op, y| hex_line("op", [{m}, i, op], y));
            hex_line("out", [{m}, i, 0], &output);
        }}
    }}
""" for m, name in enumerate(names))
    return HOST_MAIN_HEAD + body + '    println!("done");\n}\n'


def run_on_host(layers: list[Converted], work: Path, optimize: str = "balanced") -> str:
    """One host program holding every case's generated model (as `harness.build_harness` does on the device), in
    the `native.optimize` mode `optimize`."""
    from tinypipe.devtools.harness import INPUTS_RS

    rlib = work / "libtinyml_kernels.rlib"
    subprocess.run([RUSTC, "--edition", "2021", "--crate-type", "rlib", "--crate-name", "tinyml_kernels",
                    "-C", "opt-level=3", str(KERNELS_DIR / "src" / "lib.rs"), "-o", str(rlib)],
                   check=True, capture_output=True, text=True)
    (work / "model").mkdir()
    for layer in layers:
        generated = generate(layer.model, f"{layer.case.name}.tflite", optimize)
        (work / "model" / f"{layer.case.name}.rs").write_text(generated.model_rs
                                                              + INPUTS_RS.replace("@NAME@", layer.case.name))
        np.ascontiguousarray(layer.inputs).tofile(work / "model" / f"{layer.case.name}.bin")
    names = [layer.case.name for layer in layers]
    (work / "model.rs").write_text("".join(f"pub mod {name};\n" for name in names))
    (work / "main.rs").write_text(host_trace_main(names))
    build = subprocess.run([RUSTC, "--edition", "2021", "-C", "opt-level=3", "--extern", f"tinyml_kernels={rlib}",
                            "-L", str(work), str(work / "main.rs"), "-o", str(work / "trace")],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(work / "trace")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.endswith("done\n"), run.stderr[-4000:]
    return run.stdout


@pytest.mark.skipif(RUSTC is None, reason="needs rustc")
def test_random_layers_are_bit_exact_on_the_host(random_layers, host_tflm, tmp_path):
    assert_traces_match("host", random_layers, run_on_host(random_layers, tmp_path), host_tflm)


@pytest.mark.skipif(RUSTC is None, reason="needs rustc")
def test_random_layers_are_bit_exact_on_the_host_in_size_mode(random_layers, host_tflm, tmp_path):
    """`optimize: size`: the int8 depthwise kernel and the bit-packed biases and rescales (channels.py), whose
    field widths the extreme biases and multipliers stretch to their limits."""
    assert any(generate(layer.model, "m.tflite", "size").model_rs.count("k::unpack_channels") for layer in random_layers)
    assert_traces_match("host size", random_layers, run_on_host(random_layers, tmp_path, "size"), host_tflm)


# --- the emulator: one firmware per board holding every case ---------------------------------------------------

@pytest.mark.skipif(not QEMU_TOOLS, reason="needs qemu-system-arm, gcc-arm-none-eabi and Debian's cargo")
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an385"])  # the DSP path, the Cortex-M3 path
def test_random_layers_are_bit_exact_on_qemu(board, random_layers, rust_toolchain, host_tflm, tmp_path):
    from tinypipe.runners import qemu

    variant = native_variant(board)
    cases = {layer.case.name: (layer.model, layer.inputs) for layer in random_layers}
    elf = build_trace_firmware(cases, variant, rust_toolchain(board), tmp_path)
    result = qemu.run_elf(elf, variant.board.qemu_machine)
    assert result.returncode == 0 and "\ndone" in result.output, result.output[-3000:]
    assert_traces_match(board, random_layers, result.output, host_tflm)
