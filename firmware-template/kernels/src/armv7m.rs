//! Inner loops for ARMv7-M cores without the DSP extension (Cortex-M3; ARMv8-M Mainline without it), as
//! inline assembly: written in Rust, LLVM keeps too few of their values in registers and spills the
//! accumulators. Compiled only with `cfg(tinyml_armv7m)` (set by build.rs). Every loop has a portable twin
//! computing the same bits (wrapping 32-bit multiply-accumulates, like the C accumulators they replace).
#![allow(unsafe_code)]

use core::arch::asm;

/// The short path of [`crate::quant::Rescale`] in registers, as the text of assembly lines:
/// `$out = ssat8(((($add + ($acc >> 31) + (($acc * $multiplier + 2^31) >> 32)) >> $right) >> 1)`, where
/// `$right` holds `trailing_zeros(add)`; `$low` is clobbered (`$out` may be `$add`). SMLAL makes the rounded
/// high multiply that the DSP path's SMMLAR does in one instruction.
macro_rules! requantize {
    ($acc:literal, $multiplier:literal, $add:literal, $right:literal, $low:literal, $out:literal) => {
        concat!(
            "mov ", $low, ", #0x80000000\n",
            "add ", $out, ", ", $add, ", ", $acc, ", asr #31\n",
            "smlal ", $low, ", ", $out, ", ", $acc, ", ", $multiplier, "\n",
            "asr ", $out, ", ", $out, ", ", $right, "\n",
            "ssat ", $out, ", #8, ", $out, ", asr #1\n",
        )
    };
}

/// The conv kernel's 2x2 block without SIMD: two filter rows (`w`: the rows' words interleaved, int8) against
/// two widened patches (`x`: per group the words `(x0 even, x0 odd, x1 even, x1 odd)`, int16 pairs); `acc`
/// is `[row0 px0, row0 px1, row1 px0, row1 px1]`. Every operand comes sign-extended straight from memory
/// (LDRSB, LDRSH: a load and an extraction in one instruction) and feeds two MLAs: per group of 16 MACs,
/// 16 loads, 16 MLAs and the loop's 2 (the pointers advance with the last loads).
#[inline(always)]
pub fn dot_2rows_2px(w: &[u32], x: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let groups = (w.len() / 2).min(x.len() / 4);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if groups == 0 {
        return acc;
    }
    // SAFETY: reads the bytes of `2 * groups` words from `w` and of `4 * groups` words from `x`, within both
    // slices (a group: weight bytes 0..8 of `pw`, halfwords 0..16 of `px`, then both advance). Registers only
    // otherwise; the stack is not touched.
    unsafe {
        asm!(
            "2:",
            // value 1: weight bytes 1 (row 0) and 5 (row 1); halfwords at 4 (pixel 0) and 12 (pixel 1)
            "ldrsb {w0}, [{pw}, #1]",
            "ldrsb {w1}, [{pw}, #5]",
            "ldrsh {v}, [{px}, #4]",
            "mla {a0}, {w0}, {v}, {a0}",
            "mla {a2}, {w1}, {v}, {a2}",
            "ldrsh {v}, [{px}, #12]",
            "mla {a1}, {w0}, {v}, {a1}",
            "mla {a3}, {w1}, {v}, {a3}",
            // value 2: bytes 2, 6; halfwords 2, 10
            "ldrsb {w0}, [{pw}, #2]",
            "ldrsb {w1}, [{pw}, #6]",
            "ldrsh {v}, [{px}, #2]",
            "mla {a0}, {w0}, {v}, {a0}",
            "mla {a2}, {w1}, {v}, {a2}",
            "ldrsh {v}, [{px}, #10]",
            "mla {a1}, {w0}, {v}, {a1}",
            "mla {a3}, {w1}, {v}, {a3}",
            // value 3: bytes 3, 7; halfwords 6, 14
            "ldrsb {w0}, [{pw}, #3]",
            "ldrsb {w1}, [{pw}, #7]",
            "ldrsh {v}, [{px}, #6]",
            "mla {a0}, {w0}, {v}, {a0}",
            "mla {a2}, {w1}, {v}, {a2}",
            "ldrsh {v}, [{px}, #14]",
            "mla {a1}, {w0}, {v}, {a1}",
            "mla {a3}, {w1}, {v}, {a3}",
            // value 0 last, so its loads at offset 0 advance the pointers: bytes 4, 0; halfwords 8, 0
            "ldrsb {w1}, [{pw}, #4]",
            "ldrsb {w0}, [{pw}], #8",
            "ldrsh {v}, [{px}, #8]",
            "mla {a1}, {w0}, {v}, {a1}",
            "mla {a3}, {w1}, {v}, {a3}",
            "ldrsh {v}, [{px}], #16",
            "mla {a0}, {w0}, {v}, {a0}",
            "mla {a2}, {w1}, {v}, {a2}",
            "subs {n}, {n}, #1",
            "bne 2b",
            pw = inout(reg) w.as_ptr() => _, px = inout(reg) x.as_ptr() => _, n = inout(reg) groups => _,
            w0 = out(reg) _, w1 = out(reg) _, v = out(reg) _,
            a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2, a3 = inout(reg) a3,
            options(readonly, nostack),
        )
    };
    [a0, a1, a2, a3]
}

/// A convolution's whole output-channel loop for two output pixels, the twin of `dsp::conv_pairs_2px` (same
/// arguments, same layouts, same bits): for every pair `p < pairs` of filter rows, [`dot_2rows_2px`]'s loop
/// from `bias2`, requantized with [`crate::quant::Rescale`]'s short path (SMLAL for the rounded high
/// multiply) and saturated to int8 by SSAT, written to `out[2p..2p + 2]` (pixel 0) and `out[px1 + 2p..]`
/// (pixel 1). The caller checks that every channel takes the short path and that the activation range is all
/// of int8. 34 instructions per 16 MACs in the inner loop, 42 per channel pair around it.
#[allow(clippy::too_many_arguments)]
pub fn conv_pairs_2px(
    w: &[u32],
    x: &[u32],
    groups: usize,
    pairs: usize,
    bias2: &[i32],
    rescale: &[crate::quant::Rescale],
    out: &mut [i8],
    px1: usize,
) {
    if groups == 0
        || pairs == 0
        || w.len() < 2 * groups * pairs
        || x.len() < 4 * groups
        || bias2.len() < 2 * pairs
        || rescale.len() < 2 * pairs
        || out.len() < px1 + 2 * pairs
    {
        return;
    }
    let out1 = out.as_mut_ptr().wrapping_add(px1);
    // SAFETY: reads the bytes of `2 * groups * pairs` words of `w`, of `4 * groups` words of `x` per pair,
    // `2 * pairs` words of `bias2` and `2 * pairs` `Rescale`s (`repr(C)`, two words each), writes `2 * pairs`
    // bytes from `out` and from `out + px1`: all within the slices (checked above); word loads are
    // word-aligned (`u32`/`i32` slices). The 32 bytes it pushes on the stack are popped before it ends.
    unsafe {
        asm!(
            // frame: groups, x, the caller's r6 (LLVM's, not an operand: saved and restored here), bias2,
            // rescale, out0, out1, pairs
            "push {{r0, r5, r6, r8, r9, r10, r11, r12}}",
            "1:",
            "ldr r8, [sp, #12]",
            "ldrd r0, r2, [r8], #8",
            "str r8, [sp, #12]",
            "mov r1, r0",
            "mov r3, r2",
            "ldrd r5, r6, [sp]",
            // accumulators r0..r3 as in `dot_2rows_2px`; weights r8 (row 0), r9 (row 1), input r10
            "2:",
            "ldrsb r8, [r4, #1]",
            "ldrsb r9, [r4, #5]",
            "ldrsh r10, [r6, #4]",
            "mla r0, r8, r10, r0",
            "mla r2, r9, r10, r2",
            "ldrsh r10, [r6, #12]",
            "mla r1, r8, r10, r1",
            "mla r3, r9, r10, r3",
            "ldrsb r8, [r4, #2]",
            "ldrsb r9, [r4, #6]",
            "ldrsh r10, [r6, #2]",
            "mla r0, r8, r10, r0",
            "mla r2, r9, r10, r2",
            "ldrsh r10, [r6, #10]",
            "mla r1, r8, r10, r1",
            "mla r3, r9, r10, r3",
            "ldrsb r8, [r4, #3]",
            "ldrsb r9, [r4, #7]",
            "ldrsh r10, [r6, #6]",
            "mla r0, r8, r10, r0",
            "mla r2, r9, r10, r2",
            "ldrsh r10, [r6, #14]",
            "mla r1, r8, r10, r1",
            "mla r3, r9, r10, r3",
            "ldrsb r9, [r4, #4]",
            "ldrsb r8, [r4], #8",
            "ldrsh r10, [r6, #8]",
            "mla r1, r8, r10, r1",
            "mla r3, r9, r10, r3",
            "ldrsh r10, [r6], #16",
            "mla r0, r8, r10, r0",
            "mla r2, r9, r10, r2",
            "subs r5, r5, #1",
            "bne 2b",
            // requantize: lr = add + (acc >> 31) + ((acc * multiplier + 2^31) >> 32), then >> right
            "ldr r9, [sp, #16]",
            "ldrd r5, r6, [sp, #20]",
            "ldrd r10, r11, [r9], #8",
            "rbit r12, r11",
            "clz r12, r12",
            requantize!("r0", "r10", "r11", "r12", "r8", "lr"),
            "strb lr, [r5], #1",
            requantize!("r1", "r10", "r11", "r12", "r8", "lr"),
            "strb lr, [r6], #1",
            "ldrd r10, r11, [r9], #8",
            "rbit r12, r11",
            "clz r12, r12",
            requantize!("r2", "r10", "r11", "r12", "r8", "lr"),
            "strb lr, [r5], #1",
            requantize!("r3", "r10", "r11", "r12", "r8", "lr"),
            "strb lr, [r6], #1",
            "str r9, [sp, #16]",
            "strd r5, r6, [sp, #20]",
            "ldr r8, [sp, #28]",
            "subs r8, r8, #1",
            "str r8, [sp, #28]",
            "bne 1b",
            "ldr r6, [sp, #8]",
            "add sp, sp, #32",
            inout("r0") groups => _,
            inout("r4") w.as_ptr() => _,
            inout("r5") x.as_ptr() => _,
            inout("r8") bias2.as_ptr() => _,
            inout("r9") rescale.as_ptr() => _,
            inout("r10") out.as_mut_ptr() => _,
            inout("r11") out1 => _,
            inout("r12") pairs => _,
            out("r1") _, out("r2") _, out("r3") _, out("lr") _,
        )
    };
}

/// One depthwise tap for [`depthwise_pixel`]: lanes 0 and 2 (`w02`, r9) and 1 and 3 (`w13`, r10) into
/// r0..r3, against the halfwords of the two words at the tap's word offset (r11) from the block's inputs (r5:
/// `halves`), or against the one int8 at the tap's byte offset from the pixel's inputs (`bytes`).
macro_rules! depthwise_tap {
    (halves) => {
        concat!(
            "ldm r4!, {{r9, r10, r11}}\n",
            "add r11, r5, r11, lsl #2\n",
            "ldrsh lr, [r11]\n",
            "sxth r12, r9\n",
            "mla r0, r12, lr, r0\n",
            "ldrsh lr, [r11, #2]\n",
            "asr r12, r9, #16\n",
            "mla r2, r12, lr, r2\n",
            "ldrsh lr, [r11, #4]\n",
            "sxth r12, r10\n",
            "mla r1, r12, lr, r1\n",
            "ldrsh lr, [r11, #6]\n",
            "asr r12, r10, #16\n",
            "mla r3, r12, lr, r3\n",
        )
    };
    (bytes) => {
        concat!(
            "ldm r4!, {{r9, r10, r11}}\n",
            "ldrsb lr, [r5, r11]\n",
            "sxth r12, r9\n",
            "mla r0, r12, lr, r0\n",
            "asr r12, r9, #16\n",
            "mla r2, r12, lr, r2\n",
            "sxth r12, r10\n",
            "mla r1, r12, lr, r1\n",
            "asr r12, r10, #16\n",
            "mla r3, r12, lr, r3\n",
        )
    };
}

/// One lane's requantization for [`depthwise_pixel`]: the accumulator `$acc` by the next `Rescale` (r9,
/// advanced) with [`crate::quant::Rescale`]'s short path, `add + (acc >> 31) + ((acc * multiplier + 2^31) >>
/// 32)` shifted right, saturated by SSAT and stored at r10 (advanced).
macro_rules! depthwise_lane_out {
    ($acc:literal) => {
        concat!(
            "ldrd r11, r12, [r9], #8\n",
            "rbit lr, r12\n",
            "clz lr, lr\n",
            requantize!($acc, "r11", "r12", "lr", "r8", "r12"),
            "strb r12, [r10], #1\n",
        )
    };
}

/// [`depthwise_pixel`]'s assembly with the taps of `$tap` (see [`depthwise_tap`]) and its operands;
/// `$advance`: the bytes from one block's inputs to the next's.
macro_rules! depthwise_pixel_asm {
    ($tap:ident, $advance:literal, $taps:ident, $filter:ident, $first:ident, $blocks:ident, $rescale:ident,
     $out:ident, $bias2:ident) => {
        asm!(concat!(
            // frame: taps % 3, taps / 3, the caller's r6 (LLVM's, not an operand: saved and restored here),
            // blocks, rescale, out
            "push {{r0, r1, r6, r8, r9, r10}}\n",
            "mov r6, r12\n",
            "1:\n",
            "ldm r6!, {{r0, r1, r2, r3}}\n",
            // the taps one by one up to a multiple of three, then three at a time
            "ldr r8, [sp]\n",
            "cmp r8, #0\n",
            "beq 4f\n",
            "2:\n",
            depthwise_tap!($tap),
            "subs r8, r8, #1\n",
            "bne 2b\n",
            "4:\n",
            "ldr r8, [sp, #4]\n",
            "cmp r8, #0\n",
            "beq 5f\n",
            "3:\n",
            depthwise_tap!($tap),
            depthwise_tap!($tap),
            depthwise_tap!($tap),
            "subs r8, r8, #1\n",
            "bne 3b\n",
            "5:\n",
            "ldrd r9, r10, [sp, #16]\n",
            depthwise_lane_out!("r0"),
            depthwise_lane_out!("r1"),
            depthwise_lane_out!("r2"),
            depthwise_lane_out!("r3"),
            "strd r9, r10, [sp, #16]\n",
            "add r5, r5, #{advance}\n",
            "ldr r8, [sp, #12]\n",
            "subs r8, r8, #1\n",
            "str r8, [sp, #12]\n",
            "bne 1b\n",
            "ldr r6, [sp, #8]\n",
            "add sp, sp, #24\n",
        ),
            advance = const $advance,
            inout("r0") $taps % 3 => _,
            inout("r1") $taps / 3 => _,
            inout("r4") $filter.as_ptr() => _,
            inout("r5") $first => _,
            inout("r8") $blocks => _,
            inout("r9") $rescale.as_ptr() => _,
            inout("r10") $out.as_mut_ptr() => _,
            inout("r12") $bias2.as_ptr() => _,
            out("r2") _, out("r3") _, out("r11") _, out("lr") _,
        )
    };
}

/// One output pixel of a depthwise convolution whose channels are whole blocks of four lanes, every channel
/// on the short path and the activation range all of int8: per block `b < blocks`, from the block's four
/// `bias2` lanes, the block's `taps` taps of `filter` (per tap the words `(w02, w13, offset)`: see
/// `depthwise`), requantized with [`crate::quant::Rescale`]'s short path and saturated to int8, written to
/// `out[4b..4b + 4]`. Not `BYTES`: the taps read the widened lanes of `x` (the pixel's first block; block
/// `b` reads from word `2b`, tap offsets count words from there); `BYTES` (a depth multiplier of four or
/// more): one int8 each, from byte `base + offset` of `x` (the offsets include the block's input channel).
/// `reach`: the largest tap offset plus one. Per tap (4 MACs) 14 instructions (`BYTES`: 10), the loop's 2
/// per three taps, 48 per block around the taps.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_pixel<const BYTES: bool>(
    x: &[u32],
    base: usize,
    filter: &[u32],
    reach: usize,
    taps: usize,
    blocks: usize,
    bias2: &[i32],
    rescale: &[crate::quant::Rescale],
    out: &mut [i8],
) {
    let inputs_fit = if BYTES { 4 * x.len() >= base + reach } else { x.len() > base + 2 * (blocks - 1) + reach };
    if taps == 0
        || blocks == 0
        || !inputs_fit
        || filter.len() < 3 * taps * blocks
        || bias2.len() < 4 * blocks
        || rescale.len() < 4 * blocks
        || out.len() < 4 * blocks
    {
        return;
    }
    let first = if BYTES { x.as_ptr().cast::<i8>().wrapping_add(base) } else { x.as_ptr().wrapping_add(base).cast() };
    // SAFETY: reads `3 * taps * blocks` words of `filter` in order. Not `BYTES`: per block `b` and tap, the
    // halfwords of the words `base + 2b + offset` and `base + 2b + offset + 1` of `x`, where `offset + 1 <=
    // reach` (the caller's largest offset plus one), below `base + 2 * (blocks - 1) + reach + 1 <= x.len()`;
    // `BYTES`: per tap the byte `base + offset < base + reach <= 4 * x.len()` of `x` (checked above). Then
    // `4 * blocks` words of `bias2`, `4 * blocks` `Rescale`s (`repr(C)`, two words each); writes `4 * blocks`
    // bytes of `out`. Word loads are word-aligned (`u32`/`i32` slices). The 24 bytes it pushes on the stack
    // are popped before it ends.
    unsafe {
        if BYTES {
            depthwise_pixel_asm!(bytes, 0, taps, filter, first, blocks, rescale, out, bias2)
        } else {
            depthwise_pixel_asm!(halves, 8, taps, filter, first, blocks, rescale, out, bias2)
        }
    };
}

/// Every filter row against four output pixels' patches: `x` holds the patches widened to doubled int32,
/// value by value the four pixels side by side (`x[4k + i]`: value `k` of pixel `i`), `w` the filter rows
/// as the conv kernel lays them out (`groups` words per row, the rows of a pair interleaved word by word).
/// Row `r < rows`, from `bias2[r]`, requantized with [`crate::quant::Rescale`]'s short path and saturated
/// to int8 by SSAT, goes to `out[r]` (pixel 0) and `out[offsets[i - 1] + r]` (pixel `i`). The caller checks
/// that every channel takes the short path and that the activation range is all of int8. Per group of four
/// values (16 MACs): four LDRSB, four LDM of the pixels' values, 16 MLAs and the loop's 2; 50 instructions
/// per row around it.
#[allow(clippy::too_many_arguments)]
pub fn conv_rows_4px(
    w: &[u32],
    x: &[u32],
    groups: usize,
    rows: usize,
    bias2: &[i32],
    rescale: &[crate::quant::Rescale],
    out: &mut [i8],
    offsets: [usize; 3],
) {
    let reach = offsets.iter().copied().max().unwrap_or(0);
    if groups == 0
        || rows == 0
        || w.len() < 2 * groups * rows.div_ceil(2)
        || x.len() < 16 * groups
        || bias2.len() < rows
        || rescale.len() < rows
        || out.len() < reach + rows
    {
        return;
    }
    let [d1, d2, d3] = offsets;
    // SAFETY: row `r` reads the bytes of words `2 * groups * (r / 2) + 2g + r % 2` of `w` (`g < groups`):
    // within `2 * groups * ceil(rows / 2)`; `16 * groups` words of `x` per row; `rows` words of `bias2` and
    // `rows` `Rescale`s (`repr(C)`, two words each); writes `out[r]` and `out[d + r]` for each offset `d`,
    // below `reach + rows`: all within the slices (checked above). Word loads are word-aligned (`u32`/`i32`
    // slices). The 48 bytes it pushes on the stack are popped before it ends.
    unsafe {
        asm!(
            // frame: groups, d1, d2, d3, x, the caller's r6 (LLVM's, not an operand: saved and restored
            // here), bias2, rescale, out, rows, this row's first filter byte, the step to the next row's
            // (4 from a pair's first row to its second, 8 * groups - 4 from the second to the next pair)
            "push {{r0, r1, r2, r3, r5, r6, r8, r9, r10, r11, r12, lr}}",
            "1:",
            "ldr r4, [sp, #40]",
            "ldr r8, [sp, #24]",
            "ldr r0, [r8], #4",
            "str r8, [sp, #24]",
            "mov r1, r0",
            "mov r2, r0",
            "mov r3, r0",
            "ldr r5, [sp, #16]",
            "ldr lr, [sp]",
            // accumulators r0..r3 (pixels 0..3), weight r8, the four pixels' value r9..r12
            "2:",
            "ldrsb r8, [r4], #8",
            "ldm r5!, {{r9, r10, r11, r12}}",
            "mla r0, r8, r9, r0",
            "mla r1, r8, r10, r1",
            "mla r2, r8, r11, r2",
            "mla r3, r8, r12, r3",
            "ldrsb r8, [r4, #-7]",
            "ldm r5!, {{r9, r10, r11, r12}}",
            "mla r0, r8, r9, r0",
            "mla r1, r8, r10, r1",
            "mla r2, r8, r11, r2",
            "mla r3, r8, r12, r3",
            "ldrsb r8, [r4, #-6]",
            "ldm r5!, {{r9, r10, r11, r12}}",
            "mla r0, r8, r9, r0",
            "mla r1, r8, r10, r1",
            "mla r2, r8, r11, r2",
            "mla r3, r8, r12, r3",
            "ldrsb r8, [r4, #-5]",
            "ldm r5!, {{r9, r10, r11, r12}}",
            "mla r0, r8, r9, r0",
            "mla r1, r8, r10, r1",
            "mla r2, r8, r11, r2",
            "mla r3, r8, r12, r3",
            "subs lr, lr, #1",
            "bne 2b",
            // requantize: lr = add + (acc >> 31) + ((acc * multiplier + 2^31) >> 32), then >> right
            "ldr r9, [sp, #28]",
            "ldrd r10, r11, [r9], #8",
            "str r9, [sp, #28]",
            "rbit r12, r11",
            "clz r12, r12",
            "ldr r9, [sp, #32]",
            requantize!("r0", "r10", "r11", "r12", "r8", "lr"),
            "strb lr, [r9]",
            "ldr r6, [sp, #4]",
            requantize!("r1", "r10", "r11", "r12", "r8", "lr"),
            "strb lr, [r9, r6]",
            "ldr r6, [sp, #8]",
            requantize!("r2", "r10", "r11", "r12", "r8", "lr"),
            "strb lr, [r9, r6]",
            "ldr r6, [sp, #12]",
            requantize!("r3", "r10", "r11", "r12", "r8", "lr"),
            "strb lr, [r9, r6]",
            "add r9, r9, #1",
            "str r9, [sp, #32]",
            // the next row's first filter byte, and the step after it
            "ldrd r4, r5, [sp, #40]",
            "add r4, r4, r5",
            "ldr r6, [sp]",
            "rsb r5, r5, r6, lsl #3",
            "strd r4, r5, [sp, #40]",
            "ldr r8, [sp, #36]",
            "subs r8, r8, #1",
            "str r8, [sp, #36]",
            "bne 1b",
            "ldr r6, [sp, #20]",
            "add sp, sp, #48",
            inout("r0") groups => _,
            inout("r1") d1 => _,
            inout("r2") d2 => _,
            inout("r3") d3 => _,
            inout("r5") x.as_ptr() => _,
            inout("r8") bias2.as_ptr() => _,
            inout("r9") rescale.as_ptr() => _,
            inout("r10") out.as_mut_ptr() => _,
            inout("r11") rows => _,
            inout("r12") w.as_ptr() => _,
            inout("lr") 4usize => _,
            out("r4") _,
        )
    };
}

/// One row's input word for [`fc_blocks`]: the four weight bytes of row `$r` (at byte `4 * $r` of the
/// block's words for this input word, r4) against the input values r12, r9, r10, r11 into `$acc`.
macro_rules! fc_row_word {
    ($acc:literal, $b0:literal, $b1:literal, $b2:literal, $b3:literal) => {
        concat!(
            "ldrsb lr, [r4, #", $b1, "]\n",
            "mla ", $acc, ", lr, r9, ", $acc, "\n",
            "ldrsb lr, [r4, #", $b2, "]\n",
            "mla ", $acc, ", lr, r10, ", $acc, "\n",
            "ldrsb lr, [r4, #", $b3, "]\n",
            "mla ", $acc, ", lr, r11, ", $acc, "\n",
            "ldrsb lr, [r4, #", $b0, "]\n",
            "mla ", $acc, ", lr, r12, ", $acc, "\n",
        )
    };
}

/// One row's requantization for [`fc_blocks`]: the plain sum `$acc`, doubled, by the `Rescale` at r9 (then
/// advanced by `{rescale_step}`) with [`crate::quant::Rescale`]'s short path, saturated by SSAT, stored at
/// r10 (advanced).
macro_rules! fc_row_out {
    ($acc:literal) => {
        concat!(
            "ldrd r11, r12, [r9], #{rescale_step}\n",
            "rbit lr, r12\n",
            "clz lr, lr\n",
            "lsl ", $acc, ", ", $acc, ", #1\n",
            requantize!($acc, "r11", "r12", "lr", "r8", "r12"),
            "strb r12, [r10], #1\n",
        )
    };
}

/// A fully connected layer's whole loop over blocks of four output rows, the twin of `dsp::fc_blocks` (same
/// arguments, same layouts, same bits): for one input row `x` of `4 * words` int8, per block four
/// interleaved weight rows (`w`: per input word, the four rows' words), from `bias`, requantized with
/// [`crate::quant::Rescale`]'s short path (of twice the sum) and saturated to int8, written to `out[4b..4b +
/// 4]`. `PER_TENSOR`: `rescale` holds one entry that serves every row, else one per row. The caller checks
/// that every channel takes the short path and that the activation range is all of int8. Per input word
/// (16 MACs): four LDRSB of the input, 16 LDRSB of weights, 16 MLAs and the loop's 2; 50 per block around
/// it.
pub fn fc_blocks<const PER_TENSOR: bool>(
    x: &[i8],
    w: &[u32],
    words: usize,
    blocks: usize,
    bias: &[i32],
    rescale: &[crate::quant::Rescale],
    out: &mut [i8],
) {
    if words == 0
        || blocks == 0
        || x.len() < 4 * words
        || w.len() < 4 * words * blocks
        || bias.len() < 4 * blocks
        || rescale.len() < if PER_TENSOR { 1 } else { 4 * blocks }
        || out.len() < 4 * blocks
    {
        return;
    }
    // SAFETY: reads `4 * words` bytes of `x` per block, the bytes of `4 * words * blocks` words of `w`, `4 *
    // blocks` words of `bias` and `4 * blocks` `Rescale`s (one if `PER_TENSOR`, read again; `repr(C)`, two
    // words each), writes `4 * blocks` bytes of `out`: all within the slices (checked above); word loads of
    // `bias` and `rescale` are word-aligned. The 24 bytes it pushes are popped before it ends.
    unsafe {
        asm!(
            // frame: x, words, bias, rescale, out, blocks
            "push {{r5, r8, r9, r10, r11, r12}}",
            "1:",
            "ldr r9, [sp, #8]",
            "ldm r9!, {{r0, r1, r2, r3}}",
            "str r9, [sp, #8]",
            "ldrd r5, r8, [sp]",
            // accumulators r0..r3 (rows), input values r12, r9, r10, r11, weight lr
            "2:",
            "ldrsb r9, [r5, #1]",
            "ldrsb r10, [r5, #2]",
            "ldrsb r11, [r5, #3]",
            "ldrsb r12, [r5], #4",
            fc_row_word!("r1", "4", "5", "6", "7"),
            fc_row_word!("r2", "8", "9", "10", "11"),
            fc_row_word!("r3", "12", "13", "14", "15"),
            "ldrsb lr, [r4, #1]",
            "mla r0, lr, r9, r0",
            "ldrsb lr, [r4, #2]",
            "mla r0, lr, r10, r0",
            "ldrsb lr, [r4, #3]",
            "mla r0, lr, r11, r0",
            "ldrsb lr, [r4], #16",
            "mla r0, lr, r12, r0",
            "subs r8, r8, #1",
            "bne 2b",
            "ldrd r9, r10, [sp, #12]",
            fc_row_out!("r0"),
            fc_row_out!("r1"),
            fc_row_out!("r2"),
            fc_row_out!("r3"),
            "strd r9, r10, [sp, #12]",
            "ldr r8, [sp, #20]",
            "subs r8, r8, #1",
            "str r8, [sp, #20]",
            "bne 1b",
            "add sp, sp, #24",
            rescale_step = const if PER_TENSOR { 0 } else { 8 },
            inout("r4") w.as_ptr() => _,
            inout("r5") x.as_ptr() => _,
            inout("r8") words => _,
            inout("r9") bias.as_ptr() => _,
            inout("r10") rescale.as_ptr() => _,
            inout("r11") out.as_mut_ptr() => _,
            inout("r12") blocks => _,
            out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("lr") _,
        )
    };
}
