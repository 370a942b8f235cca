//! Inner loops for ARMv7-M cores without the DSP extension (Cortex-M3; ARMv8-M Mainline without it), as
//! inline assembly: written in Rust, LLVM keeps too few of their values in registers and spills the
//! accumulators. Compiled only with `cfg(tinyml_armv7m)` (set by build.rs). Every loop has a portable twin
//! computing the same bits (wrapping 32-bit multiply-accumulates, like the C accumulators they replace).
#![allow(unsafe_code)]

use core::arch::asm;

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
