// Rendered by tinypipe from the reference stage (`raw_input`): per axis, raw int16 sample -> int8 model
// input, folding the declared scaling, (raw - offset) * scale, and the input quantization into
// `tinyml_kernels::quantize_raw_i16`'s multiplier, bias and shift.
// scaling (sensor): offset 0, 0, 0
//   scale 0.05, 0.05, 0.05

pub const AXES: usize = 3;
pub const MULTIPLIER: [i32; AXES] = [1073741824, 1073741824, 1073741824];
pub const BIAS: [i64; AXES] = [0, 0, 0];
pub const SHIFT: [u32; AXES] = [30, 30, 30];
