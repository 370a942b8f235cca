// Rendered by tinypipe from the features stage (reference.json `features`): the spectral features
// the firmware computes from each raw window (src/features.rs).
// filter: none

pub const WINDOW: usize = 2;
pub const AXES: usize = 3;
pub const FFT_LENGTH: usize = 2;
pub const PEAKS: usize = 0;
pub const TWIDDLES: [i16; FFT_LENGTH] = [32767, 0];
pub const FILTER: Option<[i32; 5]> = None;
