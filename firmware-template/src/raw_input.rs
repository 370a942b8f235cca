//! Stand-in for the raw-input constants tinypipe renders (`stages/firmware.py`) when project.yaml declares an
//! input scaling: per axis, the fixed-point step from a raw int16 sensor sample to the model's int8 input
//! (`tinyml_kernels::quantize_raw_i16`). Used only with the `raw-input` feature. These values map raw samples
//! onto the stand-in model's input one to one (multiplier 2^30, shift 30).

/// Axes of one sample: raw windows are interleaved, sample by sample.
pub const AXES: usize = 3;
/// Per axis: `raw * MULTIPLIER + BIAS`, then a rounding shift right by `SHIFT`.
pub const MULTIPLIER: [i32; AXES] = [1 << 30; AXES];
pub const BIAS: [i64; AXES] = [0; AXES];
pub const SHIFT: [u32; AXES] = [30; AXES];
