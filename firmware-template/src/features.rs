//! Feature extraction on the device (`features` feature): a raw int16 window -> the configured features
//! (`src/features_config.rs`, rendered by tinypipe) in fixed point -> each feature through its int8 step
//! (`raw_input.rs`: the feature's standardisation folded with the input quantization), the same integers as the
//! host's (`stages/_features/`). Used by the test-set replay (which prints the features as `feat` lines) and by
//! the real-time loop.

use core::cell::UnsafeCell;

use tinyml_kernels::features::spectral::{features_per_axis, spectral_i16, Scratch, Spectral};

use crate::features_config::{AXES, FFT_LENGTH, FILTER, PEAKS, TWIDDLES, WINDOW};
use crate::model;

/// Raw values per window: `WINDOW` samples of `AXES` values.
pub const RAW_WINDOW_LEN: usize = WINDOW * AXES;
const _: () = assert!(
    model::INPUT_LEN == features_per_axis(FFT_LENGTH, PEAKS) * AXES,
    "the model input must be the features of one window"
);

const SPEC: Spectral<'static> =
    Spectral { window: WINDOW, axes: AXES, fft_length: FFT_LENGTH, peaks: PEAKS, twiddles: &TWIDDLES, filter: FILTER };

/// The extractor's working memory, in .bss (not on the stack, whose high-water mark is about the model).
struct Work(UnsafeCell<([i16; WINDOW], [i32; FFT_LENGTH], [i32; FFT_LENGTH], [i64; FFT_LENGTH / 2])>);
// SAFETY: only `model_input` touches it, from the main thread (the replay, then the real-time loop; never an
// interrupt handler), and no reference to it outlives one call.
unsafe impl Sync for Work {}
static WORK: Work = Work(UnsafeCell::new(([0; WINDOW], [0; FFT_LENGTH], [0; FFT_LENGTH], [0; FFT_LENGTH / 2])));

/// The model's input from one raw window: the features into `values`, then each through its int8 step.
pub fn model_input(raw: &[i16], values: &mut [i16; model::INPUT_LEN], input: &mut [model::Input]) {
    // SAFETY: see `Work`: this is the only live reference to WORK, dropped when the call returns.
    let (signal, re, im, power) = unsafe { &mut *WORK.0.get() };
    let mut scratch = Scratch { signal, re, im, power };
    if !spectral_i16(raw, &SPEC, &mut scratch, values) {
        panic!("feature extraction: a buffer does not fit src/features_config.rs");
    }
    for (i, (&value, out)) in values.iter().zip(input.iter_mut()).enumerate() {
        *out = crate::raw_to_input(value, i);
    }
}
