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

/// One row's maximum and TFLM's reciprocal of its sum of exponentials: what the output pass needs.
struct Row<'p> {
    p: &'p Softmax,
    max: i32,
    shifted_scale: i32,
    exponent: u32,
}

impl<'p> Row<'p> {
    /// `None` when the sum's reciprocal is out of TFLM's range (never for a valid model).
    #[inline(always)]
    fn new(p: &'p Softmax, row: &[i8]) -> Option<Self> {
        let max = row.iter().copied().max().unwrap_or(i8::MIN) as i32;
        let mut this = Row { p, max, shifted_scale: 0, exponent: 0 };
        let mut sum_of_exps = 0i32; // Q12
        for &v in row {
            if let Some(e) = this.scaled_exp(v) {
                // Q0 -> Q12: a rounding shift right by 12
                sum_of_exps = sum_of_exps.wrapping_add(rounding_divide_by_pot(e, ACCUMULATION_INTEGER_BITS as u32));
            }
        }
        let (shifted_scale, num_bits_over_unit) = reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS);
        let exponent = num_bits_over_unit + 31 - 8;
        if !(0..=31).contains(&exponent) {
            return None;
        }
        this.shifted_scale = shifted_scale;
        this.exponent = exponent as u32;
        Some(this)
    }

    #[inline(always)]
    fn scaled_exp(&self, v: i8) -> Option<i32> {
        let diff = v as i32 - self.max;
        if diff >= self.p.diff_min {
            let rescaled = multiply_by_quantized_multiplier(diff, self.p.input_multiplier, self.p.input_left_shift);
            Some(exp_on_negative_values_q5(rescaled))
        } else {
            None
        }
    }

    #[inline(always)]
    fn probability(&self, v: i8) -> i8 {
        match self.scaled_exp(v) {
            Some(e) => {
                let prob = crate::fixedpoint::saturating_rounding_doubling_high_mul(self.shifted_scale, e);
                let unsat = rounding_divide_by_pot(prob, self.exponent);
                (unsat - 128).clamp(-128, 127) as i8
            }
            None => i8::MIN,
        }
    }
}

pub fn softmax_s8(p: &Softmax, input: &[i8], output: &mut [i8]) {
    if p.depth == 0 || input.len() < p.outer * p.depth || output.len() < p.outer * p.depth {
        return;
    }
    for (row, out_row) in input.chunks_exact(p.depth).zip(output.chunks_exact_mut(p.depth)).take(p.outer) {
        let Some(stats) = Row::new(p, row) else { return };
        for (&v, o) in row.iter().zip(out_row.iter_mut()) {
            *o = stats.probability(v);
        }
    }
}

/// `softmax_s8` with the output written over the input: a row is read whole before any of it is written.
pub fn softmax_s8_in_place(p: &Softmax, buf: &mut [i8]) {
    if p.depth == 0 || buf.len() < p.outer * p.depth {
        return;
    }
    for row in buf.chunks_exact_mut(p.depth).take(p.outer) {
        let Some(stats) = Row::new(p, row) else { return };
        for v in row.iter_mut() {
            *v = stats.probability(*v);
        }
    }
}
