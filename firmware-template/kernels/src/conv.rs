//! CONV_2D, int8 in/out, per-channel int8 filters (OHWI), int32 bias, SAME/VALID padding, strides, dilation.
//! TFLM: `reference_integer_ops::ConvPerChannel` (groups = 1).

use crate::fully_connected::dot_s8;
use crate::quant::{requantize, Requant};

#[derive(Clone, Copy, Debug)]
pub struct Conv2d {
    pub batches: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub out_c: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dil_h: usize,
    pub dil_w: usize,
    /// Rows / columns of zero padding before the input (TFLM's `padding_values`).
    pub pad_h: usize,
    pub pad_w: usize,
    /// `-input_zero_point`
    pub input_offset: i32,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// Convolution. `bias` is the model's bias (zeros when it has none); `bias_folded[o]` is
/// `bias[o] + input_offset * sum(filter[o])`, used where the whole filter window lies inside the input.
/// Where it does not, TFLM skips the padded taps entirely, so those pixels sum `filter * (x + input_offset)`
/// over the taps that exist, from the plain bias.
pub fn conv2d_s8(
    p: &Conv2d,
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    bias_folded: &[i32],
    requant: &[Requant],
    output: &mut [i8],
) {
    let in_size = p.in_h * p.in_w * p.in_c;
    let out_size = p.out_h * p.out_w * p.out_c;
    let row_len = p.k_w * p.in_c;
    let filter_len = p.k_h * row_len;
    if filter_len == 0
        || p.out_c == 0
        || p.stride_h == 0
        || p.stride_w == 0
        || p.dil_h == 0
        || p.dil_w == 0
        || input.len() < p.batches * in_size
        || output.len() < p.batches * out_size
        || filter.len() < p.out_c * filter_len
        || bias.len() < p.out_c
        || bias_folded.len() < p.out_c
        || requant.len() < p.out_c
    {
        return;
    }
    let span_h = ((p.k_h - 1) * p.dil_h) as isize;
    let span_w = ((p.k_w - 1) * p.dil_w) as isize;
    let filters = &filter[..p.out_c * filter_len];
    for (in_batch, out_batch) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(p.batches) {
        for (oy, out_row) in out_batch.chunks_exact_mut(p.out_w * p.out_c).enumerate() {
            let y0 = (oy * p.stride_h) as isize - p.pad_h as isize;
            let rows_inside = y0 >= 0 && y0 + span_h < p.in_h as isize;
            for (ox, out_px) in out_row.chunks_exact_mut(p.out_c).enumerate() {
                let x0 = (ox * p.stride_w) as isize - p.pad_w as isize;
                let inside = rows_inside && x0 >= 0 && x0 + span_w < p.in_w as isize;
                if inside && p.dil_w == 1 {
                    // each filter row meets one contiguous run of k_w * in_c input values
                    let base = (y0 as usize * p.in_w + x0 as usize) * p.in_c;
                    let row_step = p.dil_h * p.in_w * p.in_c;
                    for (((o, f), b), rq) in out_px.iter_mut().zip(filters.chunks_exact(filter_len)).zip(bias_folded).zip(requant) {
                        let mut acc = *b;
                        for (ky, f_row) in f.chunks_exact(row_len).enumerate() {
                            let start = base + ky * row_step;
                            if let Some(x_row) = in_batch.get(start..start + row_len) {
                                acc += dot_s8(x_row, f_row);
                            }
                        }
                        *o = requantize(acc, *rq, p.output_offset, p.act_min, p.act_max);
                    }
                } else {
                    conv_pixel_clipped(p, in_batch, filters, bias, requant, y0, x0, out_px);
                }
            }
        }
    }
}

/// One output pixel whose window may leave the input: taps outside are skipped, as in TFLM. Each filter row
/// meets one contiguous run of input (without width dilation), whose contribution is
/// `sum(f * x) + input_offset * sum(f)` over the taps that exist.
#[allow(clippy::too_many_arguments)]
fn conv_pixel_clipped(
    p: &Conv2d,
    input: &[i8],
    filters: &[i8],
    bias: &[i32],
    requant: &[Requant],
    y0: isize,
    x0: isize,
    out_px: &mut [i8],
) {
    let filter_len = p.k_h * p.k_w * p.in_c;
    let row_len = p.k_w * p.in_c;
    // columns of the window inside the input (contiguous when there is no width dilation)
    let kx_lo = if x0 < 0 { ((-x0) as usize).min(p.k_w) } else { 0 };
    let kx_hi = ((p.in_w as isize - x0).max(0) as usize).min(p.k_w).max(kx_lo);
    for (((o, f), b), rq) in out_px.iter_mut().zip(filters.chunks_exact(filter_len)).zip(bias).zip(requant) {
        let mut acc = *b;
        for (ky, f_row) in f.chunks_exact(row_len).enumerate() {
            let iy = y0 + (ky * p.dil_h) as isize;
            if iy < 0 || iy >= p.in_h as isize {
                continue;
            }
            let row = iy as usize * p.in_w;
            if p.dil_w == 1 {
                if kx_hi > kx_lo {
                    let at = (row + (x0 + kx_lo as isize) as usize) * p.in_c;
                    let len = (kx_hi - kx_lo) * p.in_c;
                    if let (Some(xs), Some(ws)) = (input.get(at..at + len), f_row.get(kx_lo * p.in_c..kx_lo * p.in_c + len)) {
                        let (dot, sum) = crate::fully_connected::dot_and_sum_s8(xs, ws);
                        acc += dot + p.input_offset * sum;
                    }
                }
                continue;
            }
            for (kx, ws) in f_row.chunks_exact(p.in_c).enumerate() {
                let ix = x0 + (kx * p.dil_w) as isize;
                if ix < 0 || ix >= p.in_w as isize {
                    continue;
                }
                let at = (row + ix as usize) * p.in_c;
                if let Some(xs) = input.get(at..at + p.in_c) {
                    let (dot, sum) = crate::fully_connected::dot_and_sum_s8(xs, ws);
                    acc += dot + p.input_offset * sum;
                }
            }
        }
        *o = requantize(acc, *rq, p.output_offset, p.act_min, p.act_max);
    }
}
