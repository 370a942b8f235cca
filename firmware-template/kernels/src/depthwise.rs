//! DEPTHWISE_CONV_2D, int8 in/out, per-channel int8 filters (1HWC), int32 bias, depth multiplier,
//! SAME/VALID padding, strides, dilation. TFLM: `reference_integer_ops::DepthwiseConvPerChannel`.

use crate::quant::{requantize, Requant};

#[derive(Clone, Copy, Debug)]
pub struct DepthwiseConv2d {
    pub batches: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub depth_multiplier: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dil_h: usize,
    pub dil_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    /// `-input_zero_point`
    pub input_offset: i32,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// Output channels handled together in the depth-multiplier-1 path (four accumulators in registers).
const BLOCK: usize = 4;

/// Depthwise convolution: output channel `c * depth_multiplier + m` filters input channel `c`.
/// `bias` / `bias_folded` as in [`crate::conv2d_s8`].
pub fn depthwise_conv2d_s8(
    p: &DepthwiseConv2d,
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    bias_folded: &[i32],
    requant: &[Requant],
    output: &mut [i8],
) {
    let out_c = p.in_c * p.depth_multiplier;
    let in_size = p.in_h * p.in_w * p.in_c;
    let out_size = p.out_h * p.out_w * out_c;
    if out_c == 0
        || p.k_h == 0
        || p.k_w == 0
        || p.dil_h == 0
        || p.dil_w == 0
        || input.len() < p.batches * in_size
        || output.len() < p.batches * out_size
        || filter.len() < p.k_h * p.k_w * out_c
        || bias.len() < out_c
        || bias_folded.len() < out_c
        || requant.len() < out_c
    {
        return;
    }
    let span_h = ((p.k_h - 1) * p.dil_h) as isize;
    let span_w = ((p.k_w - 1) * p.dil_w) as isize;
    for (in_batch, out_batch) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(p.batches) {
        for (oy, out_row) in out_batch.chunks_exact_mut(p.out_w * out_c).enumerate() {
            let y0 = (oy * p.stride_h) as isize - p.pad_h as isize;
            let rows_inside = y0 >= 0 && y0 + span_h < p.in_h as isize;
            for (ox, out_px) in out_row.chunks_exact_mut(out_c).enumerate() {
                let x0 = (ox * p.stride_w) as isize - p.pad_w as isize;
                let inside = rows_inside && x0 >= 0 && x0 + span_w < p.in_w as isize;
                if p.depth_multiplier == 1 {
                    if inside {
                        pixel_dm1::<false>(p, in_batch, filter, bias_folded, requant, y0, x0, out_px);
                    } else {
                        pixel_dm1::<true>(p, in_batch, filter, bias, requant, y0, x0, out_px);
                    }
                } else {
                    pixel_generic(p, in_batch, filter, bias, requant, y0, x0, out_px);
                }
            }
        }
    }
}

/// Depth multiplier 1: channels in blocks of four, contiguous in both input and filter.
/// `CLIPPED`: the window may leave the input; taps outside are skipped and `bias` is the plain bias,
/// otherwise every tap exists and `bias` is the folded one.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pixel_dm1<const CLIPPED: bool>(
    p: &DepthwiseConv2d,
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    requant: &[Requant],
    y0: isize,
    x0: isize,
    out_px: &mut [i8],
) {
    let c = p.in_c;
    let x_off = if CLIPPED { p.input_offset } else { 0 };
    let blocks = c / BLOCK * BLOCK;
    let mut c0 = 0;
    while c0 < blocks {
        let mut acc = [0i32; BLOCK];
        if let Some(b) = bias.get(c0..c0 + BLOCK) {
            acc.copy_from_slice(b);
        }
        for ky in 0..p.k_h {
            let iy = y0 + (ky * p.dil_h) as isize;
            if CLIPPED && (iy < 0 || iy >= p.in_h as isize) {
                continue;
            }
            for kx in 0..p.k_w {
                let ix = x0 + (kx * p.dil_w) as isize;
                if CLIPPED && (ix < 0 || ix >= p.in_w as isize) {
                    continue;
                }
                let at = (iy as usize * p.in_w + ix as usize) * c + c0;
                let tap = (ky * p.k_w + kx) * c + c0;
                if let (Some(xs), Some(ws)) = (input.get(at..at + BLOCK), filter.get(tap..tap + BLOCK)) {
                    acc[0] += ws[0] as i32 * (xs[0] as i32 + x_off);
                    acc[1] += ws[1] as i32 * (xs[1] as i32 + x_off);
                    acc[2] += ws[2] as i32 * (xs[2] as i32 + x_off);
                    acc[3] += ws[3] as i32 * (xs[3] as i32 + x_off);
                }
            }
        }
        if let (Some(o), Some(rq)) = (out_px.get_mut(c0..c0 + BLOCK), requant.get(c0..c0 + BLOCK)) {
            for ((o, a), rq) in o.iter_mut().zip(acc).zip(rq) {
                *o = requantize(a, *rq, p.output_offset, p.act_min, p.act_max);
            }
        }
        c0 += BLOCK;
    }
    for ch in blocks..c {
        let mut acc = match bias.get(ch) {
            Some(b) => *b,
            None => return,
        };
        for ky in 0..p.k_h {
            let iy = y0 + (ky * p.dil_h) as isize;
            if CLIPPED && (iy < 0 || iy >= p.in_h as isize) {
                continue;
            }
            for kx in 0..p.k_w {
                let ix = x0 + (kx * p.dil_w) as isize;
                if CLIPPED && (ix < 0 || ix >= p.in_w as isize) {
                    continue;
                }
                let at = (iy as usize * p.in_w + ix as usize) * c + ch;
                let tap = (ky * p.k_w + kx) * c + ch;
                if let (Some(x), Some(w)) = (input.get(at), filter.get(tap)) {
                    acc += *w as i32 * (*x as i32 + x_off);
                }
            }
        }
        if let (Some(o), Some(rq)) = (out_px.get_mut(ch), requant.get(ch)) {
            *o = requantize(acc, *rq, p.output_offset, p.act_min, p.act_max);
        }
    }
}

/// Any depth multiplier, window possibly clipped: the reference loop, from the plain bias.
#[allow(clippy::too_many_arguments)]
fn pixel_generic(
    p: &DepthwiseConv2d,
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    requant: &[Requant],
    y0: isize,
    x0: isize,
    out_px: &mut [i8],
) {
    let out_c = p.in_c * p.depth_multiplier;
    for (oc, ((o, b), rq)) in out_px.iter_mut().zip(bias).zip(requant).enumerate() {
        let ic = oc / p.depth_multiplier;
        let mut acc = *b;
        for ky in 0..p.k_h {
            let iy = y0 + (ky * p.dil_h) as isize;
            if iy < 0 || iy >= p.in_h as isize {
                continue;
            }
            for kx in 0..p.k_w {
                let ix = x0 + (kx * p.dil_w) as isize;
                if ix < 0 || ix >= p.in_w as isize {
                    continue;
                }
                let at = (iy as usize * p.in_w + ix as usize) * p.in_c + ic;
                let tap = (ky * p.k_w + kx) * out_c + oc;
                if let (Some(x), Some(w)) = (input.get(at), filter.get(tap)) {
                    acc += *w as i32 * (*x as i32 + p.input_offset);
                }
            }
        }
        *o = requantize(acc, *rq, p.output_offset, p.act_min, p.act_max);
    }
}
