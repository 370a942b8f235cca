//! CONV_2D, int8 in/out, per-channel int8 filters, int32 bias, SAME/VALID padding, strides, dilation.
//! TFLM: `reference_integer_ops::ConvPerChannel` (groups = 1).
//!
//! As a matrix product, like CMSIS-NN's `arm_convolve_s8`: two output pixels at a time, each one's input
//! patch (k_h x k_w x in_c values) is widened into int16 pairs in `scratch` (im2col), then every pair of
//! output channels is computed against both patches at once (2x2 blocking: four accumulators, each weight
//! and each input pair loaded once per use by two accumulators). Taps outside the input read the input zero
//! point, whose contribution the folded bias already cancels (TFLM skips those taps: same sum).
//!
//! Filters come re-laid by the code generator ([`conv_filter_words`] says how): rows padded with zeros to
//! whole words, output channels in pairs (an odd count gets a zero row), the two rows' words interleaved.
//! [`conv2d_s8_widened`] takes them pre-widened instead: every word of four int8 as the two int16-pair
//! words the patches have (`(v0, v2)`, `(v1, v3)`), so the DSP inner loop needs no SXTB16 (a quarter fewer
//! instructions) for twice the filter's flash; and each pair of rows framed by its bias and requantization
//! ([`WIDENED_PAIR_EXTRA_WORDS`]), so the DSP loop walks the layer with one pointer and loads them with
//! one LDM each instead of keeping three pointers on the stack.

use crate::quant::{clamp_s8, requantize_sum, rescale_doubled, rescale_general, Rescale};

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

impl Conv2d {
    /// Words of one filter row: the patch length rounded up to a multiple of 4 values.
    pub const fn row_words(&self) -> usize {
        (self.k_h * self.k_w * self.in_c).div_ceil(4)
    }

    /// Scratch words the kernel needs: two widened patches.
    pub const fn scratch_words(&self) -> usize {
        4 * self.row_words()
    }

    /// Staging bytes for gathering a patch that is not one contiguous run of the input (any kernel but 1x1):
    /// the patch in whole words, and a word of slack for the DSP path's word-rounded runs (`dsp::gather_runs`).
    pub const fn stage_bytes(&self) -> usize {
        if self.k_h * self.k_w == 1 {
            0
        } else {
            4 * self.row_words() + 4
        }
    }
}

/// Number of `u32` filter words for `p`: `round_up(out_c, 2) * row_words`.
pub const fn conv_filter_words(p: &Conv2d) -> usize {
    p.out_c.div_ceil(2) * 2 * p.row_words()
}

/// Words of one pair of rows in [`conv2d_s8_widened`]'s filter besides its `4 * row_words` widened words:
/// four before them, `(bias2[2p], bias2[2p], bias2[2p + 1], bias2[2p + 1])`, and six after, both channels'
/// [`Rescale`] fields `(multiplier, add)` and then their `trailing_zeros(add)` (`right - 1` on the short path).
pub const WIDENED_PAIR_EXTRA_WORDS: usize = 10;

/// Number of `u32` filter words of [`conv2d_s8_widened`]: twice [`conv_filter_words`], plus
/// [`WIDENED_PAIR_EXTRA_WORDS`] per pair of rows.
pub const fn conv_filter_widened_words(p: &Conv2d) -> usize {
    2 * conv_filter_words(p) + p.out_c.div_ceil(2) * WIDENED_PAIR_EXTRA_WORDS
}

const fn filter_words<const WIDENED: bool>(p: &Conv2d) -> usize {
    if WIDENED {
        conv_filter_widened_words(p)
    } else {
        conv_filter_words(p)
    }
}

/// Convolution. `filter`: see the module doc; `bias2[o] = 2 * (bias[o] + input_offset * sum(filter[o]))`
/// (the widened patches hold doubled values, so the accumulators hold twice the sum: see [`Rescale`]). In a
/// layer whose channels are general the patches and `bias2` are not doubled, and `bias2` wraps around like
/// the int32 sum.
/// `scratch` holds at least `p.scratch_words()` words, `stage` at least `p.stage_bytes()` bytes.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_s8(
    p: &Conv2d,
    input: &[i8],
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
    stage: &mut [i8],
) {
    conv2d::<false>(p, input, filter, bias2, rescale, output, scratch, stage);
}

/// [`conv2d_s8`] with the filter pre-widened (see the module doc): per pair of rows, the four bias words
/// (`bias2` of [`conv2d_s8`], each twice), then per group of four values row 0's words `(v0, v2)`, `(v1, v3)`
/// as int16 pairs, then row 1's, then the six requantization words ([`WIDENED_PAIR_EXTRA_WORDS`]: the
/// [`Rescale`]s). The weights are doubled unless the layer's channels are general, and then the patches are
/// not: the accumulators hold what [`conv2d_s8`]'s do.
pub fn conv2d_s8_widened(p: &Conv2d, input: &[i8], filter: &[u32], output: &mut [i8], scratch: &mut [u32], stage: &mut [i8]) {
    conv2d::<true>(p, input, filter, &[], &[], output, scratch, stage);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn conv2d<const WIDENED: bool>(
    p: &Conv2d,
    input: &[i8],
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
    stage: &mut [i8],
) {
    let in_size = p.in_h * p.in_w * p.in_c;
    let pixels = p.out_h * p.out_w;
    let out_size = pixels * p.out_c;
    let words = p.row_words();
    if words == 0
        || p.out_c == 0
        || p.stride_h == 0
        || p.stride_w == 0
        || p.dil_h == 0
        || p.dil_w == 0
        || input.len() < p.batches * in_size
        || output.len() < p.batches * out_size
        || filter.len() < filter_words::<WIDENED>(p)
        || !WIDENED && (bias2.len() < p.out_c || rescale.len() < p.out_c)
        || scratch.len() < p.scratch_words()
        || stage.len() < p.stage_bytes()
    {
        return;
    }
    let filter = &filter[..filter_words::<WIDENED>(p)];
    let (bias2, rescale) = if WIDENED { (bias2, rescale) } else { (&bias2[..p.out_c], &rescale[..p.out_c]) };
    // the MVE loops read int8 filters: the code generator never widens for a Helium core (generate.py), and a
    // widened filter that reached one anyway takes the DSP path
    #[cfg(tinyml_mve)]
    if !WIDENED && crate::mve::conv2d_s8(p, input, filter, bias2, rescale, output, &mut scratch[..4 * words], stage) {
        return;
    }
    // a widened filter carries the rescales: the second word of each pair's trailer is the first channel's add
    let general = if WIDENED {
        let pair_words = 4 * words + WIDENED_PAIR_EXTRA_WORDS;
        filter.get(pair_words - 5).is_some_and(|&add| Rescale { multiplier: 0, add: add as i32 }.is_general())
    } else {
        rescale.iter().any(|r| r.is_general())
    };
    let full = p.act_min == -128 && p.act_max == 127;
    // four pixels at a time when the caller's scratch (the largest any layer needs) holds their int32 patches
    #[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
    let quads = !WIDENED && full && !general && scratch.len() >= 16 * words;
    for (in_batch, out_batch) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(p.batches) {
        #[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
        if quads {
            quads_armv7m(p, in_batch, filter, bias2, rescale, out_batch, &mut scratch[..16 * words], stage);
            continue;
        }
        let scratch = &mut scratch[..4 * words];
        let mut px = 0;
        // a 1x1 convolution whose input pixels are its output pixels: the pixel pairs in one assembly loop,
        // the last pixel of an odd count below
        #[cfg(tinyml_dsp)]
        if WIDENED && !general && pointwise_whole(p) {
            let (pairs, act) = (pixels / 2, (p.act_min, p.act_max));
            if full {
                crate::dsp::conv_1x1_stream::<true>(filter, in_batch, words, p.out_c / 2, pairs, out_batch, scratch, act);
            } else {
                crate::dsp::conv_1x1_stream::<false>(filter, in_batch, words, p.out_c / 2, pairs, out_batch, scratch, act);
            }
            px = 2 * pairs;
        }
        // the layers whose runs of in-window pixel pairs `window_pairs` computes: decided once per layer
        #[cfg(tinyml_dsp)]
        let windows = WIDENED && !general && p.k_h * p.k_w > 1 && p.dil_w == 1 && p.out_c % 2 == 0;
        while px < pixels {
            // a run of pixel pairs whose windows lie inside the input, in one assembly loop
            #[cfg(tinyml_dsp)]
            if windows {
                let pairs = window_pairs(p, in_batch, px, filter, out_batch, scratch, stage);
                if pairs > 0 {
                    px += 2 * pairs;
                    continue;
                }
            }
            // the second pixel of the last pair may not exist: it repeats the first (same bytes written twice)
            let second = if px + 1 < pixels { px + 1 } else { px };
            // a general layer accumulates the plain sum: its patches are not doubled; nor are they with a
            // widened filter, which holds the doubled weights instead
            load_patch(p, in_batch, px, scratch, 0, stage, !general && !WIDENED);
            load_patch(p, in_batch, second, scratch, 1, stage, !general && !WIDENED);
            let out = match out_batch.get_mut(px * p.out_c..(second + 1) * p.out_c) {
                Some(o) => o,
                None => return,
            };
            let px1 = (second - px) * p.out_c;
            #[cfg(tinyml_dsp)]
            let first_pair = if full && !general {
                if WIDENED {
                    crate::dsp::conv_pairs_2px_stream(filter, scratch, words, p.out_c / 2, out, px1);
                } else {
                    crate::dsp::conv_pairs_2px(filter, scratch, words, p.out_c / 2, bias2, rescale, out, px1);
                }
                p.out_c / 2
            } else {
                0
            };
            // the Armv7-M twin reads int8 filters (the code generator widens only for DSP cores)
            #[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
            let first_pair = if !WIDENED && full && !general {
                crate::armv7m::conv_pairs_2px(filter, scratch, words, p.out_c / 2, bias2, rescale, out, px1);
                p.out_c / 2
            } else {
                0
            };
            #[cfg(not(any(tinyml_dsp, tinyml_armv7m)))]
            let first_pair = 0;
            match (general, full) {
                (true, _) => pairs::<true, false, WIDENED>(p, filter, scratch, bias2, rescale, out, px1, first_pair),
                (false, true) => pairs::<false, true, WIDENED>(p, filter, scratch, bias2, rescale, out, px1, first_pair),
                (false, false) => pairs::<false, false, WIDENED>(p, filter, scratch, bias2, rescale, out, px1, first_pair),
            }
            px += 2;
        }
    }
}

/// Output channel pairs from `first_pair` on, for the two pixels whose widened patches are in `x`:
/// pixel 0's channels at `out[..out_c]`, pixel 1's at `out[px1..]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pairs<const GENERAL: bool, const FULL: bool, const WIDENED: bool>(
    p: &Conv2d,
    filter: &[u32],
    x: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    out: &mut [i8],
    px1: usize,
    first_pair: usize,
) {
    let words = p.row_words();
    let pair_words = if WIDENED { 4 * words + WIDENED_PAIR_EXTRA_WORDS } else { 2 * words };
    for (pair, w) in filter.chunks_exact(pair_words).enumerate().skip(first_pair) {
        let oc = 2 * pair;
        let (acc, rs) = if WIDENED {
            // a widened pair's rows sit between its bias words and its rescales
            let t = &w[4 + 4 * words..];
            let rs = |i: usize| Rescale { multiplier: t[2 * i] as i32, add: t[2 * i + 1] as i32 };
            let (acc0, acc1) = (w[0] as i32, w[2] as i32);
            (dot_2x2_widened(&w[4..4 + 4 * words], x, [acc0, acc0, acc1, acc1]), [Some(rs(0)), Some(rs(1))])
        } else {
            let acc0 = bias2.get(oc).copied().unwrap_or(0);
            let acc1 = bias2.get(oc + 1).copied().unwrap_or(0);
            (dot_2x2(w, x, [acc0, acc0, acc1, acc1]), [rescale.get(oc).copied(), rescale.get(oc + 1).copied()])
        };
        for (row, accs, rs) in [(oc, [acc[0], acc[1]], rs[0]), (oc + 1, [acc[2], acc[3]], rs[1])] {
            // an odd channel count's padding row writes nothing
            if let Some(rs) = rs.filter(|_| row < p.out_c) {
                for (at, a) in [(row, accs[0]), (px1 + row, accs[1])] {
                    if let Some(o) = out.get_mut(at) {
                        let v = if GENERAL && rs.is_general() {
                            rescale_general(a, rs, p.output_offset)
                        } else {
                            rescale_doubled(a, rs)
                        };
                        *o = clamp_s8::<FULL>(v, p.act_min, p.act_max);
                    }
                }
            }
        }
    }
}

/// Whether `p` is a 1x1 convolution with stride 1 and no padding, whole words of input channels and pairs of
/// output channels: pixel `q`'s patch is `input[q * in_c..][..in_c]` and its outputs whole pairs, what
/// `dsp::conv_1x1_stream` takes.
#[cfg(tinyml_dsp)]
fn pointwise_whole(p: &Conv2d) -> bool {
    p.k_h == 1
        && p.k_w == 1
        && p.stride_h == 1
        && p.stride_w == 1
        && p.pad_h == 0
        && p.pad_w == 0
        && p.in_h == p.out_h
        && p.in_w == p.out_w
        && p.in_c % 4 == 0
        && p.out_c % 2 == 0
}

/// Four output pixels at a time from `px` on (ARMv7-M without DSP, every channel on the short path, the full
/// int8 range): their patches widened to doubled int32, value by value the four pixels side by side (one LDM
/// per value), then every filter row against all four (`armv7m::conv_rows_4px`). A last quad that is short
/// repeats its last pixel (the same bytes written twice).
#[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
#[allow(clippy::too_many_arguments)]
fn quads_armv7m(
    p: &Conv2d,
    input: &[i8],
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
    stage: &mut [i8],
) {
    let pixels = p.out_h * p.out_w;
    let mut px = 0;
    while px < pixels {
        let last = (px + 3).min(pixels - 1);
        let mut offsets = [0; 3];
        for slot in 0..4 {
            let q = (px + slot).min(last);
            if let Some(o) = slot.checked_sub(1).and_then(|i| offsets.get_mut(i)) {
                *o = (q - px) * p.out_c;
            }
            let values = patch(p, input, q, stage);
            for (k, d) in scratch.chunks_exact_mut(4).enumerate() {
                d[slot] = (2 * values.get(k).copied().unwrap_or(0) as i32) as u32;
            }
        }
        let Some(out) = output.get_mut(px * p.out_c..(last + 1) * p.out_c) else { return };
        crate::armv7m::conv_rows_4px(filter, scratch, p.row_words(), p.out_c, bias2, rescale, out, offsets);
        px += 4;
    }
}

/// Widen output pixel `px`'s input patch into slot `slot` (0 or 1) of `scratch`, `doubled` or not.
fn load_patch(p: &Conv2d, input: &[i8], px: usize, scratch: &mut [u32], slot: usize, stage: &mut [i8], doubled: bool) {
    #[cfg(tinyml_dsp)]
    if !doubled && gather_inside(p, input, px, scratch, slot, stage) {
        return;
    }
    widen(patch(p, input, px, stage), scratch, slot, doubled);
}

/// Output pixel `px`'s input patch as one run of values: the input pixel itself for a 1x1 kernel (empty if
/// out of range, which generated code never is), else gathered into `stage`, taps outside the input reading
/// the input zero point, padded with zeros to whole words.
fn patch<'a>(p: &Conv2d, input: &'a [i8], px: usize, stage: &'a mut [i8]) -> &'a [i8] {
    let patch = p.k_h * p.k_w * p.in_c;
    if p.k_h * p.k_w == 1 {
        return pixel_patch(p, input, px).unwrap_or(&[]);
    }
    let stage = &mut stage[..4 * p.row_words()];
    gather_patch(p, input, px, &mut stage[..patch]);
    for v in &mut stage[patch..] {
        *v = 0;
    }
    stage
}

/// From output pixel `px` on, the pixel pairs of its output row whose windows lie wholly inside the input,
/// computed by `dsp::conv_window_stream` (a kernel larger than 1x1 without horizontal dilation, a widened
/// filter stream, pairs of output channels). Returns how many pairs it computed: none when `px` is not such a
/// pair's first pixel (the caller's pixel pair path then computes it).
#[cfg(tinyml_dsp)]
fn window_pairs(p: &Conv2d, input: &[i8], px: usize, filter: &[u32], output: &mut [i8], scratch: &mut [u32], stage: &mut [i8]) -> usize {
    if p.k_w > p.in_w + p.pad_w {
        return 0;
    }
    let ox = px % p.out_w;
    let Some((y0, x0)) = window_origin(p, px) else { return 0 };
    // the last output column whose window ends inside the input row
    let last_x = ((p.in_w + p.pad_w - p.k_w) / p.stride_w).min(p.out_w - 1);
    let Some(pixels) = (last_x + 1).checked_sub(ox) else { return 0 };
    let win = crate::dsp::Window {
        rows: p.k_h,
        row_len: p.k_w * p.in_c,
        run_stride: p.dil_h * p.in_w * p.in_c,
        pixel_stride: p.stride_w * p.in_c,
    };
    let at = (y0 * p.in_w + x0) * p.in_c;
    let full = p.act_min == -128 && p.act_max == 127;
    let (groups, pairs, act) = (p.row_words(), p.out_c / 2, (p.act_min, p.act_max));
    // the last pixel's rounded runs may read up to three bytes past the input: then one pair fewer
    for n in [pixels / 2, (pixels / 2).saturating_sub(1)] {
        let Some(out) = output.get_mut(px * p.out_c..(px + 2 * n) * p.out_c) else { return 0 };
        let done = if full {
            crate::dsp::conv_window_stream::<true>(filter, input, at, win, groups, pairs, n, out, scratch, stage, act)
        } else {
            crate::dsp::conv_window_stream::<false>(filter, input, at, win, groups, pairs, n, out, scratch, stage, act)
        };
        if done {
            return n;
        }
    }
    0
}

/// The DSP path's plain (not doubled) [`load_patch`] for a kernel larger than 1x1 whose window lies wholly
/// inside the input (no padding taps), without horizontal dilation: each row of taps is one run of the input,
/// gathered and widened in one assembly block (`dsp::gather_widen_slot`). What dominates a layer of few input
/// channels (a 3x3x3 patch is three runs of nine bytes); the bytes after the patch are widened as the runs'
/// last words left them, against filter words that hold zeros there. False (nothing written) when the window
/// reaches the padding: [`patch`] and [`widen`] do those.
#[cfg(tinyml_dsp)]
#[inline(always)]
fn gather_inside(p: &Conv2d, input: &[i8], px: usize, scratch: &mut [u32], slot: usize, stage: &mut [i8]) -> bool {
    if p.k_h * p.k_w == 1 || p.dil_w != 1 {
        return false;
    }
    let Some((y0, x0)) = window_origin(p, px).filter(|&(_, x0)| x0 + p.k_w <= p.in_w) else {
        return false;
    };
    let row = p.in_w * p.in_c;
    let (at, runs) = (y0 * row + x0 * p.in_c, p.dil_h * row);
    crate::dsp::gather_widen_slot(input, at, runs, p.k_w * p.in_c, p.k_h, stage, scratch, slot, p.row_words())
}

/// The input row and column of output pixel `px`'s window's first tap when the window starts inside the input
/// and its rows end inside it (its columns may still reach the right padding: the callers check those).
#[cfg(tinyml_dsp)]
#[inline(always)]
fn window_origin(p: &Conv2d, px: usize) -> Option<(usize, usize)> {
    let (oy, ox) = (px / p.out_w, px % p.out_w);
    let y0 = (oy * p.stride_h).checked_sub(p.pad_h)?;
    let x0 = (ox * p.stride_w).checked_sub(p.pad_w)?;
    (y0 + (p.k_h - 1) * p.dil_h < p.in_h).then_some((y0, x0))
}

/// A 1x1 convolution's patch of output pixel `px`: the input pixel itself (never in the padding: 1x1
/// windows have none).
#[inline(always)]
pub(crate) fn pixel_patch<'a>(p: &Conv2d, input: &'a [i8], px: usize) -> Option<&'a [i8]> {
    let (oy, ox) = (px / p.out_w, px % p.out_w);
    let at = ((oy * p.stride_h).saturating_sub(p.pad_h) * p.in_w + (ox * p.stride_w).saturating_sub(p.pad_w)) * p.in_c;
    input.get(at..at + p.in_c)
}

/// Copy output pixel `px`'s input patch (`k_h * k_w * in_c` values, taps outside the input holding the input
/// zero point) into `patch`, which is that long.
fn gather_patch(p: &Conv2d, input: &[i8], px: usize, patch: &mut [i8]) {
    // the runs are short (a row of taps): the DSP path's word loops beat calls to memcpy and memset
    #[cfg(tinyml_dsp)]
    gather_patch_with(p, input, px, patch, crate::dsp::copy_bytes, crate::dsp::fill_bytes);
    #[cfg(not(tinyml_dsp))]
    gather_patch_with(p, input, px, patch, |d, s| d.copy_from_slice(s), |d, v| d.fill(v));
}

/// [`gather_patch`] with `copy` (slices of equal length) and `fill` for the runs (the MVE path's are vector
/// loops).
#[inline(always)]
pub(crate) fn gather_patch_with(
    p: &Conv2d,
    input: &[i8],
    px: usize,
    patch: &mut [i8],
    copy: impl Fn(&mut [i8], &[i8]),
    fill: impl Fn(&mut [i8], i8),
) {
    let (oy, ox) = (px / p.out_w, px % p.out_w);
    let y0 = (oy * p.stride_h) as isize - p.pad_h as isize;
    let x0 = (ox * p.stride_w) as isize - p.pad_w as isize;
    let zero_point = (-p.input_offset) as i8;
    let row_len = p.k_w * p.in_c;
    for (ky, row) in patch.chunks_exact_mut(row_len).enumerate() {
        let iy = y0 + (ky * p.dil_h) as isize;
        if iy < 0 || iy >= p.in_h as isize {
            fill(row, zero_point);
            continue;
        }
        let line = iy as usize * p.in_w;
        if p.dil_w == 1 {
            // the taps inside the input are one run of it; the rest of the row is padding
            let first = x0.max(0);
            let end = (x0 + p.k_w as isize).min(p.in_w as isize);
            if first > x0 || end < x0 + p.k_w as isize {
                fill(row, zero_point);
            }
            if end > first {
                let (at, len) = ((line + first as usize) * p.in_c, (end - first) as usize * p.in_c);
                let skip = (first - x0) as usize * p.in_c;
                if let (Some(src), Some(dst)) = (input.get(at..at + len), row.get_mut(skip..skip + len)) {
                    copy(dst, src);
                }
            }
            continue;
        }
        for (kx, tap) in row.chunks_exact_mut(p.in_c).enumerate() {
            let ix = x0 + (kx * p.dil_w) as isize;
            let at = (line + ix.max(0) as usize) * p.in_c;
            match input.get(at..at + p.in_c) {
                Some(src) if ix >= 0 && ix < p.in_w as isize => copy(tap, src),
                _ => fill(tap, zero_point),
            }
        }
    }
}

/// Values -> doubled int16 pairs in slot `slot`: each group of four `v0..v3` becomes the words `(2 v0, 2 v2)`
/// and `(2 v1, 2 v3)` (low halfword first) at `scratch[4g + 2 slot ..]`; a short last group is padded with
/// zeros. Not `doubled`: `(v0, v2)` and `(v1, v3)` (on the DSP path an assembly loop for the whole groups).
#[inline(always)]
fn widen(src: &[i8], scratch: &mut [u32], slot: usize, doubled: bool) {
    #[cfg(tinyml_dsp)]
    if !doubled {
        let whole = src.len() / 4;
        crate::dsp::widen_slot(&src[..4 * whole], scratch, slot);
        if let Some(rest) = scratch.get_mut(4 * whole..) {
            widen_with(&src[4 * whole..], rest, slot, widen_word);
        }
        return;
    }
    if doubled {
        widen_with(src, scratch, slot, widen_word_doubled);
    } else {
        widen_with(src, scratch, slot, widen_word);
    }
}

/// [`widen`] with `pairs` making each word's two halfword pairs.
#[inline(always)]
fn widen_with(src: &[i8], scratch: &mut [u32], slot: usize, pairs: fn(u32) -> (u32, u32)) {
    let groups = src.chunks_exact(4);
    let tail = groups.remainder();
    let mut dst = scratch.chunks_exact_mut(4);
    for (g, d) in groups.zip(&mut dst) {
        let (a, b) = pairs(u32::from_le_bytes([g[0] as u8, g[1] as u8, g[2] as u8, g[3] as u8]));
        d[2 * slot] = a;
        d[2 * slot + 1] = b;
    }
    if !tail.is_empty() {
        let mut bytes = [0u8; 4];
        for (b, v) in bytes.iter_mut().zip(tail) {
            *b = *v as u8;
        }
        if let Some(d) = dst.next() {
            let (a, b) = pairs(u32::from_le_bytes(bytes));
            d[2 * slot] = a;
            d[2 * slot + 1] = b;
        }
    }
}

/// Four int8 in a word -> (bytes 0 and 2, bytes 1 and 3) as sign-extended halfword pairs.
#[inline(always)]
pub(crate) fn widen_word(w: u32) -> (u32, u32) {
    #[cfg(tinyml_dsp)]
    {
        (crate::dsp::sxtb16(w), crate::dsp::sxtb16_ror8(w))
    }
    #[cfg(not(tinyml_dsp))]
    {
        let half = |byte: u32| (byte as u8 as i8 as i16 as u16) as u32;
        (half(w) | half(w >> 16) << 16, half(w >> 8) | half(w >> 24) << 16)
    }
}

/// [`widen_word`] with every value doubled (-256..=254 fits a halfword).
#[inline(always)]
fn widen_word_doubled(w: u32) -> (u32, u32) {
    let (a, b) = widen_word(w);
    #[cfg(tinyml_dsp)]
    {
        (crate::dsp::sadd16(a, a), crate::dsp::sadd16(b, b))
    }
    #[cfg(not(tinyml_dsp))]
    {
        let double = |v: u32| ((v as u16).wrapping_mul(2) as u32) | (((v >> 16) as u16).wrapping_mul(2) as u32) << 16;
        (double(a), double(b))
    }
}

/// Two filter rows (interleaved words) against the two widened patches: `acc` is
/// `[row0 px0, row0 px1, row1 px0, row1 px1]`. Not inlined: the loop gets the registers to itself, so
/// the four accumulators are never spilled.
#[inline(never)]
fn dot_2x2(w: &[u32], x: &[u32], mut acc: [i32; 4]) -> [i32; 4] {
    #[cfg(tinyml_dsp)]
    {
        acc = crate::dsp::dot_2rows_2px(w, x, acc);
    }
    #[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
    {
        acc = crate::armv7m::dot_2rows_2px(w, x, acc);
    }
    #[cfg(not(any(tinyml_dsp, tinyml_armv7m)))]
    {
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        // value by value, each weight byte and input halfword extracted right before its two multiplies: few
        // values live at once, so the four accumulators stay in registers on cores without the DSP extension
        let byte = |w: u32, i: u32| ((w << (24 - 8 * i)) as i32) >> 24;
        let lo = |v: u32| v as u16 as i16 as i32;
        let hi = |v: u32| (v as i32) >> 16;
        for (wp, xq) in w.chunks_exact(2).zip(x.chunks_exact(4)) {
            let (w0, w1) = (wp[0], wp[1]);
            // word 0 of each pixel holds values 0 and 2, word 1 values 1 and 3
            for (i, (x0, x1)) in [(0, (xq[0], xq[2])), (1, (xq[1], xq[3]))] {
                let (p, q, r, t) = (byte(w0, i), byte(w1, i), lo(x0), lo(x1));
                a0 = a0.wrapping_add(p * r);
                a1 = a1.wrapping_add(p * t);
                a2 = a2.wrapping_add(q * r);
                a3 = a3.wrapping_add(q * t);
                let (p, q, r, t) = (byte(w0, i + 2), byte(w1, i + 2), hi(x0), hi(x1));
                a0 = a0.wrapping_add(p * r);
                a1 = a1.wrapping_add(p * t);
                a2 = a2.wrapping_add(q * r);
                a3 = a3.wrapping_add(q * t);
            }
        }
        acc = [a0, a1, a2, a3];
    }
    acc
}

/// [`dot_2x2`] with pre-widened rows (per group: row 0's two int16-pair words, then row 1's).
#[inline(never)]
fn dot_2x2_widened(w: &[u32], x: &[u32], mut acc: [i32; 4]) -> [i32; 4] {
    #[cfg(tinyml_dsp)]
    {
        acc = crate::dsp::dot_2rows_2px_stream(w, x, acc);
    }
    #[cfg(not(tinyml_dsp))]
    {
        // word k of a row's group meets word k of each patch's
        for (wq, xq) in w.chunks_exact(4).zip(x.chunks_exact(4)) {
            acc[0] = mac_pairs(wq[1], xq[1], mac_pairs(wq[0], xq[0], acc[0]));
            acc[1] = mac_pairs(wq[1], xq[3], mac_pairs(wq[0], xq[2], acc[1]));
            acc[2] = mac_pairs(wq[3], xq[1], mac_pairs(wq[2], xq[0], acc[2]));
            acc[3] = mac_pairs(wq[3], xq[3], mac_pairs(wq[2], xq[2], acc[3]));
        }
    }
    acc
}

/// `acc + a.lo * b.lo + a.hi * b.hi` on int16 halves, wrapping (SMLAD on the DSP path).
#[inline(always)]
pub(crate) fn mac_pairs(a: u32, b: u32, acc: i32) -> i32 {
    #[cfg(tinyml_dsp)]
    {
        crate::dsp::smlad(a, b, acc)
    }
    #[cfg(not(tinyml_dsp))]
    {
        let (lo, hi) = (|v: u32| v as u16 as i16 as i32, |v: u32| (v as i32) >> 16);
        acc.wrapping_add(lo(a) * lo(b)).wrapping_add(hi(a) * hi(b))
    }
}

/// [`conv2d_s8`] for `optimize: size`: the least code (one small loop nest instead of the paired-pixel paths).
/// Per output pixel the patch is gathered into `scratch` (`p.row_words()` words; a tap outside the input
/// holds the input zero point, which the folded bias cancels), then two channels at a time take their dot
/// products with it, a word (four values) at a time. `filter`, `bias2` and `rescale` as for [`conv2d_s8`]; the
/// accumulator is the plain sum, doubled here on the short path.
pub fn conv2d_s8_compact(
    p: &Conv2d,
    input: &[i8],
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
) {
    let in_size = p.in_h * p.in_w * p.in_c;
    let out_size = p.out_h * p.out_w * p.out_c;
    let words = p.row_words();
    if words == 0
        || p.out_c == 0
        || input.len() < p.batches * in_size
        || output.len() < p.batches * out_size
        || filter.len() < conv_filter_words(p)
        || bias2.len() < p.out_c
        || rescale.len() < p.out_c
        || scratch.len() < words
    {
        return;
    }
    let patch = &mut scratch[..words];
    let zero_byte = (-p.input_offset) as u8;
    let zero_word = u32::from(zero_byte) * 0x0101_0101;
    let mut at_out = 0;
    for b in 0..p.batches {
        let x = &input[b * in_size..(b + 1) * in_size];
        for oy in 0..p.out_h {
            for ox in 0..p.out_w {
                // the patch, tap by tap: whole words where the channels come in fours, else byte by byte
                // into the word being filled; the tail word zero-padded like the filter rows
                let mut fill = Fill { patch: &mut *patch, word: 0, bytes: 0, at: 0 };
                for ky in 0..p.k_h {
                    let iy = (oy * p.stride_h + ky * p.dil_h).wrapping_sub(p.pad_h);
                    for kx in 0..p.k_w {
                        let ix = (ox * p.stride_w + kx * p.dil_w).wrapping_sub(p.pad_w);
                        let inside = iy < p.in_h && ix < p.in_w;
                        let base = iy.wrapping_mul(p.in_w).wrapping_add(ix).wrapping_mul(p.in_c);
                        let mut c = 0;
                        if p.in_c % 4 == 0 {
                            while c < p.in_c {
                                fill.word(if inside { word_at(x, base + c) } else { zero_word });
                                c += 4;
                            }
                        } else {
                            while c < p.in_c {
                                fill.byte(if inside { x.get(base + c).map_or(0, |&v| v as u8) } else { zero_byte });
                                c += 1;
                            }
                        }
                    }
                }
                fill.finish();
                // the rows come in interleaved pairs (conv_filter_words): two channels per pass over the patch
                let mut o = 0;
                while o < p.out_c {
                    let (acc0, acc1) = dot_pair(patch, &filter[o * words..(o + 2) * words]);
                    put(p, output, at_out + o, acc0, bias2[o], rescale[o]);
                    if o + 1 < p.out_c {
                        put(p, output, at_out + o + 1, acc1, bias2[o + 1], rescale[o + 1]);
                    }
                    o += 2;
                }
                at_out += p.out_c;
            }
        }
    }
}

/// A patch written a word at a time (whole words, or bytes gathered into the word being filled).
struct Fill<'a> {
    patch: &'a mut [u32],
    word: u32,
    bytes: u32,
    at: usize,
}

impl Fill<'_> {
    #[inline(always)]
    fn word(&mut self, w: u32) {
        if let Some(slot) = self.patch.get_mut(self.at) {
            *slot = w;
        }
        self.at += 1;
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.word |= u32::from(b) << (8 * self.bytes);
        self.bytes += 1;
        if self.bytes == 4 {
            let w = self.word;
            self.word(w);
            (self.word, self.bytes) = (0, 0);
        }
    }

    /// The last, partial word (its unused bytes zero).
    #[inline(always)]
    fn finish(&mut self) {
        if self.bytes > 0 {
            let w = self.word;
            self.word(w);
        }
    }
}

/// Four bytes of `x` from `at`, little-endian (0 past its end: the callers checked the bounds on entry).
#[inline(always)]
pub(crate) fn word_at(x: &[i8], at: usize) -> u32 {
    match x.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
        _ => 0,
    }
}

/// One output value from its channel's sum, requantized as [`conv2d_s8`] does.
#[inline(always)]
fn put(p: &Conv2d, output: &mut [i8], at: usize, acc: i32, b2: i32, rs: Rescale) {
    if let Some(y) = output.get_mut(at) {
        *y = requantize_sum(acc, b2, rs, p.output_offset, p.act_min, p.act_max);
    }
}

/// The dot products of a patch with a pair of rows interleaved word by word (row 0's word g, row 1's word g).
#[inline(always)]
fn dot_pair(patch: &[u32], rows: &[u32]) -> (i32, i32) {
    let (mut acc0, mut acc1) = (0i32, 0i32);
    let mut g = 0;
    while g < patch.len() && 2 * g + 1 < rows.len() {
        let (x, w0, w1) = (patch[g], rows[2 * g], rows[2 * g + 1]);
        #[cfg(tinyml_dsp)]
        {
            use crate::dsp::{smlad, sxtb16, sxtb16_ror8};
            let (x02, x13) = (sxtb16(x), sxtb16_ror8(x));
            acc0 = smlad(x02, sxtb16(w0), smlad(x13, sxtb16_ror8(w0), acc0));
            acc1 = smlad(x02, sxtb16(w1), smlad(x13, sxtb16_ror8(w1), acc1));
        }
        #[cfg(not(tinyml_dsp))]
        {
            let mut s = 0;
            while s < 32 {
                let v = i32::from((x >> s) as i8);
                acc0 = acc0.wrapping_add(v * i32::from((w0 >> s) as i8));
                acc1 = acc1.wrapping_add(v * i32::from((w1 >> s) as i8));
                s += 8;
            }
        }
        g += 1;
    }
    (acc0, acc1)
}
