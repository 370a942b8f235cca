//! The model contract (README.md, "The model contract"), checked by the compiler for whichever engine wrote
//! `model.rs`: a missing item or a wrong signature fails the build here, naming the item, instead of deep
//! inside `main.rs` or a board's application — or not at all for `profile`, which only the `layers` feature
//! calls.

use crate::model;

/// The element types a model's input and output tensors may have: int8, or float32 (`quantization.io`).
/// `main.rs` reads the test windows in place and prints outputs as their bytes, which is sound for these
/// two only (no padding, every bit pattern valid, alignment at most 8).
pub trait Element: Copy + private::Sealed {
    /// The real value a stored element stands for: dequantized with the tensor's `scale` and `zero_point`
    /// (int8), or itself (float32). The real-time loop's emulated sensor replays the test windows this way.
    #[cfg_attr(any(not(feature = "realtime"), feature = "raw-input"),
               allow(dead_code, reason = "only the real-time loop's real-valued sensor reads it"))]
    fn to_real(self, scale: f32, zero_point: i32) -> f32;
}
impl Element for i8 {
    fn to_real(self, scale: f32, zero_point: i32) -> f32 {
        (i32::from(self) - zero_point) as f32 * scale
    }
}
impl Element for f32 {
    fn to_real(self, _scale: f32, _zero_point: i32) -> f32 {
        self
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for i8 {}
    impl Sealed for f32 {}
}

const fn element<T: Element>() {}

const _: () = element::<model::Input>();
const _: () = element::<model::Output>();
const _: usize = model::INPUT_LEN;
const _: usize = model::OUTPUT_LEN;
const _: fn() -> Result<(), &'static str> = model::init;
const _: fn(&[model::Input], &mut [model::Output]) = model::invoke;
const _: fn(f32) -> model::Input = model::input_from_real;

/// What `profile` reports to: `(op index, op name, ticks)`.
#[cfg(feature = "layers")]
type LayerReport = &'static mut dyn FnMut(usize, &'static str, u64);
/// `profile`'s signature for that report type.
#[cfg(feature = "layers")]
type Profile = fn(&[model::Input], &mut [model::Output], fn() -> u64, &mut LayerReport);
#[cfg(feature = "layers")]
const _: Profile = model::profile::<LayerReport>;
