//! DEPTHWISE_CONV_2D, int8 in/out, per-channel int8 filters, int32 bias, depth multiplier,
//! SAME/VALID padding, strides, dilation. TFLM: `reference_integer_ops::DepthwiseConvPerChannel`.
//!
//! Output channels ("lanes") go four at a time. Per output row, the `k_h` input rows its windows read are
//! widened once into `scratch` as int16 lanes: lane `o` holds input channel `o / depth_multiplier`, the
//! columns span every window of the row, and a column or row outside the input holds the input zero point,
//! whose contribution the folded bias cancels (TFLM skips those taps: the same sum). So every output pixel,
//! edges included, runs the same loop over its taps, with no bounds to test.
//!
//! Scratch layout: row `ky`, column `j`, block `b`: two words, lanes (4b, 4b+2) and (4b+1, 4b+3) as int16
//! pairs (what SXTB16 makes of four adjacent int8). With a depth multiplier that is a multiple of four the
//! rows are plain int8 copies instead (a block's lanes all read one value: [`DepthwiseConv2d::broadcast`]),
//! and tap offsets are byte indices that include the block's input channel. The filter comes re-laid by the code generator
//! ([`depthwise_filter_words`]): per block, per tap, the words `(w02, w13, offset)`, the weights doubled
//! and widened the same way, `offset` the tap's word index relative to the output pixel's block. Doubled
//! weights make the accumulators twice the sum, which is what the requantization's high multiply wants
//! ([`Rescale`]); a general-path channel's are not doubled.

use crate::conv::word_at;
use crate::quant::{clamp_s8, requantize_sum, rescale_doubled, rescale_general, Rescale};

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

impl DepthwiseConv2d {
    /// Output channels rounded up to whole blocks of four.
    pub const fn lanes(&self) -> usize {
        (self.in_c * self.depth_multiplier).div_ceil(4) * 4
    }

    /// Columns of a widened row: from the first window's first tap to the last window's last.
    pub const fn span_w(&self) -> usize {
        if self.out_w == 0 || self.k_w == 0 {
            0
        } else {
            (self.out_w - 1) * self.stride_w + (self.k_w - 1) * self.dil_w + 1
        }
    }

    /// Multipliers of four: every block reads one input channel, so the rows stay int8 (one byte per
    /// input channel and column, rows padded to whole words) and each tap broadcasts one value.
    pub const fn broadcast(&self) -> bool {
        self.depth_multiplier % 4 == 0
    }

    /// Words of one widened (or, with [`Self::broadcast`], copied) row.
    pub const fn row_words(&self) -> usize {
        if self.broadcast() {
            (self.span_w() * self.in_c).div_ceil(4)
        } else {
            self.span_w() * self.lanes() / 2
        }
    }

    /// Scratch words the kernel needs: `k_h` widened rows.
    pub const fn scratch_words(&self) -> usize {
        self.k_h * self.row_words()
    }
}

/// Number of `u32` filter words for `p`: three per tap per block of four lanes.
pub const fn depthwise_filter_words(p: &DepthwiseConv2d) -> usize {
    p.lanes() / 4 * p.k_h * p.k_w * 3
}

/// Depthwise convolution: output channel `c * depth_multiplier + m` filters input channel `c`.
/// `bias2[o] = 2 * (bias[o] + input_offset * sum(filter taps of o))`, `bias2` and `rescale` padded to
/// `p.lanes()`; `scratch` holds at least `p.scratch_words()` words. Channels are independent here, so the
/// choice of [`Rescale`]'s path is per channel: a general channel's `bias2` and weights are not doubled, and
/// its `bias2` wraps around like the int32 sum.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_s8(
    p: &DepthwiseConv2d,
    input: &[i8],
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
) {
    let out_c = p.in_c * p.depth_multiplier;
    let in_size = p.in_h * p.in_w * p.in_c;
    let out_size = p.out_h * p.out_w * out_c;
    let lanes = p.lanes();
    if out_c == 0
        || p.k_h == 0
        || p.k_w == 0
        || p.dil_h == 0
        || p.dil_w == 0
        || input.len() < p.batches * in_size
        || output.len() < p.batches * out_size
        || filter.len() < depthwise_filter_words(p)
        || bias2.len() < lanes
        || rescale.len() < lanes
        || scratch.len() < p.scratch_words()
    {
        return;
    }
    #[cfg(tinyml_mve)]
    if crate::mve::depthwise_conv2d_s8(p, input, filter, bias2, rescale, output, scratch) {
        return;
    }
    let k = Kernel {
        p,
        filter: &filter[..depthwise_filter_words(p)],
        bias2: &bias2[..lanes],
        rescale: &rescale[..lanes],
        #[cfg(tinyml_armv6m)]
        reach: filter[..depthwise_filter_words(p)].chunks_exact(3).map(|t| t[2] as usize + 1).max().unwrap_or(0),
    };
    let scratch = &mut scratch[..p.scratch_words()];
    let general = rescale[..out_c].iter().any(|r| r.is_general());
    let full = p.act_min == -128 && p.act_max == 127;
    #[cfg(tinyml_dsp)]
    let stream = crate::dsp::TapStream::new(k.filter);
    #[cfg(not(tinyml_dsp))]
    let stream = k.filter;
    // whole blocks on the short path with the full int8 range: every pixel in one assembly loop
    #[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
    let reach = (!general && full && out_c % 4 == 0)
        .then(|| k.filter.chunks_exact(3).map(|t| t[2] as usize + 1).max().unwrap_or(0));
    // consecutive output rows share `k_h - stride_h` input rows (without row dilation): on the DSP path those
    // move up in `scratch` (LDM/STM, half an instruction a word) instead of being widened again
    #[cfg(tinyml_dsp)]
    let kept = if p.dil_h == 1 && p.stride_h < p.k_h { p.k_h - p.stride_h } else { 0 };
    #[cfg(not(tinyml_dsp))]
    let kept = 0;
    for (in_batch, out_batch) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(p.batches) {
        for (oy, out_row) in out_batch.chunks_exact_mut(p.out_w * out_c).enumerate() {
            if oy > 0 && kept > 0 {
                #[cfg(tinyml_dsp)]
                crate::dsp::move_words_down(scratch, p.stride_h * p.row_words(), kept * p.row_words());
                widen_rows(p, in_batch, oy, kept, scratch);
            } else {
                widen_rows(p, in_batch, oy, 0, scratch);
            }
            #[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
            if let Some(reach) = reach {
                k.row_armv7m(reach, scratch, out_row);
                continue;
            }
            match (general, full, p.broadcast()) {
                (true, _, false) => k.row::<true, false, false>(&stream, scratch, out_row),
                (true, _, true) => k.row::<true, false, true>(&stream, scratch, out_row),
                (false, true, false) => k.row::<false, true, false>(&stream, scratch, out_row),
                (false, true, true) => k.row::<false, true, true>(&stream, scratch, out_row),
                (false, false, false) => k.row::<false, false, false>(&stream, scratch, out_row),
                (false, false, true) => k.row::<false, false, true>(&stream, scratch, out_row),
            }
        }
    }
}

/// `dsp::depthwise_block_row`'s clamp: 0 for all of int8 (`FULL`), else the shift of an activation range open
/// at one end (`-128 - act_min` for `[act_min, 127]`, `127 - act_max` for `[-128, act_max]`); None when both
/// ends are inside int8.
#[cfg(tinyml_dsp)]
#[inline(always)]
fn one_sided_shift<const FULL: bool>(act_min: i32, act_max: i32) -> Option<i32> {
    match (FULL, act_min, act_max) {
        (true, _, _) => Some(0),
        (false, lo, 127) if (-128..=127).contains(&lo) => Some(-128 - lo),
        (false, -128, hi) if (-128..=127).contains(&hi) => Some(127 - hi),
        _ => None,
    }
}

/// The filter as the inner loops take it: checked once per call on the DSP path.
#[cfg(tinyml_dsp)]
type Taps<'a> = crate::dsp::TapStream<'a>;
#[cfg(not(tinyml_dsp))]
type Taps<'a> = &'a [u32];

struct Kernel<'a> {
    p: &'a DepthwiseConv2d,
    filter: &'a [u32],
    bias2: &'a [i32],
    rescale: &'a [Rescale],
    /// One past the largest tap offset: bounds the Thumb-1 loop's reads once per pixel.
    #[cfg(tinyml_armv6m)]
    reach: usize,
}

impl Kernel<'_> {
    /// One output row from the widened (or copied: [`DepthwiseConv2d::broadcast`]) rows in `x`, whole blocks
    /// of four lanes on the short path with the full int8 range: `armv7m::depthwise_pixel` per pixel.
    #[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
    fn row_armv7m(&self, reach: usize, x: &[u32], out_row: &mut [i8]) {
        let p = self.p;
        let out_c = p.in_c * p.depth_multiplier;
        let (taps, blocks) = (p.k_h * p.k_w, out_c / 4);
        let (f, b, r) = (self.filter, self.bias2, self.rescale);
        let pixels = out_row.chunks_exact_mut(out_c).enumerate();
        if p.broadcast() {
            for (ox, out_px) in pixels {
                crate::armv7m::depthwise_pixel::<true>(x, ox * p.stride_w * p.in_c, f, reach, taps, blocks, b, r, out_px);
            }
        } else {
            for (ox, out_px) in pixels {
                let base = ox * p.stride_w * p.lanes() / 2;
                crate::armv7m::depthwise_pixel::<false>(x, base, f, reach, taps, blocks, b, r, out_px);
            }
        }
    }

    /// One output row from the widened rows in `x`; `BYTES`: `p.broadcast()`.
    #[inline(always)]
    fn row<const GENERAL: bool, const FULL: bool, const BYTES: bool>(&self, stream: &Taps, x: &[u32], out_row: &mut [i8]) {
        let p = self.p;
        let out_c = p.in_c * p.depth_multiplier;
        let taps = p.k_h * p.k_w;
        let bytes = BYTES;
        let px_step = if bytes { p.stride_w * p.in_c } else { p.stride_w * p.lanes() / 2 };
        #[cfg(tinyml_dsp)]
        if let (false, true, Some(shift)) = (GENERAL, out_c % 4 == 0, one_sided_shift::<FULL>(p.act_min, p.act_max)) {
            // whole blocks along the row, in one call: each block's taps and scales are set up once per row
            let blocks = out_c / 4;
            if let Some(t) = stream.part(0, blocks * taps) {
                let (b, r) = (self.bias2, self.rescale);
                if FULL {
                    crate::dsp::depthwise_block_row::<BYTES, false>(x, px_step, p.out_w, blocks, taps, &t, b, r, out_row, out_c, 0);
                } else {
                    crate::dsp::depthwise_block_row::<BYTES, true>(x, px_step, p.out_w, blocks, taps, &t, b, r, out_row, out_c, shift);
                }
            }
            return;
        }
        for (ox, out_px) in out_row.chunks_exact_mut(out_c).enumerate() {
            let base = ox * px_step;
            let mut blocks = out_px.chunks_mut(4);
            for (b, ((bias, rs), out4)) in self.bias2.chunks_exact(4).zip(self.rescale.chunks_exact(4)).zip(&mut blocks).enumerate() {
                let acc = [bias[0], bias[1], bias[2], bias[3]];
                #[cfg(tinyml_dsp)]
                let acc = match (stream.part(b * taps, taps), bytes) {
                    (Some(t), true) => crate::dsp::taps_4lanes_bytes(x, base, &t, acc),
                    (Some(t), false) => crate::dsp::taps_4lanes(x.get(base + 2 * b..).unwrap_or(&[]), &t, acc),
                    (None, _) => acc,
                };
                #[cfg(not(tinyml_dsp))]
                let acc = {
                    let t = stream.get(3 * b * taps..3 * (b + 1) * taps).unwrap_or(&[]);
                    if bytes {
                        self.taps_bytes(x, base, t, acc)
                    } else {
                        taps_4lanes(x.get(base + 2 * b..).unwrap_or(&[]), t, acc)
                    }
                };
                for ((o, a), r) in out4.iter_mut().zip(acc).zip(rs) {
                    // a general channel's weights and bias are not doubled: its accumulator holds the plain sum
                    let v = if GENERAL && r.is_general() {
                        rescale_general(a, *r, p.output_offset)
                    } else {
                        rescale_doubled(a, *r)
                    };
                    *o = clamp_s8::<FULL>(v, p.act_min, p.act_max);
                }
            }
        }
    }
}

#[cfg(not(tinyml_dsp))]
impl Kernel<'_> {
    /// [`taps_4lanes_bytes`] for one block's `taps`, in Thumb-1 assembly on ARMv6-M cores.
    #[inline(always)]
    fn taps_bytes(&self, x: &[u32], base: usize, taps: &[u32], acc: [i32; 4]) -> [i32; 4] {
        #[cfg(tinyml_armv6m)]
        if let Some(acc) = crate::armv6m::taps_4lanes_bytes(x, base, self.reach, taps, self.p.k_h * self.p.k_w, acc) {
            return acc;
        }
        taps_4lanes_bytes(x, base, taps, acc)
    }
}

/// Portable twin of `dsp::taps_4lanes`.
#[cfg(not(tinyml_dsp))]
#[inline(always)]
fn taps_4lanes(x: &[u32], taps: &[u32], mut acc: [i32; 4]) -> [i32; 4] {
    let lo = |v: u32| v as u16 as i16 as i32;
    let hi = |v: u32| (v as i32) >> 16;
    for t in taps.chunks_exact(3) {
        let at = t[2] as usize;
        if let Some(&[x02, x13]) = x.get(at..at + 2) {
            acc[0] = acc[0].wrapping_add(lo(t[0]) * lo(x02));
            acc[2] = acc[2].wrapping_add(hi(t[0]) * hi(x02));
            acc[1] = acc[1].wrapping_add(lo(t[1]) * lo(x13));
            acc[3] = acc[3].wrapping_add(hi(t[1]) * hi(x13));
        }
    }
    acc
}

/// Portable twin of `dsp::taps_4lanes_bytes`.
#[cfg(not(tinyml_dsp))]
#[inline(always)]
fn taps_4lanes_bytes(x: &[u32], base: usize, taps: &[u32], mut acc: [i32; 4]) -> [i32; 4] {
    let lo = |v: u32| v as u16 as i16 as i32;
    let hi = |v: u32| (v as i32) >> 16;
    for t in taps.chunks_exact(3) {
        let at = base + t[2] as usize;
        if let Some(&word) = x.get(at / 4) {
            let v = (word >> (8 * (at % 4))) as u8 as i8 as i32;
            acc[0] = acc[0].wrapping_add(lo(t[0]) * v);
            acc[2] = acc[2].wrapping_add(hi(t[0]) * v);
            acc[1] = acc[1].wrapping_add(lo(t[1]) * v);
            acc[3] = acc[3].wrapping_add(hi(t[1]) * v);
        }
    }
    acc
}

/// The input zero point in both halfwords.
#[inline(always)]
fn pair(v: i32) -> u32 {
    (v as u16 as u32) | (v as u16 as u32) << 16
}

/// Widen the input rows `first_row..k_h` of output row `oy`'s windows into `scratch` (see the module doc).
fn widen_rows(p: &DepthwiseConv2d, input: &[i8], oy: usize, first_row: usize, scratch: &mut [u32]) {
    let row_words = p.row_words();
    let half = p.lanes() / 2;
    let zero = pair(-p.input_offset);
    let span = p.span_w();
    // span column j is input column j - pad_w: inside for first <= j < last
    let first = p.pad_w.min(span);
    let last = (p.pad_w + p.in_w).min(span).max(first);
    let y0 = (oy * p.stride_h) as isize - p.pad_h as isize;
    for (ky, row) in scratch.chunks_exact_mut(row_words).take(p.k_h).enumerate().skip(first_row) {
        let iy = y0 + (ky * p.dil_h) as isize;
        if p.broadcast() {
            row.fill(u32::from_ne_bytes([(-p.input_offset) as u8; 4]));
            if iy >= 0 && iy < p.in_h as isize {
                let at = iy as usize * p.in_w * p.in_c;
                if let Some(src) = input.get(at..at + (last - first) * p.in_c) {
                    put_bytes(row, first * p.in_c, src);
                }
            }
            continue;
        }
        if iy < 0 || iy >= p.in_h as isize {
            row.fill(zero);
            continue;
        }
        let (left, rest) = row.split_at_mut(first * half);
        let (mid, right) = rest.split_at_mut((last - first) * half);
        left.fill(zero);
        right.fill(zero);
        // span column `first` is input column 0
        let at = iy as usize * p.in_w * p.in_c;
        let src = match input.get(at..at + (last - first) * p.in_c) {
            Some(s) => s,
            None => continue,
        };
        widen_pixels(p, src, mid, zero);
    }
}

/// Input pixels (`in_c` int8 each) -> widened lanes (`lanes / 2` words each).
#[inline(always)]
fn widen_pixels(p: &DepthwiseConv2d, src: &[i8], dst: &mut [u32], zero: u32) {
    let dm = p.depth_multiplier;
    let half = p.lanes() / 2;
    if dm == 1 && p.in_c % 4 == 0 {
        // lanes are the channels: one input word makes two scratch words
        #[cfg(tinyml_dsp)]
        crate::dsp::widen_words(src, dst);
        #[cfg(not(tinyml_dsp))]
        for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(2)) {
            let (a, b) = crate::conv::widen_word(u32::from_le_bytes([s[0] as u8, s[1] as u8, s[2] as u8, s[3] as u8]));
            d[0] = a;
            d[1] = b;
        }
    } else {
        let out_c = p.in_c * dm;
        for (s, d) in src.chunks_exact(p.in_c).zip(dst.chunks_exact_mut(half)) {
            d.fill(zero);
            for o in 0..out_c {
                let v = s.get(o / dm).copied().unwrap_or(0) as i16 as u16 as u32;
                // lane o: block o / 4, word (o & 1), halfword (o & 2) / 2
                if let Some(w) = d.get_mut(o / 4 * 2 + (o & 1)) {
                    let sh = if o & 2 == 0 { 0 } else { 16 };
                    *w = (*w & !(0xFFFF << sh)) | v << sh;
                }
            }
        }
    }
}

/// Store `src` at byte `at` of `row` (little-endian words): whole words where `src` covers them.
fn put_bytes(row: &mut [u32], at: usize, src: &[i8]) {
    let head = ((4 - at % 4) % 4).min(src.len());
    let (first, rest) = src.split_at(head);
    put_bytes_one_by_one(row, at, first);
    let words = rest.chunks_exact(4);
    let tail = words.remainder();
    for (w, s) in row.iter_mut().skip((at + head) / 4).zip(words) {
        *w = u32::from_le_bytes([s[0] as u8, s[1] as u8, s[2] as u8, s[3] as u8]);
    }
    put_bytes_one_by_one(row, at + head + (rest.len() - tail.len()), tail);
}

fn put_bytes_one_by_one(row: &mut [u32], at: usize, src: &[i8]) {
    for (i, v) in src.iter().enumerate() {
        let byte = at + i;
        if let Some(w) = row.get_mut(byte / 4) {
            let sh = 8 * (byte % 4);
            *w = (*w & !(0xFF << sh)) | (*v as u8 as u32) << sh;
        }
    }
}

/// [`depthwise_conv2d_s8`] for `optimize: size`: the filter stays as TFLite stores it (int8, 1HWC:
/// `filter[tap * out_c + o]`, a third of the widened layout's flash) and there is no scratch. Output channels
/// go four at a time where four adjacent ones read four adjacent input channels (a depth multiplier of 1) or
/// one input channel (a multiple of 4), one word of input and one of filter per tap; else one at a time. A
/// tap outside the input reads the input zero point, which the folded bias cancels, as above. `bias2` and
/// `rescale` as for [`depthwise_conv2d_s8`] (unpadded: `out_c` entries), the accumulator doubled here for
/// the short path instead of the weights.
///
/// The blocking is a const generic the code generator picks (`L` channels at a time, `BROADCAST`: they read
/// one input channel), so that a model links only the variants its layers use; a variant that does not fit
/// `p` ([`compact_variant`]) returns without writing.
pub fn depthwise_conv2d_s8_compact<const L: usize, const BROADCAST: bool>(
    p: &DepthwiseConv2d,
    input: &[i8],
    filter: &[i8],
    bias2: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
) {
    let out_c = p.in_c * p.depth_multiplier;
    let in_size = p.in_h * p.in_w * p.in_c;
    let out_size = p.out_h * p.out_w * out_c;
    if out_c == 0
        || p.k_h == 0
        || p.k_w == 0
        || input.len() < p.batches * in_size
        || output.len() < p.batches * out_size
        || filter.len() < out_c * p.k_h * p.k_w
        || bias2.len() < out_c
        || rescale.len() < out_c
    {
        return;
    }
    if compact_variant(p) != (L, BROADCAST) {
        return;
    }
    let (x, y, b, r) = (&input[..p.batches * in_size], &mut output[..p.batches * out_size], &bias2[..out_c], &rescale[..out_c]);
    channels::<L, BROADCAST>(p, x, filter, b, r, y);
}

/// The const generics `<L, BROADCAST>` of [`depthwise_conv2d_s8_compact`] for `p`: four channels reading four
/// adjacent input channels (a depth multiplier of 1, input channels a multiple of four) or one (a multiplier
/// that is a multiple of four), else one channel at a time.
pub const fn compact_variant(p: &DepthwiseConv2d) -> (usize, bool) {
    if p.depth_multiplier == 1 && p.in_c % 4 == 0 {
        (4, false)
    } else if p.depth_multiplier % 4 == 0 {
        (4, true)
    } else {
        (1, false)
    }
}

/// Every output channel, `L` at a time (`out_c` a multiple of `L`); `BROADCAST`: the `L` channels read one
/// input channel.
#[inline(always)]
fn channels<const L: usize, const BROADCAST: bool>(
    p: &DepthwiseConv2d,
    input: &[i8],
    filter: &[i8],
    bias2: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
) {
    let out_c = p.in_c * p.depth_multiplier;
    let (in_size, out_size) = (p.in_h * p.in_w * p.in_c, p.out_h * p.out_w * out_c);
    for (x, y) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)) {
        let mut o = 0;
        while o + L <= out_c {
            let (b, r) = (&bias2[o..o + L], &rescale[o..o + L]);
            let mut at = o;
            for oy in 0..p.out_h {
                for ox in 0..p.out_w {
                    let acc = window::<L, BROADCAST>(p, x, filter, o, oy, ox);
                    let mut i = 0;
                    while i < L {
                        put(p, y, at + i, acc[i], b[i], r[i]);
                        i += 1;
                    }
                    at += out_c;
                }
            }
            o += L;
        }
    }
}

/// The sums of output pixel `(oy, ox)`'s window for channels `o..o + L` (weights not doubled).
#[inline(always)]
fn window<const L: usize, const BROADCAST: bool>(
    p: &DepthwiseConv2d,
    x: &[i8],
    filter: &[i8],
    o: usize,
    oy: usize,
    ox: usize,
) -> [i32; L] {
    let (top, left) = (oy * p.stride_h, ox * p.stride_w);
    let inside = top >= p.pad_h
        && top - p.pad_h + (p.k_h - 1) * p.dil_h < p.in_h
        && left >= p.pad_w
        && left - p.pad_w + (p.k_w - 1) * p.dil_w < p.in_w;
    if !inside {
        return edge_window::<L, BROADCAST>(p, x, filter, o, top, left);
    }
    // the window lies inside the input: tap offsets step by row and column, no tests
    let out_c = p.in_c * p.depth_multiplier;
    let (row_step, col_step) = (p.dil_h * p.in_w * p.in_c, p.dil_w * p.in_c);
    let mut row = ((top - p.pad_h) * p.in_w + left - p.pad_w) * p.in_c + o / p.depth_multiplier;
    let mut at_w = o;
    let mut acc = [0i32; L];
    for _ in 0..p.k_h {
        let mut at = row;
        for _ in 0..p.k_w {
            let v = if BROADCAST { byte(x, at) * 0x0101_0101 } else if L == 4 { word_at(x, at) } else { byte(x, at) };
            let w = if L == 4 { word_at(filter, at_w) } else { byte(filter, at_w) };
            mac::<L>(&mut acc, v, w);
            at += col_step;
            at_w += out_c;
        }
        row += row_step;
    }
    acc
}

/// [`window`] for a window reaching past the input: a tap outside reads the input zero point.
#[inline(never)]
fn edge_window<const L: usize, const BROADCAST: bool>(
    p: &DepthwiseConv2d,
    x: &[i8],
    filter: &[i8],
    o: usize,
    top: usize,
    left: usize,
) -> [i32; L] {
    let out_c = p.in_c * p.depth_multiplier;
    let c = o / p.depth_multiplier;
    let zero_point = (-p.input_offset) as u8 as u32 * 0x0101_0101;
    let mut acc = [0i32; L];
    let mut t = 0;
    for ky in 0..p.k_h {
        let iy = (top + ky * p.dil_h).wrapping_sub(p.pad_h);
        for kx in 0..p.k_w {
            let ix = (left + kx * p.dil_w).wrapping_sub(p.pad_w);
            // wraps for a tap outside the input, which reads no input
            let at = iy.wrapping_mul(p.in_w).wrapping_add(ix).wrapping_mul(p.in_c).wrapping_add(c);
            // four channels of one input channel (`BROADCAST`): its byte in every lane
            let v = match (iy < p.in_h && ix < p.in_w, BROADCAST) {
                (false, _) => zero_point,
                (true, true) => byte(x, at) * 0x0101_0101,
                (true, false) if L == 4 => word_at(x, at),
                (true, false) => byte(x, at),
            };
            let w = if L == 4 { word_at(filter, t * out_c + o) } else { byte(filter, t * out_c + o) };
            mac::<L>(&mut acc, v, w);
            t += 1;
        }
    }
    acc
}

/// `acc[i] += v.byte(i) * w.byte(i)` on signed bytes, for the `L` low bytes.
#[inline(always)]
fn mac<const L: usize>(acc: &mut [i32; L], v: u32, w: u32) {
    let lo = |a: u32, b: u32| i32::from(a as i16) * i32::from(b as i16);
    let hi = |a: u32, b: u32| (a as i32 >> 16) * (b as i32 >> 16);
    if L == 4 {
        #[cfg(tinyml_dsp)]
        let (v02, v13, w02, w13) =
            (crate::dsp::sxtb16(v), crate::dsp::sxtb16_ror8(v), crate::dsp::sxtb16(w), crate::dsp::sxtb16_ror8(w));
        #[cfg(not(tinyml_dsp))]
        let (v02, v13, w02, w13) = (halves(v), halves(v >> 8), halves(w), halves(w >> 8));
        // explicit lanes: at opt-level z an iterator over the array stays a call per lane
        if let [a0, a1, a2, a3, ..] = acc.as_mut_slice() {
            *a0 = a0.wrapping_add(lo(v02, w02));
            *a1 = a1.wrapping_add(lo(v13, w13));
            *a2 = a2.wrapping_add(hi(v02, w02));
            *a3 = a3.wrapping_add(hi(v13, w13));
        }
    } else if let Some(a) = acc.first_mut() {
        *a = a.wrapping_add(i32::from(v as i8) * i32::from(w as i8));
    }
}

/// Bytes 0 and 2 of `x` as sign-extended halfwords (portable `SXTB16`).
#[cfg(not(tinyml_dsp))]
#[inline(always)]
fn halves(x: u32) -> u32 {
    (x as i8 as i16 as u16 as u32) | (((x >> 16) as i8 as i16 as u16 as u32) << 16)
}

#[inline(always)]
fn byte(s: &[i8], at: usize) -> u32 {
    s.get(at).map_or(0, |&b| b as u8 as u32)
}

/// One output value: the window's sum requantized, as [`depthwise_conv2d_s8`] does.
#[inline(always)]
fn put(p: &DepthwiseConv2d, y: &mut [i8], at: usize, acc: i32, b2: i32, rs: Rescale) {
    if let Some(out) = y.get_mut(at) {
        *out = requantize_sum(acc, b2, rs, p.output_offset, p.act_min, p.act_max);
    }
}
