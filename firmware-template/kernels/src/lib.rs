//! int8 inference kernels, bit-exact with TensorFlow Lite Micro's reference kernels
//! (`tensorflow/lite/kernels/internal/reference/integer_ops/`), for ahead-of-time generated models.
//!
//! Activations are flat `i8` slices in TFLite layout (NHWC); a float32 model input or output (read by
//! QUANTIZE, written by DEQUANTIZE) is stored as little-endian bytes (see `convert`). Conv, depthwise and
//! fully connected weights come re-laid by the code generator as `u32` words for their kernels' blocking (see
//! `conv`, `depthwise` and `fully_connected`). Every kernel takes a plain-data parameter struct that tinypipe fills in
//! at code-generation time, so nothing is computed here that TFLM computes in `Prepare`.
//!
//! Two paths, the same bits: with `cfg(tinyml_dsp)` (build.rs sets it for ARMv7E-M targets and
//! ARMv8-M Mainline cores with the extension) the inner loops use the DSP extension's SIMD
//! multiply-accumulates (`dsp`); otherwise portable Rust, with assembly inner loops on ARMv7-M cores without
//! the extension (`armv7m`, `cfg(tinyml_armv7m)`). Cores with Helium add `cfg(tinyml_mve)`: conv and fully
//! connected inner loops on 128-bit MVE vectors (`mve`), the DSP path for the rest.
//!
//! Kernels never panic on their own: each one first checks that the slices it got are as long as its
//! parameters say and returns without writing when they are not (generated code never passes such slices).
#![cfg_attr(not(test), no_std)] // `cargo test` on the host runs `tests` with std's harness
#![deny(unsafe_code)] // allowed only in `dsp`, `armv7m`, `armv6m`, `mve` and `clamp`'s DSP loop: inline assembly

pub mod arena;
#[cfg(tinyml_armv6m)]
pub mod armv6m;
#[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
pub mod armv7m;
pub mod channels;
pub mod clamp;
pub mod conv;
pub mod convert;
pub mod copy;
pub mod depthwise;
#[cfg(tinyml_dsp)]
pub mod dsp;
pub mod elementwise;
pub mod features;
pub mod fixedpoint;
pub mod fully_connected;
#[cfg(tinyml_mve)]
pub mod mve;
pub mod pool;
pub mod quant;
pub mod reduce;
pub mod rows;
pub mod softmax;
#[cfg(test)]
mod tests;


pub use arena::{copy_into, inputs_fit, io_fits, range_fits, split_in_place, split_inputs, split_io};
pub use clamp::clamp_s8;
pub use conv::{conv2d_s8, conv2d_s8_compact, conv2d_s8_widened, conv_filter_widened_words, conv_filter_words, Conv2d};
pub use convert::{
    dequantize_s8_f32, load, quantize_f32, quantize_f32_s8, store, Dequantize, Element, Quantize,
};
pub use copy::{concatenation_s8, strided_copy_s8, Concatenation, StridedCopy};
pub use elementwise::{
    add_s8, add_s8_in_place, add_s8_table, add_s8_table_in_place, lookup_s8, lookup_s8_in_place, mul_s8, mul_s8_in_place, Add, AddTable, Broadcast, Lookup, Mul,
};
pub use channels::{unpack_channels, PackedChannels};
pub use depthwise::{compact_variant, depthwise_conv2d_s8, depthwise_conv2d_s8_compact, depthwise_filter_words, DepthwiseConv2d};
pub use fully_connected::{
    fc_coded_scratch_words, fc_scratch_words, fc_weight_widened_words, fc_weight_words, fully_connected_s8,
    fully_connected_s8_coded, fully_connected_s8_widened, FullyConnected, CODE_TABLE_WORDS,
};
pub use pool::{average_pool2d_s8, max_pool2d_s8, Pool2d};
pub use quant::{multiply_by_quantized_multiplier, quantize_raw_i16, Rescale};
pub use reduce::{mean_s8, Mean};
pub use rows::{
    conv2d_s8_band, conv2d_s8_rows, depthwise_conv2d_s8_band, depthwise_conv2d_s8_rows, patch_fits, rows_fit,
    split_patch, Around, Rows,
};
pub use softmax::{softmax_s8, softmax_s8_in_place, Softmax};
