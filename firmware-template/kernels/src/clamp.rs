//! The fused activation of CONV_2D and DEPTHWISE_CONV_2D as a pass of its own over the output.
//!
//! Several convolution fast paths (the Armv7-M assembly loops, the DSP path's int8-filter loops, the depthwise
//! row loop for a range clamped at both ends) saturate to the whole int8 range only. A layer whose activation
//! range is narrower (RELU or RELU6 whose output zero point is above -128, as a model calibrated on few samples
//! gets) would otherwise take the portable path, twice the instructions or more. The code generator runs such a
//! layer with the full range instead and then this clamp (emit.py's CLAMPED_KERNELS says which): `clamp(lo,
//! hi)` of `ssat8(v)` equals `clamp(lo, hi)` of `v` for any `-128 <= lo <= hi <= 127`, so the bits are TFLM's,
//! for about two instructions per output byte on a DSP core.

/// Every value of `y` clamped into `[lo, hi]` (both within int8; `lo <= hi`).
pub fn clamp_s8(y: &mut [i8], lo: i32, hi: i32) {
    let (lo, hi) = (lo.clamp(-128, 127) as i8, hi.clamp(-128, 127) as i8);
    if lo > hi {
        return;
    }
    #[cfg(tinyml_dsp)]
    simd::clamp(y, lo, hi);
    #[cfg(not(tinyml_dsp))]
    for v in y {
        *v = (*v).clamp(lo, hi);
    }
}

#[cfg(tinyml_dsp)]
#[allow(unsafe_code)]
mod simd {
    use core::arch::asm;

    /// Four bytes a word: SSUB8 sets a GE flag per byte where `x >= lo` (`hi >= x`), SEL keeps those bytes
    /// and takes the bound's elsewhere.
    pub(super) fn clamp(y: &mut [i8], lo: i8, hi: i8) {
        // SAFETY: every bit pattern is a valid `u32` and a valid `i8`; `align_to_mut` hands out the aligned
        // middle as words and the rest as bytes, all within `y`.
        let (head, words, tail) = unsafe { y.align_to_mut::<u32>() };
        for v in head.iter_mut().chain(tail.iter_mut()) {
            *v = (*v).clamp(lo, hi);
        }
        let lo4 = u32::from_ne_bytes([lo as u8; 4]);
        let hi4 = u32::from_ne_bytes([hi as u8; 4]);
        if hi == 127 {
            for w in words.iter_mut() {
                let mut x = *w;
                // SAFETY: registers only; the GE flags it sets are read by the SEL right after it.
                unsafe {
                    asm!("ssub8 {t}, {x}, {lo}", "sel {x}, {x}, {lo}", x = inout(reg) x, t = out(reg) _,
                         lo = in(reg) lo4, options(pure, nomem, nostack));
                }
                *w = x;
            }
        } else {
            for w in words.iter_mut() {
                let mut x = *w;
                // SAFETY: as above, twice.
                unsafe {
                    asm!("ssub8 {t}, {x}, {lo}", "sel {x}, {x}, {lo}", "ssub8 {t}, {hi}, {x}", "sel {x}, {x}, {hi}",
                         x = inout(reg) x, t = out(reg) _, lo = in(reg) lo4, hi = in(reg) hi4,
                         options(pure, nomem, nostack));
                }
                *w = x;
            }
        }
    }
}
