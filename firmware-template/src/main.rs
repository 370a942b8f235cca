//! The tinypipe test firmware: runs the model on every test window and reports over semihosting.
//!
//! Output, one line each: `out <idx> <output bytes in hex>` and `ticks <idx> <SysTick ticks of model::invoke>`
//! per window, then `stack <high-water bytes>` and `done`; exit status 0. A panic or fault prints a line
//! starting with `panic:` or `hardfault` and exits non-zero.

#![no_std]
#![no_main]

mod model;
mod rt;
mod semihosting;
mod stack;
mod systick;

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::panic::PanicInfo;

use semihosting::Line;

/// N windows of `model::INPUT_LEN` int8 values, written by tinypipe from the reference stage's test set.
const TEST_INPUTS: &[u8] = include_bytes!("../data/test_inputs.bin");

const _: () = assert!(model::INPUT_LEN > 0 && model::OUTPUT_LEN > 0, "the model has empty input or output");
const _: () = assert!(
    !TEST_INPUTS.is_empty() && TEST_INPUTS.len() % model::INPUT_LEN == 0,
    "data/test_inputs.bin must hold a whole, non-zero number of model::INPUT_LEN windows"
);

/// The output buffer lives in .bss so the stack high-water mark is about the model, not about us.
struct OutputBuffer(UnsafeCell<[i8; model::OUTPUT_LEN]>);
// Safety: one thread, no interrupt touches it.
unsafe impl Sync for OutputBuffer {}
static OUTPUT: OutputBuffer = OutputBuffer(UnsafeCell::new([0; model::OUTPUT_LEN]));

#[no_mangle]
extern "C" fn app_main() -> ! {
    // Safety: int8 and uint8 have the same size and alignment; the bytes are plain data.
    let inputs: &[i8] =
        unsafe { core::slice::from_raw_parts(TEST_INPUTS.as_ptr() as *const i8, TEST_INPUTS.len()) };
    let output = unsafe { &mut *OUTPUT.0.get() };
    systick::start();
    for (idx, window) in inputs.chunks_exact(model::INPUT_LEN).enumerate() {
        let begin = systick::now();
        model::invoke(window, output);
        let ticks = systick::now() - begin;

        let mut line = Line::new();
        line.push_str("out ");
        line.push_u64(idx as u64);
        line.push_byte(b' ');
        for &value in output.iter() {
            line.push_hex_u8(value as u8);
        }
        line.finish();

        let mut line = Line::new();
        line.push_str("ticks ");
        line.push_u64(idx as u64);
        line.push_byte(b' ');
        line.push_u64(ticks);
        line.finish();
    }
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
    semihosting::exit(semihosting::EXIT_SUCCESS)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let mut line = Line::new();
    let _ = write!(line, "panic: {}", info);
    line.finish();
    semihosting::exit(semihosting::EXIT_RUNTIME_ERROR)
}
