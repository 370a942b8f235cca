//! Requantization: scaling an `i32` accumulator by a real multiplier given as a Q31 significand and a
//! power-of-two exponent (TFLM's `QuantizeMultiplier` output).

use crate::fixedpoint::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// One output channel's scale: real multiplier = `multiplier` / 2^31 * 2^`shift`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    pub multiplier: i32,
    /// Positive: shift left; negative: shift right. In -31..=30.
    pub shift: i32,
}

/// TFLM's `MultiplyByQuantizedMultiplier(int32_t, int32_t, int)` in its default double-rounding form
/// (`TFLITE_SINGLE_ROUNDING` unset): a rounding doubling high multiply, then a rounding right shift.
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left_shift = if shift > 0 { shift as u32 } else { 0 };
    let right_shift = if shift > 0 { 0 } else { (-shift) as u32 };
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x.wrapping_shl(left_shift), multiplier), right_shift)
}

/// Largest accumulator magnitude (exclusive) for which [`requantize`] takes its short path; the code
/// generator checks that every convolution and fully connected layer stays below it.
pub const SHORT_PATH_ACC_LIMIT: i32 = 1 << 30;

/// `multiply_by_quantized_multiplier` for `shift < 0` and `|x| < 2^30`, in a few instructions.
///
/// The high multiply rounds half up (`(x * m + 2^30) >> 31`, which is what gemmlowp's nudge-and-truncate
/// computes when `m > 0`), and `rounding_divide_by_pot(y, e)` equals `((y - (y < 0)) >> (e - 1)) + 1) >> 1`
/// for `e >= 1`: round half away from zero. With `|x| < 2^30`, `2x` fits, so on the DSP path the high
/// multiply is one SMMULR of `2x`.
#[inline(always)]
fn scale_right_shift(x: i32, multiplier: i32, shift: i32) -> i32 {
    #[cfg(tinyml_dsp)]
    let y = crate::dsp::smmulr(x << 1, multiplier);
    #[cfg(not(tinyml_dsp))]
    let y = ((x as i64 * multiplier as i64 + (1 << 30)) >> 31) as i32;
    let e_minus_one = !shift; // -shift - 1
    (((y + (y >> 31)) >> e_minus_one) + 1) >> 1
}

/// Accumulator -> int8 output: scale, add the output zero point, clamp to the fused activation's range.
/// `acc` must satisfy `|acc| < SHORT_PATH_ACC_LIMIT` when `rq.shift < 0` (checked at code generation).
#[inline(always)]
pub fn requantize(acc: i32, rq: Requant, output_offset: i32, act_min: i32, act_max: i32) -> i8 {
    let scaled = if rq.shift < 0 { scale_right_shift(acc, rq.multiplier, rq.shift) } else { scale_general(acc, rq) };
    (scaled + output_offset).max(act_min).min(act_max) as i8
}

/// Multipliers of 0.5 or more (rare): out of line, so the loops around [`requantize`] stay small.
#[cold]
#[inline(never)]
fn scale_general(acc: i32, rq: Requant) -> i32 {
    multiply_by_quantized_multiplier(acc, rq.multiplier, rq.shift)
}
