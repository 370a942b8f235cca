//! Inner loops for ARMv7-M cores without the DSP extension (Cortex-M3; ARMv8-M Mainline without it), as
//! inline assembly: written in Rust, LLVM keeps too few of their values in registers and spills the
//! accumulators. Compiled only with `cfg(tinyml_armv7m)` (set by build.rs). Every loop has a portable twin
//! computing the same bits (wrapping 32-bit multiply-accumulates, like the C accumulators they replace).
#![allow(unsafe_code)]

use core::arch::asm;

/// The conv kernel's 2x2 block without SIMD: two filter rows (`w`: the rows' words interleaved, int8) against
/// two widened patches (`x`: per group the words `(x0 even, x0 odd, x1 even, x1 odd)`, int16 pairs); `acc`
/// is `[row0 px0, row0 px1, row1 px0, row1 px1]`. Per group of 16 MACs: 5 loads, 16 MLAs, 20 extractions,
/// the loop's 2.
#[inline(always)]
pub fn dot_2rows_2px(w: &[u32], x: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let groups = (w.len() / 2).min(x.len() / 4);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if groups == 0 {
        return acc;
    }
    // SAFETY: reads `2 * groups` words from `w` and `4 * groups` from `x`, within both slices; both are `u32`
    // slices, so word-aligned as LDRD requires. Registers only otherwise; the stack is not touched.
    unsafe {
        asm!(
            "2:",
            "ldrd {w0}, {w1}, [{pw}], #8",
            // values 0 (low halfwords of the even words) and 2 (high), weight bytes 0 and 2
            "ldr {xa}, [{px}]",
            "ldr {xb}, [{px}, #8]",
            "sbfx {t}, {w0}, #0, #8",
            "sxth {v}, {xa}",
            "mla {a0}, {t}, {v}, {a0}",
            "sxth {v}, {xb}",
            "mla {a1}, {t}, {v}, {a1}",
            "sbfx {t}, {w1}, #0, #8",
            "mla {a3}, {t}, {v}, {a3}",
            "sxth {v}, {xa}",
            "mla {a2}, {t}, {v}, {a2}",
            "sbfx {t}, {w0}, #16, #8",
            "asr {v}, {xa}, #16",
            "mla {a0}, {t}, {v}, {a0}",
            "asr {v}, {xb}, #16",
            "mla {a1}, {t}, {v}, {a1}",
            "sbfx {t}, {w1}, #16, #8",
            "mla {a3}, {t}, {v}, {a3}",
            "asr {v}, {xa}, #16",
            "mla {a2}, {t}, {v}, {a2}",
            // values 1 and 3 (the odd words), weight bytes 1 and 3
            "ldr {xa}, [{px}, #4]",
            "ldr {xb}, [{px}, #12]",
            "add {px}, {px}, #16",
            "sbfx {t}, {w0}, #8, #8",
            "sxth {v}, {xa}",
            "mla {a0}, {t}, {v}, {a0}",
            "sxth {v}, {xb}",
            "mla {a1}, {t}, {v}, {a1}",
            "sbfx {t}, {w1}, #8, #8",
            "mla {a3}, {t}, {v}, {a3}",
            "sxth {v}, {xa}",
            "mla {a2}, {t}, {v}, {a2}",
            "asr {t}, {w0}, #24",
            "asr {v}, {xa}, #16",
            "mla {a0}, {t}, {v}, {a0}",
            "asr {v}, {xb}, #16",
            "mla {a1}, {t}, {v}, {a1}",
            "asr {t}, {w1}, #24",
            "mla {a3}, {t}, {v}, {a3}",
            "asr {v}, {xa}, #16",
            "mla {a2}, {t}, {v}, {a2}",
            "subs {n}, {n}, #1",
            "bne 2b",
            pw = inout(reg) w.as_ptr() => _, px = inout(reg) x.as_ptr() => _, n = inout(reg) groups => _,
            w0 = out(reg) _, w1 = out(reg) _, xa = out(reg) _, xb = out(reg) _, t = out(reg) _, v = out(reg) _,
            a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2, a3 = inout(reg) a3,
            options(readonly, nostack),
        )
    };
    [a0, a1, a2, a3]
}
