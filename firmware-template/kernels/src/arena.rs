//! Borrowing an operator's input and output from one static arena without `unsafe` or panics.
//!
//! Each `split_*` returns `None` for ranges it cannot hand out; the `const fn`s `range_fits`, `io_fits` and
//! `inputs_fit` say the same at compile time, so generated code asserts its planned offsets in `const` items
//! (a planning bug fails the build, naming the operator) and the run-time checks fold away.

/// Whether `len` bytes at `off` lie inside an arena of `arena_len` bytes (`arena.get(off..off + len)`).
pub const fn range_fits(arena_len: usize, off: usize, len: usize) -> bool {
    match off.checked_add(len) {
        Some(end) => end <= arena_len,
        None => false,
    }
}

/// Whether [`split_io`] hands out these ranges of an arena of `arena_len` bytes: both inside, no overlap.
pub const fn io_fits(arena_len: usize, in_off: usize, in_len: usize, out_off: usize, out_len: usize) -> bool {
    if !range_fits(arena_len, in_off, in_len) || !range_fits(arena_len, out_off, out_len) {
        return false;
    }
    in_off + in_len <= out_off || out_off + out_len <= in_off
}

/// Whether [`split_inputs`] (and [`split_in_place`], whose own range is the output here) hands out these
/// ranges: all inside, no input overlapping the output (inputs may overlap each other).
pub const fn inputs_fit<const N: usize>(
    arena_len: usize,
    inputs: [(usize, usize); N],
    out_off: usize,
    out_len: usize,
) -> bool {
    if !range_fits(arena_len, out_off, out_len) {
        return false;
    }
    let mut i = 0;
    while i < N {
        let (off, len) = inputs[i];
        if !range_fits(arena_len, off, len) || !(off + len <= out_off || off >= out_off + out_len) {
            return false;
        }
        i += 1;
    }
    true
}

/// Split `arena` into `in_len` bytes at `in_off` (read) and `out_len` bytes at `out_off` (write).
///
/// `None` when the ranges overlap or leave the arena; the code generator plans offsets so this never
/// happens, and with constant arguments the checks fold away.
#[inline(always)]
pub fn split_io(
    arena: &mut [i8],
    in_off: usize,
    in_len: usize,
    out_off: usize,
    out_len: usize,
) -> Option<(&[i8], &mut [i8])> {
    let in_end = in_off.checked_add(in_len)?;
    let out_end = out_off.checked_add(out_len)?;
    if in_end > arena.len() || out_end > arena.len() {
        return None;
    }
    if in_end <= out_off {
        let (head, tail) = arena.split_at_mut(out_off);
        Some((head.get(in_off..in_end)?, tail.get_mut(..out_len)?))
    } else if out_end <= in_off {
        let (head, tail) = arena.split_at_mut(in_off);
        Some((tail.get(..in_len)?, head.get_mut(out_off..out_end)?))
    } else {
        None
    }
}

/// Copy as much of `src` as fits into `dst`; the rest of `dst` keeps its contents.
#[inline(always)]
pub fn copy_into(dst: &mut [i8], src: &[i8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// Like [`split_io`] for an operator reading `N` arena ranges `(offset, len)`, which may overlap each
/// other (ADD of a tensor to itself) but not the output.
#[inline(always)]
pub fn split_inputs<const N: usize>(
    arena: &mut [i8],
    inputs: [(usize, usize); N],
    out_off: usize,
    out_len: usize,
) -> Option<([&[i8]; N], &mut [i8])> {
    let out_end = out_off.checked_add(out_len)?;
    if out_end > arena.len() {
        return None;
    }
    let (head, tail) = arena.split_at_mut(out_off);
    let (output, rest) = tail.split_at_mut(out_len);
    let (head, rest): (&[i8], &[i8]) = (head, rest);
    let mut slices: [&[i8]; N] = [&[]; N];
    for (slot, (off, len)) in slices.iter_mut().zip(inputs) {
        let end = off.checked_add(len)?;
        *slot = if end <= out_off {
            head.get(off..end)?
        } else if off >= out_end {
            rest.get(off - out_end..end - out_end)?
        } else {
            return None;
        };
    }
    Some((slices, output))
}

/// For an operator that writes its output over one of its inputs: the `len` bytes at `off` (read, then
/// overwritten) and `N` further arena ranges `(offset, len)` it only reads, which must not overlap the first.
#[inline(always)]
pub fn split_in_place<const N: usize>(
    arena: &mut [i8],
    off: usize,
    len: usize,
    inputs: [(usize, usize); N],
) -> Option<(&mut [i8], [&[i8]; N])> {
    let (others, buf) = split_inputs(arena, inputs, off, len)?;
    Some((buf, others))
}
