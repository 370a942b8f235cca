//! The tinypipe firmware: replays the test windows through the model and reports over semihosting, then hands
//! over to the board's application (sensor -> window -> model -> LEDs) where the board has one.
//!
//! With the `raw-input` feature the test windows are raw int16 sensor samples: each is turned into the model's
//! int8 input by the declared scaling's integer step (`raw_input.rs`) and printed first as `in <idx> <hex>`.
//! With the `features` feature (which implies `raw-input`) each raw window is first turned into its features
//! (`features.rs`), printed as `feat <idx> <hex>` (int16 little-endian), and the features go through the int8
//! step instead of the samples.
//!
//! Output, one line each: `out <idx> <output bytes in hex>` (little-endian for a float32 output) and
//! `ticks <idx> <SysTick ticks of model::invoke>` (plus `cycles <idx> <DWT cycles>` on boards whose support
//! has a cycle counter, and with the `layers` feature `layer <idx> <op index> <op> <ticks>` per operator) per
//! window; with the `realtime` feature the real-time loop's figures (`realtime.rs`); then
//! `stack <high-water bytes>` and `done`. Then `board::run_application` runs for ever if the
//! board's sensor answers; otherwise (an emulator, a board without a sensor) the firmware exits with status 0.
//! A panic or fault prints a line starting with `panic:` or `hardfault` and exits non-zero.
//!
//! Without a debugger (a board on its own) there is no semihosting host: the replay is skipped and the
//! application starts at once (see `semihosting::host_present`).

#![no_std]
#![no_main]
// Every `unsafe` operation sits in an `unsafe` block with a `// SAFETY:` argument, also inside `unsafe fn`s.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

/// The board support the `board-*` feature selects (see Cargo.toml); boards without an application get
/// `generic.rs`.
#[cfg_attr(feature = "board-stm32f4-discovery", path = "board/stm32f4_discovery.rs")]
#[cfg_attr(not(feature = "board-stm32f4-discovery"), path = "board/generic.rs")]
mod board;
mod contract;
#[cfg(feature = "audio-features")]
mod audio_config;
/// The features' extractor: `features_audio.rs` for sound (`mfcc`, `log_mel`), else `features.rs`; both give
/// `RAW_WINDOW_LEN` and `model_input`.
#[cfg(feature = "features")]
#[cfg_attr(feature = "audio-features", path = "features_audio.rs")]
mod features;
#[cfg(all(feature = "features", not(feature = "audio-features")))]
mod features_config;
mod model;
#[cfg(feature = "raw-input")]
mod raw_input;
#[cfg(feature = "realtime")]
mod realtime;
#[cfg(feature = "realtime")]
mod realtime_config;
mod rt;
mod semihosting;
mod stack;
mod systick;

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::panic::PanicInfo;

use semihosting::Line;

/// Aligned for any element type (`model::Input` is `i8` or `f32`), so the windows are read in place.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

const TEST_INPUT_BYTES: usize = include_bytes!("../data/test_inputs.bin").len();

/// What the test windows hold: the model's input elements, or with `raw-input` raw int16 sensor samples.
#[cfg(not(feature = "raw-input"))]
pub(crate) type TestSample = model::Input;
#[cfg(feature = "raw-input")]
pub(crate) type TestSample = i16;

/// N windows of `model::INPUT_LEN` values of type `TestSample` (little-endian), written by tinypipe from the
/// reference stage's test set. Its symbol name is fixed so tinypipe can report flash without the test data
/// (which only the emulator's replay needs) as the application's own flash.
#[no_mangle]
static TINYPIPE_TEST_INPUTS: Aligned<[u8; TEST_INPUT_BYTES]> = Aligned(*include_bytes!("../data/test_inputs.bin"));
static TEST_INPUTS: &Aligned<[u8]> = &TINYPIPE_TEST_INPUTS;

/// Values per stored test window: the model's input, or with `features` one raw sensor window.
#[cfg(not(feature = "features"))]
pub(crate) const TEST_WINDOW_LEN: usize = model::INPUT_LEN;
#[cfg(feature = "features")]
pub(crate) const TEST_WINDOW_LEN: usize = features::RAW_WINDOW_LEN;

const INPUT_BYTES: usize = TEST_WINDOW_LEN * size_of::<TestSample>();
const _: () = assert!(model::INPUT_LEN > 0 && model::OUTPUT_LEN > 0, "the model has empty input or output");
const _: () = assert!(
    !TEST_INPUTS.0.is_empty() && TEST_INPUTS.0.len() % INPUT_BYTES == 0,
    "data/test_inputs.bin must hold a whole, non-zero number of TEST_WINDOW_LEN windows"
);

/// The output buffer lives in .bss so the stack high-water mark is about the model, not about us.
struct OutputBuffer(UnsafeCell<[model::Output; model::OUTPUT_LEN]>);
// SAFETY: the firmware has one thread, and only `replay_test_set` (never an interrupt handler) touches it.
unsafe impl Sync for OutputBuffer {}
static OUTPUT: OutputBuffer = OutputBuffer(UnsafeCell::new([0 as model::Output; model::OUTPUT_LEN]));

/// The model input made from a raw window (`raw-input`), in .bss like the output buffer.
#[cfg(feature = "raw-input")]
struct InputBuffer(UnsafeCell<[model::Input; model::INPUT_LEN]>);
// SAFETY: as for `OutputBuffer`: one thread, and only `replay_test_set` touches it.
#[cfg(feature = "raw-input")]
unsafe impl Sync for InputBuffer {}
#[cfg(feature = "raw-input")]
static INPUT: InputBuffer = InputBuffer(UnsafeCell::new([0; model::INPUT_LEN]));

/// The features of a raw window (`features`), in .bss like the input.
#[cfg(feature = "features")]
struct FeatureBuffer(UnsafeCell<[i16; model::INPUT_LEN]>);
// SAFETY: as for `OutputBuffer`: one thread, and only `replay_test_set` touches it.
#[cfg(feature = "features")]
unsafe impl Sync for FeatureBuffer {}
#[cfg(feature = "features")]
static FEATURE_VALUES: FeatureBuffer = FeatureBuffer(UnsafeCell::new([0; model::INPUT_LEN]));

/// The window as the model's input: as stored, or made from raw samples and printed (`raw-input`).
#[cfg(not(feature = "raw-input"))]
fn model_input(_idx: usize, window: &[TestSample]) -> &[model::Input] {
    window
}

/// A raw int16 sample of axis `axis` as the model's int8 input: the declared input scaling's fixed-point step
/// (`raw_input.rs`), for the test windows and for a board application's live samples alike.
#[cfg(feature = "raw-input")]
pub(crate) fn raw_to_input(raw: i16, axis: usize) -> model::Input {
    let axis = axis % raw_input::AXES;
    tinyml_kernels::quantize_raw_i16(raw, raw_input::MULTIPLIER[axis], raw_input::BIAS[axis], raw_input::SHIFT[axis])
}

/// The window as the model's input: each raw sample through its axis's fixed-point step, then printed as
/// `in <idx> <hex>` so tinypipe can check that the device made the same bytes as the host.
#[cfg(feature = "raw-input")]
fn model_input(idx: usize, window: &[TestSample]) -> &'static [model::Input] {
    // SAFETY: `replay_test_set` runs once, from `app_main`, and drops the returned slice before it calls this
    // again, so this is the only live reference to INPUT (see its `Sync`).
    let input = unsafe { &mut *INPUT.0.get() };
    raw_window_to_input(idx, window, input);
    let mut line = Line::new();
    line.push_str("in ");
    line.push_u64(idx as u64);
    line.push_byte(b' ');
    for &value in input.iter() {
        line.push_hex_u8(value as u8);
    }
    line.finish();
    input
}

/// Each raw sample through its axis's fixed-point step.
#[cfg(all(feature = "raw-input", not(feature = "features")))]
fn raw_window_to_input(_idx: usize, window: &[TestSample], input: &mut [model::Input]) {
    for (i, (&raw, value)) in window.iter().zip(input.iter_mut()).enumerate() {
        *value = raw_to_input(raw, i);
    }
}

/// The window's features, printed as `feat <idx> <hex>` (int16 little-endian) so tinypipe can check them against
/// the host's, then each feature through its fixed-point step.
#[cfg(feature = "features")]
fn raw_window_to_input(idx: usize, window: &[TestSample], input: &mut [model::Input]) {
    // SAFETY: only this function, called once per window from `replay_test_set`, touches FEATURE_VALUES, and the
    // reference does not outlive the call.
    let values = unsafe { &mut *FEATURE_VALUES.0.get() };
    features::model_input(window, values, input);
    let mut line = Line::new();
    line.push_str("feat ");
    line.push_u64(idx as u64);
    line.push_byte(b' ');
    for &value in values.iter() {
        for byte in value.to_le_bytes() {
            line.push_hex_u8(byte);
        }
    }
    line.finish();
}

#[no_mangle]
extern "C" fn app_main() -> ! {
    board::init();
    // the engine's one-time set-up (TFLM: the interpreter and AllocateTensors) before anything is timed
    if let Err(message) = model::init() {
        panic!("model init failed: {}", message);
    }
    systick::start();
    if semihosting::host_present() {
        replay_test_set();
        #[cfg(feature = "realtime")]
        realtime::run().report();
        report_stack();
    }
    board::run_application();
    semihosting::exit(semihosting::EXIT_SUCCESS)
}

/// The test windows, back to back, as stored: model input values, or raw sensor samples (`raw-input`).
fn test_inputs() -> &'static [TestSample] {
    let bytes = &TEST_INPUTS.0;
    // SAFETY: the bytes are 8-byte aligned (`Aligned`), enough for `TestSample` (i8, f32 — `contract` — or i16),
    // every bit pattern is a valid value of each, the length is a whole number of elements (checked above), and
    // the static is never written.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr() as *const TestSample, bytes.len() / size_of::<TestSample>()) }
}

/// Every test window through the model, each output and timing printed.
fn replay_test_set() {
    let inputs = test_inputs();
    // SAFETY: this function runs once, from `app_main`, so this is the only reference to OUTPUT (see its
    // `Sync`).
    let output = unsafe { &mut *OUTPUT.0.get() };
    for (idx, samples) in inputs.chunks_exact(TEST_WINDOW_LEN).enumerate() {
        let window = model_input(idx, samples);
        let cycles_begin = board::cycles();
        let begin = systick::now();
        model::invoke(window, output);
        let ticks = systick::now() - begin;
        let cycles_end = board::cycles();

        let mut line = Line::new();
        line.push_str("out ");
        line.push_u64(idx as u64);
        line.push_byte(b' ');
        // SAFETY: `output` is plain data (i8 or f32, `contract`) without padding, so all its
        // `size_of_val(output)` bytes are initialised; they are only read while `output` is not written.
        let printed: &[u8] =
            unsafe { core::slice::from_raw_parts(output.as_ptr() as *const u8, size_of_val(output)) };
        for &value in printed {
            line.push_hex_u8(value);
        }
        line.finish();

        let mut line = Line::new();
        line.push_str("ticks ");
        line.push_u64(idx as u64);
        line.push_byte(b' ');
        line.push_u64(ticks);
        line.finish();

        #[cfg(feature = "layers")]
        time_layers(idx, window, output);

        if let (Some(begin), Some(end)) = (cycles_begin, cycles_end) {
            let mut line = Line::new();
            line.push_str("cycles ");
            line.push_u64(idx as u64);
            line.push_byte(b' ');
            line.push_u64(end.wrapping_sub(begin) as u64);
            line.finish();
        }
    }
}

/// The stack high-water mark, then `done`: the end of what the run stage reads.
fn report_stack() {
    let mut line = Line::new();
    line.push_str("stack ");
    line.push_u64(stack::high_water() as u64);
    line.finish();
    if stack::high_water() >= stack::reserved() {
        let mut line = Line::new();
        line.push_str("stack_overflow ");
        line.push_u64(stack::reserved() as u64);
        line.finish();
    }
    let mut line = Line::new();
    line.push_str("done");
    line.finish();
}

/// The window once more through `model::profile`: `layer <idx> <op index> <op> <ticks>` per operator.
#[cfg(feature = "layers")]
fn time_layers(idx: usize, window: &[model::Input], output: &mut [model::Output]) {
    model::profile(window, output, systick::now, &mut |op, name, ticks| {
        let mut line = Line::new();
        line.push_str("layer ");
        line.push_u64(idx as u64);
        line.push_byte(b' ');
        line.push_u64(op as u64);
        line.push_byte(b' ');
        line.push_str(name);
        line.push_byte(b' ');
        line.push_u64(ticks);
        line.finish();
    });
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let mut line = Line::new();
    let _ = write!(line, "panic: {}", info);
    line.finish();
    semihosting::exit(semihosting::EXIT_RUNTIME_ERROR)
}
