"""What TFLM's `Prepare` computes from scales, reproduced exactly at code-generation time.

TFLM does this in C++ `double` (and `float` where the source says so); Python floats are IEEE doubles and the
scales in a .tflite are float32 values, so the same operations in the same order give the same bits. `f32()`
rounds to float32 where TFLM computes in `float`. Sources: tensorflow/lite/kernels/internal/quantization_util.cc,
tensorflow/lite/kernels/kernel_util.cc (GetQuantizedConvolutionMultipler, CalculateActivationRangeQuantized),
tensorflow/lite/micro/kernels/softmax_common.cc.
"""

from __future__ import annotations

import math
import struct

INT8_MIN, INT8_MAX = -128, 127
SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5  # TFLM's kScaledDiffIntegerBits: the exp() input is Q5.26


class QuantError(ValueError):
    """A scale TFLM would reject, or one whose multiplier does not fit the kernels' shift range."""


def f32(x: float) -> float:
    """Round a double to the nearest float32 (what a C++ `float` expression yields)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def round_half_away(x: float) -> float:
    """std::round / TfLiteRound: ties away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM's QuantizeMultiplier: real = q / 2^31 * 2^shift with q in [2^30, 2^31) (or 0)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * (1 << 31)))
    if q_fixed > (1 << 31):
        raise QuantError(f"multiplier {real!r} does not round to a Q31 value")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if shift > 30:
        raise QuantError(f"multiplier {real!r} is too large (2^{shift})")
    return q_fixed, shift


def per_channel_multipliers(input_scale: float, filter_scales: tuple[float, ...], output_scale: float,
                            channels: int) -> list[tuple[int, int]]:
    """PopulateConvolutionQuantizationParams (CONV_2D, DEPTHWISE_CONV_2D; FULLY_CONNECTED with per-channel
    weights): double(input_scale) * double(filter_scale) / double(output_scale) per channel, one filter
    scale broadcast when the weights are per-tensor."""
    if len(filter_scales) not in (1, channels):
        raise QuantError(f"{len(filter_scales)} filter scales for {channels} output channels")
    out = []
    for c in range(channels):
        scale = filter_scales[c] if len(filter_scales) > 1 else filter_scales[0]
        out.append(quantize_multiplier(input_scale * scale / output_scale))
    return out


def fully_connected_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """GetQuantizedConvolutionMultipler for per-tensor weights: double(input) * double(filter) / double(output).

    The TFLM tree in third_party (commit 90b983c) still forms the product in float
    (`static_cast<double>(input->params.scale * filter->params.scale)`); the host oracle (the tflite-micro
    wheel, a later TFLM) forms it in double, as verified from its machine code, and its multiplier differs
    in the last bits for some scales (ad01_int8's last layer). We follow the oracle."""
    product = input_scale * filter_scale
    if product < 0:
        raise QuantError("negative input x filter scale")
    return quantize_multiplier(product / output_scale)


def activation_range(activation: str, scale: float, zero_point: int,
                     qmin: int = INT8_MIN, qmax: int = INT8_MAX) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the fused activation's bounds in the output's integers."""

    def quantize(value: float) -> int:
        if scale == 0.0:
            raise QuantError("output scale is 0")
        tmp = round_half_away(f32(value / scale))
        if not -(2.0 ** 31) <= tmp <= 2.0 ** 31 - 1:
            raise QuantError(f"{value} / {scale} overflows int32")
        return zero_point + int(tmp)

    if activation == "RELU":
        return max(qmin, quantize(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    return qmin, qmax  # NONE (TFLM ignores the other fused activations for int8 too)


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius for int8 input: (multiplier, left_shift, diff_min)."""
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(beta * input_scale * (1 << (31 - bits)), (1 << 31) - 1.0)
    if not real > 1.0:
        raise QuantError(f"beta * input scale * 2^{31 - bits} = {real!r} must exceed 1")
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift))
    return multiplier, left_shift, -int(radius)


def compute_padding(stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> int:
    """ComputePaddingWithOffset: padding before the input (the odd extra pixel goes after)."""
    effective = (filter_size - 1) * dilation + 1
    total = max((out_size - 1) * stride + effective - in_size, 0)
    return total // 2


def compute_out_size(padding: str, in_size: int, filter_size: int, stride: int, dilation: int) -> int:
    """ComputeOutSize for SAME / VALID."""
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - effective) // stride

