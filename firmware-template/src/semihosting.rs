//! ARM semihosting: console output and exit through the debugger (QEMU with `-semihosting-config enable=on`).
//!
//! A semihosting call is a `bkpt 0xAB` that traps to the host, which makes it slow: output is assembled one
//! line at a time and sent with a single SYS_WRITE0.

use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

const SYS_WRITE0: usize = 0x04;
const SYS_EXIT: usize = 0x18;

/// SYS_EXIT reasons: QEMU exits 0 for ApplicationExit and 1 for anything else.
pub const EXIT_SUCCESS: usize = 0x20026; // ADP_Stopped_ApplicationExit
pub const EXIT_RUNTIME_ERROR: usize = 0x20023; // ADP_Stopped_RunTimeErrorUnknown

const SYS_ERRNO: usize = 0x13;

/// Set by the HardFault handler when a `bkpt 0xAB` trapped because no debugger is attached: from then on
/// semihosting calls are not made at all.
static NO_HOST: AtomicBool = AtomicBool::new(false);

/// Semihosting operation `op` with argument `arg` (r1).
///
/// # Safety
///
/// `arg` must be what `op` expects: for SYS_WRITE0 the address of a NUL-terminated string that stays valid
/// for the call; for SYS_EXIT and SYS_ERRNO a plain value.
#[inline(always)]
unsafe fn call(op: usize, arg: usize) -> usize {
    if NO_HOST.load(Ordering::Relaxed) {
        return usize::MAX;
    }
    let mut r0 = op;
    // SAFETY: the host reads only the memory `arg` names (the caller's contract) and writes only r0; without
    // a host the HardFault handler skips the `bkpt` and sets r0. No stack use, flags preserved.
    unsafe { asm!("bkpt #0xAB", inout("r0") r0, in("r1") arg, options(nostack, preserves_flags)) };
    r0
}

/// Whether a semihosting host (QEMU, or a debugger serving semihosting) answers. Without a debugger a `bkpt`
/// escalates to HardFault; `rt` skips it and calls `no_host`, so the first call tells.
pub fn host_present() -> bool {
    // SAFETY: SYS_ERRNO takes no argument.
    unsafe { call(SYS_ERRNO, 0) };
    !NO_HOST.load(Ordering::Relaxed)
}

/// Called by the HardFault handler for a semihosting `bkpt` that trapped (no debugger attached).
pub fn no_host() {
    NO_HOST.store(true, Ordering::Relaxed);
}

/// Whether `pc` holds the semihosting breakpoint `bkpt 0xAB` (Thumb encoding 0xBEAB). `pc` must lie in the
/// firmware's code (`_stext.._etext`), as the HardFault handler checks first.
pub fn is_semihosting_call(pc: u32) -> bool {
    // SAFETY: an aligned halfword inside the firmware's code in flash (the caller checks the range), which is
    // always mapped and never written.
    pc % 2 == 0 && unsafe { core::ptr::read_volatile(pc as *const u16) } == 0xBEAB
}

/// Stop the program; the emulator's exit status follows `reason`.
pub fn exit(reason: usize) -> ! {
    loop {
        // SAFETY: on AArch32 SYS_EXIT takes the reason in r1 itself, not through a parameter block.
        unsafe { call(SYS_EXIT, reason) };
    }
}

const LINE_CAPACITY: usize = 128;

/// 10^19 (the largest power of ten in a u64) down to 1.
const POWERS_OF_TEN: [u64; 20] = {
    let mut powers = [1u64; 20];
    let mut i = 19;
    while i > 0 {
        powers[i - 1] = powers[i] * 10;
        i -= 1;
    }
    powers
};

/// A line of text on the stack, sent with one SYS_WRITE0 (longer lines go out in several pieces).
pub struct Line {
    buf: [u8; LINE_CAPACITY],
    len: usize,
}

impl Line {
    pub fn new() -> Self {
        Line { buf: [0; LINE_CAPACITY], len: 0 }
    }

    pub fn push_byte(&mut self, byte: u8) {
        // keep one byte for the NUL terminator SYS_WRITE0 needs
        if self.len == LINE_CAPACITY - 1 {
            self.flush();
        }
        self.buf[self.len] = byte;
        self.len += 1;
    }

    pub fn push_str(&mut self, text: &str) {
        for &byte in text.as_bytes() {
            // SYS_WRITE0 stops at a NUL: never send one from the text
            self.push_byte(if byte == 0 { b'?' } else { byte });
        }
    }

    /// Decimal digits by subtracting powers of ten: a 64-bit division links the compiler's `__udivmoddi4`
    /// and grows every inlined call site (~1.8 KB of flash in all on Cortex-M4) for a few printed numbers.
    #[inline(never)] // one copy for its several call sites
    pub fn push_u64(&mut self, mut value: u64) {
        let mut started = false;
        for (i, &power) in POWERS_OF_TEN.iter().enumerate() {
            let mut digit = b'0';
            while value >= power {
                value -= power;
                digit += 1;
            }
            if started || digit != b'0' || i == POWERS_OF_TEN.len() - 1 {
                self.push_byte(digit);
                started = true;
            }
        }
    }

    pub fn push_hex_u8(&mut self, value: u8) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.push_byte(HEX[(value >> 4) as usize]);
        self.push_byte(HEX[(value & 0xF) as usize]);
    }

    pub fn push_hex_u32(&mut self, value: u32) {
        for byte in value.to_be_bytes() {
            self.push_hex_u8(byte);
        }
    }

    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        self.buf[self.len] = 0;
        // SAFETY: `buf` is NUL-terminated at `len` (just written; `push_byte` keeps that byte free) and is
        // borrowed for the whole call.
        unsafe { call(SYS_WRITE0, self.buf.as_ptr() as usize) };
        self.len = 0;
    }

    /// End the line and send it.
    pub fn finish(mut self) {
        self.push_byte(b'\n');
        self.flush();
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.push_str(text);
        Ok(())
    }
}
