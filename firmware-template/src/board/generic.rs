//! Board support for boards without an application (emulated boards, boards without a sensor): nothing to
//! set up, no cycle counter, and no application after the test-set replay. The board module when no
//! `board-*` feature is on.

/// Clocks and pins the application needs; called first thing after reset.
pub fn init() {}

/// The core's cycle counter (DWT CYCCNT), where the board support runs it.
#[inline(always)]
pub fn cycles() -> Option<u32> {
    None
}

/// The board's application; returns at once when the board has none (or its sensor does not answer).
pub fn run_application() {}
