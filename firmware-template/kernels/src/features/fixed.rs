//! Fixed-point helpers of the feature extractors: logarithm, square root, biquad filter.

use super::fft::round_shift;

/// Biquad coefficients' fraction bits: `[b0, b1, b2, a1, a2]` in Q28.
pub const BIQUAD_FRACTION_BITS: u32 = 28;

/// `log2(v + 1)` in Q8 for `0 <= v < 2^62`: the leading one's position, then the 8 bits below it as the
/// fraction (Mitchell's piecewise-linear logarithm, exact at powers of two).
#[inline]
pub fn log2_q8(v: i64) -> i32 {
    let v = (v.max(0) + 1) as u64;
    let msb = 63 - v.leading_zeros();
    let fraction = if msb >= 8 { v >> (msb - 8) } else { v << (8 - msb) } & 0xFF;
    (msb * 256) as i32 + fraction as i32
}

/// `floor(sqrt(v))` for `0 <= v < 2^62`, bit by bit.
#[inline]
pub fn isqrt(v: i64) -> i64 {
    let mut root = 0i64;
    for bit in (0..=30).rev() {
        let trial = root + (1 << bit);
        if trial * trial <= v {
            root = trial;
        }
    }
    root
}

/// A biquad (direct form I) over `samples` in place, from zero state: `y = (b0 x[n] + b1 x[n-1] + b2 x[n-2] -
/// a1 y[n-1] - a2 y[n-2]) >> 28`, rounded and saturated to int16 (`coefficients` in Q28, |each| < 2^31).
pub fn biquad_q28(samples: &mut [i16], coefficients: &[i32; 5]) {
    let [b0, b1, b2, a1, a2] = coefficients.map(i64::from);
    let (mut x1, mut x2, mut y1, mut y2) = (0i64, 0i64, 0i64, 0i64);
    for sample in samples.iter_mut() {
        let x = i64::from(*sample);
        let acc = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
        let y = round_shift(acc, BIQUAD_FRACTION_BITS).clamp(-32768, 32767);
        *sample = y as i16;
        (x2, x1, y2, y1) = (x1, x, y1, y);
    }
}
