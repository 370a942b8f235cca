//! Stack high-water mark: the reset handler paints the stack reservation with `rt::STACK_PAINT`; the deepest
//! word that no longer holds it marks how far the stack grew.

use crate::rt::STACK_PAINT;

extern "C" {
    static _stack_limit: u32;
    static _stack_start: u32;
}

/// The reservation's lowest address and the initial stack pointer above it.
fn bounds() -> (usize, usize) {
    (&raw const _stack_limit as usize, &raw const _stack_start as usize)
}

/// Bytes of stack used so far (the whole reservation when the stack reached or passed its bottom).
pub fn high_water() -> usize {
    let (limit, start) = bounds();
    let mut addr = limit;
    while addr < start {
        // SAFETY: `addr` is word-aligned (the linker script asserts 8-byte alignment of both bounds) and
        // inside the stack reservation, which is RAM; words below the stack pointer are not Rust objects, so
        // a volatile read of whatever they hold is fine.
        if unsafe { core::ptr::read_volatile(addr as *const u32) } != STACK_PAINT {
            break;
        }
        addr += 4;
    }
    start - addr
}

/// Size of the stack reservation the linker script set aside.
pub fn reserved() -> usize {
    let (limit, start) = bounds();
    start - limit
}
