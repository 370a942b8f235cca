//! Stand-in for the engine's `model.rs`, so the template builds, lints and runs on its own: the `firmware`
//! stage replaces this file with the one the engine generated (`engines/native/emit.py`,
//! `engines/tflm/codegen.py`). It honours the same contract (`contract.rs`) with a model small enough to
//! check by hand: two samples of three axes in, one output per axis, the saturated sum of that axis's
//! samples. `data/test_inputs.bin` holds two windows for it: 1..=6 (outputs 5, 7, 9) and -128 x 6
//! (outputs -128 x 3).

use tinyml_kernels as k;

/// The element type of the model's input tensor (int8).
pub type Input = i8;
/// The element type of the model's output tensor (int8).
pub type Output = i8;
/// Input values the model reads: 2 samples x 3 axes.
pub const INPUT_LEN: usize = 6;
/// Output values the model writes: one per axis.
pub const OUTPUT_LEN: usize = 3;
const AXES: usize = OUTPUT_LEN;
const INPUT_SCALE: f32 = 0.05;
const INPUT_ZERO_POINT: i32 = 0;

/// A real-valued sample as an input element, quantized as TFLite's QUANTIZE does.
#[inline]
pub fn input_from_real(x: f32) -> Input {
    k::quantize_f32(x, INPUT_SCALE, INPUT_ZERO_POINT)
}

/// One-time set-up before the first `invoke`: none.
pub fn init() -> Result<(), &'static str> {
    Ok(())
}

/// Run the model: `input` holds INPUT_LEN values, `output` receives OUTPUT_LEN.
pub fn invoke(input: &[Input], output: &mut [Output]) {
    for (axis, out) in output.iter_mut().enumerate().take(AXES) {
        let sum: i32 = input.iter().skip(axis).step_by(AXES).map(|&x| i32::from(x)).sum();
        *out = sum.clamp(-128, 127) as i8;
    }
}

/// The model's one operator, timed: `report(0, "SUM", ticks)`.
#[allow(dead_code, reason = "main.rs calls it with the `layers` feature only")]
pub fn profile<F: FnMut(usize, &'static str, u64)>(
    input: &[Input],
    output: &mut [Output],
    clock: fn() -> u64,
    report: &mut F,
) {
    let begin = clock();
    invoke(input, output);
    report(0, "SUM", clock() - begin);
}
