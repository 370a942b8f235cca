//! MEAN over any set of axes, int8 (TFLM: `reference_ops::QuantizedMeanOrSum`, as reduce_common.cc calls it):
//! an int32 sum per output, the zero point taken out, then one requantization whose multiplier the code
//! generator has already divided by the number of values summed.

use crate::quant::multiply_by_quantized_multiplier;

/// The input seen as two loop nests of up to five dimensions each: the kept axes (one output value per
/// index, in output order) and the reduced axes (summed), each with its strides into the input.
#[derive(Clone, Copy, Debug)]
pub struct Mean {
    pub out_dims: [usize; 5],
    pub out_strides: [usize; 5],
    pub reduce_dims: [usize; 5],
    pub reduce_strides: [usize; 5],
    pub zero_point_sum: i32, // input zero point * values per output (wrapping, like TFLM's int32)
    pub multiplier: i32,
    pub shift: i32,
    pub output_offset: i32,
}

fn reach(dims: &[usize; 5], strides: &[usize; 5]) -> Option<usize> {
    dims.iter().zip(strides).try_fold(0usize, |acc, (&d, &s)| acc.checked_add(d.checked_sub(1)?.checked_mul(s)?))
}

/// Calls `f(offset)` for every index of the nest, the last dimension fastest.
#[inline(always)]
fn for_each_offset(dims: &[usize; 5], strides: &[usize; 5], mut f: impl FnMut(usize)) {
    let [d0, d1, d2, d3, d4] = *dims;
    for i0 in 0..d0 {
        for i1 in 0..d1 {
            for i2 in 0..d2 {
                for i3 in 0..d3 {
                    let base = i0 * strides[0] + i1 * strides[1] + i2 * strides[2] + i3 * strides[3];
                    for i4 in 0..d4 {
                        f(base + i4 * strides[4]);
                    }
                }
            }
        }
    }
}

pub fn mean_s8(p: &Mean, input: &[i8], output: &mut [i8]) {
    let outputs: usize = p.out_dims.iter().product();
    let last_read = reach(&p.out_dims, &p.out_strides)
        .zip(reach(&p.reduce_dims, &p.reduce_strides))
        .and_then(|(a, b)| a.checked_add(b));
    if outputs == 0 || output.len() < outputs || last_read.is_none_or(|r| r >= input.len()) {
        return;
    }
    let mut out = output.iter_mut();
    for_each_offset(&p.out_dims, &p.out_strides, |base| {
        let mut sum = 0i32;
        for_each_offset(&p.reduce_dims, &p.reduce_strides, |at| {
            sum = sum.wrapping_add(input.get(base + at).copied().unwrap_or(0) as i32);
        });
        let v = multiply_by_quantized_multiplier(sum.wrapping_sub(p.zero_point_sum), p.multiplier, p.shift)
            + p.output_offset;
        if let Some(o) = out.next() {
            *o = v.clamp(-128, 127) as i8;
        }
    });
}
