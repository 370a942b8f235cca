//! The Cortex-M DSP extension's SIMD multiply-accumulates (ARMv7E-M: Cortex-M4, M7), as inline assembly.
//!
//! Compiled only with `cfg(tinyml_dsp)` (set by build.rs for `thumbv7em-*` targets: on stable Rust the
//! `dsp` target feature is not visible to `cfg(target_feature)`, and `core::arch::arm`'s DSP intrinsics are
//! unstable). The first functions are one instruction on registers: no memory access, no stack. The rest
//! are whole inner loops in assembly, because LLVM's register allocator spills accumulators of the same
//! loops written with the one-instruction functions (13 registers are free with the frame pointer in r7:
//! exactly what they need); they read memory only inside slices whose lengths they check first. Every
//! kernel has a portable twin computing the same bits.
#![allow(unsafe_code)]

use core::arch::asm;

/// Bytes 0 and 2 of `x`, sign-extended into the low and high halfwords.
#[inline(always)]
pub fn sxtb16(x: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only instruction.
    unsafe { asm!("sxtb16 {0}, {1}", lateout(reg) r, in(reg) x, options(pure, nomem, nostack, preserves_flags)) };
    r
}

/// Bytes 1 and 3 of `x`, sign-extended into the low and high halfwords.
#[inline(always)]
pub fn sxtb16_ror8(x: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only instruction.
    unsafe { asm!("sxtb16 {0}, {1}, ror #8", lateout(reg) r, in(reg) x, options(pure, nomem, nostack, preserves_flags)) };
    r
}

/// `acc + a.lo * b.lo + a.hi * b.hi` on signed halfwords (wrapping, like the C accumulators it replaces).
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let mut acc = acc;
    // SAFETY: register-only instruction (it may set the sticky Q flag, which nothing reads).
    unsafe { asm!("smlad {0}, {1}, {2}, {0}", inout(reg) acc, in(reg) a, in(reg) b, options(pure, nomem, nostack)) };
    acc
}

/// Halfword-wise `a + b` (wrapping per halfword).
#[inline(always)]
pub fn sadd16(a: u32, b: u32) -> u32 {
    let r: u32;
    // SAFETY: register-only instruction (it sets the GE flags, which nothing reads).
    unsafe { asm!("sadd16 {0}, {1}, {2}", lateout(reg) r, in(reg) a, in(reg) b, options(pure, nomem, nostack)) };
    r
}

/// `add + ((a * b + 2^31) >> 32)`: the high word of the product, rounded, plus `add`.
#[inline(always)]
pub fn smmlar(a: i32, b: i32, add: i32) -> i32 {
    let r: i32;
    // SAFETY: register-only instruction.
    unsafe { asm!("smmlar {0}, {1}, {2}, {3}", lateout(reg) r, in(reg) a, in(reg) b, in(reg) add, options(pure, nomem, nostack, preserves_flags)) };
    r
}

/// `v` saturated to -128..=127.
#[inline(always)]
pub fn ssat8(v: i32) -> i32 {
    let r: i32;
    // SAFETY: register-only instruction (it may set the sticky Q flag, which nothing reads).
    unsafe { asm!("ssat {0}, #8, {1}", lateout(reg) r, in(reg) v, options(pure, nomem, nostack)) };
    r
}

/// Two filter rows against two widened patches (the conv kernel's 2x2 block): `w` holds the rows' words
/// interleaved (row 0 word g, row 1 word g, ...), `x` per group `g` the words `(x0 even, x0 odd, x1 even,
/// x1 odd)`; `acc` is `[row0 px0, row0 px1, row1 px0, row1 px1]`. 18 instructions per 16 MACs (pre-widened
/// rows: [`dot_2rows_2px_stream`]).
#[inline(always)]
pub fn dot_2rows_2px(w: &[u32], x: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let groups = (w.len() / 2).min(x.len() / 4);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if groups == 0 {
        return acc;
    }
    // SAFETY: reads `2 * groups` words from `w` and `4 * groups` from `x`, within
    // both slices; both are `u32` slices, so word-aligned as LDRD requires. Registers only otherwise; the
    // stack is not touched.
    unsafe {
        asm!(
            "2:",
            "ldr {w}, [{pw}], #4",
            "ldrd {x0e}, {x0o}, [{px}], #8",
            "ldrd {x1e}, {x1o}, [{px}], #8",
            "sxtb16 {t}, {w}",
            "smlad {a0}, {t}, {x0e}, {a0}",
            "smlad {a1}, {t}, {x1e}, {a1}",
            "sxtb16 {t}, {w}, ror #8",
            "smlad {a0}, {t}, {x0o}, {a0}",
            "smlad {a1}, {t}, {x1o}, {a1}",
            "ldr {w}, [{pw}], #4",
            "sxtb16 {t}, {w}",
            "smlad {a2}, {t}, {x0e}, {a2}",
            "smlad {a3}, {t}, {x1e}, {a3}",
            "sxtb16 {t}, {w}, ror #8",
            "smlad {a2}, {t}, {x0o}, {a2}",
            "smlad {a3}, {t}, {x1o}, {a3}",
            "subs {n}, {n}, #1",
            "bne 2b",
            pw = inout(reg) w.as_ptr() => _, px = inout(reg) x.as_ptr() => _, n = inout(reg) groups => _,
            w = out(reg) _, t = out(reg) _, x0e = out(reg) _, x0o = out(reg) _, x1e = out(reg) _,
            x1o = out(reg) _, a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2, a3 = inout(reg) a3,
            options(readonly, nostack),
        )
    };
    [a0, a1, a2, a3]
}

/// The whole words of `x` (int8, any alignment) against four interleaved weight rows (`w`: per input word,
/// the four rows' words): `acc[r] += row r . x`. 23 instructions per 16 MACs.
#[inline(always)]
pub fn dot_4rows(x: &[i8], w: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let words = (x.len() / 4).min(w.len() / 4);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if words == 0 {
        return acc;
    }
    // SAFETY: reads `4 * words` bytes of `x` (LDR allows any alignment on ARMv7-M) and `4 * words` words of
    // `w` (a `u32` slice: word-aligned for LDRD), within both slices. Registers only otherwise.
    unsafe {
        asm!(
            "2:",
            "ldr {xw}, [{px}], #4",
            "sxtb16 {xe}, {xw}",
            "sxtb16 {xo}, {xw}, ror #8",
            "ldrd {xw}, {w2}, [{pw}], #8",
            "sxtb16 {t}, {xw}",
            "smlad {a0}, {t}, {xe}, {a0}",
            "sxtb16 {t}, {xw}, ror #8",
            "smlad {a0}, {t}, {xo}, {a0}",
            "sxtb16 {t}, {w2}",
            "smlad {a1}, {t}, {xe}, {a1}",
            "sxtb16 {t}, {w2}, ror #8",
            "smlad {a1}, {t}, {xo}, {a1}",
            "ldrd {xw}, {w2}, [{pw}], #8",
            "sxtb16 {t}, {xw}",
            "smlad {a2}, {t}, {xe}, {a2}",
            "sxtb16 {t}, {xw}, ror #8",
            "smlad {a2}, {t}, {xo}, {a2}",
            "sxtb16 {t}, {w2}",
            "smlad {a3}, {t}, {xe}, {a3}",
            "sxtb16 {t}, {w2}, ror #8",
            "smlad {a3}, {t}, {xo}, {a3}",
            "subs {n}, {n}, #1",
            "bne 2b",
            px = inout(reg) x.as_ptr() => _, pw = inout(reg) w.as_ptr() => _, n = inout(reg) words => _,
            xw = out(reg) _, w2 = out(reg) _, xe = out(reg) _, xo = out(reg) _, t = out(reg) _,
            a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2, a3 = inout(reg) a3,
            options(readonly, nostack),
        )
    };
    [a0, a1, a2, a3]
}

/// `buf[..len] = buf[from..from + len]`, eight words at a time (LDM/STM: half an instruction per word), the
/// rest one by one; nothing when the range is not inside `buf`. A forward copy: each word is read before any
/// write reaches it (the destination starts `from >= 1` words below the source).
pub fn move_words_down(buf: &mut [u32], from: usize, len: usize) {
    if from == 0 || from.checked_add(len).is_none_or(|end| end > buf.len()) {
        return;
    }
    let octets = len / 8;
    if octets > 0 {
        // SAFETY: reads words `from..from + 8 * octets` and writes words `0..8 * octets` of `buf`, inside it
        // (checked above), both word-aligned (`u32`); each LDM reads its eight words before the STM writes
        // eight words that end below the next LDM's first (`from >= 1`). No stack.
        unsafe {
            asm!(
                "2:",
                "ldm {src}!, {{r2, r3, r4, r5, r8, r9, r10, r11}}",
                "stm {dst}!, {{r2, r3, r4, r5, r8, r9, r10, r11}}",
                "subs {n}, {n}, #1",
                "bne 2b",
                src = inout(reg) buf.as_ptr().wrapping_add(from) => _, dst = inout(reg) buf.as_mut_ptr() => _,
                n = inout(reg) octets => _,
                out("r2") _, out("r3") _, out("r4") _, out("r5") _, out("r8") _, out("r9") _, out("r10") _,
                out("r11") _,
                options(nostack),
            )
        };
    }
    for i in 8 * octets..len {
        buf[i] = buf[from + i];
    }
}

/// Every four int8 of `src` as two int16-pair words of `dst` (lanes (0, 2), then (1, 3): what [`sxtb16`] and
/// [`sxtb16_ror8`] make of them), for as many words as both hold: two input words per iteration, 5
/// instructions a word (LDR takes the input at any alignment).
pub fn widen_words(src: &[i8], dst: &mut [u32]) {
    let n = (src.len() / 4).min(dst.len() / 2);
    let pairs = n / 2;
    if pairs > 0 {
        // SAFETY: reads bytes `0..8 * pairs` of `src` and writes words `0..4 * pairs` of `dst`, inside them
        // (`2 * pairs <= n`); STRD's address is word-aligned (`u32`), LDR's need not be on ARMv7E-M. No stack.
        unsafe {
            asm!(
                "2:",
                "ldr {a}, [{s}], #4",
                "ldr {b}, [{s}], #4",
                "sxtb16 {c}, {a}",
                "sxtb16 {a}, {a}, ror #8",
                "strd {c}, {a}, [{d}], #8",
                "sxtb16 {c}, {b}",
                "sxtb16 {b}, {b}, ror #8",
                "strd {c}, {b}, [{d}], #8",
                "subs {n}, {n}, #1",
                "bne 2b",
                s = inout(reg) src.as_ptr() => _, d = inout(reg) dst.as_mut_ptr() => _, n = inout(reg) pairs => _,
                a = out(reg) _, b = out(reg) _, c = out(reg) _,
                options(nostack),
            )
        };
    }
    if n % 2 == 1 {
        let k = n - 1;
        if let (Some(s), Some(d)) = (src.get(4 * k..4 * k + 4), dst.get_mut(2 * k..2 * k + 2)) {
            let w = u32::from_le_bytes([s[0] as u8, s[1] as u8, s[2] as u8, s[3] as u8]);
            d[0] = sxtb16(w);
            d[1] = sxtb16_ror8(w);
        }
    }
}

/// A depthwise filter block's taps, checked once: per tap the words `(w02, w13, offset)`, where `w02` and
/// `w13` hold the weights of lanes (0, 2) and (1, 3) as int16 pairs and `offset` is the word index, relative
/// to the output pixel's first word, of the tap's widened input lanes (0, 2) (lanes (1, 3) follow), or for
/// [`taps_4lanes_bytes`] the byte index of the tap's one input value. `reach` is one past the largest
/// offset.
#[derive(Clone, Copy)]
pub struct TapStream<'a> {
    words: &'a [u32],
    reach: usize,
}

impl<'a> TapStream<'a> {
    /// All of a layer's blocks: whole taps only; `reach` from the largest offset.
    pub fn new(words: &'a [u32]) -> Self {
        let words = &words[..words.len() / 3 * 3];
        let reach = words.chunks_exact(3).map(|t| t[2] as usize + 1).max().unwrap_or(0);
        TapStream { words, reach }
    }

    /// Taps `first..first + count` (one block's), keeping the whole stream's `reach`.
    #[inline(always)]
    pub fn part(&self, first: usize, count: usize) -> Option<TapStream<'a>> {
        let words = self.words.get(3 * first..3 * (first + count))?;
        Some(TapStream { words, reach: self.reach })
    }
}

/// Four lanes of a depthwise block against their taps: `acc[l] += w[t][l] * x[offset_t][l]` over the taps,
/// with `x` the widened input starting at the output pixel's block (see [`TapStream`]). 7 instructions per
/// tap (4 MACs): LDM of the weights and offset, two register-offset loads, four halfword MACs.
#[inline(always)]
pub fn taps_4lanes(x: &[u32], taps: &TapStream, acc: [i32; 4]) -> [i32; 4] {
    let n = taps.words.len() / 3;
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if n == 0 || x.len() < taps.reach + 1 {
        return acc;
    }
    // SAFETY: reads the `3 * n` words of `taps.words` in order, and per tap the words `offset` and
    // `offset + 1` of `x`, where `offset + 2 <= taps.reach + 1 <= x.len()` (checked by `TapStream::new` and
    // above); all `u32`, so word-aligned as LDM requires. Registers only otherwise; no stack.
    unsafe {
        asm!(
            "lsrs {n}, {n}, #1",
            "bcc 3f",
            "ldm {pw}!, {{r3, r4, r5}}",
            "ldr {x0}, [{pb}, r5, lsl #2]",
            "ldr {x1}, [{pb1}, r5, lsl #2]",
            "smlabb {a0}, r3, {x0}, {a0}",
            "smlatt {a2}, r3, {x0}, {a2}",
            "smlabb {a1}, r4, {x1}, {a1}",
            "smlatt {a3}, r4, {x1}, {a3}",
            "3:",
            "cmp {n}, #0",
            "beq 4f",
            "2:",
            "ldm {pw}!, {{r3, r4, r5}}",
            "ldr {x0}, [{pb}, r5, lsl #2]",
            "ldr {x1}, [{pb1}, r5, lsl #2]",
            "smlabb {a0}, r3, {x0}, {a0}",
            "smlatt {a2}, r3, {x0}, {a2}",
            "smlabb {a1}, r4, {x1}, {a1}",
            "smlatt {a3}, r4, {x1}, {a3}",
            "ldm {pw}!, {{r3, r4, r5}}",
            "ldr {x0}, [{pb}, r5, lsl #2]",
            "ldr {x1}, [{pb1}, r5, lsl #2]",
            "smlabb {a0}, r3, {x0}, {a0}",
            "smlatt {a2}, r3, {x0}, {a2}",
            "smlabb {a1}, r4, {x1}, {a1}",
            "smlatt {a3}, r4, {x1}, {a3}",
            "subs {n}, {n}, #1",
            "bne 2b",
            "4:",
            pw = inout(reg) taps.words.as_ptr() => _, pb = in(reg) x.as_ptr(), pb1 = in(reg) x.as_ptr().wrapping_add(1),
            n = inout(reg) n => _, x0 = out(reg) _, x1 = out(reg) _,
            out("r3") _, out("r4") _, out("r5") _,
            a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2, a3 = inout(reg) a3,
            options(readonly, nostack),
        )
    };
    [a0, a1, a2, a3]
}

/// `conv_pairs_2px`' assembly around its inner loop (the template lines that run it to its end, over `groups` groups with the filter pointer in r4, the patches' pointer in r6, the count in r5 and the
/// accumulators in r0..r3; r8..r12 and lr are free).
macro_rules! conv_pairs_asm {
    ($w:ident, $x:ident, $groups:ident, $pairs:ident, $bias2:ident, $rescale:ident, $out:ident, $out1:ident, $($inner:literal,)*) => {
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
            $($inner,)*
            "ldr r9, [sp, #16]",
            "ldrd r5, r6, [sp, #20]",
            "ldrd r10, r11, [r9], #8",
            "rbit r12, r11",
            "clz r12, r12",
            "smmlar r8, r0, r10, r11",
            "add r8, r8, r0, asr #31",
            "asr r8, r8, r12",
            "ssat r8, #8, r8, asr #1",
            "strb r8, [r5], #1",
            "smmlar r8, r1, r10, r11",
            "add r8, r8, r1, asr #31",
            "asr r8, r8, r12",
            "ssat r8, #8, r8, asr #1",
            "strb r8, [r6], #1",
            "ldrd r10, r11, [r9], #8",
            "rbit r12, r11",
            "clz r12, r12",
            "smmlar r8, r2, r10, r11",
            "add r8, r8, r2, asr #31",
            "asr r8, r8, r12",
            "ssat r8, #8, r8, asr #1",
            "strb r8, [r5], #1",
            "smmlar r8, r3, r10, r11",
            "add r8, r8, r3, asr #31",
            "asr r8, r8, r12",
            "ssat r8, #8, r8, asr #1",
            "strb r8, [r6], #1",
            "str r9, [sp, #16]",
            "strd r5, r6, [sp, #20]",
            "ldr r8, [sp, #28]",
            "subs r8, r8, #1",
            "str r8, [sp, #28]",
            "bne 1b",
            "ldr r6, [sp, #8]",
            "add sp, sp, #32",
            inout("r0") $groups => _,
            inout("r4") $w.as_ptr() => _,
            inout("r5") $x.as_ptr() => _,
            inout("r8") $bias2.as_ptr() => _,
            inout("r9") $rescale.as_ptr() => _,
            inout("r10") $out.as_mut_ptr() => _,
            inout("r11") $out1 => _,
            inout("r12") $pairs => _,
            out("r1") _, out("r2") _, out("r3") _, out("lr") _,
        )
    };
}

/// A 1x1-blocked convolution's whole output-channel loop for two output pixels: for every pair `p <
/// pairs` of filter rows (`w`: the rows' words interleaved, `groups` words per row), the dot products with
/// the two widened patches in `x` (per group the words `(x0 even, x0 odd, x1 even, x1 odd)`, doubled
/// values), from `bias2`, requantized with [`crate::quant::Rescale`]'s short path and saturated to int8,
/// written to `out[2p..2p + 2]` (pixel 0) and `out[px1 + 2p..]` (pixel 1; `px1 == 0` when both pixels
/// are the same one, which then gets the same bytes twice). The caller checks that every channel takes the
/// short path and that the activation range is all of int8. 18 instructions per 16 MACs in the inner
/// loop, 35 per channel pair around it. Pre-widened filters take [`conv_pairs_2px_stream`] instead.
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
    // SAFETY: reads `2 * groups * pairs` words of `w`, `4 * groups` words of `x` per pair, `2 * pairs`
    // words of `bias2` and `2 * pairs` `Rescale`s (`repr(C)`, two words each), writes `2 * pairs` bytes
    // from `out` and from `out + px1`: all within the slices (checked above); word loads are word-aligned
    // (`u32`/`i32` slices). The 32 bytes it pushes on the stack are popped before it ends.
    unsafe {
        conv_pairs_asm!(w, x, groups, pairs, bias2, rescale, out, out1,
            "2:",
            "ldr r8, [r4], #4",
            "ldrd r10, r11, [r6], #8",
            "ldrd r12, lr, [r6], #8",
            "sxtb16 r9, r8",
            "smlad r0, r9, r10, r0",
            "smlad r1, r9, r12, r1",
            "sxtb16 r9, r8, ror #8",
            "smlad r0, r9, r11, r0",
            "smlad r1, r9, lr, r1",
            "ldr r8, [r4], #4",
            "sxtb16 r9, r8",
            "smlad r2, r9, r10, r2",
            "smlad r3, r9, r12, r3",
            "sxtb16 r9, r8, ror #8",
            "smlad r2, r9, r11, r2",
            "smlad r3, r9, lr, r3",
            "subs r5, r5, #1",
            "bne 2b",
        )
    };
}

/// One group of the filter stream's inner loop: the four patch words at lr and the four filter words at r12
/// (two LDMs) into the 2x2 block's accumulators r0..r3 (eight SMLADs): 16 MACs in ten 32-bit instructions,
/// [`STREAM_GROUP_BYTES`] of code (the loops' computed jumps rely on it, and their assembly checks it).
macro_rules! stream_group {
    () => {
        concat!(
            "ldm.w lr!, {{r4, r5, r6, r7}}\n",
            "ldm.w r12!, {{r8, r9, r10, r11}}\n",
            "smlad r0, r8, r4, r0\n",
            "smlad r1, r8, r6, r1\n",
            "smlad r0, r9, r5, r0\n",
            "smlad r1, r9, r7, r1\n",
            "smlad r2, r10, r4, r2\n",
            "smlad r3, r10, r6, r3\n",
            "smlad r2, r11, r5, r2\n",
            "smlad r3, r11, r7, r3\n",
        )
    };
}

/// The requantization of a channel pair's four accumulators (r0..r3) with the stream's six words at r12
/// (TFLM's short path, saturated to int8: the full activation range), stored at out0 and out1 (`[sp, #12]`,
/// `[sp, #16]`: r10 and r11, advanced by two), r4..r9 and lr clobbered: one string of assembly for the frames of
/// [`conv_stream_asm`] and [`conv_pixels_asm`].
macro_rules! stream_full_epilogue {
    () => {
        concat!(
            "ldm r12!, {{r4, r5, r6, r7, r8, r9}}\n",
            "ldrd r10, r11, [sp, #12]\n",
            "smmlar lr, r0, r4, r5\n",
            "add lr, lr, r0, asr #31\n",
            "asr lr, lr, r8\n",
            "ssat lr, #8, lr, asr #1\n",
            "strb lr, [r10], #1\n",
            "smmlar lr, r1, r4, r5\n",
            "add lr, lr, r1, asr #31\n",
            "asr lr, lr, r8\n",
            "ssat lr, #8, lr, asr #1\n",
            "strb lr, [r11], #1\n",
            "smmlar lr, r2, r6, r7\n",
            "add lr, lr, r2, asr #31\n",
            "asr lr, lr, r9\n",
            "ssat lr, #8, lr, asr #1\n",
            "strb lr, [r10], #1\n",
            "smmlar lr, r3, r6, r7\n",
            "add lr, lr, r3, asr #31\n",
            "asr lr, lr, r9\n",
            "ssat lr, #8, lr, asr #1\n",
            "strb lr, [r11], #1\n",
        )
    };
}

/// `conv_pairs_2px_stream`'s assembly with one group's lines (`$group`: patch words at lr, filter words at
/// r12, accumulators in r0..r3) written out [`STREAM_CHUNK`] times: a chunk.
macro_rules! conv_stream_asm {
    ($x:ident, $full:ident, $skip:ident, $out:ident, $out1:ident, $out_end:ident, $x_full_end:ident, $w:ident, $($group:expr,)*) => {
        asm!(
            // frame: x, entry (of the full chunks' loop, or into the last chunk), x_full_end, out0, out1,
            // out_end, the entry into the last chunk, the caller's r6 and r7
            "push {{r6, r7}}",
            "adr r6, 7f",
            "add r6, r6, r2",
            "orr r6, r6, #1",
            "adr r7, 5f",
            "orr r7, r7, #1",
            "cmp r1, #0",
            "ite eq",
            "moveq r1, r6",
            "movne r1, r7",
            "mov r2, r8",
            "push {{r0, r1, r2, r3, r4, r5, r6}}",
            "1:",
            "ldm r12!, {{r0, r1, r2, r3}}",
            "ldrd lr, r4, [sp]",
            "bx r4",
            // the full chunks, looped until the patch pointer reaches x_full_end
            "5:",
            $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)*
            "8:",
            ".if 8b - 5b - 640",
            ".error \"conv_pairs_2px_stream: a group is not 40 bytes of code\"",
            ".endif",
            "ldr r4, [sp, #8]",
            "cmp lr, r4",
            "bne 5b",
            "ldr r4, [sp, #24]",
            "bx r4",
            // the last chunk, entered at its remainder's first group
            "7:",
            $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)*
            "6:",
            ".if 6b - 7b - 640",
            ".error \"conv_pairs_2px_stream: a group is not 40 bytes of code\"",
            ".endif",
            stream_full_epilogue!(),
            "ldr r4, [sp, #20]",
            "strd r10, r11, [sp, #12]",
            "cmp r10, r4",
            "bne 1b",
            "add sp, sp, #28",
            "pop {{r6, r7}}",
            inout("r0") $x.as_ptr() => _,
            inout("r1") $full => _,
            inout("r2") $skip => _,
            inout("r3") $out.as_mut_ptr() => _,
            inout("r4") $out1 => _,
            inout("r5") $out_end => _,
            inout("r8") $x_full_end => _,
            inout("r12") $w.as_ptr() => _,
            out("r9") _, out("r10") _, out("r11") _, out("lr") _,
        )
    };
}

/// The assembly of [`conv_1x1_stream`] and [`conv_window_stream`], written once for both and for both
/// activation ranges: `conv_pixels_asm!(pointwise | window, full | clamped, frame)`. For every pixel pair
/// the lines that put both pixels' patches into the patch words `x` (any registers but sp; they store the
/// next pair's input pointer back at `[sp, #28]`), then [`conv_stream_asm`]'s loop over the channel pairs,
/// whose epilogue requantizes a channel pair's four accumulators (r0..r3) and stores them at out0 and out1
/// (r10 and r11 after `ldrd r10, r11, [sp, #12]`, advanced by two), with r4..r9 and lr free.
macro_rules! conv_pixels_asm {
    // both pixels' values as int16 pairs, group by group (x0 even, x0 odd, x1 even, x1 odd): 7 instructions
    (pointwise, $range:ident, $frame:ident) => {
        conv_pixels_asm!($range $frame, [
            "ldr r0, [sp, #28]",
            "ldr r3, [sp, #36]",
            "add r1, r0, r3, lsl #2",
            "ldr r2, [sp]",
            "3:",
            "ldr r4, [r0], #4",
            "ldr r5, [r1], #4",
            "sxtb16 r8, r4",
            "sxtb16 r9, r4, ror #8",
            "sxtb16 r10, r5",
            "sxtb16 r11, r5, ror #8",
            "stm r2!, {{r8, r9, r10, r11}}",
            "subs r3, r3, #1",
            "bne 3b",
            "str r1, [sp, #28]",
        ])
    };
    // pixel by pixel (r6: its window's first byte, r7: its slot of x, r11: pixels left): the window's runs
    // copied word by word into the stage, each rounded up to whole words (LDR and STR at any alignment: the
    // next run overwrites the spill), then the stage widened into the pixel's slot as `widen_slot` does
    (window, $range:ident, $frame:ident) => {
        conv_pixels_asm!($range $frame, [
            "ldr r6, [sp, #28]",
            "ldr r7, [sp]",
            "mov r11, #2",
            "3:",
            "mov r0, r6",
            "ldr r2, [sp, #56]",
            "ldrd r3, r5, [sp, #60]",
            "ldrd r8, r9, [sp, #68]",
            "4:",
            "mov r1, r0",
            "mov r4, r5",
            "9:",
            "ldr lr, [r1], #4",
            "str lr, [r2], #4",
            "subs r4, r4, #1",
            "bne 9b",
            "sub r2, r2, r9",
            "add r0, r0, r8",
            "subs r3, r3, #1",
            "bne 4b",
            "ldr r0, [sp, #56]",
            "ldr r3, [sp, #36]",
            "10:",
            "ldr r4, [r0], #4",
            "sxtb16 r8, r4",
            "sxtb16 r9, r4, ror #8",
            "strd r8, r9, [r7], #16",
            "subs r3, r3, #1",
            "bne 10b",
            "ldr r7, [sp]",
            "add r7, r7, #8",
            "ldr r4, [sp, #76]",
            "add r6, r6, r4",
            "subs r11, r11, #1",
            "bne 3b",
            "str r6, [sp, #28]",
        ])
    };
    // the saturation to int8 is the clamp
    (full $frame:ident, [$($load:literal,)*]) => {
        conv_pixels_asm!(@groups $frame, [$($load,)*], [stream_full_epilogue!(),])
    };
    // the four outputs of a channel pair clamped at once with SSUB8 and SEL on a word that packs them
    (clamped $frame:ident, [$($load:literal,)*]) => {
        conv_pixels_asm!(@groups $frame, [$($load,)*], [
            "ldm r12!, {{r4, r5, r6, r7, r8, r9}}",
            "smmlar lr, r0, r4, r5",
            "add lr, lr, r0, asr #31",
            "asr lr, lr, r8",
            "ssat r0, #8, lr, asr #1",
            "smmlar lr, r1, r4, r5",
            "add lr, lr, r1, asr #31",
            "asr lr, lr, r8",
            "ssat r1, #8, lr, asr #1",
            "smmlar lr, r2, r6, r7",
            "add lr, lr, r2, asr #31",
            "asr lr, lr, r9",
            "ssat r2, #8, lr, asr #1",
            "smmlar lr, r3, r6, r7",
            "add lr, lr, r3, asr #31",
            "asr lr, lr, r9",
            "ssat r3, #8, lr, asr #1",
            // bytes (channel 0, channel 1) of pixel 0, then of pixel 1: max with act_min, min with act_max
            "bfi r0, r2, #8, #8",
            "bfi r0, r1, #16, #8",
            "bfi r0, r3, #24, #8",
            "ldrd r4, r5, [sp, #48]",
            "ssub8 lr, r0, r4",
            "sel r0, r0, r4",
            "ssub8 lr, r5, r0",
            "sel r0, r0, r5",
            "ldrd r10, r11, [sp, #12]",
            "strh r0, [r10], #2",
            "lsr r0, r0, #16",
            "strh r0, [r11], #2",
        ])
    };
    (@groups $frame:ident, [$($load:literal,)*], [$($epilogue:expr,)*]) => {
        conv_pixels_asm!(@emit $frame, [$($load,)*], [$($epilogue,)*],
            stream_group!(),
        )
    };
    (@emit $frame:ident, [$($load:literal,)*], [$($epilogue:expr,)*], $($group:expr,)*) => {
        asm!(
            // frame (copied from the caller's `frame`, then the entries computed): x, entry, x_full_end, out0,
            // out1, out_end, the entry into the last chunk, input, w, groups, the end of all outputs, out_c,
            // act_min and act_max in every byte, then the window's stage, rows, words per run, input bytes
            // between runs, bytes back from a rounded run's end and input bytes between pixels; the caller's r6
            // and r7
            "push {{r6, r7}}",
            "sub sp, sp, #80",
            "ldm r0!, {{r1, r2, r3, r4, r5, r6}}",
            "stm sp, {{r1, r2, r3, r4, r5, r6}}",
            "ldm r0!, {{r1, r2, r3, r4, r5, r6}}",
            "add r7, sp, #24",
            "stm r7, {{r1, r2, r3, r4, r5, r6}}",
            "ldm r0!, {{r1, r2, r3, r4, r5, r6}}",
            "add r7, sp, #48",
            "stm r7, {{r1, r2, r3, r4, r5, r6}}",
            "ldm r0, {{r1, r2}}",
            "strd r1, r2, [sp, #72]",
            "ldr r2, [sp, #24]",
            "adr r6, 7f",
            "add r6, r6, r2",
            "orr r6, r6, #1",
            "str r6, [sp, #24]",
            "ldr r1, [sp, #4]",
            "adr r7, 5f",
            "orr r7, r7, #1",
            "cmp r1, #0",
            "ite eq",
            "moveq r1, r6",
            "movne r1, r7",
            "str r1, [sp, #4]",
            "2:",
            $($load,)*
            "ldr r12, [sp, #32]",
            "1:",
            "ldm r12!, {{r0, r1, r2, r3}}",
            "ldrd lr, r4, [sp]",
            "bx r4",
            "5:",
            $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)*
            "8:",
            ".if 8b - 5b - 640",
            ".error \"conv_pixels_asm: a group is not 40 bytes of code\"",
            ".endif",
            "ldr r4, [sp, #8]",
            "cmp lr, r4",
            "bne 5b",
            "ldr r4, [sp, #24]",
            "bx r4",
            "7:",
            $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)*
            "6:",
            ".if 6b - 7b - 640",
            ".error \"conv_pixels_asm: a group is not 40 bytes of code\"",
            ".endif",
            $($epilogue,)*
            "ldr r4, [sp, #20]",
            "strd r10, r11, [sp, #12]",
            "cmp r10, r4",
            "bne 1b",
            // the next pixel pair's outputs start where pixel 1's end
            "ldr r4, [sp, #44]",
            "add r5, r11, r4",
            "strd r11, r5, [sp, #12]",
            "str r5, [sp, #20]",
            "ldr r4, [sp, #40]",
            "cmp r11, r4",
            "bne 2b",
            "add sp, sp, #80",
            "pop {{r6, r7}}",
            inout("r0") $frame.as_ptr() => _,
            out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _, out("r8") _, out("r9") _,
            out("r10") _, out("r11") _, out("r12") _, out("lr") _,
        )
    };
}

/// The first 14 words of [`conv_pixels_asm`]'s frame, for `pixel_pairs` pixel pairs whose first pixel's
/// input (or window) starts at `input` and whose outputs fill `out` from its start.
#[allow(clippy::too_many_arguments)]
fn pixels_frame(w: &[u32], input: *const i8, groups: usize, pairs: usize, pixel_pairs: usize, out: &mut [i8], x: &mut [u32], act: (i32, i32)) -> [usize; 14] {
    let last = (groups - 1) % STREAM_CHUNK + 1;
    let skip = (STREAM_CHUNK - last) * STREAM_GROUP_BYTES;
    let full = (groups - last) / STREAM_CHUNK;
    let x0 = x.as_mut_ptr() as usize;
    let out0 = out.as_mut_ptr() as usize;
    let out_c = 2 * pairs;
    let bytes = |v: i32| (v as u8 as usize).wrapping_mul(0x0101_0101);
    [
        x0, full, x0 + 16 * (groups - last), out0, out0 + out_c, out0 + out_c, skip, input as usize,
        w.as_ptr() as usize, groups, out0 + 2 * out_c * pixel_pairs, out_c, bytes(act.0), bytes(act.1),
    ]
}

/// A 1x1 convolution with stride 1 over `pixel_pairs` pairs of consecutive pixels (`input`: their values,
/// `4 * groups` int8 each, back to back), all in one call: per pixel pair both pixels widened into `x` (the
/// patch words of [`conv_pairs_2px_stream`], plain values: the stream's weights are doubled), then every
/// channel pair of the filter stream `w` as [`conv_pairs_2px_stream`] does, the outputs of pixel `2q` at
/// `out[2q * 2 * pairs..]` and of `2q + 1` right after. No Rust between pixels, and the widening of a group
/// of both pixels is 7 instructions: what a layer of few input channels (few groups) spends besides its MACs.
///
/// `FULL`: the activation range is all of int8 (the saturation to int8 is the clamp); else the outputs are
/// clamped to `act` (`(act_min, act_max)`), the four of a channel pair at once with SSUB8 and SEL on a word
/// that packs them (7 instructions more per channel pair).
#[allow(clippy::too_many_arguments)]
pub fn conv_1x1_stream<const FULL: bool>(
    w: &[u32],
    input: &[i8],
    groups: usize,
    pairs: usize,
    pixel_pairs: usize,
    out: &mut [i8],
    x: &mut [u32],
    act: (i32, i32),
) {
    if groups == 0
        || pairs == 0
        || pixel_pairs == 0
        || w.len() < (4 * groups + crate::conv::WIDENED_PAIR_EXTRA_WORDS) * pairs
        || x.len() < 4 * groups
        || input.len() < pixel_pairs * 8 * groups
        || out.len() < pixel_pairs * 4 * pairs
    {
        return;
    }
    let head = pixels_frame(w, input.as_ptr(), groups, pairs, pixel_pairs, out, x, act);
    let mut frame = [0usize; 20];
    frame[..14].copy_from_slice(&head);
    // SAFETY: per pixel pair `q` it reads the `8 * groups` bytes of `input` from `8 * groups * q` (LDR allows
    // any alignment on ARMv7-M) and writes the `4 * groups` words of `x`; per channel pair it reads `4 * groups
    // + 10` consecutive words of `w` from its start (`pairs` of them in all) and the `4 * groups` words of `x`
    // (as `conv_pairs_2px_stream`), and writes two bytes at out0 and two at out1, which advance through pixel
    // `2q`'s and `2q + 1`'s `out_c` bytes: `4 * pairs` bytes of `out` per pixel pair (all within the slices,
    // checked above; `u32` slices are word-aligned as LDM and STM require). r6 and r7 (never operands) are
    // saved on the stack and restored; the 88 bytes it takes are given back before it ends.
    unsafe {
        if FULL {
            conv_pixels_asm!(pointwise, full, frame)
        } else {
            conv_pixels_asm!(pointwise, clamped, frame)
        }
    };
}

/// The window of a convolution larger than 1x1 for [`conv_window_stream`]: `rows` runs of `row_len` input
/// bytes, `run_stride` bytes apart, and `pixel_stride` bytes between the windows of consecutive output
/// pixels (a row of output pixels).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub rows: usize,
    pub row_len: usize,
    pub run_stride: usize,
    pub pixel_stride: usize,
}

/// [`conv_1x1_stream`] for `pixel_pairs` pairs of consecutive output pixels whose windows lie wholly inside
/// the input (no padding taps), the first window starting at `input[at..]`: per pixel, the window's runs
/// copied into `stage` in whole words (each run's spill overwritten by the next; the last one's, up to three
/// bytes, lies after the patch, where the filter rows hold zeros) and widened into its slot of `x`, then the
/// channel pairs. What a first layer of three input channels spends outside its MACs: no Rust between
/// pixels, 4 instructions per copied word and 6 per widened one. `groups`: words of a filter row (the patch
/// rounded up to words); `stage` holds the patch's runs rounded up, `4 * groups + 4` bytes
/// (`Conv2d::stage_bytes`). Returns false, doing nothing, when a rounded run would read past `input`'s end
/// or the slices are short (the caller then takes its pixel by pixel path).
#[allow(clippy::too_many_arguments)]
pub fn conv_window_stream<const FULL: bool>(
    w: &[u32],
    input: &[i8],
    at: usize,
    win: Window,
    groups: usize,
    pairs: usize,
    pixel_pairs: usize,
    out: &mut [i8],
    x: &mut [u32],
    stage: &mut [i8],
    act: (i32, i32),
) -> bool {
    let words = win.row_len.div_ceil(4);
    let last_read = at + (2 * pixel_pairs - 1) * win.pixel_stride + (win.rows - 1) * win.run_stride + 4 * words;
    if groups == 0
        || pairs == 0
        || pixel_pairs == 0
        || win.rows == 0
        || words == 0
        || win.rows * win.row_len > 4 * groups
        || last_read > input.len()
        || (win.rows - 1) * win.row_len + 4 * words > stage.len()
        || 4 * groups > stage.len()
        || w.len() < (4 * groups + crate::conv::WIDENED_PAIR_EXTRA_WORDS) * pairs
        || x.len() < 4 * groups
        || out.len() < pixel_pairs * 4 * pairs
    {
        return false;
    }
    let head = pixels_frame(w, input.as_ptr().wrapping_add(at), groups, pairs, pixel_pairs, out, x, act);
    let mut frame = [0usize; 20];
    frame[..14].copy_from_slice(&head);
    frame[14..].copy_from_slice(&[
        stage.as_mut_ptr() as usize, win.rows, words, win.run_stride, 4 * words - win.row_len, win.pixel_stride,
    ]);
    // SAFETY: per pixel `i < 2 * pixel_pairs` it reads, for each run `r < rows`, the `4 * words` bytes of `input`
    // from `at + i * pixel_stride + r * run_stride` (the last of them end at `last_read`, checked above; LDR
    // allows any alignment on ARMv7-M) and writes them to `stage[r * row_len..]` (the last run's end inside
    // `stage`, checked), reads `stage[..4 * groups]` and writes the words `4g + 2 slot`, `4g + 2 slot + 1` of
    // `x` for `g < groups` (`4 * groups <= x.len()`; `u32` slices are word-aligned for STRD); per channel pair
    // as `conv_1x1_stream`. r6 and r7 (never operands) are saved on the stack and restored; the 88 bytes it
    // takes are given back before it ends.
    unsafe {
        if FULL {
            conv_pixels_asm!(window, full, frame)
        } else {
            conv_pixels_asm!(window, clamped, frame)
        }
    };
    true
}

/// `dot_2rows_2px_stream`'s assembly: [`conv_stream_asm`]'s chunk of groups for one pair of rows, the
/// accumulators in and out of r0..r3.
macro_rules! dot_stream_asm {
    ($w:ident, $x:ident, $skip:ident, $x_end:ident, $a0:ident, $a1:ident, $a2:ident, $a3:ident, $($group:expr,)*) => {
        asm!(
            // frame: the caller's r6 and r7, x_end
            "adr r4, 5f",
            "add r4, r4, r5",
            "orr r4, r4, #1",
            "push {{r6, r7, r8}}",
            "bx r4",
            "5:",
            $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)* $($group,)*
            "6:",
            ".if 6b - 5b - 640",
            ".error \"dot_2rows_2px_stream: a group is not 40 bytes of code\"",
            ".endif",
            "ldr r4, [sp, #8]",
            "cmp lr, r4",
            "bne 5b",
            "pop {{r6, r7, r8}}",
            inout("r0") $a0, inout("r1") $a1, inout("r2") $a2, inout("r3") $a3,
            inout("r5") $skip => _,
            inout("r8") $x_end => _,
            inout("r12") $w.as_ptr() => _,
            inout("lr") $x.as_ptr() => _,
            out("r4") _, out("r9") _, out("r10") _, out("r11") _,
        )
    };
}

/// [`dot_2rows_2px`] for one pair of rows of the filter stream (`w`: the pair's `4 * groups` widened
/// words, without its bias and requantization words) with [`conv_pairs_2px_stream`]'s unrolled groups: 10
/// instructions per 16 MACs. The paths that requantize in Rust (TFLM's general path, a clamped activation
/// range) use it.
pub fn dot_2rows_2px_stream(w: &[u32], x: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let groups = (w.len() / 4).min(x.len() / 4);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if groups == 0 {
        return acc;
    }
    let skip = (STREAM_CHUNK - ((groups - 1) % STREAM_CHUNK + 1)) * STREAM_GROUP_BYTES;
    let x_end = x.as_ptr().wrapping_add(4 * groups);
    // SAFETY: reads the `4 * groups` words of `w` and of `x` (the jump skips the chunk's first groups, the
    // chunk loop ends at `x_end`), within both slices; `u32` slices are word-aligned as LDM requires. r6 and
    // r7 (never operands) are saved on the stack and restored; the 12 bytes pushed are popped before it ends.
    unsafe {
        dot_stream_asm!(w, x, skip, x_end, a0, a1, a2, a3,
            stream_group!(),
        )
    };
    [a0, a1, a2, a3]
}

/// The conv kernel's im2col step for one patch: every whole word of `src` (four int8 `v0..v3`, any alignment)
/// as the int16-pair words `(v0, v2)`, `(v1, v3)` at `dst[4g + 2 slot..]` (`slot` 0 or 1: the patch's place
/// in the two-pixel layout). 6 instructions per word.
pub fn widen_slot(src: &[i8], dst: &mut [u32], slot: usize) {
    let n = (src.len() / 4).min(dst.len() / 4);
    if n == 0 || slot > 1 {
        return;
    }
    // SAFETY: reads `4 * n` bytes of `src` (LDR allows any alignment on ARMv7-M) and writes the words
    // `4g + 2 slot` and `4g + 2 slot + 1` of `dst` for `g < n`, within both slices (`dst` is a `u32` slice:
    // word-aligned for STRD). Registers only otherwise.
    unsafe {
        asm!(
            "2:",
            "ldr {t}, [{ps}], #4",
            "sxtb16 {a}, {t}",
            "sxtb16 {b}, {t}, ror #8",
            "strd {a}, {b}, [{pd}], #16",
            "subs {n}, {n}, #1",
            "bne 2b",
            ps = inout(reg) src.as_ptr() => _, pd = inout(reg) dst.as_mut_ptr().wrapping_add(2 * slot) => _,
            n = inout(reg) n => _, t = out(reg) _, a = out(reg) _, b = out(reg) _,
            options(nostack),
        )
    };
}

/// A conv patch whose taps all lie inside the input, gathered and widened in one block: `rows` runs of
/// `row_len` bytes, run `r` from `src[at + r * stride..]` to `stage[r * row_len..]`, each copied in whole
/// words (LDR and STR at any alignment) and so rounded up to a word: a run's last word spills up to three
/// bytes into the next run's place, which that run then overwrites, and the last one's into the bytes after
/// the patch (where the filter rows hold zeros, and the staging slack: `Conv2d::stage_bytes`); then the
/// `groups` words of `stage` widened into slot `slot` of `dst` as [`widen_slot`] does. Instead of a call per
/// run, its byte tail and the Rust between gathering and widening: 4 instructions per copied word, 5 per
/// run, 6 per widened word. Returns false, writing nothing, when a rounded run or the groups would leave a
/// slice (the caller then gathers byte-exactly).
#[allow(clippy::too_many_arguments)]
pub fn gather_widen_slot(
    src: &[i8],
    at: usize,
    stride: usize,
    row_len: usize,
    rows: usize,
    stage: &mut [i8],
    dst: &mut [u32],
    slot: usize,
    groups: usize,
) -> bool {
    let words = row_len.div_ceil(4);
    if rows == 0 || words == 0 || groups == 0 || slot > 1 {
        return false;
    }
    let (last_src, last_dst) = ((rows - 1) * stride + at, (rows - 1) * row_len);
    if last_src + 4 * words > src.len() || last_dst + 4 * words > stage.len() || 4 * groups > stage.len() {
        return false;
    }
    if 4 * groups > dst.len() {
        return false;
    }
    // the widening's pointers and count, read once the gathering has freed registers
    let tail = [stage.as_ptr() as usize, dst.as_mut_ptr().wrapping_add(2 * slot) as usize, groups];
    // SAFETY: run `r < rows` reads `src[at + r * stride..][..4 * words]` and writes `stage[r * row_len..][..4 *
    // words]`, the last ones inside the slices (checked above) and the others below them; the widening reads
    // `stage[..4 * groups]` and writes the words `4g + 2 slot`, `4g + 2 slot + 1` of `dst` for `g < groups`
    // (`4 * groups <= dst.len()`, `slot <= 1`; `dst` is a `u32` slice: word-aligned for STRD). `tail` is
    // only read. Registers only otherwise.
    unsafe {
        asm!(
            "2:",
            "mov {s}, {ps}",
            "mov {n}, {words}",
            "3:",
            "ldr {t}, [{s}], #4",
            "str {t}, [{pd}], #4",
            "subs {n}, {n}, #1",
            "bne 3b",
            // back from the rounded end to the run's end, and on to the next input row
            "sub {pd}, {pd}, {back}",
            "add {ps}, {ps}, {stride}",
            "subs {rows}, {rows}, #1",
            "bne 2b",
            "ldr {ps}, [{tail}]",
            "ldr {pd}, [{tail}, #4]",
            "ldr {n}, [{tail}, #8]",
            "4:",
            "ldr {t}, [{ps}], #4",
            "sxtb16 {s}, {t}",
            "sxtb16 {rows}, {t}, ror #8",
            "strd {s}, {rows}, [{pd}], #16",
            "subs {n}, {n}, #1",
            "bne 4b",
            ps = inout(reg) src.as_ptr().wrapping_add(at) => _, pd = inout(reg) stage.as_mut_ptr() => _,
            rows = inout(reg) rows => _, stride = in(reg) stride, words = in(reg) words,
            back = in(reg) 4 * words - row_len, tail = in(reg) tail.as_ptr(), s = out(reg) _, n = out(reg) _,
            t = out(reg) _,
            options(nostack),
        )
    };
    true
}

/// `dst.copy_from_slice(src)` for the short runs of a conv patch (slices of equal length; else nothing is
/// copied): word by word (LDR and STR allow any alignment on ARMv7-M), then the bytes left, instead of a
/// call to memcpy.
pub fn copy_bytes(dst: &mut [i8], src: &[i8]) {
    let n = dst.len();
    if n == 0 || src.len() != n {
        return;
    }
    // SAFETY: reads `n` bytes of `src` and writes `n` bytes of `dst` (equal lengths, checked above), in words
    // (any alignment) then bytes. Registers only otherwise.
    unsafe {
        asm!(
            "lsrs {w}, {n}, #2",
            "beq 3f",
            "2:",
            "ldr {t}, [{ps}], #4",
            "str {t}, [{pd}], #4",
            "subs {w}, {w}, #1",
            "bne 2b",
            "3:",
            "ands {n}, {n}, #3",
            "beq 5f",
            "4:",
            "ldrb {t}, [{ps}], #1",
            "strb {t}, [{pd}], #1",
            "subs {n}, {n}, #1",
            "bne 4b",
            "5:",
            ps = inout(reg) src.as_ptr() => _, pd = inout(reg) dst.as_mut_ptr() => _, n = inout(reg) n => _,
            w = out(reg) _, t = out(reg) _,
            options(nostack),
        )
    };
}

/// `dst.fill(v)` for the short runs of a conv patch, like [`copy_bytes`].
pub fn fill_bytes(dst: &mut [i8], v: i8) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    let word = (v as u8 as u32).wrapping_mul(0x0101_0101);
    // SAFETY: writes the `n` bytes of `dst`, in words (any alignment) then bytes. Registers only otherwise.
    unsafe {
        asm!(
            "lsrs {w}, {n}, #2",
            "beq 3f",
            "2:",
            "str {v}, [{pd}], #4",
            "subs {w}, {w}, #1",
            "bne 2b",
            "3:",
            "ands {n}, {n}, #3",
            "beq 5f",
            "4:",
            "strb {v}, [{pd}], #1",
            "subs {n}, {n}, #1",
            "bne 4b",
            "5:",
            pd = inout(reg) dst.as_mut_ptr() => _, n = inout(reg) n => _, v = in(reg) word, w = out(reg) _,
            options(nostack),
        )
    };
}

/// Groups per unrolled chunk of [`conv_pairs_2px_stream`]'s inner loop, and bytes of code per group (ten
/// 32-bit instructions: the computed jump into the chunk relies on it, and the assembly checks it).
const STREAM_CHUNK: usize = 16;
const STREAM_GROUP_BYTES: usize = 40;

/// [`conv_pairs_2px`] for a pre-widened filter stream that carries each pair's bias and requantization with
/// its rows, so one pointer walks the whole layer: per pair `p`, the words `(bias2[2p], bias2[2p],
/// bias2[2p + 1], bias2[2p + 1])`, then the `4 * groups` filter words (per group row `2p`'s `(v0, v2)`,
/// `(v1, v3)` as int16 pairs, then row `2p + 1`'s), then `(multiplier, add)` of both channels and their
/// `right - 1` shifts ([`crate::quant::Rescale`]'s short path: the caller checks that every channel takes it
/// and that the activation range is all of int8). `x` and `out` as for [`conv_pairs_2px`].
///
/// Fourteen registers hold the 2x2 block's accumulators, a group's four patch words and four filter words
/// and both pointers, so a group is two LDMs and eight SMLADs: 10 instructions per 16 MACs. With no register
/// left for a counter, the groups are written out in chunks of [`STREAM_CHUNK`]: whole chunks in a loop that
/// ends when the patch pointer reaches their end (kept on the stack, read between chunks when the data
/// registers are free), then a second copy for the last chunk, entered by a computed jump at the first of
/// the groups left (Duff's device) and falling through to the requantization, so a patch of at most
/// [`STREAM_CHUNK`] groups pays no loop test at all. About 29 instructions per channel pair around the
/// groups: LDMs for bias and requantization, 20 for the four requantizations.
pub fn conv_pairs_2px_stream(w: &[u32], x: &[u32], groups: usize, pairs: usize, out: &mut [i8], px1: usize) {
    if groups == 0
        || pairs == 0
        || w.len() < (4 * groups + crate::conv::WIDENED_PAIR_EXTRA_WORDS) * pairs
        || x.len() < 4 * groups
        || out.len() < px1 + 2 * pairs
    {
        return;
    }
    // the last chunk runs the groups left over by whole chunks (a whole chunk when none are)
    let last = (groups - 1) % STREAM_CHUNK + 1;
    let skip = (STREAM_CHUNK - last) * STREAM_GROUP_BYTES;
    let full = (groups - last) / STREAM_CHUNK;
    let x_full_end = x.as_ptr().wrapping_add(4 * (groups - last));
    let out1 = out.as_mut_ptr().wrapping_add(px1);
    let out_end = out.as_mut_ptr().wrapping_add(2 * pairs);
    // SAFETY: per pair it reads `4 * groups + 10` consecutive words of `w` (`pairs` of them in all) and the
    // `4 * groups` words of `x` (`full` whole chunks, the loop ending at `x_full_end`, then the last chunk's
    // `last` groups: the jump skips its first ones),
    // writes two bytes from `out` and two from `out + px1`, advancing both by two: `2 * pairs` bytes from
    // each, within `out` (all checked above); `u32` slices are word-aligned as LDM requires. r6 and r7 (LLVM's
    // base and frame pointers, never operands) are saved on the stack with the frame and restored; the 36
    // bytes pushed are popped before it ends.
    unsafe {
        conv_stream_asm!(x, full, skip, out, out1, out_end, x_full_end, w,
            stream_group!(),
        )
    };
}

/// `fc_blocks`' assembly around one input word's lines (in brackets: load the word at r5, multiply it into
/// r0..r3 with the block's weights at r4; r9..r12 and lr are free) and its epilogue (the template lines after
/// label `4:` that requantize and store a block's four rows, and keep the frame's `rescale` and `out`
/// pointers).
macro_rules! fc_blocks_asm {
    ($x:ident, $w:ident, $words:ident, $blocks:ident, $bias:ident, $rescale:ident, $out:ident, [$($save:literal,)*], [$($restore:literal,)*], [$($word:literal,)*], $($epilogue:literal,)*) => {
        asm!(
            $($save,)*
            "push {{r5, r8, r9, r10, r11, r12}}",
            "1:",
            "ldr r9, [sp, #8]",
            "ldm r9!, {{r0, r1, r2, r3}}",
            "str r9, [sp, #8]",
            "ldrd r5, r8, [sp]",
            // two input words per iteration (half the loop overhead); an odd one first
            "lsrs r8, r8, #1",
            "bcc 3f",
            $($word,)*
            "3:",
            "cmp r8, #0",
            "beq 4f",
            "2:",
            $($word,)*
            $($word,)*
            "subs r8, r8, #1",
            "bne 2b",
            $($epilogue,)*
            "ldr r8, [sp, #20]",
            "subs r8, r8, #1",
            "str r8, [sp, #20]",
            "bne 1b",
            "add sp, sp, #24",
            $($restore,)*
            inout("r4") $w.as_ptr() => _,
            inout("r5") $x.as_ptr() => _,
            inout("r8") $words => _,
            inout("r9") $bias.as_ptr() => _,
            inout("r10") $rescale.as_ptr() => _,
            inout("r11") $out.as_mut_ptr() => _,
            inout("r12") $blocks => _,
            out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("lr") _,
        )
    };
}

/// A fully connected layer's whole loop over blocks of four output rows, for one input row `x` of `4 *
/// words` int8 (any alignment): per block, four interleaved weight rows (`w`: per input word, the four
/// rows' words), from `bias`, requantized with [`crate::quant::Rescale`]'s short path (of twice the sum)
/// and saturated to int8, written to `out[4b..4b + 4]`. `PER_TENSOR`: `rescale` holds one entry that
/// serves every row (loaded once per block), else one per row. The caller checks that every channel takes
/// the short path and that the activation range is all of int8. 22 instructions per 16 MACs in the inner
/// loop (two input words per iteration), 50 per block around it (40 per tensor). `WIDENED`: the weights come
/// pre-widened (per input word, each row's words `(v0, v2)` and `(v1, v3)` as int16 pairs: `8 * words *
/// blocks` words), 15 instructions per 16 MACs.
/// `fc_blocks`' two epilogues (per tensor, per channel) around one input word's lines (`fc_blocks_asm`).
macro_rules! fc_blocks_epilogues {
    ($x:ident, $w:ident, $words:ident, $blocks:ident, $bias:ident, $rescale:ident, $out:ident, $per_tensor:ident, [$($save:literal,)*], [$($restore:literal,)*], [$($word:literal,)*]) => {
        if $per_tensor {
            fc_blocks_asm!($x, $w, $words, $blocks, $bias, $rescale, $out, [$($save,)*], [$($restore,)*], [$($word,)*],
                "4:",
                "ldr r9, [sp, #12]",
                "ldr r5, [sp, #16]",
                "ldrd r10, r11, [r9]",
                "rbit r12, r11",
                "clz r12, r12",
                "lsl r8, r0, #1",
                "smmlar lr, r8, r10, r11",
                "add lr, lr, r8, asr #31",
                "asr lr, lr, r12",
                "ssat lr, #8, lr, asr #1",
                "strb lr, [r5], #1",
                "lsl r8, r1, #1",
                "smmlar lr, r8, r10, r11",
                "add lr, lr, r8, asr #31",
                "asr lr, lr, r12",
                "ssat lr, #8, lr, asr #1",
                "strb lr, [r5], #1",
                "lsl r8, r2, #1",
                "smmlar lr, r8, r10, r11",
                "add lr, lr, r8, asr #31",
                "asr lr, lr, r12",
                "ssat lr, #8, lr, asr #1",
                "strb lr, [r5], #1",
                "lsl r8, r3, #1",
                "smmlar lr, r8, r10, r11",
                "add lr, lr, r8, asr #31",
                "asr lr, lr, r12",
                "ssat lr, #8, lr, asr #1",
                "strb lr, [r5], #1",
                "str r5, [sp, #16]",
            );
        } else {
            fc_blocks_asm!($x, $w, $words, $blocks, $bias, $rescale, $out, [$($save,)*], [$($restore,)*], [$($word,)*],
                "4:",
                "ldr r9, [sp, #12]",
                "ldr r5, [sp, #16]",
                "ldrd r10, r11, [r9], #8",
                "rbit r12, r11",
                "clz r12, r12",
                "lsl r8, r0, #1",
                "smmlar lr, r8, r10, r11",
                "add lr, lr, r8, asr #31",
                "asr lr, lr, r12",
                "ssat lr, #8, lr, asr #1",
                "strb lr, [r5], #1",
                "ldrd r10, r11, [r9], #8",
                "rbit r12, r11",
                "clz r12, r12",
                "lsl r8, r1, #1",
                "smmlar lr, r8, r10, r11",
                "add lr, lr, r8, asr #31",
                "asr lr, lr, r12",
                "ssat lr, #8, lr, asr #1",
                "strb lr, [r5], #1",
                "ldrd r10, r11, [r9], #8",
                "rbit r12, r11",
                "clz r12, r12",
                "lsl r8, r2, #1",
                "smmlar lr, r8, r10, r11",
                "add lr, lr, r8, asr #31",
                "asr lr, lr, r12",
                "ssat lr, #8, lr, asr #1",
                "strb lr, [r5], #1",
                "ldrd r10, r11, [r9], #8",
                "rbit r12, r11",
                "clz r12, r12",
                "lsl r8, r3, #1",
                "smmlar lr, r8, r10, r11",
                "add lr, lr, r8, asr #31",
                "asr lr, lr, r12",
                "ssat lr, #8, lr, asr #1",
                "strb lr, [r5], #1",
                "str r9, [sp, #12]",
                "str r5, [sp, #16]",
            );
        }
    };
}

pub fn fc_blocks<const PER_TENSOR: bool, const WIDENED: bool>(x: &[i8], w: &[u32], words: usize, blocks: usize, bias: &[i32], rescale: &[crate::quant::Rescale], out: &mut [i8]) {
    if words == 0
        || blocks == 0
        || x.len() < 4 * words
        || w.len() < if WIDENED { 8 } else { 4 } * words * blocks
        || bias.len() < 4 * blocks
        || rescale.len() < if PER_TENSOR { 1 } else { 4 * blocks }
        || out.len() < 4 * blocks
    {
        return;
    }
    // SAFETY: reads `4 * words` bytes of `x` per block (LDR allows any alignment on ARMv7-M), `4 * words *
    // blocks` words of `w` (`8 * words * blocks` if `WIDENED`), `4 * blocks` words of `bias` and `4 * blocks` `Rescale`s (one if `PER_TENSOR`;
    // `repr(C)`, two words each), writes `4 * blocks` bytes of `out`: all within the slices (checked
    // above); word loads of `w`, `bias` and `rescale` are word-aligned. The 24 bytes it pushes are popped
    // before it ends.
    unsafe {
        if WIDENED {
            fc_blocks_epilogues!(x, w, words, blocks, bias, rescale, out, PER_TENSOR, [], [], [
                "ldr r9, [r5], #4",
                "sxtb16 r11, r9",
                "sxtb16 r12, r9, ror #8",
                "ldrd r9, r10, [r4], #8",
                "smlad r0, r9, r11, r0",
                "smlad r0, r10, r12, r0",
                "ldrd r9, r10, [r4], #8",
                "smlad r1, r9, r11, r1",
                "smlad r1, r10, r12, r1",
                "ldrd r9, r10, [r4], #8",
                "smlad r2, r9, r11, r2",
                "smlad r2, r10, r12, r2",
                "ldrd r9, r10, [r4], #8",
                "smlad r3, r9, r11, r3",
                "smlad r3, r10, r12, r3",
            ]);
        } else {
            fc_blocks_epilogues!(x, w, words, blocks, bias, rescale, out, PER_TENSOR, [], [], [
                "ldr r9, [r5], #4",
                "sxtb16 r11, r9",
                "sxtb16 r12, r9, ror #8",
                "ldrd r9, r10, [r4], #8",
                "sxtb16 lr, r9",
                "smlad r0, lr, r11, r0",
                "sxtb16 lr, r9, ror #8",
                "smlad r0, lr, r12, r0",
                "sxtb16 lr, r10",
                "smlad r1, lr, r11, r1",
                "sxtb16 lr, r10, ror #8",
                "smlad r1, lr, r12, r1",
                "ldrd r9, r10, [r4], #8",
                "sxtb16 lr, r9",
                "smlad r2, lr, r11, r2",
                "sxtb16 lr, r9, ror #8",
                "smlad r2, lr, r12, r2",
                "sxtb16 lr, r10",
                "smlad r3, lr, r11, r3",
                "sxtb16 lr, r10, ror #8",
                "smlad r3, lr, r12, r3",
            ]);
        }
    };
}

/// [`fc_blocks`] with pre-widened weights and the input row widened once per layer by the caller: `xw` holds,
/// per input word, its lanes `(x0, x2)` and `(x1, x3)` as int16 pairs (`2 * words` words), so the inner loop
/// neither loads nor widens int8 input: per input word one LDRD of the input pair, two LDMs of the four rows'
/// eight weight words (one instruction each, whatever their register count) and eight SMLADs. r6, which LLVM
/// keeps for itself, holds an input pair: the assembly saves and restores it. 11 instructions per 16 MACs in
/// the inner loop (two input words per iteration, 24 per 32 MACs with the loop), 50 per block around it (40
/// per tensor).
pub fn fc_blocks_wide_x<const PER_TENSOR: bool>(xw: &[u32], w: &[u32], words: usize, blocks: usize, bias: &[i32], rescale: &[crate::quant::Rescale], out: &mut [i8]) {
    if words == 0
        || blocks == 0
        || xw.len() < 2 * words
        || w.len() < 8 * words * blocks
        || bias.len() < 4 * blocks
        || rescale.len() < if PER_TENSOR { 1 } else { 4 * blocks }
        || out.len() < 4 * blocks
    {
        return;
    }
    // SAFETY: reads `2 * words` words of `xw` per block, `8 * words * blocks` words of `w`, `4 * blocks` words
    // of `bias` and `4 * blocks` `Rescale`s (one if `PER_TENSOR`; `repr(C)`, two words each), writes `4 *
    // blocks` bytes of `out`: all within the slices (checked above); every word load is word-aligned (LDRD and
    // LDM need it). The 28 bytes it pushes (r6 included) are popped before it ends.
    unsafe {
        fc_blocks_epilogues!(xw, w, words, blocks, bias, rescale, out, PER_TENSOR, ["push {{r6}}",], ["pop {{r6}}",], [
            "ldrd r6, lr, [r5], #8",
            "ldm r4!, {{r9, r10, r11, r12}}",
            "smlad r0, r9, r6, r0",
            "smlad r0, r10, lr, r0",
            "smlad r1, r11, r6, r1",
            "smlad r1, r12, lr, r1",
            "ldm r4!, {{r9, r10, r11, r12}}",
            "smlad r2, r9, r6, r2",
            "smlad r2, r10, lr, r2",
            "smlad r3, r11, r6, r3",
            "smlad r3, r12, lr, r3",
        ]);
    };
}

/// Four lanes that all read one input value per tap (a depth multiplier of four or more): `acc[l] +=
/// w[t][l] * x[base + offset_t]` over the taps, `x` the int8 rows as little-endian words. 6 instructions
/// per tap (4 MACs).
#[inline(always)]
pub fn taps_4lanes_bytes(x: &[u32], base: usize, taps: &TapStream, acc: [i32; 4]) -> [i32; 4] {
    let n = taps.words.len() / 3;
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if n == 0 || 4 * x.len() < base + taps.reach {
        return acc;
    }
    // SAFETY: reads the `3 * n` words of `taps.words` in order, and per tap byte `base + offset` of `x`'s
    // `4 * x.len()` bytes, where `base + offset + 1 <= base + taps.reach <= 4 * x.len()` (checked by
    // `TapStream::new` and above); LDM's words are word-aligned. Registers only otherwise; no stack.
    unsafe {
        asm!(
            "2:",
            "ldm {pw}!, {{r3, r4, r5}}",
            "ldrsb {v}, [{pb}, r5]",
            "smlabb {a0}, r3, {v}, {a0}",
            "smlatb {a2}, r3, {v}, {a2}",
            "smlabb {a1}, r4, {v}, {a1}",
            "smlatb {a3}, r4, {v}, {a3}",
            "subs {n}, {n}, #1",
            "bne 2b",
            pw = inout(reg) taps.words.as_ptr() => _, pb = in(reg) x.as_ptr().cast::<u8>().wrapping_add(base),
            n = inout(reg) n => _, v = out(reg) _,
            out("r3") _, out("r4") _, out("r5") _,
            a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2, a3 = inout(reg) a3,
            options(readonly, nostack),
        )
    };
    [a0, a1, a2, a3]
}

/// `depthwise_block_row`'s assembly around one tap (the template lines that load a tap's `(w02, w13,
/// offset)` words with `ldm r11!, {r8, r9, r10}` and add its four products to r0..r3; the pixel's input is at
/// r12, and lr = r12 + 4; r4 and r5 are free), written out nine times for nine taps, else looped over
/// the taps (count in r6). Operands are pointers and counts, `$step` in bytes; `$next_block` the lines that
/// move r4 (the row's first pixel) from one block to the next.
macro_rules! depthwise_block_row_asm {
    ($taps:expr, $n:expr, $x:expr, $step:expr, $bias2:expr, $rescale:expr, $out:expr, $out_step:expr, $pixels:expr,
     $shift2:expr, $blocks:expr, [$($next_block:literal,)*], [$($pre:literal,)*], [$($mid:literal,)*],
     [$($post:literal,)*], $($tap:literal,)*) => {
        if $n == 9 {
            // a 3x3 filter: the nine taps written out, no loop; with no tap count to keep, r6 counts the pixels
            // left (the frame's count stays the row's)
            depthwise_block_row_asm!(@body $taps, $n, $x, $step, $bias2, $rescale, $out, $out_step, $pixels, $shift2,
                $blocks, [$($next_block,)*], [$($pre,)*], [$($mid,)*], [$($post,)*],
                ["ldr r6, [sp, #36]",], ["ldr r11, [sp]",], ["subs r6, r6, #1",], [
                $($tap,)* $($tap,)* $($tap,)* $($tap,)* $($tap,)* $($tap,)* $($tap,)* $($tap,)* $($tap,)*
            ])
        } else {
            // two taps per iteration, an odd one first
            depthwise_block_row_asm!(@body $taps, $n, $x, $step, $bias2, $rescale, $out, $out_step, $pixels, $shift2,
                $blocks, [$($next_block,)*], [$($pre,)*], [$($mid,)*], [$($post,)*],
                [], ["ldrd r11, r6, [sp]",], ["ldr r4, [sp, #36]", "subs r4, r4, #1", "str r4, [sp, #36]",], [
                "lsrs r6, r6, #1",
                "bcc 3f",
                $($tap,)*
                "3:",
                "cmp r6, #0",
                "beq 4f",
                "2:",
                $($tap,)*
                $($tap,)*
                "subs r6, r6, #1",
                "bne 2b",
                "4:",
            ])
        }
    };
    (@body $taps:expr, $n:expr, $x:expr, $step:expr, $bias2:expr, $rescale:expr, $out:expr, $out_step:expr, $pixels:expr,
     $shift2:expr, $blocks:expr, [$($next_block:literal,)*], [$($pre:literal,)*], [$($mid:literal,)*],
     [$($post:literal,)*], [$($block_start:literal,)*], [$($top:literal,)*], [$($count:literal,)*],
     [$($section:literal,)*]) => {
        asm!(
            // frame: the block's taps, tap count, x (advancing), px_step in bytes, the block's bias2 and
            // rescale, the caller's r6 (LLVM's, not an operand: saved and restored here), out (advancing),
            // out_step, pixels left, twice the clamp's shift, blocks left, pixels per row
            "push {{r0, r1, r2, r3, r4, r5, r6, r8, r9, r10, r11, r12, lr}}",
            "6:",
            $($block_start,)*
            "1:",
            $($top,)*
            "ldr r12, [sp, #8]",
            "add lr, r12, #4",
            "ldr r4, [sp, #16]",
            "ldm r4, {{r0, r1, r2, r3}}",
            $($section,)*
            "ldr r11, [sp, #20]",
            "ldr r12, [sp, #28]",
            $($pre,)*
            "ldrd r8, r9, [r11], #8",
            "rbit r10, r9",
            "clz r10, r10",
            "smmlar r4, r0, r8, r9",
            "add r4, r4, r0, asr #31",
            "asr r4, r4, r10",
            $($mid,)*
            "ssat r4, #8, r4, asr #1",
            $($post,)*
            "strb r4, [r12]",
            "ldrd r8, r9, [r11], #8",
            "rbit r10, r9",
            "clz r10, r10",
            "smmlar r4, r1, r8, r9",
            "add r4, r4, r1, asr #31",
            "asr r4, r4, r10",
            $($mid,)*
            "ssat r4, #8, r4, asr #1",
            $($post,)*
            "strb r4, [r12, #1]",
            "ldrd r8, r9, [r11], #8",
            "rbit r10, r9",
            "clz r10, r10",
            "smmlar r4, r2, r8, r9",
            "add r4, r4, r2, asr #31",
            "asr r4, r4, r10",
            $($mid,)*
            "ssat r4, #8, r4, asr #1",
            $($post,)*
            "strb r4, [r12, #2]",
            "ldrd r8, r9, [r11], #8",
            "rbit r10, r9",
            "clz r10, r10",
            "smmlar r4, r3, r8, r9",
            "add r4, r4, r3, asr #31",
            "asr r4, r4, r10",
            $($mid,)*
            "ssat r4, #8, r4, asr #1",
            $($post,)*
            "strb r4, [r12, #3]",
            "ldr r5, [sp, #32]",
            "add r12, r12, r5",
            "str r12, [sp, #28]",
            "ldrd r4, r5, [sp, #8]",
            "add r4, r4, r5",
            "str r4, [sp, #8]",
            $($count,)*
            "bne 1b",
            // the row done for this block: the next block's taps (3n words on), bias2 and rescale (four lanes
            // on), the row's first pixel again (plus the block's words) and its first output (4 bytes on)
            "ldr r4, [sp, #44]",
            "subs r4, r4, #1",
            "beq 5f",
            "str r4, [sp, #44]",
            "ldr r10, [sp, #48]",
            "str r10, [sp, #36]",
            "ldrd r4, r5, [sp]",
            "add r5, r5, r5, lsl #1",
            "add r4, r4, r5, lsl #2",
            "str r4, [sp]",
            "ldrd r4, r5, [sp, #16]",
            "add r4, r4, #16",
            "add r5, r5, #32",
            "strd r4, r5, [sp, #16]",
            "ldrd r4, r5, [sp, #8]",
            "mls r4, r5, r10, r4",
            $($next_block,)*
            "str r4, [sp, #8]",
            "ldrd r8, r9, [sp, #28]",
            "mls r8, r9, r10, r8",
            "add r8, r8, #4",
            "str r8, [sp, #28]",
            "b 6b",
            "5:",
            "ldr r6, [sp, #24]",
            "add sp, sp, #52",
            inout("r0") $taps => _,
            inout("r1") $n => _,
            inout("r2") $x => _,
            inout("r3") $step => _,
            inout("r4") $bias2 => _,
            inout("r5") $rescale => _,
            inout("r8") $out => _,
            inout("r9") $out_step => _,
            inout("r10") $pixels => _,
            inout("r11") $shift2 => _,
            inout("r12") $blocks => _,
            inout("lr") $pixels => _,
        )
    };
}

/// Blocks of four depthwise lanes along a whole output row: for each block `b < blocks` (lanes `4b..4b + 4`,
/// taps `b * n..(b + 1) * n` of `taps`) and each of `pixels` output pixels `p`, the taps against the widened
/// input at `x[p * px_step + 2b..]` (as [`taps_4lanes`]), from `bias2[4b..4b + 4]`, requantized with
/// [`crate::quant::Rescale`]'s short path and saturated to int8, written to `out[p * out_step + 4b..][..4]`.
/// The caller checks that every lane takes the short path. The loops run over blocks, then pixels, in one
/// call, so a block's taps, bias and scales are set up once per row: 7 instructions per tap (4 MACs; a 3x3
/// filter's nine taps are written out, no loop), 32 for the four requantizations, about 20 per pixel around
/// them and 25 per block. `BYTES`: the block's four lanes read one input value per tap (as
/// [`taps_4lanes_bytes`]): `x` the int8 rows as little-endian words, pixel `p`'s taps at byte `p * px_step +
/// offset` (the offsets include the block's input channel); 6 instructions per tap.
///
/// `CLAMP`: an activation range open at one end only, `[act_min, 127]` or `[-128, act_max]` (RELU and
/// RELU6 outputs whose zero point is not -128), given as `shift`: `-128 - act_min` or `127 - act_max`. Then
/// `clamp(v) = ssat8(ssat8(v + shift) - shift)` (the inner saturation clamps the closed end, the outer one
/// int8's other end), 3 more instructions per output; without `CLAMP` the range is all of int8.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_block_row<const BYTES: bool, const CLAMP: bool>(
    x: &[u32],
    px_step: usize,
    pixels: usize,
    blocks: usize,
    n: usize,
    taps: &TapStream,
    bias2: &[i32],
    rescale: &[crate::quant::Rescale],
    out: &mut [i8],
    out_step: usize,
    shift: i32,
) {
    if n == 0
        || pixels == 0
        || blocks == 0
        || taps.words.len() < 3 * n * blocks
        || bias2.len() < 4 * blocks
        || rescale.len() < 4 * blocks
        || if BYTES {
            4 * x.len() < (pixels - 1) * px_step + taps.reach
        } else {
            x.len() < (pixels - 1) * px_step + 2 * (blocks - 1) + taps.reach + 1
        }
        || out.len() < (pixels - 1) * out_step + 4 * blocks
    {
        return;
    }
    // the value before the final `asr #1` is twice the output (plus a rounding bit): it takes twice the shift
    let shift2 = 2 * shift;
    // the four variants: (BYTES, CLAMP)
    macro_rules! variant {
        ($step:expr, [$($next_block:literal,)*], [$($pre:literal,)*], [$($mid:literal,)*], [$($post:literal,)*],
         $($tap:literal,)*) => {
            depthwise_block_row_asm!(
                taps.words.as_ptr(), n, x.as_ptr(), $step, bias2.as_ptr(), rescale.as_ptr(), out.as_mut_ptr(),
                out_step, pixels, shift2, blocks, [$($next_block,)*], [$($pre,)*], [$($mid,)*], [$($post,)*],
                $($tap,)*
            )
        };
    }
    macro_rules! clamped {
        ($step:expr, [$($next_block:literal,)*], $($tap:literal,)*) => {
            if CLAMP {
                variant!($step, [$($next_block,)*], ["ldr r5, [sp, #40]",], ["add r4, r4, r5",],
                         ["sub r4, r4, r5, asr #1", "ssat r4, #8, r4",], $($tap,)*)
            } else {
                variant!($step, [$($next_block,)*], [], [], [], $($tap,)*)
            }
        };
    }
    // SAFETY: per block `b` and pixel `p` it reads the `3 * n` words of the block's taps (`3 * n * blocks <=
    // taps.words.len()`, checked) in order, and per tap the words `p * px_step + 2b + offset` and `+ 1` of `x`,
    // where `offset + 2 <= taps.reach + 1`, or with `BYTES` byte `p * px_step + offset` of its `4 * x.len()`
    // bytes, where `offset + 1 <= taps.reach`: within `x` (checked above with `TapStream::new`'s `reach`); the
    // block's four words of `bias2` and four `Rescale`s (`repr(C)`, two words each), within them (checked);
    // it writes bytes `p * out_step + 4b..+ 4` of `out`, within it (checked above). Word loads are
    // word-aligned (`u32`/`i32` slices). The 52 bytes it pushes on the stack are popped before it ends.
    unsafe {
        if BYTES {
            clamped!(
                px_step,
                [],
                "ldm r11!, {{r8, r9, r10}}",
                "ldrsb r4, [r12, r10]",
                "smlabb r0, r8, r4, r0",
                "smlatb r2, r8, r4, r2",
                "smlabb r1, r9, r4, r1",
                "smlatb r3, r9, r4, r3",
            )
        } else {
            clamped!(
                4 * px_step,
                ["add r4, r4, #8",],
                "ldm r11!, {{r8, r9, r10}}",
                "ldr r4, [r12, r10, lsl #2]",
                "ldr r5, [lr, r10, lsl #2]",
                "smlabb r0, r8, r4, r0",
                "smlatt r2, r8, r4, r2",
                "smlabb r1, r9, r5, r1",
                "smlatt r3, r9, r5, r3",
            )
        }
    };
}
