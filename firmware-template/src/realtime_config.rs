// Rendered by tinypipe from project.yaml (`sensor:`, `data.hop`), the board's SysTick clock and the
// reference stage (the input quantization) for the real-time loop (src/realtime.rs).

pub const WINDOW: usize = 2;
pub const AXES: usize = 3;
pub const HOP: usize = 2;
/// One sample every TICKS_PER_INTERRUPT x INTERRUPTS_PER_SAMPLE SysTick ticks at 25,000,000 Hz.
pub const TICKS_PER_INTERRUPT: u32 = 500000;
pub const INTERRUPTS_PER_SAMPLE: u32 = 1;
/// The test windows' input quantization: the emulated sensor's way back to real values (a `raw-input`
/// sensor delivers the raw readings instead).
#[cfg_attr(feature = "raw-input", allow(dead_code))]
pub const INPUT_SCALE: f32 = 0.05;
#[cfg_attr(feature = "raw-input", allow(dead_code))]
pub const INPUT_ZERO_POINT: i32 = 0;
