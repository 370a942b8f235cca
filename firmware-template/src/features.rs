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

/// The extractor's working memory: one axis of the window, one FFT frame, the averaged bin powers.
struct Work {
    signal: [i16; WINDOW],
    re: [i32; FFT_LENGTH],
    im: [i32; FFT_LENGTH],
    power: [i64; FFT_LENGTH / 2],
}

/// `Work` in .bss (not on the stack, whose high-water mark is about the model).
struct WorkCell(UnsafeCell<Work>);
// SAFETY: only `model_input` touches it, from the main thread (the replay, then the real-time loop; never an
// interrupt handler), and no reference to it outlives one call.
unsafe impl Sync for WorkCell {}
static WORK: WorkCell = WorkCell(UnsafeCell::new(Work {
    signal: [0; WINDOW],
    re: [0; FFT_LENGTH],
    im: [0; FFT_LENGTH],
    power: [0; FFT_LENGTH / 2],
}));

/// The model's input from one raw window: the features into `values`, then each through its int8 step.
pub fn model_input(raw: &[i16], values: &mut [i16; model::INPUT_LEN], input: &mut [model::Input]) {
    // SAFETY: see `WorkCell`: this is the only live reference to WORK, dropped when the call returns.
    let work = unsafe { &mut *WORK.0.get() };
    let mut scratch = Scratch { signal: &mut work.signal, re: &mut work.re, im: &mut work.im, power: &mut work.power };
    if !spectral_i16(raw, &SPEC, &mut scratch, values) {
        panic!("feature extraction: a buffer does not fit src/features_config.rs");
    }
    for (i, (&value, out)) in values.iter().zip(input.iter_mut()).enumerate() {
        *out = crate::raw_to_input(value, i);
    }
}
