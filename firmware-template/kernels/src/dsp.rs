//! The Cortex-M DSP extension's SIMD multiply-accumulates (ARMv7E-M: Cortex-M4, M7), as inline assembly.
//!
//! Compiled only with `cfg(tinyml_dsp)` (set by build.rs for `thumbv7em-*` targets: on stable Rust the
//! `dsp` target feature is not visible to `cfg(target_feature)`, and `core::arch::arm`'s DSP intrinsics are
//! unstable). Most functions are one instruction on registers: no memory access, no stack. The two inner
//! loops at the end are whole loops in assembly, because LLVM's register allocator spills accumulators of
//! the same loops written with the one-instruction functions (13 registers are free with the frame
//! pointer in r7: exactly what they need); they read memory only inside slices whose lengths they check
//! first. Every kernel has a portable twin computing the same bits.
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

/// `acc + a.lo * b.lo` on signed halfwords.
#[inline(always)]
pub fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
    let mut acc = acc;
    // SAFETY: register-only instruction.
    unsafe { asm!("smlabb {0}, {1}, {2}, {0}", inout(reg) acc, in(reg) a, in(reg) b, options(pure, nomem, nostack)) };
    acc
}

/// `acc + a.hi * b.hi` on signed halfwords.
#[inline(always)]
pub fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
    let mut acc = acc;
    // SAFETY: register-only instruction.
    unsafe { asm!("smlatt {0}, {1}, {2}, {0}", inout(reg) acc, in(reg) a, in(reg) b, options(pure, nomem, nostack)) };
    acc
}

/// `acc + a.hi * b.lo` on signed halfwords.
#[inline(always)]
pub fn smlatb(a: u32, b: u32, acc: i32) -> i32 {
    let mut acc = acc;
    // SAFETY: register-only instruction.
    unsafe { asm!("smlatb {0}, {1}, {2}, {0}", inout(reg) acc, in(reg) a, in(reg) b, options(pure, nomem, nostack)) };
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

/// `(a * b + 2^31) >> 32`: the high word of the product, rounded.
#[inline(always)]
pub fn smmulr(a: i32, b: i32) -> i32 {
    let r: i32;
    // SAFETY: register-only instruction.
    unsafe { asm!("smmulr {0}, {1}, {2}", lateout(reg) r, in(reg) a, in(reg) b, options(pure, nomem, nostack, preserves_flags)) };
    r
}

/// Two filter rows against two widened patches (the conv kernel's 2x2 block): `w` holds the rows' words
/// interleaved (row 0 word g, row 1 word g, ...), `x` per group `g` the words `(x0 even, x0 odd, x1 even,
/// x1 odd)`; `acc` is `[row0 px0, row0 px1, row1 px0, row1 px1]`. 18 instructions per 16 MACs.
#[inline(always)]
pub fn dot_2rows_2px(w: &[u32], x: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let groups = (w.len() / 2).min(x.len() / 4);
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    if groups == 0 {
        return acc;
    }
    // SAFETY: reads `2 * groups` words from `w` and `4 * groups` from `x`, within both slices; both are
    // `u32` slices, so word-aligned as LDRD requires. Registers only otherwise; the stack is not touched.
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
