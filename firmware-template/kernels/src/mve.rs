//! Inner loops on the M-profile Vector Extension (Helium: Cortex-M55, M85), as inline assembly.
//!
//! Compiled only with `cfg(tinyml_mve)` (build.rs sets it beside `cfg(tinyml_dsp)` for MVE cores): these
//! loops replace the DSP path's where the weights' layout lets whole 128-bit vectors through, and the DSP path
//! does the rest. The filters keep the layouts the code generator writes for every core: the structured loads
//! VLD2 / VLD4 de-interleave a pair (conv) or a block of four (fully connected) of word-interleaved rows into
//! one vector per row, and VMLADAVA.S8 multiplies 16 raw int8 pairs into a 32-bit accumulator per
//! instruction. The input offset stays folded into the bias (the code generator's), so nothing is widened.
//!
//! Every result is the DSP path's, bit for bit: the same wrapping 32-bit sums, and [`requant_4ch_2px`] is
//! `rescale_doubled` and the clamp in four lanes at once.
#![allow(unsafe_code)]

use core::arch::asm;

use crate::conv::{gather_patch_with, pixel_patch, Conv2d};
use crate::quant::{clamp_s8, rescale_doubled, rescale_general, Rescale};

/// Two filter rows against two patches: `w` holds the rows' words interleaved (row 0 word g, row 1 word g,
/// ...), `x` the two output pixels' raw int8 patches interleaved by vector (pixel 0's first 16 bytes, pixel
/// 1's, ...); `acc` is `[row0 px0, row0 px1, row1 px0, row1 px1]`. Runs over whole vectors: 8 words of `w`
/// and 32 bytes of `x` per step. 9 instructions per 64 MACs.
#[inline(always)]
fn dot_2rows_2px(w: &[u32], x: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let steps = (w.len() / 8).min(x.len() / 8);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if steps == 0 {
        return acc;
    }
    // SAFETY: reads `8 * steps` words of `w` and of `x` (`u32` slices: word-aligned, as VLD2x.32 and VLDRW
    // require), within the slices. No store, no stack; the q registers it uses are declared clobbered.
    unsafe {
        asm!(
            "dls lr, {n}",
            "2:",
            "vld20.32 {{q0, q1}}, [{pw}]",
            "vld21.32 {{q0, q1}}, [{pw}]!",
            "vldrw.u32 q3, [{px}, #16]",
            "vldrw.u32 q2, [{px}], #32",
            "vmladava.s8 r0, q0, q2",
            "vmladava.s8 r2, q0, q3",
            "vmladava.s8 r4, q1, q2",
            "vmladava.s8 r8, q1, q3",
            "le lr, 2b",
            n = in(reg) steps, pw = inout(reg) w.as_ptr() => _, px = inout(reg) x.as_ptr() => _,
            inout("r0") a0, inout("r2") a1, inout("r4") a2, inout("r8") a3,
            out("lr") _, out("q0") _, out("q1") _, out("q2") _, out("q3") _,
            options(readonly, nostack),
        )
    };
    [a0, a1, a2, a3]
}

/// [`conv_blocks_2px`]'s assembly with `$after_pair` (the lines that step the filter pointer from the end of one
/// pair's vectors to the start of the next: none when rows are whole vectors) after each pair's loop.
macro_rules! conv_blocks_asm {
    ($w:ident, $x:ident, $steps:ident, $bias2:ident, $state:ident, $act:ident, $out:ident, $px1:ident, $($after_pair:literal),*) => {
        asm!(
            "sub sp, #16",
            "vdup.32 q6, r2",
            "vdup.32 q7, r8",
            "ldrd r2, r8, [r0]",
            "ldr r10, [r0, #8]",
            "strd r2, r8, [sp]",
            "str r10, [sp, #8]",
            "1:",
            // pair A: channels 0 and 1 of the block into lanes 0 and 1
            "ldrd r0, r8, [{pb}], #8",
            "asrs r0, r0, #1",
            "asrs r8, r8, #1",
            "mov r2, r0",
            "mov r10, r8",
            "mov {px}, {xb}",
            "dls lr, {n}",
            "2:",
            "vld20.32 {{q0, q1}}, [r1]",
            "vld21.32 {{q0, q1}}, [r1]!",
            "vldrw.u32 q3, [{px}, #16]",
            "vldrw.u32 q2, [{px}], #32",
            "vmladava.s8 r0, q0, q2",
            "vmladava.s8 r2, q0, q3",
            "vmladava.s8 r8, q1, q2",
            "vmladava.s8 r10, q1, q3",
            "le lr, 2b",
            $($after_pair,)*
            "vmov.32 q4[0], r0",
            "vmov.32 q5[0], r2",
            "vmov.32 q4[1], r8",
            "vmov.32 q5[1], r10",
            // pair B: channels 2 and 3 into lanes 2 and 3
            "ldrd r0, r8, [{pb}], #8",
            "asrs r0, r0, #1",
            "asrs r8, r8, #1",
            "mov r2, r0",
            "mov r10, r8",
            "mov {px}, {xb}",
            "dls lr, {n}",
            "3:",
            "vld20.32 {{q0, q1}}, [r1]",
            "vld21.32 {{q0, q1}}, [r1]!",
            "vldrw.u32 q3, [{px}, #16]",
            "vldrw.u32 q2, [{px}], #32",
            "vmladava.s8 r0, q0, q2",
            "vmladava.s8 r2, q0, q3",
            "vmladava.s8 r8, q1, q2",
            "vmladava.s8 r10, q1, q3",
            "le lr, 3b",
            $($after_pair,)*
            "vmov.32 q4[2], r0",
            "vmov.32 q5[2], r2",
            "vmov.32 q4[3], r8",
            "vmov.32 q5[3], r10",
            // requantize: q0 multipliers, q1 adds, q2 -(trailing_zeros(add) + 1)
            "ldr r0, [sp]",
            "vld20.32 {{q0, q1}}, [r0]",
            "vld21.32 {{q0, q1}}, [r0]!",
            "str r0, [sp]",
            "vneg.s32 q2, q1",
            "vand q2, q2, q1",
            "vclz.i32 q2, q2",
            "movs r0, #32",
            "vsub.i32 q2, q2, r0",
            "vqrdmulh.s32 q3, q4, q0",
            "vadd.i32 q3, q3, q1",
            "vshr.s32 q4, q4, #31",
            "vadd.i32 q3, q3, q4",
            "vshl.s32 q3, q3, q2",
            "vmax.s32 q3, q3, q6",
            "vmin.s32 q3, q3, q7",
            "vstrb.32 q3, [r4]",
            "adds r4, #4",
            "vqrdmulh.s32 q3, q5, q0",
            "vadd.i32 q3, q3, q1",
            "vshr.s32 q5, q5, #31",
            "vadd.i32 q3, q3, q5",
            "vshl.s32 q3, q3, q2",
            "vmax.s32 q3, q3, q6",
            "vmin.s32 q3, q3, q7",
            "vstrb.32 q3, [r5]",
            "adds r5, #4",
            "ldr r0, [sp, #4]",
            "subs r0, #1",
            "str r0, [sp, #4]",
            "bne 1b",
            "add sp, #16",
            // the state, act_min and act_max come in registers the loop reuses
            inout("r0") $state.as_ptr() => _, inout("r2") $act.0 => _, inout("r8") $act.1 => _,
            pb = inout(reg) $bias2.as_ptr() => _, xb = in(reg) $x.as_ptr(), px = out(reg) _, n = in(reg) $steps,
            inout("r1") $w.as_ptr() => _,
            inout("r4") $out.as_mut_ptr() => _, inout("r5") $out.as_mut_ptr().wrapping_add($px1) => _,
            out("r10") _, out("lr") _,
            out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _, out("q5") _, out("q6") _, out("q7") _,
        )
    };
}

/// Blocks of four output channels (two row pairs each) of two output pixels, whole in assembly: per pair
/// the loop of [`dot_2rows_2px`] from `bias2 / 2`, the four channels' sums moved into one vector per pixel,
/// then [`requant_4ch_2px`]'s arithmetic; writes `out[4b..4b + 4]` (pixel 0) and `out[px1 + 4b..]` (pixel 1).
/// `w` starts at the first pair's words, `words` per row; the caller checks that every channel takes the
/// short path and that the last pair's last vector stays inside `w`. 9 instructions per 64 MACs in the
/// inner loop, about 50 per block around it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn conv_blocks_2px(
    w: &[u32],
    words: usize,
    x: &[u32],
    blocks: usize,
    bias2: &[i32],
    rescale: &[Rescale],
    act: (i32, i32),
    out: &mut [i8],
    px1: usize,
) {
    let steps = words.div_ceil(4);
    if blocks == 0
        || steps == 0
        || x.len() < 8 * steps
        || w.len() < 4 * words * (blocks - 1) + 2 * words + 8 * steps
        || bias2.len() < 4 * blocks
        || rescale.len() < 4 * blocks
        || out.len() < px1 + 4 * blocks
    {
        return;
    }
    // from the end of one pair's vectors to the start of the next pair's (negative when rows end mid-vector)
    let adjust = 4 * (2 * words) as isize - 32 * steps as isize;
    let state = [rescale.as_ptr() as usize, blocks, adjust as usize];
    // SAFETY: per block reads two pairs of `8 * steps` words of `w` starting `2 * words` words apart (the last
    // one ends inside `w`: checked above), `8 * steps` words of `x` per pair, 4 words of `bias2` and 4
    // `Rescale`s (8 words) at the block's channels, and writes 4 bytes at `out + 4b` and at `out + px1 + 4b`:
    // all inside the slices (checked above); every word access is word-aligned (`u32`/`i32` slices,
    // `repr(C)` Rescale). The 16 bytes it reserves on the stack are released before it ends. VSTRB.32 takes a
    // low register as its base: the output pointers are r4 and r5.
    unsafe {
        if adjust == 0 {
            conv_blocks_asm!(w, x, steps, bias2, state, act, out, px1,);
        } else {
            conv_blocks_asm!(w, x, steps, bias2, state, act, out, px1, "ldr lr, [sp, #8]", "add r1, r1, lr");
        }
    };
}

/// A fully connected layer's blocks of four output rows for one input row `x` (`16 * steps` int8): per block
/// four interleaved weight rows (`w`: per input word, the four rows' words; VLD4 de-interleaves them into one
/// vector per row), from `bias`, the four sums moved into one vector, requantized with [`requant_4ch_2px`]'s
/// arithmetic (of the plain sum, which is half the doubled one) and clamped to `act`, written to
/// `out[4b..4b + 4]`. `PER_TENSOR`: `rescale` holds one entry serving every row. The caller checks that every
/// row takes the short path. 10 instructions per 64 MACs in the loop, about 35 per block around it.
#[allow(clippy::too_many_arguments)]
pub fn fc_blocks<const PER_TENSOR: bool>(
    x: &[i8],
    w: &[u32],
    steps: usize,
    blocks: usize,
    bias: &[i32],
    rescale: &[Rescale],
    act: (i32, i32),
    out: &mut [i8],
) {
    if steps == 0
        || blocks == 0
        || x.len() < 16 * steps
        || w.len() < 16 * steps * blocks
        || bias.len() < 4 * blocks
        || rescale.len() < if PER_TENSOR { 1 } else { 4 * blocks }
        || out.len() < 4 * blocks
    {
        return;
    }
    let broadcast = [rescale[0]; 4];
    let (scales, scale_step) = if PER_TENSOR { (&broadcast[..], 0) } else { (rescale, 32) };
    let state = [steps, blocks, scale_step];
    // SAFETY: per block reads `16 * steps` words of `w` (the blocks are consecutive: `16 * steps * blocks`
    // words in all), `16 * steps` bytes of `x`, 4 words of `bias` and 4 `Rescale`s (`repr(C)`, 8 words; the
    // same 4 when `PER_TENSOR`), and writes 4 bytes of `out`: all inside the slices (checked above); word
    // accesses are word-aligned. The 16 bytes it reserves on the stack are released before it ends. VSTRB.32
    // takes a low base register: the output pointer is r5.
    unsafe {
        asm!(
            "sub sp, #16",
            "vdup.32 q6, r2",
            "vdup.32 q7, r8",
            "ldrd r2, r8, [r0]",
            "ldr r10, [r0, #8]",
            "strd r2, r8, [sp]",
            "str r10, [sp, #8]",
            "1:",
            "ldm {pb}!, {{r0, r2, r4, r8}}",
            "mov {px}, {xb}",
            "ldr lr, [sp]",
            "dls lr, lr",
            "2:",
            "vld40.32 {{q0, q1, q2, q3}}, [{pw}]",
            "vld41.32 {{q0, q1, q2, q3}}, [{pw}]",
            "vld42.32 {{q0, q1, q2, q3}}, [{pw}]",
            "vld43.32 {{q0, q1, q2, q3}}, [{pw}]!",
            "vldrb.u8 q4, [{px}], #16",
            "vmladava.s8 r0, q0, q4",
            "vmladava.s8 r2, q1, q4",
            "vmladava.s8 r4, q2, q4",
            "vmladava.s8 r8, q3, q4",
            "le lr, 2b",
            "vmov.32 q5[0], r0",
            "vmov.32 q5[1], r2",
            "vmov.32 q5[2], r4",
            "vmov.32 q5[3], r8",
            "vld20.32 {{q0, q1}}, [{rs}]",
            "vld21.32 {{q0, q1}}, [{rs}]",
            "ldr r0, [sp, #8]",
            "add {rs}, {rs}, r0",
            "vneg.s32 q2, q1",
            "vand q2, q2, q1",
            "vclz.i32 q2, q2",
            "movs r0, #32",
            "vsub.i32 q2, q2, r0",
            "vqrdmulh.s32 q3, q5, q0",
            "vadd.i32 q3, q3, q1",
            "vshr.s32 q5, q5, #31",
            "vadd.i32 q3, q3, q5",
            "vshl.s32 q3, q3, q2",
            "vmax.s32 q3, q3, q6",
            "vmin.s32 q3, q3, q7",
            "vstrb.32 q3, [r5]",
            "adds r5, #4",
            "ldr r0, [sp, #4]",
            "subs r0, #1",
            "str r0, [sp, #4]",
            "bne 1b",
            "add sp, #16",
            // the state, act_min and act_max come in registers the loop reuses
            inout("r0") state.as_ptr() => _, inout("r2") act.0 => _, inout("r8") act.1 => _,
            pb = inout(reg) bias.as_ptr() => _, xb = in(reg) x.as_ptr(), px = out(reg) _,
            pw = inout(reg) w.as_ptr() => _, rs = inout(reg) scales.as_ptr() => _,
            inout("r5") out.as_mut_ptr() => _,
            out("r4") _, out("r10") _, out("lr") _,
            out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _, out("q5") _, out("q6") _, out("q7") _,
        )
    };
}

/// Four interleaved weight rows (`w`: per input word, the four rows' words) against `x` (int8, any
/// alignment): `acc[r] += row r . x` over whole vectors, 16 words of `w` and 16 bytes of `x` per step; the
/// caller leaves what remains to the DSP path. 10 instructions per 64 MACs.
#[inline(always)]
pub fn dot_4rows(x: &[i8], w: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let steps = (x.len() / 16).min(w.len() / 16);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if steps == 0 {
        return acc;
    }
    // SAFETY: reads `16 * steps` bytes of `x` and `16 * steps` words of `w` (word-aligned, as VLD4x.32
    // requires), within both slices. No store, no stack; the q registers are declared clobbered.
    unsafe {
        asm!(
            "dls lr, {n}",
            "2:",
            "vld40.32 {{q0, q1, q2, q3}}, [{pw}]",
            "vld41.32 {{q0, q1, q2, q3}}, [{pw}]",
            "vld42.32 {{q0, q1, q2, q3}}, [{pw}]",
            "vld43.32 {{q0, q1, q2, q3}}, [{pw}]!",
            "vldrb.u8 q4, [{px}], #16",
            "vmladava.s8 r0, q0, q4",
            "vmladava.s8 r2, q1, q4",
            "vmladava.s8 r4, q2, q4",
            "vmladava.s8 r8, q3, q4",
            "le lr, 2b",
            n = in(reg) steps, pw = inout(reg) w.as_ptr() => _, px = inout(reg) x.as_ptr() => _,
            inout("r0") a0, inout("r2") a1, inout("r4") a2, inout("r8") a3,
            out("lr") _, out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _,
            options(readonly, nostack),
        )
    };
    [a0, a1, a2, a3]
}

/// Four output channels of two pixels, requantized on [`Rescale`]'s short path and clamped to `act`:
/// `half` holds half of each doubled accumulator (pixel 0's four channels, then pixel 1's), `rescale` the
/// four channels' scales; writes `out[..4]` (pixel 0) and `out[px1..px1 + 4]` (pixel 1; `px1 == 0` when both
/// are the same pixel). Per lane the bits of `clamp_s8(rescale_doubled(2 * half, rs))`: VQRDMULH of the half
/// is SMMLAR's rounded high word of the doubled value (no saturation: `|half| < 2^30`), and the two right
/// shifts are one by `trailing_zeros(add) + 1`.
#[inline(always)]
fn requant_4ch_2px(half: &[i32; 8], rescale: &[Rescale], act: (i32, i32), out: &mut [i8], px1: usize) {
    if rescale.len() < 4 || out.len() < px1 + 4 {
        return;
    }
    // SAFETY: reads the 8 words of `half` (word-aligned) and the 4 `Rescale`s of `rescale` (`repr(C)`, two
    // words each: VLD2x.32 puts the multipliers in q0 and the adds in q1), writes 4 bytes at `out` and 4 at
    // `out + px1`, within `out` (checked above). No stack; the q registers are declared clobbered.
    unsafe {
        asm!(
            "vld20.32 {{q0, q1}}, [{rs}]",
            "vld21.32 {{q0, q1}}, [{rs}]",
            // q2: -(trailing_zeros(add) + 1) = clz(add & -add) - 32, a right shift for VSHL
            "vneg.s32 q2, q1",
            "vand q2, q2, q1",
            "vclz.i32 q2, q2",
            "vsub.i32 q2, q2, {k32}",
            "vldrw.u32 q3, [{h}]",
            "vqrdmulh.s32 q4, q3, q0",
            "vadd.i32 q4, q4, q1",
            "vshr.s32 q3, q3, #31",
            "vadd.i32 q4, q4, q3",
            "vshl.s32 q4, q4, q2",
            "vdup.32 q3, {lo}",
            "vmax.s32 q4, q4, q3",
            "vdup.32 q3, {hi}",
            "vmin.s32 q4, q4, q3",
            "vstrb.32 q4, [r2]",
            "vldrw.u32 q3, [{h}, #16]",
            "vqrdmulh.s32 q4, q3, q0",
            "vadd.i32 q4, q4, q1",
            "vshr.s32 q3, q3, #31",
            "vadd.i32 q4, q4, q3",
            "vshl.s32 q4, q4, q2",
            "vdup.32 q3, {lo}",
            "vmax.s32 q4, q4, q3",
            "vdup.32 q3, {hi}",
            "vmin.s32 q4, q4, q3",
            "vstrb.32 q4, [r3]",
            // VSTRB.32 (a narrowing store) takes a low register as its base: the pointers go in r2 and r3
            rs = in(reg) rescale.as_ptr(), h = in(reg) half.as_ptr(),
            in("r2") out.as_mut_ptr(), in("r3") out.as_mut_ptr().wrapping_add(px1),
            k32 = in(reg) 32, lo = in(reg) act.0, hi = in(reg) act.1,
            out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _,
            options(nostack, preserves_flags),
        )
    };
}

/// Words of the zero-padded copy of a conv layer's last block of four filter rows (rows of up to 32 words).
const LAST_BLOCK_WORDS: usize = 4 * 32 + 8;

/// Bytes of one patch rounded up to whole vectors: what the conv loop reads per pixel.
const fn padded_patch_bytes(p: &Conv2d) -> usize {
    16 * p.row_words().div_ceil(4)
}

/// Store pixel `slot`'s patch `src` (zero-padded to whole vectors) into `x`, the two pixels' patches
/// interleaved by vector. 7 instructions per vector.
#[inline(always)]
fn interleave(src: &[i8], x: &mut [u32], slot: usize) {
    let vectors = src.len().div_ceil(16).min(x.len() / 8);
    if vectors == 0 {
        return;
    }
    // SAFETY: per vector, VCTP limits the load to the bytes of `src` left (at most 16: the lanes past them
    // read no memory and hold zero), and the store writes 4 words at `x[8v + 4 slot..]`, inside `x` since
    // `v < x.len() / 8` and `slot` is 0 or 1; `x` is a `u32` slice, word-aligned as VSTRW requires.
    unsafe {
        asm!(
            "dls lr, {n}",
            "2:",
            "vctp.8 {left}",
            "vmov.i32 q0, #0",
            "vpst",
            "vldrbt.u8 q0, [{ps}]",
            "adds {ps}, #16",
            "subs {left}, #16",
            "vstrw.32 q0, [{pd}], #32",
            "le lr, 2b",
            n = in(reg) vectors, left = inout(reg) src.len() => _, ps = inout(reg) src.as_ptr() => _,
            pd = inout(reg) x.as_mut_ptr().wrapping_add(4 * (slot & 1)) => _,
            out("lr") _, out("q0") _,
            options(nostack),
        )
    };
}

/// `conv2d_s8` on MVE; `false` (nothing written) when the scratch the code generator reserved cannot hold the
/// two padded patches (a row of one word), which the DSP path then takes. The caller has checked the slices'
/// lengths. Patches stay raw int8, zero-padded to whole vectors (zero input times any weight adds nothing; the
/// rows' own padding is zero too), the two pixels' interleaved by vector in `scratch`.
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
) -> bool {
    let padded = padded_patch_bytes(p);
    let patch = p.k_h * p.k_w * p.in_c;
    if 4 * scratch.len() < 2 * padded || (p.k_h * p.k_w > 1 && stage.len() < patch) {
        return false;
    }
    let x = &mut scratch[..padded / 2];
    x.fill(0);
    let general = rescale.iter().any(|r| r.is_general());
    // whole blocks of four short-path channels; those whose last vector stays inside the filter run on it, and
    // when a row ends mid-vector the last block (whose last vector would reach past the filter) runs on a
    // zero-padded copy of its words
    let words = p.row_words();
    let steps = words.div_ceil(4);
    let whole = if general { 0 } else { p.out_c / 4 };
    let mut blocks = whole;
    while blocks > 0 && 4 * words * (blocks - 1) + 2 * words + 8 * steps > filter.len() {
        blocks -= 1;
    }
    let mut last_block = [0u32; LAST_BLOCK_WORDS];
    let copied = blocks < whole && 4 * words + 8 <= LAST_BLOCK_WORDS;
    if copied {
        for (l, w) in last_block.iter_mut().zip(filter.get(4 * words * blocks..).unwrap_or(&[]).iter().take(4 * words)) {
            *l = *w;
        }
    }
    let last = if copied { Some(&last_block[..]) } else { None };
    let in_size = p.in_h * p.in_w * p.in_c;
    let pixels = p.out_h * p.out_w;
    let out_size = pixels * p.out_c;
    for (in_batch, out_batch) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(p.batches) {
        let mut px = 0;
        while px < pixels {
            // the second pixel of the last pair may not exist: it repeats the first (same bytes written twice)
            let second = if px + 1 < pixels { px + 1 } else { px };
            let out = match out_batch.get_mut(px * p.out_c..(second + 1) * p.out_c) {
                Some(o) => o,
                None => return true,
            };
            for (slot, pixel) in [(0, px), (1, second)] {
                if p.k_h * p.k_w == 1 {
                    if let Some(src) = pixel_patch(p, in_batch, pixel) {
                        interleave(src, x, slot);
                    }
                } else {
                    gather_patch_with(p, in_batch, pixel, &mut stage[..patch], copy_bytes, fill_bytes);
                    interleave(&stage[..patch], x, slot);
                }
            }
            channels(p, filter, x, bias2, rescale, general, out, (second - px) * p.out_c, blocks, last);
            px += 2;
        }
    }
    true
}

/// Every output channel of two pixels whose interleaved padded patches are `x`: pixel 0's channels at
/// `out[..out_c]`, pixel 1's at `out[px1..]`. The first `blocks` blocks of four channels go through
/// [`conv_blocks_2px`] on the filter, the next one through it on `last` (its words, zero-padded) when given;
/// the rest (the last channels, a general layer) pair by pair, requantized channel by channel as the DSP path
/// does.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn channels(
    p: &Conv2d,
    filter: &[u32],
    x: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    general: bool,
    out: &mut [i8],
    px1: usize,
    blocks: usize,
    last: Option<&[u32]>,
) {
    let words = p.row_words();
    let steps = words.div_ceil(4);
    let act = (p.act_min, p.act_max);
    conv_blocks_2px(filter, words, x, blocks, bias2, rescale, act, out, px1);
    let mut done = blocks;
    if let Some(w) = last {
        let (b, r, o) = (bias2.get(4 * done..), rescale.get(4 * done..), out.get_mut(4 * done..));
        if let (Some(b), Some(r), Some(o)) = (b, r, o) {
            conv_blocks_2px(w, words, x, 1, b, r, act, o, px1);
            done += 1;
        }
    }
    let mut half = [0i32; 8];
    for pair in 2 * done..p.out_c.div_ceil(2) {
        let oc = 2 * pair;
        // a short-path accumulator holds half the doubled sum (`bias2` is even there); a general one the sum
        let start = |o: usize| bias2.get(o).map_or(0, |b| if general { *b } else { b >> 1 });
        let acc = pair_dot(filter, 2 * words * pair, steps, x, [start(oc), start(oc), start(oc + 1), start(oc + 1)]);
        let lane = oc % 4;
        half[lane] = acc[0];
        half[4 + lane] = acc[1];
        half[lane + 1] = acc[2];
        half[4 + lane + 1] = acc[3];
        // a block of four channels is complete after its second pair, or after the layer's last pair
        if lane == 0 && oc + 2 < p.out_c {
            continue;
        }
        let block = oc - lane;
        let end = (block + 4).min(p.out_c);
        if let (false, Some(rs)) = (general, rescale.get(block..block + 4)) {
            requant_4ch_2px(&half, rs, act, out.get_mut(block..).unwrap_or(&mut []), px1);
            continue;
        }
        for (o, rs) in rescale.iter().enumerate().take(end).skip(block) {
            for (at, h) in [(o, half[o % 4]), (px1 + o, half[4 + o % 4])] {
                let v = if general && rs.is_general() {
                    rescale_general(h, *rs, p.output_offset)
                } else {
                    rescale_doubled(h.wrapping_shl(1), *rs)
                };
                if let Some(b) = out.get_mut(at) {
                    *b = clamp_s8::<false>(v, p.act_min, p.act_max);
                }
            }
        }
    }
}

/// The dot products of the filter row pair starting at word `at` (`steps` vectors of 8 words) with the two
/// patches. The last vector of a pair whose rows are not whole vectors reaches into the next pair's words,
/// which meet the patches' zero padding; past the end of `filter` a copy of the pair's last words, zero-filled,
/// takes their place.
#[inline(always)]
fn pair_dot(filter: &[u32], at: usize, steps: usize, x: &[u32], acc: [i32; 4]) -> [i32; 4] {
    if let Some(w) = filter.get(at..at + 8 * steps) {
        return dot_2rows_2px(w, x, acc);
    }
    let whole = filter.len().saturating_sub(at) / 8;
    let acc = dot_2rows_2px(filter.get(at..at + 8 * whole).unwrap_or(&[]), x, acc);
    let mut last = [0u32; 8];
    for (l, w) in last.iter_mut().zip(filter.get(at + 8 * whole..).unwrap_or(&[])) {
        *l = *w;
    }
    dot_2rows_2px(&last, x.get(8 * whole..).unwrap_or(&[]), acc)
}

/// `dst.copy_from_slice(src)` for the short runs patches and rows are made of, with tail-predicated vectors
/// (16 bytes and 4 instructions a step) instead of a call into the C library's byte-wise `memcpy`.
#[inline(always)]
fn copy_bytes(dst: &mut [i8], src: &[i8]) {
    let n = dst.len().min(src.len());
    if n == 0 {
        return;
    }
    // SAFETY: the tail-predicated loop touches exactly `n` bytes of each slice (the lanes past them are
    // inactive: no access), within both. No stack; q0 is declared clobbered.
    unsafe {
        asm!(
            "dlstp.8 lr, {n}",
            "2:",
            "vldrb.u8 q0, [{ps}], #16",
            "vstrb.8 q0, [{pd}], #16",
            "letp lr, 2b",
            n = in(reg) n, ps = inout(reg) src.as_ptr() => _, pd = inout(reg) dst.as_mut_ptr() => _,
            out("lr") _, out("q0") _,
            options(nostack),
        )
    };
}

/// `dst.fill(value)` with tail-predicated vector stores.
#[inline(always)]
fn fill_bytes(dst: &mut [i8], value: i8) {
    if dst.is_empty() {
        return;
    }
    // SAFETY: the tail-predicated loop writes exactly `dst.len()` bytes of `dst`. No stack; q0 is declared
    // clobbered.
    unsafe {
        asm!(
            "vdup.8 q0, {v}",
            "dlstp.8 lr, {n}",
            "2:",
            "vstrb.8 q0, [{pd}], #16",
            "letp lr, 2b",
            v = in(reg) value as i32, n = in(reg) dst.len(), pd = inout(reg) dst.as_mut_ptr() => _,
            out("lr") _, out("q0") _,
            options(nostack),
        )
    };
}

/// Most taps a depthwise layer may have on the MVE path (its tap offsets live in a table on the stack).
const MAX_TAPS: usize = 64;

/// A group of eight channels' accumulator start (half of `bias2`) and requantization constants, split into
/// even and odd channels (VMULLB / VMULLT multiply the even and odd int16 lanes), or for a broadcast layer into
/// channels 0-3 and 4-7: computed once per layer call for up to [`GROUPS_AT_ONCE`] groups.
#[derive(Clone, Copy)]
#[repr(C)]
struct GroupScales {
    half_bias: [[i32; 4]; 2],
    /// per parity: multipliers, adds, `-(trailing_zeros(add) + 1)`
    rescale: [[[i32; 4]; 3]; 2],
}

/// Groups whose [`GroupScales`] are held at once (2 KB of stack).
const GROUPS_AT_ONCE: usize = 16;

/// What [`depthwise_row_group`] reads besides the scales: the clamp, its loop's pointers and counts.
#[repr(C)]
struct RowParams {
    act_min: [i32; 4],
    act_max: [i32; 4],
    taps_table: *const u32,
    weights: *const i8,
    taps: usize,
    x_step: usize,
    out_step: usize,
    /// counted down by the loop
    pixels: usize,
}

/// The depthwise loops' requantization of four lanes: accumulator `$acc` (its sign bits destroyed) into
/// `$dst`, with the scales' multipliers, adds and shifts at `r8 + $m`, `+ $a`, `+ $s` and the clamp's bounds
/// at `r5` and `r5 + 16` ([`GroupScales`], [`RowParams`]); q2 is the scratch register.
macro_rules! requant_half {
    ($acc:literal, $dst:literal, $m:literal, $a:literal, $s:literal) => {
        concat!(
            "vldrw.u32 q2, [r8, #", $m, "]\n",
            "vqrdmulh.s32 ", $dst, ", ", $acc, ", q2\n",
            "vldrw.u32 q2, [r8, #", $a, "]\n",
            "vadd.i32 ", $dst, ", ", $dst, ", q2\n",
            "vshr.s32 ", $acc, ", ", $acc, ", #31\n",
            "vadd.i32 ", $dst, ", ", $dst, ", ", $acc, "\n",
            "vldrw.u32 q2, [r8, #", $s, "]\n",
            "vshl.s32 ", $dst, ", ", $dst, ", q2\n",
            "vldrw.u32 q2, [r5]\n",
            "vmax.s32 ", $dst, ", ", $dst, ", q2\n",
            "vldrw.u32 q2, [r5, #16]\n",
            "vmin.s32 ", $dst, ", ", $dst, ", q2",
        )
    };
}

/// One output row of one group of eight channels: per pixel, `taps` taps of eight int8 inputs (at `x` plus
/// the table's byte offsets) times eight int8 weights (`weights`, eight per tap), widened to int16 and
/// multiplied into int32 sums (VMULLB / VMULLT: even and odd channels), requantized on [`Rescale`]'s short
/// path, clamped, narrowed back into channel order and stored at `out`; `x` and `out` then step to the next
/// pixel. 9 instructions per tap (8 MACs), about 40 per pixel around the taps.
///
/// # Safety
/// For every pixel `i < params.pixels` and tap `t`, `x + i * x_step + table[t] .. + 8` must be readable,
/// `weights .. + 8 * taps` readable, `out + i * out_step .. + 8` writable, `taps_table` readable for `taps`
/// words, and `taps >= 1`, `pixels >= 1`.
#[inline(always)]
unsafe fn depthwise_row_group(params: &mut RowParams, scales: &GroupScales, x: *const i8, out: *mut i8) {
    // SAFETY: the caller's contract; the widening loads and the narrowing store take low base registers (r0,
    // r1, r2). `params` and `scales` are `repr(C)`: the offsets below are their fields'. The pixel count is
    // counted down in `params.pixels`.
    unsafe {
        asm!(
            "1:",
            "vldrw.u32 q0, [r8]",
            "vldrw.u32 q1, [r8, #16]",
            "ldr r3, [r5, #32]",
            "ldr r1, [r5, #36]",
            "ldr lr, [r5, #40]",
            "dls lr, lr",
            "2:",
            "ldr r0, [r3], #4",
            "add r0, r0, r4",
            "vldrb.s16 q2, [r0]",
            "vldrb.s16 q3, [r1], #8",
            "vmullb.s16 q4, q2, q3",
            "vadd.i32 q0, q0, q4",
            "vmullt.s16 q4, q2, q3",
            "vadd.i32 q1, q1, q4",
            "le lr, 2b",
            // even channels: q0 -> q3
            requant_half!("q0", "q3", "32", "48", "64"),
            // odd channels: q1 -> q4
            requant_half!("q1", "q4", "80", "96", "112"),
            // channel order: even results in the bottom halfwords (already there), odd ones in the top
            "vmovnt.i32 q3, q4",
            "vstrb.16 q3, [r2]",
            "ldr r0, [r5, #48]",
            "add r2, r2, r0",
            "ldr r0, [r5, #44]",
            "add r4, r4, r0",
            "ldr r0, [r5, #52]",
            "subs r0, #1",
            "str r0, [r5, #52]",
            "bne 1b",
            in("r5") params as *mut RowParams, in("r8") scales as *const GroupScales,
            inout("r4") x => _, inout("r2") out => _,
            out("r0") _, out("r1") _, out("r3") _, out("lr") _,
            out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _,
            options(nostack),
        )
    };
}

/// [`depthwise_row_group`] two pixels at a time (`params.pixels` counts pairs): each tap's offset and weights
/// serve both, 15 instructions per tap (16 MACs).
///
/// # Safety
/// As for [`depthwise_row_group`], for `2 * params.pixels` pixels.
#[inline(always)]
unsafe fn depthwise_row_group_2px(params: &mut RowParams, scales: &GroupScales, x: *const i8, out: *mut i8) {
    // SAFETY: the caller's contract; the widening loads and the narrowing stores take low base registers (r0,
    // r1, r2). `params` and `scales` are `repr(C)`: the offsets below are their fields'.
    unsafe {
        asm!(
            "ldr r9, [r5, #44]",
            "1:",
            "vldrw.u32 q0, [r8]",
            "vldrw.u32 q1, [r8, #16]",
            "vmov q5, q0",
            "vmov q6, q1",
            "ldr r3, [r5, #32]",
            "ldr r1, [r5, #36]",
            "ldr lr, [r5, #40]",
            "dls lr, lr",
            "2:",
            "ldr r0, [r3], #4",
            "add r0, r0, r4",
            "vldrb.s16 q2, [r0]",
            "add r0, r0, r9",
            "vldrb.s16 q7, [r0]",
            "vldrb.s16 q3, [r1], #8",
            "vmullb.s16 q4, q2, q3",
            "vadd.i32 q0, q0, q4",
            "vmullt.s16 q4, q2, q3",
            "vadd.i32 q1, q1, q4",
            "vmullb.s16 q4, q7, q3",
            "vadd.i32 q5, q5, q4",
            "vmullt.s16 q4, q7, q3",
            "vadd.i32 q6, q6, q4",
            "le lr, 2b",
            // pixel 0: even channels q0 -> q3, odd q1 -> q4, back into channel order
            requant_half!("q0", "q3", "32", "48", "64"),
            requant_half!("q1", "q4", "80", "96", "112"),
            "vmovnt.i32 q3, q4",
            "vstrb.16 q3, [r2]",
            // pixel 1: q5, q6
            requant_half!("q5", "q3", "32", "48", "64"),
            requant_half!("q6", "q4", "80", "96", "112"),
            "vmovnt.i32 q3, q4",
            "ldr r0, [r5, #48]",
            "add r0, r2, r0",
            "vstrb.16 q3, [r0]",
            "ldr r0, [r5, #48]",
            "add r2, r2, r0, lsl #1",
            "add r4, r4, r9, lsl #1",
            "ldr r0, [r5, #52]",
            "subs r0, #1",
            "str r0, [r5, #52]",
            "bne 1b",
            in("r5") params as *mut RowParams, in("r8") scales as *const GroupScales,
            inout("r4") x => _, inout("r2") out => _,
            out("r0") _, out("r1") _, out("r3") _, out("r9") _, out("lr") _,
            out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _, out("q5") _, out("q6") _, out("q7") _,
            options(nostack),
        )
    };
}

/// [`depthwise_row_group`] for a depth multiplier that is a multiple of eight: the group's eight channels all
/// read one input channel, so each tap multiplies one int8 input (LDRSB at `x` plus the table's offset) into
/// the eight weights (two vectors of four, widened to int32: VMLA by a scalar), and the scales' two halves are
/// channels 0-3 and 4-7. 7 instructions per tap (8 MACs).
///
/// # Safety
/// As for [`depthwise_row_group`], with one byte read per pixel and tap.
#[inline(always)]
unsafe fn depthwise_row_group_broadcast(params: &mut RowParams, scales: &GroupScales, x: *const i8, out: *mut i8) {
    // SAFETY: the caller's contract; the widening loads and the narrowing stores take low base registers
    // (r1, r2). `params` and `scales` are `repr(C)`: the offsets below are their fields'.
    unsafe {
        asm!(
            "1:",
            "vldrw.u32 q0, [r8]",
            "vldrw.u32 q1, [r8, #16]",
            "ldr r3, [r5, #32]",
            "ldr r1, [r5, #36]",
            "ldr lr, [r5, #40]",
            "dls lr, lr",
            "2:",
            "ldr r0, [r3], #4",
            "ldrsb r0, [r4, r0]",
            "vldrb.s32 q2, [r1], #4",
            "vldrb.s32 q3, [r1], #4",
            "vmla.i32 q0, q2, r0",
            "vmla.i32 q1, q3, r0",
            "le lr, 2b",
            // channels 0-3: q0 -> q3
            requant_half!("q0", "q3", "32", "48", "64"),
            "vstrb.32 q3, [r2]",
            // channels 4-7: q1 -> q3
            requant_half!("q1", "q3", "80", "96", "112"),
            "vstrb.32 q3, [r2, #4]",
            "ldr r0, [r5, #48]",
            "add r2, r2, r0",
            "ldr r0, [r5, #44]",
            "add r4, r4, r0",
            "ldr r0, [r5, #52]",
            "subs r0, #1",
            "str r0, [r5, #52]",
            "bne 1b",
            in("r5") params as *mut RowParams, in("r8") scales as *const GroupScales,
            inout("r4") x => _, inout("r2") out => _,
            out("r0") _, out("r1") _, out("r3") _, out("lr") _,
            out("q0") _, out("q1") _, out("q2") _, out("q3") _,
            options(nostack),
        )
    };
}

/// `-(trailing_zeros(add) + 1)`: the right shift of a short-path [`Rescale`] as VSHL takes it.
#[inline(always)]
fn vshl_amount(rs: Rescale) -> i32 {
    -(rs.right_minus_one() as i32 + 1)
}

/// `depthwise_conv2d_s8` on MVE for a depth multiplier of one with channels in whole groups of eight, or a
/// multiple of eight, every channel on the short path and at most [`MAX_TAPS`] taps; `false` (nothing
/// written) otherwise, and the DSP path takes the layer. The caller has checked the slices' lengths. `scratch` (the DSP path's, which holds
/// `k_h` rows widened to int16) takes the filter as int8, eight channels per tap per group (recovered from the
/// doubled int16 words), then the `k_h` input rows as int8, columns outside the input holding the input zero
/// point (the folded bias cancels them).
pub fn depthwise_conv2d_s8(
    p: &crate::depthwise::DepthwiseConv2d,
    input: &[i8],
    filter: &[u32],
    bias2: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
) -> bool {
    let c = p.in_c;
    let out_c = c * p.depth_multiplier;
    // a multiple of eight: each group of eight channels reads one input channel
    let broadcast = p.depth_multiplier % 8 == 0;
    let taps = p.k_h * p.k_w;
    let span = p.span_w();
    let row_bytes = span * c;
    let filter_bytes = taps * out_c;
    if !(broadcast || (p.depth_multiplier == 1 && c % 8 == 0))
        || taps > MAX_TAPS
        || p.out_w == 0
        || filter_bytes + p.k_h * row_bytes > 4 * scratch.len()
        || rescale.len() < out_c
        || bias2.len() < out_c
        || rescale[..out_c].iter().any(|r| r.is_general())
    {
        return false;
    }
    // SAFETY: the same memory as `scratch`, `4 * len` bytes, at an alignment (1) its words' (4) satisfies; any
    // bit pattern is a valid `i8`; the slice borrows `scratch` mutably for its whole life.
    let bytes = unsafe { core::slice::from_raw_parts_mut(scratch.as_mut_ptr().cast::<i8>(), 4 * scratch.len()) };
    let (weights, rows) = bytes.split_at_mut(filter_bytes);
    let rows = &mut rows[..p.k_h * row_bytes];
    // weights: group g, tap t, lane l at `(g * taps + t) * 8 + l`; the filter words are per block of four
    // lanes and tap `(w02, w13, offset)`, weights doubled (short path)
    for (b, block) in filter.chunks_exact(3 * taps).take(out_c / 4).enumerate() {
        for (t, tap) in block.chunks_exact(3).enumerate() {
            let at = ((b / 2) * taps + t) * 8 + 4 * (b % 2);
            let half = |w: u32, hi: bool| ((if hi { w >> 16 } else { w }) as u16 as i16 >> 1) as i8;
            weights[at] = half(tap[0], false);
            weights[at + 1] = half(tap[1], false);
            weights[at + 2] = half(tap[0], true);
            weights[at + 3] = half(tap[1], true);
        }
    }
    let mut table = [0u32; MAX_TAPS];
    for (t, entry) in table.iter_mut().enumerate().take(taps) {
        *entry = ((t / p.k_w) * row_bytes + (t % p.k_w) * p.dil_w * c) as u32;
    }
    let zero_point = (-p.input_offset) as i8;
    let first = p.pad_w.min(span);
    let last = (p.pad_w + p.in_w).min(span).max(first);
    let in_size = p.in_h * p.in_w * c;
    let out_size = p.out_h * p.out_w * out_c;
    let mut params = RowParams {
        act_min: [p.act_min; 4],
        act_max: [p.act_max; 4],
        taps_table: table.as_ptr(),
        weights: weights.as_ptr(),
        taps,
        x_step: p.stride_w * c,
        out_step: out_c,
        pixels: p.out_w,
    };
    let groups = out_c / 8;
    let mut scales = [GroupScales { half_bias: [[0; 4]; 2], rescale: [[[0; 4]; 3]; 2] }; GROUPS_AT_ONCE];
    for first_group in (0..groups).step_by(GROUPS_AT_ONCE) {
        let held = (groups - first_group).min(GROUPS_AT_ONCE);
        for (i, s) in scales.iter_mut().take(held).enumerate() {
            *s = group_scales(first_group + i, bias2, rescale, broadcast);
        }
        for (in_batch, out_batch) in input.chunks_exact(in_size).zip(output.chunks_exact_mut(out_size)).take(p.batches) {
            for (oy, out_row) in out_batch.chunks_exact_mut(p.out_w * out_c).enumerate() {
                let y0 = (oy * p.stride_h) as isize - p.pad_h as isize;
                for (ky, row) in rows.chunks_exact_mut(row_bytes).enumerate() {
                    let iy = y0 + (ky * p.dil_h) as isize;
                    let at = iy.max(0) as usize * p.in_w * c;
                    match input_row(in_batch, iy, p.in_h, at, (last - first) * c) {
                        Some(src) => {
                            let (left, rest) = row.split_at_mut(first * c);
                            let (middle, right) = rest.split_at_mut((last - first) * c);
                            fill_bytes(left, zero_point);
                            copy_bytes(middle, src);
                            fill_bytes(right, zero_point);
                        }
                        None => fill_bytes(row, zero_point),
                    }
                }
                for (i, s) in scales.iter().take(held).enumerate() {
                    let g = first_group + i;
                    params.weights = weights.as_ptr().wrapping_add(8 * g * taps);
                    params.pixels = p.out_w;
                    // SAFETY: pixel i's taps read `ch + i * stride_w * c + table[t] ..`, with `ch` the group's
                    // first input channel and 8 bytes (one when broadcast) from it, at most `(out_w - 1) *
                    // stride_w * c + (k_h - 1) * row_bytes + (k_w - 1) * dil_w * c + c` bytes into `rows`, which
                    // is `k_h * row_bytes` long as `span_w` covers every window; group g's `8 * taps` weight bytes
                    // are inside `weights`; pixel i writes `out_row[i * out_c + 8g .. + 8]`, inside the row's
                    // `out_w * out_c` bytes; `taps` and `out_w` are at least one.
                    let out = out_row.as_mut_ptr().wrapping_add(8 * g);
                    unsafe {
                        if broadcast {
                            depthwise_row_group_broadcast(&mut params, s, rows.as_ptr().wrapping_add(8 * g / p.depth_multiplier), out);
                            continue;
                        }
                        let x = rows.as_ptr().wrapping_add(8 * g);
                        if p.out_w >= 2 {
                            params.pixels = p.out_w / 2;
                            depthwise_row_group_2px(&mut params, s, x, out);
                        }
                        if p.out_w % 2 == 1 {
                            let last = p.out_w - 1;
                            params.pixels = 1;
                            let x_last = x.wrapping_add(last * params.x_step);
                            depthwise_row_group(&mut params, s, x_last, out.wrapping_add(last * out_c));
                        }
                    };
                }
            }
        }
    }
    true
}

/// The input row `iy` (its `len` bytes from `at`), or `None` when the row is in the padding.
#[inline(always)]
fn input_row(input: &[i8], iy: isize, in_h: usize, at: usize, len: usize) -> Option<&[i8]> {
    if iy < 0 || iy >= in_h as isize {
        return None;
    }
    input.get(at..at + len)
}

/// [`GroupScales`] of group `g` (channels `8g..8g + 8`), split into even and odd channels, or `halves`: into
/// channels 0-3 and 4-7.
#[inline(always)]
fn group_scales(g: usize, bias2: &[i32], rescale: &[Rescale], halves: bool) -> GroupScales {
    let mut scales = GroupScales { half_bias: [[0; 4]; 2], rescale: [[[0; 4]; 3]; 2] };
    for l in 0..8 {
        let (parity, lane) = if halves { (l / 4, l % 4) } else { (l % 2, l / 2) };
        let o = 8 * g + l;
        let (b, rs) = (bias2.get(o).copied().unwrap_or(0), rescale.get(o).copied().unwrap_or(Rescale { multiplier: 0, add: 1 }));
        scales.half_bias[parity][lane] = b >> 1;
        scales.rescale[parity][0][lane] = rs.multiplier;
        scales.rescale[parity][1][lane] = rs.add;
        scales.rescale[parity][2][lane] = vshl_amount(rs);
    }
    scales
}
