//! SOFTMAX, int8 in, int8 out (scale 1/256, zero point -128), over the last dimension.
//! TFLM: `reference_ops::Softmax` for quantized types: gemmlowp fixed-point exp in Q5.26, sums in Q12.19.

use crate::fixedpoint::{exp_on_negative_values_q5, reciprocal, rounding_divide_by_pot};
use crate::quant::multiply_by_quantized_multiplier;

#[derive(Clone, Copy, Debug)]
pub struct Softmax {
    /// Rows (product of all but the last dimension).
    pub outer: usize,
    /// Length of the last dimension.
    pub depth: usize,
    /// beta * input_scale * 2^26 as a Q31 multiplier and a left shift (TFLM's `PreprocessSoftmaxScaling`).
    pub input_multiplier: i32,
    pub input_left_shift: i32,
    /// Differences from the row maximum below this contribute nothing (TFLM's `diff_min`).
    pub diff_min: i32,
}

const ACCUMULATION_INTEGER_BITS: i32 = 12;

pub fn softmax_s8(p: &Softmax, input: &[i8], output: &mut [i8]) {
    if p.depth == 0 || input.len() < p.outer * p.depth || output.len() < p.outer * p.depth {
        return;
    }
    for (row, out_row) in input.chunks_exact(p.depth).zip(output.chunks_exact_mut(p.depth)).take(p.outer) {
        let max = row.iter().copied().max().unwrap_or(i8::MIN) as i32;
        let scaled_exp = |v: i8| -> Option<i32> {
            let diff = v as i32 - max;
            if diff >= p.diff_min {
                let rescaled = multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift);
                Some(exp_on_negative_values_q5(rescaled))
            } else {
                None
            }
        };
        let mut sum_of_exps = 0i32; // Q12
        for &v in row {
            if let Some(e) = scaled_exp(v) {
                // Q0 -> Q12: a rounding shift right by 12
                sum_of_exps = sum_of_exps.wrapping_add(rounding_divide_by_pot(e, ACCUMULATION_INTEGER_BITS as u32));
            }
        }
        let (shifted_scale, num_bits_over_unit) = reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS);
        let exponent = num_bits_over_unit + 31 - 8;
        if !(0..=31).contains(&exponent) {
            return;
        }
        for (&v, o) in row.iter().zip(out_row.iter_mut()) {
            *o = match scaled_exp(v) {
                Some(e) => {
                    let prob = crate::fixedpoint::saturating_rounding_doubling_high_mul(shifted_scale, e);
                    let unsat = rounding_divide_by_pot(prob, exponent as u32);
                    (unsat - 128).clamp(-128, 127) as i8
                }
                None => i8::MIN,
            };
        }
    }
}
