//! Feature extraction in fixed point: what the device computes from raw int16 sensor windows before the model
//! (`features:` in project.yaml). Every routine has a numpy twin in tinypipe (`stages/_features/`) that gives
//! the same integers, so the host trains on exactly the values the device feeds the model.

pub mod fft;
pub mod fixed;
pub mod mfcc;
pub mod spectral;
