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
