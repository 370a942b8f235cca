//! CONV_2D and DEPTHWISE_CONV_2D whose output overlaps their input in the arena, run one output row at a time.
//!
//! With `native.optimize: ram` tinypipe's planner may place a convolution's output over its own input, the
//! output starting some bytes before (or after) the input, so the layer needs about the larger of the two
//! tensors instead of both side by side. That is sound when output rows are written in order and no row
//! written lands on input bytes that this row or a later one still reads: input rows are consumed top to
//! bottom, so the output can follow them down. [`rows_fit`] checks exactly that for every row (generated code
//! asserts it at compile time); TinyEngine's in-place depthwise and MCUNet's overlapping buffers are this idea.
//!
//! Each output row is one call of the ordinary kernel on a one-row problem: the input rows that row's windows
//! read, with the zero padding above them, so the bits are the kernel's own. (Batches other than one are not
//! planned this way.)
//!
//! The `_band` entry points run the same kernels on a band of output rows whose input is a band of rows too:
//! patch-based inference (MCUNetV2), where the first layers run band by band and their large tensors only
//! ever exist as a few rows at a time (the planner's `patch.py`).

use crate::arena::{range_fits, split_io};
use crate::conv::{conv2d_s8, Conv2d};
use crate::depthwise::{depthwise_conv2d_s8, DepthwiseConv2d};
use crate::quant::Rescale;

/// The row geometry of a convolution, in bytes per row of its (NHWC, one batch) input and output.
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    pub in_h: usize,
    pub in_row: usize,
    pub out_h: usize,
    pub out_row: usize,
    pub k_h: usize,
    pub stride_h: usize,
    pub dil_h: usize,
    pub pad_h: usize,
}

impl Rows {
    /// The input rows output row `oy` reads: `(first, count, padding rows above first)`.
    pub const fn reads(&self, oy: usize) -> (usize, usize, usize) {
        let top = oy * self.stride_h; // in padded coordinates
        let bottom = top + (self.k_h - 1) * self.dil_h + 1;
        let first = min(top.saturating_sub(self.pad_h), self.in_h);
        let above = self.pad_h.saturating_sub(top);
        let end = min(bottom.saturating_sub(self.pad_h), self.in_h);
        (first, end.saturating_sub(first), above)
    }

    /// The input rows output rows `o0..o1` read: `(first, count, padding rows above first)`.
    pub const fn band_reads(&self, o0: usize, o1: usize) -> (usize, usize, usize) {
        let (first, _, above) = self.reads(o0);
        let (last, count, _) = self.reads(if o1 > o0 { o1 - 1 } else { o0 });
        let end = last + count;
        (first, if end > first { end - first } else { 0 }, above)
    }
}

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

/// Whether a row-by-row run with the input at `in_off` and the output at `out_off` stays inside an arena of
/// `arena_len` bytes and never writes an output row over input bytes a row not yet computed reads.
pub const fn rows_fit(arena_len: usize, in_off: usize, out_off: usize, r: &Rows) -> bool {
    if r.k_h == 0 || r.stride_h == 0 || r.dil_h == 0 {
        return false;
    }
    let in_end = in_off + r.in_h * r.in_row;
    if !range_fits(arena_len, in_off, r.in_h * r.in_row) || !range_fits(arena_len, out_off, r.out_h * r.out_row) {
        return false;
    }
    let mut oy = 0;
    while oy < r.out_h {
        // what this row and every later one may still read: from this row's first input row on
        let (first, _, _) = r.reads(oy);
        let unread = in_off + first * r.in_row;
        let (start, end) = (out_off + oy * r.out_row, out_off + (oy + 1) * r.out_row);
        if !(end <= unread || start >= in_end) {
            return false;
        }
        oy += 1;
    }
    true
}

/// Run `row(first, count, above, input rows, output row)` for each output row in order; the output tensor.
fn stream<'a>(
    arena: &'a mut [i8],
    in_off: usize,
    out_off: usize,
    r: &Rows,
    mut row: impl FnMut(usize, usize, &[i8], &mut [i8]),
) -> Option<&'a [i8]> {
    if !rows_fit(arena.len(), in_off, out_off, r) {
        return None;
    }
    for oy in 0..r.out_h {
        let (first, count, above) = r.reads(oy);
        let (x, y) = split_io(arena, in_off + first * r.in_row, count * r.in_row, out_off + oy * r.out_row, r.out_row)?;
        row(count, above, x, y);
    }
    arena.get(out_off..out_off + r.out_h * r.out_row)
}

impl Conv2d {
    pub const fn rows(&self) -> Rows {
        Rows {
            in_h: self.in_h,
            in_row: self.in_w * self.in_c,
            out_h: self.out_h,
            out_row: self.out_w * self.out_c,
            k_h: self.k_h,
            stride_h: self.stride_h,
            dil_h: self.dil_h,
            pad_h: self.pad_h,
        }
    }
}

impl DepthwiseConv2d {
    pub const fn rows(&self) -> Rows {
        Rows {
            in_h: self.in_h,
            in_row: self.in_w * self.in_c,
            out_h: self.out_h,
            out_row: self.out_w * self.in_c * self.depth_multiplier,
            k_h: self.k_h,
            stride_h: self.stride_h,
            dil_h: self.dil_h,
            pad_h: self.pad_h,
        }
    }
}

/// [`conv2d_s8`] with input and output at arena offsets that may overlap (see the module doc); the output
/// tensor, or `None` (nothing written) when the offsets fail [`rows_fit`] or `p.batches` is not 1.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_s8_rows<'a>(
    p: &Conv2d,
    arena: &'a mut [i8],
    in_off: usize,
    out_off: usize,
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    scratch: &mut [u32],
    stage: &mut [i8],
) -> Option<&'a [i8]> {
    if p.batches != 1 {
        return None;
    }
    stream(arena, in_off, out_off, &p.rows(), |count, above, x, y| {
        let one = Conv2d { in_h: count, out_h: 1, pad_h: above, ..*p };
        conv2d_s8(&one, x, filter, bias2, rescale, y, scratch, stage);
    })
}

/// [`depthwise_conv2d_s8`] with input and output at arena offsets that may overlap (see the module doc); the
/// output tensor, or `None` (nothing written) when the offsets fail [`rows_fit`] or `p.batches` is not 1.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_s8_rows<'a>(
    p: &DepthwiseConv2d,
    arena: &'a mut [i8],
    in_off: usize,
    out_off: usize,
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    scratch: &mut [u32],
) -> Option<&'a [i8]> {
    if p.batches != 1 {
        return None;
    }
    stream(arena, in_off, out_off, &p.rows(), |count, above, x, y| {
        let one = DepthwiseConv2d { in_h: count, out_h: 1, pad_h: above, ..*p };
        depthwise_conv2d_s8(&one, x, filter, bias2, rescale, y, scratch);
    })
}

/// Whether a patch-based run (see [`split_patch`]) of layers from `first` to `last` in `bands` (per band, per
/// layer: the output rows computed) is sound in an arena of `arena_len` bytes: its input at `x_off` and output
/// at `y_off` inside, the band buffers `temp` (offset, len) inside and apart from both, and, where output and
/// input overlap, no band writing output rows over input rows a later band reads.
pub const fn patch_fits<const K: usize, const N: usize>(
    arena_len: usize,
    first: &Rows,
    last: &Rows,
    x_off: usize,
    y_off: usize,
    temp: (usize, usize),
    bands: &[[(usize, usize); K]; N],
) -> bool {
    let (x_len, y_len) = (first.in_h * first.in_row, last.out_h * last.out_row);
    if K == 0
        || !range_fits(arena_len, x_off, x_len)
        || !range_fits(arena_len, y_off, y_len)
        || !range_fits(arena_len, temp.0, temp.1)
        || !(temp.0 + temp.1 <= x_off || x_off + x_len <= temp.0)
        || !(temp.0 + temp.1 <= y_off || y_off + y_len <= temp.0)
    {
        return false;
    }
    let mut j = 0;
    while j + 1 < N {
        let (o0, o1) = bands[j][K - 1];
        let (next0, next1) = bands[j + 1][0];
        let (unread, _, _) = first.band_reads(next0, next1);
        let (start, end) = (y_off + o0 * last.out_row, y_off + o1 * last.out_row);
        if !(end <= x_off + unread * first.in_row || start >= x_off + x_len) {
            return false;
        }
        j += 1;
    }
    true
}

/// The arena around a patch's band buffers: the input and output tensors, which may overlap each other, are
/// borrowed from it one at a time.
pub struct Around<'a> {
    below: &'a mut [i8],
    above: &'a mut [i8],
    above_at: usize,
}

impl Around<'_> {
    /// The `len` bytes at arena offset `off`, when they lie wholly below or above the band buffers.
    pub fn get(&self, off: usize, len: usize) -> Option<&[i8]> {
        let end = off.checked_add(len)?;
        if end <= self.below.len() {
            self.below.get(off..end)
        } else {
            self.above.get(off.checked_sub(self.above_at)?..end - self.above_at)
        }
    }

    /// [`Self::get`], writable.
    pub fn get_mut(&mut self, off: usize, len: usize) -> Option<&mut [i8]> {
        let end = off.checked_add(len)?;
        if end <= self.below.len() {
            self.below.get_mut(off..end)
        } else {
            self.above.get_mut(off.checked_sub(self.above_at)?..end - self.above_at)
        }
    }
}

/// For a patch-based run: the band buffers, `(offset, len)` of `arena`, and the rest of the arena around them.
pub fn split_patch(arena: &mut [i8], (off, len): (usize, usize)) -> Option<(&mut [i8], Around<'_>)> {
    let (below, rest) = arena.split_at_mut_checked(off)?;
    let (temp, above) = rest.split_at_mut_checked(len)?;
    Some((temp, Around { below, above, above_at: off + len }))
}

/// Output rows `o0..o1` of a convolution into `output` (which holds rows from `out_first` on), reading
/// `input` (which holds input rows from `in_first` on): one band of a patch-based run. Writes nothing when
/// the buffers do not hold those rows.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_s8_band(
    p: &Conv2d,
    input: &[i8],
    in_first: usize,
    output: &mut [i8],
    out_first: usize,
    (o0, o1): (usize, usize),
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    scratch: &mut [u32],
    stage: &mut [i8],
) {
    let r = p.rows();
    if let Some((x, y, count, above)) = band(&r, input, in_first, output, out_first, o0, o1) {
        let one = Conv2d { batches: 1, in_h: count, out_h: o1 - o0, pad_h: above, ..*p };
        conv2d_s8(&one, x, filter, bias2, rescale, y, scratch, stage);
    }
}

/// [`conv2d_s8_band`] for a depthwise convolution.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d_s8_band(
    p: &DepthwiseConv2d,
    input: &[i8],
    in_first: usize,
    output: &mut [i8],
    out_first: usize,
    (o0, o1): (usize, usize),
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    scratch: &mut [u32],
) {
    let r = p.rows();
    if let Some((x, y, count, above)) = band(&r, input, in_first, output, out_first, o0, o1) {
        let one = DepthwiseConv2d { batches: 1, in_h: count, out_h: o1 - o0, pad_h: above, ..*p };
        depthwise_conv2d_s8(&one, x, filter, bias2, rescale, y, scratch);
    }
}

/// The input rows and output rows of band `o0..o1`: `(input rows, output rows, input row count, padding rows
/// above)`, or `None` when the buffers do not hold them.
fn band<'a, 'b>(
    r: &Rows,
    input: &'a [i8],
    in_first: usize,
    output: &'b mut [i8],
    out_first: usize,
    o0: usize,
    o1: usize,
) -> Option<(&'a [i8], &'b mut [i8], usize, usize)> {
    if o1 <= o0 || o1 > r.out_h || o0 < out_first {
        return None;
    }
    let (first, count, above) = r.band_reads(o0, o1);
    let at = first.checked_sub(in_first)? * r.in_row;
    let x = input.get(at..at + count * r.in_row)?;
    let y = output.get_mut((o0 - out_first) * r.out_row..(o1 - out_first) * r.out_row)?;
    Some((x, y, count, above))
}
