//! Audio features on the device (`audio-features`, with `features`): a raw int16 microphone window -> log-mel
//! energies or MFCCs per frame (`tinyml_kernels::features::mfcc`, with the tables tinypipe rendered into
//! `src/audio_config.rs`) -> each feature through its int8 step (`raw_input.rs`: the feature's standardisation
//! folded with the input quantization): the same integers as the host's (`stages/_features/mfcc.py`). The
//! counterpart of `features.rs` for `features.kind: mfcc | log_mel`, with the same interface.

use core::cell::UnsafeCell;

use tinyml_kernels::features::mfcc::{audio_features, AudioScratch};

use crate::audio_config::{AUDIO_FRONT_END, FEATURES, FFT_LENGTH, MEL_BINS, WINDOW};
use crate::model;

/// Raw values per window: `WINDOW` samples of the one microphone axis.
pub const RAW_WINDOW_LEN: usize = WINDOW;
const _: () = assert!(model::INPUT_LEN == FEATURES, "the model input must be the features of one window");

/// The front end's working memory, in .bss (not on the stack, whose high-water mark is about the model).
#[allow(clippy::type_complexity)]
struct Work(
    UnsafeCell<(
        [i16; FFT_LENGTH],
        [i32; FFT_LENGTH],
        [i32; FFT_LENGTH],
        [i64; FFT_LENGTH / 2 + 1],
        [i64; MEL_BINS],
        [i32; MEL_BINS],
    )>,
);
// SAFETY: only `model_input` touches it, from the main thread (the replay, then the real-time loop; never an
// interrupt handler), and no reference to it outlives one call.
unsafe impl Sync for Work {}
static WORK: Work = Work(UnsafeCell::new((
    [0; FFT_LENGTH],
    [0; FFT_LENGTH],
    [0; FFT_LENGTH],
    [0; FFT_LENGTH / 2 + 1],
    [0; MEL_BINS],
    [0; MEL_BINS],
)));

/// The model's input from one raw window: the features into `values`, then each through its int8 step.
pub fn model_input(raw: &[i16], values: &mut [i16; model::INPUT_LEN], input: &mut [model::Input]) {
    // SAFETY: see `Work`: this is the only live reference to WORK, dropped when the call returns.
    let (frame, re, im, power, energies, logs) = unsafe { &mut *WORK.0.get() };
    let mut scratch = AudioScratch { frame, re, im, power, energies, logs };
    if !audio_features(&AUDIO_FRONT_END, raw, &mut scratch, values) {
        panic!("audio features: a buffer does not fit src/audio_config.rs");
    }
    for (i, (&value, out)) in values.iter().zip(input.iter_mut()).enumerate() {
        *out = crate::raw_to_input(value, i);
    }
}
