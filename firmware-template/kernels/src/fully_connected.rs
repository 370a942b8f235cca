//! FULLY_CONNECTED, int8 in/out, int8 weights (per-tensor or per-channel), int32 bias.
//! TFLM: `reference_integer_ops::FullyConnected` / `FullyConnectedPerChannel`.

use crate::quant::{requantize, Requant};

#[derive(Clone, Copy, Debug)]
pub struct FullyConnected {
    pub batches: usize,
    pub accum_depth: usize,
    pub output_depth: usize,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// `sum(a[i] * b[i])` over two equally long int8 slices.
#[inline(always)]
pub fn dot_s8(a: &[i8], b: &[i8]) -> i32 {
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = 0i32;
    for (x, w) in ca.zip(cb) {
        acc += x[0] as i32 * w[0] as i32
            + x[1] as i32 * w[1] as i32
            + x[2] as i32 * w[2] as i32
            + x[3] as i32 * w[3] as i32;
    }
    for (x, w) in ra.iter().zip(rb) {
        acc += *x as i32 * *w as i32;
    }
    acc
}

/// `(sum(a[i] * b[i]), sum(b[i]))`: a dot product and the sum of the weights it used, in one pass.
#[inline(always)]
pub fn dot_and_sum_s8(a: &[i8], b: &[i8]) -> (i32, i32) {
    let mut dot = 0i32;
    let mut sum = 0i32;
    for (x, w) in a.iter().zip(b) {
        dot += *x as i32 * *w as i32;
        sum += *w as i32;
    }
    (dot, sum)
}

/// `output[b][o] = requant(bias[o] + sum_d weights[o][d] * input[b][d])`.
///
/// `bias` is folded: TFLM's `bias + input_offset * sum_d weights[o][d]`, computed at code-generation time,
/// which is exact because every input element takes part in every sum. `requant` has one entry per output
/// channel (a per-tensor scale is repeated).
pub fn fully_connected_s8(
    p: &FullyConnected,
    input: &[i8],
    weights: &[i8],
    bias: &[i32],
    requant: &[Requant],
    output: &mut [i8],
) {
    let (depth, out_depth) = (p.accum_depth, p.output_depth);
    if depth == 0
        || out_depth == 0
        || input.len() < p.batches * depth
        || output.len() < p.batches * out_depth
        || weights.len() < out_depth * depth
        || bias.len() < out_depth
        || requant.len() < out_depth
    {
        return;
    }
    for (x, out_row) in input.chunks_exact(depth).zip(output.chunks_exact_mut(out_depth)).take(p.batches) {
        for (((o, w), b), rq) in out_row.iter_mut().zip(weights.chunks_exact(depth)).zip(bias).zip(requant) {
            let acc = *b + dot_s8(x, w);
            *o = requantize(acc, *rq, p.output_offset, p.act_min, p.act_max);
        }
    }
}
