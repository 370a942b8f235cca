//! A fixed-point FFT of real int16 samples, scaled per stage so it cannot overflow.

/// The complex FFT of real int16 `samples` (length N, a power of two), scaled by 1/N, into `re` and `im`
/// (length N each): radix-2 decimation in time, every butterfly's sum and difference halved with rounding, so
/// no value exceeds the input's largest magnitude times sqrt(2) and nothing overflows. `twiddles` holds
/// `cos, sin` of `2 pi k / N` in Q15 for `k < N / 2`, interleaved (tinypipe renders the table;
/// `stages/_features/fixed.py` has the same in numpy). Returns false, writing nothing, when the lengths do not
/// fit.
pub fn fft_q15(samples: &[i16], twiddles: &[i16], re: &mut [i32], im: &mut [i32]) -> bool {
    let n = samples.len();
    if n < 2 || !n.is_power_of_two() || twiddles.len() != n || re.len() != n || im.len() != n {
        return false;
    }
    let bits = n.trailing_zeros();
    for (i, &sample) in samples.iter().enumerate() {
        let reversed = i.reverse_bits() >> (usize::BITS - bits);
        re[reversed] = i32::from(sample);
        im[reversed] = 0;
    }
    let mut span = 2;
    while span <= n {
        let half = span / 2;
        let stride = n / span;
        for start in (0..n).step_by(span) {
            for offset in 0..half {
                let (top, bottom) = (start + offset, start + offset + half);
                let wr = i64::from(twiddles[2 * offset * stride]);
                let wi = i64::from(twiddles[2 * offset * stride + 1]);
                let (br, bi) = (i64::from(re[bottom]), i64::from(im[bottom]));
                // b times the conjugate twiddle: the forward transform's e^(-2 pi i k / N)
                let tr = round_shift(br * wr + bi * wi, 15);
                let ti = round_shift(bi * wr - br * wi, 15);
                let (ar, ai) = (i64::from(re[top]), i64::from(im[top]));
                re[top] = round_shift(ar + tr, 1) as i32;
                im[top] = round_shift(ai + ti, 1) as i32;
                re[bottom] = round_shift(ar - tr, 1) as i32;
                im[bottom] = round_shift(ai - ti, 1) as i32;
            }
        }
        span *= 2;
    }
    true
}

/// `|X|^2` of one bin (below 2^33 for `fft_q15`'s output).
#[inline]
pub fn power(re: i32, im: i32) -> i64 {
    i64::from(re) * i64::from(re) + i64::from(im) * i64::from(im)
}

/// `v / 2^k` rounded, halves up (an arithmetic shift, as the host's numpy `>>`).
#[inline(always)]
pub(crate) fn round_shift(v: i64, k: u32) -> i64 {
    (v + (1 << (k - 1))) >> k
}
