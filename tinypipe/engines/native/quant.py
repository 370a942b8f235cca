"""What TFLM's `Prepare` computes from scales, reproduced exactly at code-generation time.

TFLM does this in C++ `double` (and `float` where the source says so); Python floats are IEEE doubles and the
scales in a .tflite are float32 values, so the same operations in the same order give the same bits. `f32()`
rounds to float32 where TFLM computes in `float`. Sources: tensorflow/lite/kernels/internal/quantization_util.cc,
tensorflow/lite/kernels/kernel_util.cc (GetQuantizedConvolutionMultipler, CalculateActivationRangeQuantized),
tensorflow/lite/micro/kernels/softmax_common.cc. Also TFLM's QUANTIZE of float32 (`quantize_input`, numpy; the
reference stage uses it too) and the thresholds the kernels use for it on cores without an FPU.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Callable

from tinypipe.tflite.io import f32_bits, quantize_input  # noqa: F401 - the kernels' QUANTIZE reproduces it
from tinypipe.tflite.aborts import SOFTMAX_SCALED_DIFF_INTEGER_BITS, softmax_aborts, softmax_real_multiplier

if TYPE_CHECKING:
    import numpy as np

INT8_MIN, INT8_MAX = -128, 127


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
    real = softmax_real_multiplier(beta, input_scale)
    if softmax_aborts(beta, input_scale):
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



# --- TFLM's integer arithmetic, for tables filled at code-generation time -----------------------------------

def _wrap32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def saturating_rounding_doubling_high_mul(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul: (a * b * 2) / 2^32 rounded, ties away from zero."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    num = ab + ((1 << 30) if ab >= 0 else 1 - (1 << 30))
    return int(math.copysign(abs(num) // (1 << 31), num))  # C++ `/`: truncates toward zero


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier, double rounding (TFLITE_SINGLE_ROUNDING unset, as in the oracle)."""
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(_wrap32(x * (1 << left)), multiplier), right)


def clamp8(v: int, lo: int = INT8_MIN, hi: int = INT8_MAX) -> int:
    return max(lo, min(hi, v))


def requantize_table(input_zp: int, output_zp: int, real: float, lo: int = INT8_MIN,
                     hi: int = INT8_MAX) -> list[int]:
    """For x = -128..127: clamp(out_zp + MBQM(x - in_zp, QuantizeMultiplier(real)), lo, hi)."""
    m, s = quantize_multiplier(real)
    return [clamp8(output_zp + multiply_by_quantized_multiplier(x - input_zp, m, s), lo, hi)
            for x in range(INT8_MIN, INT8_MAX + 1)]


def relu_table(input_scale: float, input_zp: int, output_scale: float, output_zp: int) -> list[int]:
    """RELU (activations_common.cc CalculateReluOpData): the multiplier is a float quotient; the lower bound
    is the output zero point."""
    return requantize_table(input_zp, output_zp, f32(input_scale / output_scale), lo=max(INT8_MIN, output_zp))


def relu6_table(input_scale: float, input_zp: int) -> list[int]:
    """RELU6 (Relu6Prepare): a clamp of the input's integers to [zero point, quantized 6], no rescaling."""
    six = clamp8(int(round_half_away(f32(6.0 / input_scale))) + input_zp)
    return [max(input_zp, min(six, x)) for x in range(INT8_MIN, INT8_MAX + 1)]


def leaky_relu_table(alpha: float, input_scale: float, input_zp: int, output_scale: float,
                     output_zp: int) -> list[int]:
    """LEAKY_RELU (CalculateOpDataLeakyRelu, reference_ops::QuantizeLeakyRelu): float products and quotients;
    a negative alpha multiplies by |alpha| and negates."""
    m_alpha, s_alpha = quantize_multiplier(f32(f32(input_scale * f32(alpha)) / output_scale))
    m_id, s_id = quantize_multiplier(f32(input_scale / output_scale))
    out = []
    for x in range(INT8_MIN, INT8_MAX + 1):
        v = x - input_zp
        if v >= 0:
            y = multiply_by_quantized_multiplier(v, m_id, s_id)
        else:
            scaled = multiply_by_quantized_multiplier(v, abs(m_alpha), s_alpha)
            y = -scaled if m_alpha < 0 else scaled
        out.append(clamp8(output_zp + y))
    return out


def add_params(input1_scale: float, input2_scale: float, output_scale: float, sub: bool) -> dict[str, int]:
    """CalculateOpDataAdd / CalculateOpDataSub for int8 (left shift 20): ADD in double, SUB (sub_common.cc)
    with the twice-max scale and the quotients in float."""
    left_shift = 20
    if sub:
        twice_max = f32(2 * max(input1_scale, input2_scale))
        real1, real2 = f32(input1_scale / twice_max), f32(input2_scale / twice_max)
        real_out = f32(twice_max / f32((1 << left_shift) * output_scale))
    else:
        twice_max = 2 * max(input1_scale, input2_scale)
        real1, real2 = input1_scale / twice_max, input2_scale / twice_max
        real_out = twice_max / ((1 << left_shift) * output_scale)
    (m1, s1), (m2, s2), (mo, so) = (quantize_multiplier(r) for r in (real1, real2, real_out))
    if max(s1, s2, so) > 0:
        raise QuantError("an input or output multiplier is not below one")
    return {"left_shift": left_shift, "a_multiplier": m1, "a_shift": s1, "b_multiplier": m2, "b_shift": s2,
            "output_multiplier": mo, "output_shift": so}


def add_tables(params: dict[str, int], a_offset: int, b_offset: int, output_offset: int,
               sub: bool) -> tuple[list[int], dict[str, int]] | None:
    """The table-driven ADD / SUB (elementwise.rs `AddTable`) for `add_params`' output: per operand, twice its
    rescaled value for each int8 byte 0..255 (as `v as u8` indexes them; the second operand's negated for
    SUB), and the output stage's `output_multiplier`, `output_add` and `right`. None where the kernel's
    formulation does not hold: an output shift of 0 (no right shift to fold the rounding into), or
    `output_add` beyond int32."""
    right = -params["output_shift"]
    output_add = (1 << (right - 1)) + output_offset * (1 << right) if right >= 1 else None
    if output_add is None or not -(1 << 31) <= output_add < (1 << 31):
        return None

    def scaled(v: int, offset: int, multiplier: int, shift: int) -> int:
        return 2 * multiply_by_quantized_multiplier((v + offset) * (1 << params["left_shift"]), multiplier, shift)

    byte_values = [b - 256 if b >= 128 else b for b in range(256)]
    ta = [scaled(v, a_offset, params["a_multiplier"], params["a_shift"]) for v in byte_values]
    tb = [(-1 if sub else 1) * scaled(v, b_offset, params["b_multiplier"], params["b_shift"]) for v in byte_values]
    # twice the raw sum below 2^30 in magnitude: no wrapping in the kernel's add or its 64-bit product
    if max(map(abs, ta)) + max(map(abs, tb)) >= 1 << 30:
        return None
    return ta + tb, {"output_multiplier": params["output_multiplier"], "output_add": output_add, "right": right}


def add_table_output(raw2: int, output_multiplier: int, output_add: int, right: int) -> int:
    """`AddTable::requantize` before the clamp, in Python (the tests compare it with TFLM's arithmetic)."""
    hi = ((output_add << 32) + raw2 * output_multiplier + (1 << 31)) >> 32
    return (hi + (-1 if raw2 < 0 else 0)) >> right


def quantize_table(input_zp: int, output_zp: int, input_scale: float, output_scale: float) -> list[int]:
    """QUANTIZE int8 -> int8 (PrepareQuantizeReference, reference_ops::Requantize): double quotient."""
    return requantize_table(input_zp, output_zp, input_scale / output_scale)


# --- QUANTIZE float32 -> int8: TFLM's AffineQuantize, and thresholds for cores without an FPU -----------------

F32_KEY_NEG_INF, F32_KEY_POS_INF = 0x007F_FFFF, 0xFF80_0000  # order keys of -inf and +inf


def f32_order_keys(bits: "np.ndarray") -> "np.ndarray":
    """float32 bit patterns (uint32) -> unsigned keys (uint64) in the floats' order, NaNs beyond the
    infinities: the kernels crate's `f32_order_key`."""
    import numpy as np

    bits = np.asarray(bits, dtype=np.uint64)
    return np.where(bits & 0x8000_0000, ~bits & 0xFFFF_FFFF, bits | 0x8000_0000)


def _f32_from_keys(keys: "np.ndarray") -> "np.ndarray":
    import numpy as np

    bits = np.where(keys & 0x8000_0000, keys & 0x7FFF_FFFF, ~keys & 0xFFFF_FFFF)
    return bits.astype(np.uint32).view(np.float32)


def quantize_thresholds(scale: float, zero_point: int) -> list[int]:
    """QUANTIZE float32 -> int8 as a monotone step function: for k = -127..127 the order key of the smallest
    float32 whose output (`quantize_input`) is >= k (F32_KEY_POS_INF + 1 if none is). A value's output is then
    -128 plus the number of thresholds at or below its key: integer compares only, for cores without an FPU.
    All 255 bisections run at once over the non-NaN keys."""
    import numpy as np

    if not (scale > 0 and math.isfinite(scale)):
        raise QuantError(f"scale {scale} is not a positive finite number")
    k = np.arange(INT8_MIN + 1, INT8_MAX + 1)
    lo = np.full(k.shape, F32_KEY_NEG_INF, dtype=np.uint64)
    hi = np.full(k.shape, F32_KEY_POS_INF + 1, dtype=np.uint64)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        reached = quantize_input(_f32_from_keys(np.minimum(mid, F32_KEY_POS_INF)), scale, zero_point, np.int8) >= k
        searching = lo < hi
        hi = np.where(searching & reached, mid, hi)
        lo = np.where(searching & ~reached, mid + 1, lo)
    return [int(v) for v in lo]


# --- gemmlowp's fixed-point logistic and tanh (fixedpoint.h), on Python ints with int32 wrap-around ------------

_Q0_ONE = (1 << 31) - 1


def _saturating_shift(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT<exponent> on int32."""
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    return (1 << 31) - 1 if x > threshold else -(1 << 31) if x < -threshold else x << exponent


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    mul = saturating_rounding_doubling_high_mul
    constant_term, one_third = 1895147668, 715827883
    x = _wrap32(a + (1 << 28))
    x2 = mul(x, x)
    x3 = mul(x2, x)
    x4 = mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(_wrap32(mul(_wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return _wrap32(constant_term + mul(constant_term, _wrap32(x + poly)))


def _exp_on_negative_values(a: int, integer_bits: int) -> int:
    """exp(a) for a <= 0 in Q`integer_bits`, result in Q0."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod = _wrap32((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(_saturating_shift(a_mod, integer_bits))
    remainder = _wrap32(a_mod - a)
    barrel = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401),
              (4, 242))
    for exponent, multiplier in barrel:
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = saturating_rounding_doubling_high_mul(result, multiplier)
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    return _Q0_ONE if a == 0 else result


def _newton_reciprocal_q2(a: int) -> int:
    """The Newton-Raphson loop shared by one_over_one_plus_x and one_minus_x_over_one_plus_x: 1 / (1 + a)
    in Q2 for a in [0, 1) in Q0."""
    mul = saturating_rounding_doubling_high_mul
    half_denominator = (a + _Q0_ONE + 1) // 2  # RoundingHalfSum(a, 1) in int64; the sum is positive here
    x = _wrap32(1515870810 + mul(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - mul(half_denominator, x))
        x = _wrap32(x + _saturating_shift(mul(x, one_minus), 2))
    return x


def _logistic_q0(a: int, integer_bits: int) -> int:
    """gemmlowp::logistic: input Q`integer_bits`, output Q0."""
    if a == 0:
        return 1 << 30
    positive = _saturating_shift(_newton_reciprocal_q2(_exp_on_negative_values(-abs(a), integer_bits)), 1)
    return positive if a > 0 else _wrap32(_Q0_ONE - positive)


def _tanh_q0(a: int, integer_bits: int) -> int:
    """gemmlowp::tanh: input Q`integer_bits`, output Q0 (exp(-2|a|) read in Q`integer_bits + 1`)."""
    if a == 0:
        return 0
    e = _exp_on_negative_values(-abs(a), integer_bits + 1)
    t = _saturating_shift(_wrap32(_newton_reciprocal_q2(e) - (1 << 29)), 2)
    return -t if a < 0 else t


def _input_q4_params(input_scale: float) -> tuple[int, int, int]:
    """The int8 Prepare of LOGISTIC and TANH: (multiplier, left shift, range radius) turning the input's
    integers into Q4 (kInputIntegerBits = 4): frexp of the double scale * 2^27, with no QuantizeMultiplier
    normalization (a mantissa rounding up to 2^31 would overflow in TFLM: rejected)."""
    integer_bits = 4
    q, shift = math.frexp(input_scale * (1 << (31 - integer_bits)))
    multiplier = int(round_half_away(q * (1 << 31)))
    if multiplier >= 1 << 31 or not 0 <= shift <= 30:
        raise QuantError(f"input scale {input_scale!r} is outside the range TFLM's fixed-point path handles")
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift))
    return multiplier, shift, int(radius)


def _q4_activation_table(input_scale: float, input_zp: int, q0: Callable[[int, int], int], out_shift: int,
                         out_offset: int) -> list[int]:
    """LOGISTIC/TANH int8: inputs beyond the radius saturate; inside it, the Q4 fixed-point function `q0`,
    rounded down by `out_shift` bits and moved to the output zero point."""
    multiplier, shift, radius = _input_q4_params(input_scale)
    out = []
    for x in range(INT8_MIN, INT8_MAX + 1):
        v = x - input_zp
        if v <= -radius:
            out.append(INT8_MIN)
        elif v >= radius:
            out.append(INT8_MAX)
        else:
            fixed = q0(multiply_by_quantized_multiplier(v, multiplier, shift), 4)
            out.append(clamp8(rounding_divide_by_pot(fixed, out_shift) + out_offset))
    return out


def logistic_table(input_scale: float, input_zp: int) -> list[int]:
    """LOGISTIC int8 (reference_integer_ops::Logistic): the output is always scale 1/256, zero point -128."""
    return _q4_activation_table(input_scale, input_zp, _logistic_q0, 23, -128)


def tanh_table(input_scale: float, input_zp: int) -> list[int]:
    """TANH int8 (reference_integer_ops::Tanh): the output is always scale 1/128, zero point 0."""
    return _q4_activation_table(input_scale, input_zp, _tanh_q0, 24, 0)


def _srdhm16(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int16."""
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    num = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return int(math.copysign(abs(num) // (1 << 15), num))


def _sdhm16(a: int, b: int) -> int:
    """reference_ops::SaturatingDoublingHighMul on int16: truncates toward zero."""
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    return int(math.copysign(abs(ab) // (1 << 15), ab))


def _saturating_left_shift16(value: int, amount: int) -> int:
    return max(-(1 << 15), min((1 << 15) - 1, value * (1 << amount)))


def _int16_multiplier(multiplier: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (multiplier + (1 << 15)) >> 16


def hard_swish_table(input_scale: float, input_zp: int, output_scale: float, output_zp: int) -> list[int]:
    """HARD_SWISH int8 (HardSwishPrepare with float scales, reference_ops::HardSwish in int16)."""
    hires_input_scale = f32(f32(1.0 / 128.0) * input_scale)
    out_m, out_e = quantize_multiplier(f32(hires_input_scale / output_scale))
    if out_e > 0:
        raise QuantError("the output multiplier is above one (TFLM rejects it)")
    relu_m, relu_e = quantize_multiplier(f32(hires_input_scale / f32(3.0 / 32768.0)))
    out_m16, relu_m16 = _int16_multiplier(out_m), _int16_multiplier(relu_m)
    out = []
    for x in range(INT8_MIN, INT8_MAX + 1):
        hires = (x - input_zp) * (1 << 7)
        preshift_output = _srdhm16(hires, out_m16)
        reluish = hires
        if relu_e > 0:
            reluish = _saturating_left_shift16(reluish, relu_e - 1)
        reluish = _srdhm16(reluish, relu_m16)
        if relu_e > 0:
            reluish = _saturating_left_shift16(reluish, 1)
        if relu_e < 0:
            reluish = rounding_divide_by_pot(reluish, -relu_e)
        reluish = (reluish + (1 << 15)) >> 1
        value = rounding_divide_by_pot(_sdhm16(reluish, preshift_output), -out_e) + output_zp
        out.append(clamp8(value))
    return out


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """MEAN int8 (PrepareMeanOrSumHelper, then reference_ops::QuantizedMeanOrSum): QuantizeMultiplier of the
    double quotient, then 1/count folded in with a shift of floor(log2(count)), at most 32 and 31 + shift."""
    multiplier, shift = quantize_multiplier(input_scale / output_scale)
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    scaled = (multiplier << extra) // count  # C++ int64 division of non-negative values
    if scaled >= 1 << 31:
        raise QuantError(f"the multiplier for a mean of {count} values overflows int32")
    return scaled, shift - extra
