//! Timing with SysTick: the 24-bit down-counter on the processor clock (CLKSOURCE=1), extended to 64 bits by
//! counting its wraps in the SysTick exception, so an inference longer than 2^24 ticks is still measured.
//! Under QEMU with `-icount shift=0` a tick is a fixed number of instructions (40 at 25 MHz).

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

const SYST_CSR: *mut u32 = 0xE000_E010 as *mut u32;
const SYST_RVR: *mut u32 = 0xE000_E014 as *mut u32;
const SYST_CVR: *mut u32 = 0xE000_E018 as *mut u32;
const SCB_ICSR: *const u32 = 0xE000_ED04 as *const u32;

const RELOAD: u32 = 0x00FF_FFFF;
const PERIOD: u64 = RELOAD as u64 + 1;
const CSR_ENABLE: u32 = 1 << 0;
const CSR_TICKINT: u32 = 1 << 1;
const CSR_CLKSOURCE: u32 = 1 << 2;
const ICSR_PENDSTSET: u32 = 1 << 26;

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[no_mangle]
extern "C" fn systick_handler() {
    // the only writer, and exceptions do not nest with themselves: load + store is enough (and exists on v6-M)
    WRAPS.store(WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// Start the free-running counter.
pub fn start() {
    // SAFETY: the SysTick registers of the System Control Space, word-aligned and always mapped on every
    // Cortex-M; only this module uses SysTick, and its exception only counts wraps.
    unsafe {
        write_volatile(SYST_CSR, 0);
        write_volatile(SYST_RVR, RELOAD);
        write_volatile(SYST_CVR, 0); // any write clears the counter; it reloads on the next tick
        write_volatile(SYST_CSR, CSR_CLKSOURCE | CSR_TICKINT | CSR_ENABLE);
        // The cleared counter reads 0 until its first reload; a measurement starting then would see it jump
        // up by RELOAD without a wrap. Wait for the reload.
        while read_volatile(SYST_CVR) & RELOAD == 0 {}
    }
}

/// Ticks since `start`, monotonic.
#[inline(always)]
pub fn now() -> u64 {
    loop {
        let wraps_before = WRAPS.load(Ordering::SeqCst);
        // SAFETY: reads of SysTick's current value and the SCB's ICSR (always mapped, aligned); reading
        // either has no side effect.
        let current = unsafe { read_volatile(SYST_CVR) } & RELOAD;
        // SAFETY: as above.
        let pending = unsafe { read_volatile(SCB_ICSR) } & ICSR_PENDSTSET != 0;
        let wraps_after = WRAPS.load(Ordering::SeqCst);
        if wraps_before != wraps_after {
            continue; // the exception ran in between: read again
        }
        // The counter wrapped but its exception has not run yet: count that wrap here. A just-reloaded counter
        // is near RELOAD; a pending flag with a small count cannot happen (the handler would have run).
        let wraps = wraps_before as u64 + (pending && current > RELOAD / 2) as u64;
        return wraps * PERIOD + (RELOAD - current) as u64;
    }
}
