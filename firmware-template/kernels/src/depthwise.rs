//! DEPTHWISE_CONV_2D, int8 in/out, per-channel int8 filters (1HWC), int32 bias, depth multiplier,
//! SAME/VALID padding, strides, dilation. TFLM: `reference_integer_ops::DepthwiseConvPerChannel`.
//!
//! Per output pixel, the taps that lie inside the input are one rectangle (`ky` and `kx` ranges), so the
//! loops run over exactly those and never test a tap. Four output channels at a time share four
//! accumulators: with multiplier 1 they read four adjacent input channels (one word), with a multiplier
//! that is a multiple of four they all read the same input channel. Pixels whose window is entirely inside
//! start from the folded bias; the others (TFLM skips their outside taps) add the input offset per tap.

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

/// The taps of one output pixel that lie inside the input.
#[derive(Clone, Copy)]
struct Window {
    y0: isize,
    x0: isize,
    ky: (usize, usize),
    kx: (usize, usize),
}

/// First and one-past-last tap `k` with `0 <= start + k * dil < size`.
#[inline(always)]
fn valid_taps(start: isize, taps: usize, dil: usize, size: usize) -> (usize, usize) {
    let d = dil as isize;
    let lo = if start < 0 { ((-start + d - 1) / d) as usize } else { 0 };
    let room = size as isize - start; // taps with start + k*dil < size: k < room / dil
    let hi = if room <= 0 { 0 } else { (((room + d - 1) / d) as usize).min(taps) };
    (lo.min(hi), hi)
}

/// Depthwise convolution: output channel `c * depth_multiplier + m` filters input channel `c`.
/// `bias_folded[o] = bias[o] + input_offset * sum(filter taps of o)`.
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
    for (in_batch, out_batch) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(p.batches) {
        for (oy, out_row) in out_batch.chunks_exact_mut(p.out_w * out_c).enumerate() {
            let y0 = (oy * p.stride_h) as isize - p.pad_h as isize;
            let ky = valid_taps(y0, p.k_h, p.dil_h, p.in_h);
            for (ox, out_px) in out_row.chunks_exact_mut(out_c).enumerate() {
                let x0 = (ox * p.stride_w) as isize - p.pad_w as isize;
                let win = Window { y0, x0, ky, kx: valid_taps(x0, p.k_w, p.dil_w, p.in_w) };
                if win.ky == (0, p.k_h) && win.kx == (0, p.k_w) {
                    pixel::<false>(p, in_batch, filter, bias_folded, requant, win, out_px);
                } else {
                    pixel::<true>(p, in_batch, filter, bias, requant, win, out_px);
                }
            }
        }
    }
}

/// One output pixel. `CLIPPED`: `bias` is the plain bias and each tap adds the input offset.
#[inline(always)]
fn pixel<const CLIPPED: bool>(
    p: &DepthwiseConv2d,
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    requant: &[Requant],
    win: Window,
    out_px: &mut [i8],
) {
    let out_c = p.in_c * p.depth_multiplier;
    let x_off = if CLIPPED { p.input_offset } else { 0 };
    let dm = p.depth_multiplier;
    // output channels handled four at a time: all of them with multiplier 1 or a multiple of 4
    let blocked = if dm == 1 { p.in_c / 4 * 4 } else if dm % 4 == 0 { out_c } else { 0 };
    let mut oc = 0;
    while oc < blocked {
        let mut acc = [0i32; 4];
        if let Some(b) = bias.get(oc..oc + 4) {
            acc.copy_from_slice(b);
        }
        let ic = oc / dm;
        for ky in win.ky.0..win.ky.1 {
            let iy = (win.y0 + (ky * p.dil_h) as isize) as usize;
            for kx in win.kx.0..win.kx.1 {
                let ix = (win.x0 + (kx * p.dil_w) as isize) as usize;
                let at = (iy * p.in_w + ix) * p.in_c + ic;
                let tap = (ky * p.k_w + kx) * out_c + oc;
                let w = match filter.get(tap..tap + 4) {
                    Some(w) => u32::from_le_bytes([w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8]),
                    None => continue,
                };
                if dm == 1 {
                    if let Some(x) = input.get(at..at + 4) {
                        let x = u32::from_le_bytes([x[0] as u8, x[1] as u8, x[2] as u8, x[3] as u8]);
                        acc = mac_4channels::<CLIPPED>(x, w, x_off, acc);
                    }
                } else if let Some(x) = input.get(at) {
                    acc = mac_broadcast(*x as i32 + x_off, w, acc);
                }
            }
        }
        if let (Some(o), Some(rq)) = (out_px.get_mut(oc..oc + 4), requant.get(oc..oc + 4)) {
            for ((o, a), rq) in o.iter_mut().zip(acc).zip(rq) {
                *o = requantize(a, *rq, p.output_offset, p.act_min, p.act_max);
            }
        }
        oc += 4;
    }
    for oc in blocked..out_c {
        let mut acc = match bias.get(oc) {
            Some(b) => *b,
            None => return,
        };
        let ic = oc / dm;
        for ky in win.ky.0..win.ky.1 {
            let iy = (win.y0 + (ky * p.dil_h) as isize) as usize;
            for kx in win.kx.0..win.kx.1 {
                let ix = (win.x0 + (kx * p.dil_w) as isize) as usize;
                let at = (iy * p.in_w + ix) * p.in_c + ic;
                let tap = (ky * p.k_w + kx) * out_c + oc;
                if let (Some(x), Some(w)) = (input.get(at), filter.get(tap)) {
                    acc += *w as i32 * (*x as i32 + x_off);
                }
            }
        }
        if let (Some(o), Some(rq)) = (out_px.get_mut(oc), requant.get(oc)) {
            *o = requantize(acc, *rq, p.output_offset, p.act_min, p.act_max);
        }
    }
}

/// Four channels: `acc[i] += w[i] * (x[i] + x_off)` for the four int8 lanes of `x` and `w`.
#[inline(always)]
fn mac_4channels<const CLIPPED: bool>(x: u32, w: u32, x_off: i32, mut acc: [i32; 4]) -> [i32; 4] {
    #[cfg(tinyml_dsp)]
    {
        use crate::dsp::{sadd16, smlabb, smlatt, sxtb16, sxtb16_ror8};
        let (mut x_even, mut x_odd) = (sxtb16(x), sxtb16_ror8(x));
        if CLIPPED {
            // x + offset lies in -255..=255: it fits each halfword
            let off = (x_off as u32 & 0xFFFF) | (x_off as u32) << 16;
            x_even = sadd16(x_even, off);
            x_odd = sadd16(x_odd, off);
        }
        let (w_even, w_odd) = (sxtb16(w), sxtb16_ror8(w));
        acc[0] = smlabb(w_even, x_even, acc[0]);
        acc[2] = smlatt(w_even, x_even, acc[2]);
        acc[1] = smlabb(w_odd, x_odd, acc[1]);
        acc[3] = smlatt(w_odd, x_odd, acc[3]);
    }
    #[cfg(not(tinyml_dsp))]
    {
        for (i, a) in acc.iter_mut().enumerate() {
            let xi = ((x << (24 - 8 * i)) as i32 >> 24) + x_off;
            let wi = (w << (24 - 8 * i)) as i32 >> 24;
            *a += wi * xi;
        }
    }
    acc
}

/// One input value against four adjacent output channels' weights: `acc[i] += w[i] * x`.
#[inline(always)]
fn mac_broadcast(x: i32, w: u32, mut acc: [i32; 4]) -> [i32; 4] {
    #[cfg(tinyml_dsp)]
    {
        use crate::dsp::{smlabb, smlatb, sxtb16, sxtb16_ror8};
        let x = x as u32; // x + offset fits the low halfword
        let (w_even, w_odd) = (sxtb16(w), sxtb16_ror8(w));
        acc[0] = smlabb(w_even, x, acc[0]);
        acc[2] = smlatb(w_even, x, acc[2]);
        acc[1] = smlabb(w_odd, x, acc[1]);
        acc[3] = smlatb(w_odd, x, acc[3]);
    }
    #[cfg(not(tinyml_dsp))]
    {
        for (i, a) in acc.iter_mut().enumerate() {
            *a += ((w << (24 - 8 * i)) as i32 >> 24) * x;
        }
    }
    acc
}
