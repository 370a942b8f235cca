//! `features: {kind: spectral}` for motion sensors: per axis, the RMS, the log energy of each FFT bin and the
//! strongest bins, from raw int16 samples. `stages/_features/spectral.py` documents the steps and computes the
//! same integers on the host.

use super::fft::{fft_q15, power};
use super::fixed::{biquad_q28, isqrt, log2_q8};

/// What tinypipe renders per project (`src/features_config.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Spectral<'a> {
    pub window: usize,
    pub axes: usize,
    pub fft_length: usize,
    pub peaks: usize,
    /// `cos, sin` of `2 pi k / fft_length` in Q15, `k < fft_length / 2`, interleaved
    pub twiddles: &'a [i16],
    /// a biquad's `[b0, b1, b2, a1, a2]` in Q28, run over each axis first
    pub filter: Option<[i32; 5]>,
}

/// Features per axis: the RMS, `fft_length / 2` bins, then each peak's bin and height.
pub const fn features_per_axis(fft_length: usize, peaks: usize) -> usize {
    1 + fft_length / 2 + 2 * peaks
}

/// Working memory: `signal` one axis of the window, `re`/`im` one FFT frame, `power` the averaged bins.
pub struct Scratch<'a> {
    pub signal: &'a mut [i16],
    pub re: &'a mut [i32],
    pub im: &'a mut [i32],
    pub power: &'a mut [i64],
}

/// The features of one window of `samples` (`window` samples of `axes` values, interleaved) into `out`
/// (`features_per_axis` rows of `axes` values, row-major: the model's `[rows, axes]` input). Returns false,
/// writing nothing, when a length does not fit the spec.
pub fn spectral_i16(samples: &[i16], spec: &Spectral, scratch: &mut Scratch, out: &mut [i16]) -> bool {
    let (window, axes, n, peaks) = (spec.window, spec.axes, spec.fft_length, spec.peaks);
    let bins = n / 2;
    if axes == 0 || n < 2 || !n.is_power_of_two() || n > window || peaks > bins
        || samples.len() != window * axes || out.len() != features_per_axis(n, peaks) * axes
        || scratch.signal.len() != window || scratch.re.len() != n || scratch.im.len() != n
        || scratch.power.len() != bins || spec.twiddles.len() != n
    {
        return false;
    }
    let Scratch { signal, re, im, power: bin_power } = scratch;
    let frames = (window / n) as i64;
    let length = window as i64;
    for axis in 0..axes {
        for (i, value) in signal.iter_mut().enumerate() {
            *value = samples[i * axes + axis];
        }
        if let Some(coefficients) = &spec.filter {
            biquad_q28(signal, coefficients);
        }
        let sum: i64 = signal.iter().map(|&v| i64::from(v)).sum();
        let mean = (2 * sum + length).div_euclid(2 * length); // rounded half up, as the host's floor division
        let mut energy = 0i64;
        for value in signal.iter_mut() {
            let centred = (i64::from(*value) - mean).clamp(-32768, 32767);
            *value = centred as i16;
            energy += centred * centred;
        }
        out[axis] = isqrt(energy / length).min(32767) as i16;

        bin_power.fill(0);
        for frame in signal.chunks_exact(n) {
            fft_q15(frame, spec.twiddles, re, im);
            for (k, total) in bin_power.iter_mut().enumerate() {
                *total += power(re[k + 1], im[k + 1]);
            }
        }
        for (k, total) in bin_power.iter_mut().enumerate() {
            *total /= frames;
            out[(1 + k) * axes + axis] = log2_q8(*total) as i16;
        }
        // the strongest bins, the larger first and the lower bin on a tie; a taken bin is marked -1
        for peak in 0..peaks {
            let (mut best, mut best_power) = (0, -1i64);
            for (k, &p) in bin_power.iter().enumerate() {
                if p > best_power {
                    (best, best_power) = (k, p);
                }
            }
            out[(1 + bins + peak) * axes + axis] = (best + 1) as i16;
            out[(1 + bins + peaks + peak) * axes + axis] = log2_q8(best_power) as i16;
            bin_power[best] = -1;
        }
    }
    true
}
