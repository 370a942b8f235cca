//! Requantization: scaling an `i32` accumulator by a real multiplier given as a Q31 significand and a
//! power-of-two exponent (TFLM's `QuantizeMultiplier` output).

use crate::fixedpoint::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// TFLM's `MultiplyByQuantizedMultiplier(int32_t, int32_t, int)` in its default double-rounding form
/// (`TFLITE_SINGLE_ROUNDING` unset): a rounding doubling high multiply, then a rounding right shift.
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left_shift = if shift > 0 { shift as u32 } else { 0 };
    let right_shift = if shift > 0 { 0 } else { (-shift) as u32 };
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x.wrapping_shl(left_shift), multiplier), right_shift)
}

/// A raw int16 sensor sample as an int8 model input, one fixed-point step folding the declared input scaling and
/// the input tensor's quantization: `clamp(RoundingDivideByPOT(raw * multiplier + bias, shift), -128, 127)` in
/// i64, halves rounded away from zero as gemmlowp's `RoundingDivideByPOT` does. tinypipe computes `multiplier`,
/// `bias` and `shift` per axis (`stages/_scaling.py`, whose `quantize_raw` is this step in numpy) with
/// `shift <= 47`, `|multiplier| < 2^31` and `|bias| < 2^62`, so the sum cannot overflow.
#[inline]
pub fn quantize_raw_i16(raw: i16, multiplier: i32, bias: i64, shift: u32) -> i8 {
    let acc = i64::from(raw) * i64::from(multiplier) + bias;
    let mask = (1i64 << shift) - 1;
    let remainder = acc & mask;
    let threshold = (mask >> 1) + i64::from(acc < 0);
    ((acc >> shift) + i64::from(remainder > threshold)).clamp(-128, 127) as i8
}

/// One output channel's scale with the output zero point and the rounding folded in, for kernels whose
/// accumulators hold twice the sum (depthwise: doubled weights), so the high multiply needs no shift.
/// Eight bytes: the shift is derived from `add`.
///
/// Short path: `add = 2^(right-1) + output_offset * 2^right = 2^(right-1) * (2 * output_offset + 1)`, so
/// `right = trailing_zeros(add) + 1` (`1 <= right <= GENERAL_TZ`), exact for `|acc| < 2^30` and `|add| <
/// 2^30`. A channel the short path cannot take (a multiplier of 0.5 or more, a large shift, or a worst-case
/// accumulator of 2^30 or more: the code generator bounds each channel's) has `add = (shift << 26) | (1 <<
/// GENERAL_TZ)` (TFLM's shift in the top six bits, `trailing_zeros(add) == GENERAL_TZ`) and takes TFLM's
/// general path ([`rescale_general`]: plain int32 sum, 64-bit rounding doubling high multiply).
///
/// A general channel's accumulator holds the plain int32 sum, as TFLM's does (no doubled bias, weights or
/// inputs: wrapping adds give TFLM's bits whenever its own int32 sum does not overflow). Depthwise channels
/// are independent, so the choice is per channel; conv and fully connected channels share their inputs, so
/// the code generator makes every channel of such a layer general when one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)] // read field by field by the DSP path's assembly
pub struct Rescale {
    pub multiplier: i32,
    pub add: i32,
}

/// `trailing_zeros(add)` of a general-path [`Rescale`]; short-path channels have fewer.
pub const GENERAL_TZ: u32 = 25;

impl Rescale {
    /// Whether this channel needs TFLM's general path.
    #[inline(always)]
    pub fn is_general(self) -> bool {
        self.add.trailing_zeros() == GENERAL_TZ
    }

    /// `right - 1` of a short-path channel.
    #[inline(always)]
    pub fn right_minus_one(self) -> u32 {
        self.add.trailing_zeros()
    }

    /// TFLM's shift of a general-path channel.
    #[inline(always)]
    pub fn general_shift(self) -> i32 {
        self.add >> 26
    }
}

/// TFLM's requantization of `acc2 / 2` (`multiply_by_quantized_multiplier` plus the output zero point)
/// before the clamp, on the short path.
///
/// The rounding right shift by `e` of TFLM's doubling high multiply `y` is `(y + 2^(e-1) - (y < 0)) >> e`;
/// `y < 0` only when `acc < 0`, and when `acc < 0` but `y == 0` both forms give 0, so the sign comes from
/// the accumulator. Adding `output_offset * 2^e` before the shift adds `output_offset` after it.
#[inline(always)]
pub fn rescale_doubled(acc2: i32, rs: Rescale) -> i32 {
    #[cfg(tinyml_dsp)]
    let y = crate::dsp::smmlar(acc2, rs.multiplier, rs.add);
    #[cfg(all(not(tinyml_dsp), not(tinyml_armv6m)))]
    let y = (((acc2 as i64 * rs.multiplier as i64 + (1 << 31)) >> 32) as i32).wrapping_add(rs.add);
    #[cfg(tinyml_armv6m)]
    let y = high_mul_rounded(acc2, rs.multiplier).wrapping_add(rs.add);
    ((y + (acc2 >> 31)) >> rs.right_minus_one()) >> 1
}

/// `((a * b + 2^31) >> 32) as i32` from four 16 x 16-bit products: ARMv6-M has no 64-bit multiply, and the
/// library's (`__aeabi_lmul`) takes about twice the instructions. With `a = ah * 2^16 + al` (`al` unsigned),
/// the same for `b`, `a * b + 2^31 = 2^32 (ah bh + hi16(ah bl) + hi16(al bh)) + 2^16 c + lo16(al bl)` where
/// `c = hi16(al bl) + lo16(ah bl) + lo16(al bh) + 2^15` (each term below 2^16), so the result is
/// `ah bh + hi16(ah bl) + hi16(al bh) + (c >> 16)`; every product fits in 32 bits.
#[inline(always)]
pub fn high_mul_rounded(a: i32, b: i32) -> i32 {
    let (ah, al) = (a >> 16, a & 0xFFFF);
    let (bh, bl) = (b >> 16, b & 0xFFFF);
    let low = (al as u32).wrapping_mul(bl as u32);
    let (mid1, mid2) = (ah.wrapping_mul(bl), al.wrapping_mul(bh));
    let c = (low >> 16) as i32 + (mid1 & 0xFFFF) + (mid2 & 0xFFFF) + (1 << 15);
    ah.wrapping_mul(bh).wrapping_add(mid1 >> 16).wrapping_add(mid2 >> 16).wrapping_add(c >> 16)
}

/// TFLM's requantization of the plain sum `acc` of a general-path channel (see [`Rescale`]), output zero
/// point added, before the clamp.
#[cold]
#[inline(never)]
pub fn rescale_general(acc: i32, rs: Rescale, output_offset: i32) -> i32 {
    multiply_by_quantized_multiplier(acc, rs.multiplier, rs.general_shift()).wrapping_add(output_offset)
}

/// One output value of a compact kernel from its plain sum `acc`: the short path doubles it (`b2` is the
/// doubled bias there), a general channel adds its bias as it is; then the fused activation's clamp.
#[inline(always)]
pub fn requantize_sum(acc: i32, b2: i32, rs: Rescale, output_offset: i32, act_min: i32, act_max: i32) -> i8 {
    let v = if rs.is_general() {
        rescale_general(acc.wrapping_add(b2), rs, output_offset)
    } else {
        rescale_doubled((acc << 1).wrapping_add(b2), rs)
    };
    clamp_s8::<false>(v, act_min, act_max)
}

/// Whether a kernel's requantization variant, chosen by the code generator, computes a layer exactly:
/// `GENERAL` (TFLM's general path for `right == 0` channels) must be set when any channel needs it, and
/// `FULL` (the activation range is all of int8: saturation only) only when the range is. A kernel taking
/// the variant as const generics (`fully_connected_s8`) returns without writing when it does not, and a
/// model links only the variants its layers name.
#[inline(always)]
pub fn variant_fits<const GENERAL: bool, const FULL: bool>(rescale: &[Rescale], act_min: i32, act_max: i32) -> bool {
    (GENERAL || rescale.iter().all(|r| !r.is_general())) && (!FULL || (act_min == -128 && act_max == 127))
}

/// Clamp to the fused activation's range; `FULL`: the range is all of int8 (one SSAT on the DSP path).
#[inline(always)]
pub fn clamp_s8<const FULL: bool>(v: i32, act_min: i32, act_max: i32) -> i8 {
    if FULL {
        #[cfg(tinyml_dsp)]
        {
            crate::dsp::ssat8(v) as i8
        }
        #[cfg(not(tinyml_dsp))]
        {
            v.clamp(-128, 127) as i8
        }
    } else {
        v.max(act_min).min(act_max) as i8
    }
}
