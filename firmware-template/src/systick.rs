//! Timing with SysTick: the 24-bit down-counter on the processor clock (CLKSOURCE=1), extended to 64 bits by
//! counting its wraps in the SysTick exception, so an inference longer than 2^24 ticks is still measured.
//! Under QEMU with `-icount shift=0` a tick is a fixed number of instructions (40 at 25 MHz).
//!
//! The real-time loop (`realtime` feature) reprograms the reload so that the exception also paces the sensor:
//! `now` keeps counting ticks across either reload, though not across a restart.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

const SYST_CSR: *mut u32 = 0xE000_E010 as *mut u32;
const SYST_RVR: *mut u32 = 0xE000_E014 as *mut u32;
const SYST_CVR: *mut u32 = 0xE000_E018 as *mut u32;
const SCB_ICSR: *const u32 = 0xE000_ED04 as *const u32;

/// The free-running reload, and the largest the 24-bit counter takes.
const MAX_RELOAD: u32 = 0x00FF_FFFF;
const CSR_ENABLE: u32 = 1 << 0;
const CSR_TICKINT: u32 = 1 << 1;
const CSR_CLKSOURCE: u32 = 1 << 2;
const ICSR_PENDSTSET: u32 = 1 << 26;

static WRAPS: AtomicU32 = AtomicU32::new(0);
/// The reload in use; changed only by `start_*` while the counter is stopped.
static RELOAD: AtomicU32 = AtomicU32::new(MAX_RELOAD);

#[no_mangle]
extern "C" fn systick_handler() {
    // the only writer, and exceptions do not nest with themselves: load + store is enough (and exists on v6-M)
    WRAPS.store(WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    #[cfg(feature = "realtime")]
    crate::realtime::on_systick();
}

/// Start the free-running counter.
pub fn start() {
    start_with_reload(MAX_RELOAD);
}

/// Restart the counter with an exception every `ticks` ticks (2..=2^24): the real-time loop's sample clock.
#[cfg(feature = "realtime")]
pub fn start_periodic(ticks: u32) {
    start_with_reload(ticks.clamp(2, MAX_RELOAD + 1) - 1);
}

fn start_with_reload(reload: u32) {
    // SAFETY: the SysTick registers of the System Control Space, word-aligned and always mapped on every
    // Cortex-M; only this module uses SysTick, and its exception only counts wraps (and paces the real-time
    // loop's sensor, which reads nothing of SysTick's).
    unsafe {
        write_volatile(SYST_CSR, 0);
        RELOAD.store(reload, Ordering::SeqCst);
        write_volatile(SYST_RVR, reload);
        write_volatile(SYST_CVR, 0); // any write clears the counter; it reloads on the next tick
        write_volatile(SYST_CSR, CSR_CLKSOURCE | CSR_TICKINT | CSR_ENABLE);
        // The cleared counter reads 0 until its first reload; a measurement starting then would see it jump
        // up by RELOAD without a wrap. Wait for the reload.
        while read_volatile(SYST_CVR) & MAX_RELOAD == 0 {}
    }
}

/// Ticks since `start`, monotonic.
#[inline(always)]
pub fn now() -> u64 {
    let reload = RELOAD.load(Ordering::Relaxed);
    loop {
        let wraps_before = WRAPS.load(Ordering::SeqCst);
        // SAFETY: reads of SysTick's current value and the SCB's ICSR (always mapped, aligned); reading
        // either has no side effect.
        let current = unsafe { read_volatile(SYST_CVR) } & MAX_RELOAD;
        // SAFETY: as above.
        let pending = unsafe { read_volatile(SCB_ICSR) } & ICSR_PENDSTSET != 0;
        let wraps_after = WRAPS.load(Ordering::SeqCst);
        if wraps_before != wraps_after {
            continue; // the exception ran in between: read again
        }
        // The counter wrapped but its exception has not run yet: count that wrap here. A just-reloaded counter
        // is near RELOAD; a pending flag with a small count cannot happen (the handler would have run).
        let wraps = wraps_before as u64 + (pending && current > reload / 2) as u64;
        return wraps * (reload as u64 + 1) + reload.saturating_sub(current) as u64;
    }
}
