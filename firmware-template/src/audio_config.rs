// Rendered by tinypipe from the features stage (reference.json `features`): the audio front end the
// firmware runs on each raw window (src/features_audio.rs), its tables computed at build time.
// log_mel: 3 frames of 4 samples, 1 apart, each through a 4-point FFT
// and 2 mel filters from 0 to 25 Hz: 3 x 2 features

use tinyml_kernels::features::mfcc::{AudioFrontEnd, MelFilters};

pub const WINDOW: usize = 6;
pub const FFT_LENGTH: usize = 4;
pub const MEL_BINS: usize = 2;
/// Features per window: 3 frames x 2 values.
pub const FEATURES: usize = 6;
static WINDOW_Q15: [i16; 4] = [
    0, 16384, 32767, 16384,
];
static TWIDDLES: [i16; 4] = [
    32767, 0, 0, 32767,
];
static FILTER_FIRST: [u16; 2] = [
    1, 1,
];
static FILTER_OFFSETS: [u16; 3] = [
    0, 1, 2,
];
static FILTER_WEIGHTS: [i16; 2] = [
    15953, 16815,
];
static DCT_Q15: [i16; 0] = [
];
pub static AUDIO_FRONT_END: AudioFrontEnd = AudioFrontEnd {
    frame_stride: 1,
    dct_shift: 0,
    window: &WINDOW_Q15,
    twiddles: &TWIDDLES,
    filters: MelFilters { first: &FILTER_FIRST, offsets: &FILTER_OFFSETS, weights: &FILTER_WEIGHTS },
    dct: &DCT_Q15,
};
