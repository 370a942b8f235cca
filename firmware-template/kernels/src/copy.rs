//! Operators that only move int8 values: PAD / PADV2, TRANSPOSE, STRIDED_SLICE (one strided copy) and
//! CONCATENATION. No arithmetic, so bit-exactness is a matter of indices (TFLM: `reference_ops::Pad`,
//! `Transpose`, `StridedSlice`, `Concatenation`); the code generator turns each operator's shapes into
//! the loop nest below.

/// A five-deep loop nest copying `input[in_start + Σ i·in_strides]` to `output[out_start + Σ i·out_strides]`
/// for every index `i < dims`, outermost first. With `pad`, all `out_len` output values are first set to
/// `fill` (PAD writes the input into the middle of its output).
#[derive(Clone, Copy, Debug)]
pub struct StridedCopy {
    pub dims: [usize; 5],
    pub in_start: usize,
    pub in_strides: [isize; 5], // negative for a STRIDED_SLICE walking backwards
    pub out_start: usize,
    pub out_strides: [usize; 5],
    pub out_len: usize,
    pub pad: bool,
    pub fill: i8,
}

impl StridedCopy {
    /// Lowest and highest input index read, if the nest reads anything and stays at or above 0.
    fn input_reach(&self) -> Option<(usize, usize)> {
        let (mut lo, mut hi) = (self.in_start as isize, self.in_start as isize);
        for (&d, &s) in self.dims.iter().zip(&self.in_strides) {
            let span = (d.checked_sub(1)? as isize).checked_mul(s)?;
            if span < 0 {
                lo = lo.checked_add(span)?;
            } else {
                hi = hi.checked_add(span)?;
            }
        }
        (lo >= 0).then_some((lo as usize, hi as usize))
    }

    fn output_reach(&self) -> Option<usize> {
        let mut hi = self.out_start;
        for (&d, &s) in self.dims.iter().zip(&self.out_strides) {
            hi = hi.checked_add(d.checked_sub(1)?.checked_mul(s)?)?;
        }
        Some(hi)
    }
}

/// PAD, PADV2, TRANSPOSE and STRIDED_SLICE.
pub fn strided_copy_s8(p: &StridedCopy, input: &[i8], output: &mut [i8]) {
    let (Some((_, in_hi)), Some(out_hi)) = (p.input_reach(), p.output_reach()) else {
        return;
    };
    if in_hi >= input.len() || out_hi >= p.out_len || p.out_len > output.len() {
        return;
    }
    if p.pad {
        for o in output.iter_mut().take(p.out_len) {
            *o = p.fill;
        }
    }
    let [d0, d1, d2, d3, d4] = p.dims;
    let (si, so) = (p.in_strides, p.out_strides);
    // rows contiguous on both sides (PAD, a slice along outer axes) copy as slices
    let rows = si[4] == 1 && so[4] == 1;
    for i0 in 0..d0 {
        for i1 in 0..d1 {
            for i2 in 0..d2 {
                for i3 in 0..d3 {
                    let src = p.in_start as isize + i0 as isize * si[0] + i1 as isize * si[1]
                        + i2 as isize * si[2] + i3 as isize * si[3];
                    let dst = p.out_start + i0 * so[0] + i1 * so[1] + i2 * so[2] + i3 * so[3];
                    if rows {
                        let from = src as usize;
                        if let (Some(x), Some(y)) = (input.get(from..from + d4), output.get_mut(dst..dst + d4)) {
                            crate::arena::copy_into(y, x);
                        }
                        continue;
                    }
                    for i4 in 0..d4 {
                        let from = (src + i4 as isize * si[4]) as usize;
                        if let (Some(x), Some(y)) = (input.get(from), output.get_mut(dst + i4 * so[4])) {
                            *y = *x;
                        }
                    }
                }
            }
        }
    }
}

/// CONCATENATION of `N` inputs sharing the output's scale and zero point (TFLM requires it for int8):
/// the output is `outer` rows, each the concatenation of one `sizes[k]`-long row of every input.
#[derive(Clone, Copy, Debug)]
pub struct Concatenation<const N: usize> {
    pub outer: usize,
    pub sizes: [usize; N],
}

pub fn concatenation_s8<const N: usize>(p: &Concatenation<N>, inputs: [&[i8]; N], output: &mut [i8]) {
    let row: usize = p.sizes.iter().sum();
    let fits = |len: usize, n: usize| p.outer.checked_mul(n).is_some_and(|need| len >= need);
    if row == 0 || !fits(output.len(), row) || inputs.iter().zip(&p.sizes).any(|(x, &n)| !fits(x.len(), n)) {
        return;
    }
    for (o, out_row) in output.chunks_exact_mut(row).take(p.outer).enumerate() {
        let mut at = 0;
        for (x, &n) in inputs.iter().zip(&p.sizes) {
            if let (Some(src), Some(dst)) = (x.get(o * n..(o + 1) * n), out_row.get_mut(at..at + n)) {
                crate::arena::copy_into(dst, src);
            }
            at += n;
        }
    }
}
