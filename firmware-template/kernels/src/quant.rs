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

/// Accumulator -> int8 output: scale, add the output zero point, clamp to the fused activation's range.
#[inline(always)]
pub fn requantize(acc: i32, rq: Requant, output_offset: i32, act_min: i32, act_max: i32) -> i8 {
    let scaled = multiply_by_quantized_multiplier(acc, rq.multiplier, rq.shift) + output_offset;
    scaled.max(act_min).min(act_max) as i8
}
