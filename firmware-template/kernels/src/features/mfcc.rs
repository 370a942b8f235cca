//! The audio front end of `features: {kind: mfcc | log_mel}` in fixed point: raw int16 microphone samples to
//! log-mel energies or MFCCs, integer step for integer step the same as tinypipe's numpy twin
//! (`tinypipe/stages/_features/mfcc.py`), so host and device features are equal bit for bit.
//!
//! Per frame: a q15 Hann window (rounded), zero-padding to the FFT length, the fixed-point FFT, the power
//! `re^2 + im^2` per bin, triangular mel filters with q15 weights summed in 64 bits, `log2` in Q16 from the
//! leading zeros and a 33-entry table with linear interpolation; log-mel features are those logs in Q8, MFCCs a
//! DCT-II of them (q15 matrix, the sum shifted right by `15 + dct_shift`). Every feature is an int16. Every
//! table is computed by tinypipe at build time and passed in [`AudioFrontEnd`]: nothing here evaluates a float.

use super::fft;

/// The log's Q format: `log2(energy) * 2^16`.
pub const LOG2_FRACTION_BITS: u32 = 16;
/// The table's segments: 2^5 = 32 (the interpolated `log2(1 + f)` is within 2e-4 of the true one).
const LOG2_TABLE_BITS: u32 = 5;
/// Log-mel features are the logs in Q8: `(log + 2^7) >> 8`, below 2^14 (every log is below 64 x 2^16).
const LOG_MEL_SHIFT: u32 = 8;
/// `round(log2(1 + i / 32) * 2^16)`, i = 0..=32 (tinypipe's `LOG2_TABLE`; a test compares the two).
pub const LOG2_TABLE: [i32; 33] = [
    0, 2909, 5732, 8473, 11136, 13727, 16248, 18704, 21098, 23433, 25711, 27936, 30109, 32234, 34312, 36346, 38336,
    40286, 42196, 44068, 45904, 47705, 49472, 51207, 52911, 54584, 56229, 57845, 59434, 60997, 62534, 64047, 65536,
];

/// `log2(value)` in Q16 (0 for values up to 1).
#[inline]
pub fn log2_q16(value: i64) -> i32 {
    let value = value.max(1) as u64;
    let exponent = 63 - value.leading_zeros();
    let fraction = if exponent >= LOG2_FRACTION_BITS {
        value >> (exponent - LOG2_FRACTION_BITS)
    } else {
        value << (LOG2_FRACTION_BITS - exponent)
    } as u32
        & ((1 << LOG2_FRACTION_BITS) - 1);
    let low_bits = LOG2_FRACTION_BITS - LOG2_TABLE_BITS;
    let index = (fraction >> low_bits) as usize; // < 32: `fraction` has 16 bits
    let remainder = (fraction & ((1 << low_bits) - 1)) as i32;
    let (here, next) = (LOG2_TABLE[index], LOG2_TABLE[index + 1]);
    ((exponent as i32) << LOG2_FRACTION_BITS) + here + (((next - here) * remainder) >> low_bits)
}

/// One frame through the q15 window, rounded: `(x * w + 2^14) >> 15`, the rest of `out` zero (the FFT's
/// padding). Leaves `out` untouched when `samples` and `window` differ in length or `out` is shorter.
pub fn window_q15(samples: &[i16], window: &[i16], out: &mut [i16]) {
    if samples.len() != window.len() || out.len() < samples.len() {
        return;
    }
    let (head, tail) = out.split_at_mut(samples.len());
    for ((o, &x), &w) in head.iter_mut().zip(samples).zip(window) {
        // |x * w| <= 2^30: the sum fits an i32, and the result an i16
        *o = ((i32::from(x) * i32::from(w) + (1 << 14)) >> 15) as i16;
    }
    tail.fill(0);
}

/// The mel filter bank: filter `m` weighs FFT bins `first[m]..` with `weights[offsets[m]..offsets[m + 1]]` (q15).
#[derive(Clone, Copy, Debug)]
pub struct MelFilters<'a> {
    pub first: &'a [u16],
    pub offsets: &'a [u16],
    pub weights: &'a [i16],
}

impl MelFilters<'_> {
    pub fn bins(&self) -> usize {
        self.first.len()
    }

    /// Whether every filter lies inside `spectrum_bins` power bins and the weights.
    pub fn fits(&self, spectrum_bins: usize) -> bool {
        self.offsets.len() == self.first.len() + 1
            && self.offsets.windows(2).zip(self.first).all(|(span, &first)| {
                let (from, to) = (usize::from(span[0]), usize::from(span[1]));
                from <= to && to <= self.weights.len() && usize::from(first) + (to - from) <= spectrum_bins
            })
    }

    /// `sum(weight * power)` per filter into `out` (`self.bins()` values). The caller checked [`Self::fits`].
    fn energies(&self, power: &[i64], out: &mut [i64]) {
        for ((o, span), &first) in out.iter_mut().zip(self.offsets.windows(2)).zip(self.first) {
            let weights = &self.weights[usize::from(span[0])..usize::from(span[1])];
            let bins = &power[usize::from(first)..][..weights.len()];
            // power < 2^33 (the FFT scales by 1/N) times a q15 weight: < 2^48 a term, so a sum over even
            // 2^15 bins stays below 2^63
            *o = weights.iter().zip(bins).map(|(&w, &p)| i64::from(w) * p).sum();
        }
    }
}

/// `(sum(matrix[j][m] * logs[m]) + 2^(shift - 1)) >> shift` per row `j` of the q15 `matrix` (`out.len()` rows
/// of `logs.len()`), in i64. tinypipe picks `shift` so that no row can leave the int16 range for logs below
/// 64 x 2^16. Leaves `out` untouched when the matrix is not `out.len() x logs.len()` or `shift` is 0 or over 62.
pub fn dct_q15(logs: &[i32], matrix: &[i16], shift: u32, out: &mut [i16]) {
    if logs.is_empty() || matrix.len() != out.len() * logs.len() || !(1..=62).contains(&shift) {
        return;
    }
    for (o, row) in out.iter_mut().zip(matrix.chunks_exact(logs.len())) {
        // |d| <= 2^15, |l| < 2^22: under 2^37 a term, so the sum of even 2^20 terms fits
        let acc: i64 = row.iter().zip(logs).map(|(&d, &l)| i64::from(d) * i64::from(l)).sum();
        *o = ((acc + (1 << (shift - 1))) >> shift) as i16;
    }
}

/// The front end's parameters and tables (tinypipe renders them from `features:`).
#[derive(Clone, Copy, Debug)]
pub struct AudioFrontEnd<'a> {
    /// Samples between the starts of two frames.
    pub frame_stride: usize,
    /// MFCC: the DCT's sum is shifted right by `15 + dct_shift` (see [`dct_q15`]).
    pub dct_shift: u32,
    /// The q15 Hann window: its length is the frame length.
    pub window: &'a [i16],
    /// The FFT's twiddles (`features::fft::fft_q15`): their count is the FFT length.
    pub twiddles: &'a [i16],
    pub filters: MelFilters<'a>,
    /// The DCT-II matrix, coefficients x mel bins, in q15; empty for log-mel energies.
    pub dct: &'a [i16],
}

/// Working memory of [`audio_features`]: `frame`, `re`, `im` and `power` of the FFT length, `logs` of the mel bins.
pub struct AudioScratch<'a> {
    pub frame: &'a mut [i16],
    pub re: &'a mut [i32],
    pub im: &'a mut [i32],
    pub power: &'a mut [i64],
    pub energies: &'a mut [i64],
    pub logs: &'a mut [i32],
}

impl AudioFrontEnd<'_> {
    /// Values per frame: the DCT's coefficients (MFCC), or the mel bins (log-mel).
    pub fn values_per_frame(&self) -> usize {
        if self.dct.is_empty() { self.filters.bins() } else { self.dct.len() / self.filters.bins().max(1) }
    }

    /// Frames in a window of `samples` samples (0 when the frame is longer).
    pub fn frames(&self, samples: usize) -> usize {
        let length = self.window.len();
        if length == 0 || samples < length || self.frame_stride == 0 {
            return 0;
        }
        1 + (samples - length) / self.frame_stride
    }
}

/// The features of one window of raw samples into `out` (`frames x values_per_frame`, frame after frame).
/// Returns false, leaving `out` unspecified, when the lengths do not fit the parameters.
pub fn audio_features(front: &AudioFrontEnd, samples: &[i16], scratch: &mut AudioScratch, out: &mut [i16]) -> bool {
    let fft_length = front.twiddles.len();
    let (bins, values) = (front.filters.bins(), front.values_per_frame());
    let frames = front.frames(samples.len());
    let fits = frames > 0
        && front.window.len() <= fft_length
        && front.filters.fits(fft_length / 2 + 1)
        && (front.dct.is_empty() || front.dct.len() == values * bins)
        && scratch.frame.len() == fft_length
        && scratch.power.len() == fft_length / 2 + 1
        && scratch.energies.len() == bins
        && scratch.logs.len() == bins
        && out.len() == frames * values;
    if !fits {
        return false;
    }
    for (index, features) in out.chunks_exact_mut(values).enumerate() {
        let start = index * front.frame_stride;
        window_q15(&samples[start..start + front.window.len()], front.window, scratch.frame);
        if !fft::fft_q15(scratch.frame, front.twiddles, scratch.re, scratch.im) {
            return false;
        }
        for ((p, &re), &im) in scratch.power.iter_mut().zip(scratch.re.iter()).zip(scratch.im.iter()) {
            *p = fft::power(re, im);
        }
        front.filters.energies(scratch.power, scratch.energies);
        for (log, &energy) in scratch.logs.iter_mut().zip(scratch.energies.iter()) {
            *log = log2_q16(energy);
        }
        if front.dct.is_empty() {
            for (feature, &log) in features.iter_mut().zip(scratch.logs.iter()) {
                *feature = ((log + (1 << (LOG_MEL_SHIFT - 1))) >> LOG_MEL_SHIFT) as i16;
            }
        } else {
            dct_q15(scratch.logs, front.dct, 15 + front.dct_shift, features);
        }
    }
    true
}
