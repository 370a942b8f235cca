//! Test harness for engine tflm: a zero-dependency no_std program for QEMU (Cortex-M, semihosting) that runs
//! the generated `model.rs` on the inputs in `cases.rs` and prints each output as one hex line, then exits.
//! Its start-up does what PROVENANCE.md says a newlib-nano C++ image needs, the way the firmware must.
#![no_std]
#![no_main]

mod cases;
#[allow(dead_code, reason = "the harness runs `invoke`, not the rest of the model's API (input_from_real)")]
mod model;

use core::arch::{asm, global_asm};
use core::fmt::Write;

// --- semihosting ----------------------------------------------------------------------------------------------

const SYS_WRITE0: u32 = 0x04;
const SYS_EXIT: u32 = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u32 = 0x20026;
const ADP_STOPPED_RUN_TIME_ERROR: u32 = 0x20023;

fn semihost(op: u32, arg: usize) {
    // SAFETY: `bkpt 0xAB` is the semihosting call; QEMU reads r0 (operation) and r1 (argument).
    unsafe { asm!("bkpt 0xAB", inout("r0") op => _, in("r1") arg, options(nostack)) };
}

fn exit(success: bool) -> ! {
    semihost(SYS_EXIT, if success { ADP_STOPPED_APPLICATION_EXIT } else { ADP_STOPPED_RUN_TIME_ERROR } as usize);
    loop {}
}

/// Buffers text and hands it to SYS_WRITE0 (which wants NUL-terminated strings) a chunk at a time.
struct Console {
    buf: [u8; 128],
    len: usize,
}

impl Console {
    const fn new() -> Self {
        Console { buf: [0; 128], len: 0 }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            self.buf[self.len] = 0;
            semihost(SYS_WRITE0, self.buf.as_ptr() as usize);
            self.len = 0;
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() - 1 {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

// --- the test ---------------------------------------------------------------------------------------------------

fn main() -> bool {
    let mut out = Console::new();
    let mut output = [0i8; model::OUTPUT_LEN];
    for input in cases::INPUTS.chunks_exact(model::INPUT_LEN) {
        model::invoke(input, &mut output);
        let _ = write!(out, "out ");
        for &byte in output.iter() {
            let _ = write!(out, "{:02x}", byte as u8);
        }
        let _ = writeln!(out);
        out.flush();
    }
    let _ = writeln!(out, "arena {} of {}", model::arena_used_bytes(), model::ARENA_BYTES);
    out.flush();
    true
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut out = Console::new();
    let _ = writeln!(out, "panic: {}", info);
    out.flush();
    exit(false)
}

// --- start-up -----------------------------------------------------------------------------------------------

unsafe extern "C" {
    static mut __data_start: u32;
    static mut __data_end: u32;
    static __data_load: u32;
    static mut __bss_start: u32;
    static mut __bss_end: u32;
    fn __libc_init_array();
}

/// No crtbegin: TFLM's function-local statics register their destructors against this handle.
#[unsafe(no_mangle)]
pub static __dso_handle: usize = 0;

/// No crti/crtn: `__libc_init_array` calls these.
#[unsafe(no_mangle)]
pub extern "C" fn _init() {}

#[unsafe(no_mangle)]
pub extern "C" fn _fini() {}

#[unsafe(no_mangle)]
unsafe extern "C" fn reset_handler() -> ! {
    // SAFETY: runs once, first, before anything reads .data/.bss or touches the FPU.
    unsafe {
        // CPACR: full access to CP10/CP11, the FPU, before any float instruction
        let cpacr = 0xE000_ED88 as *mut u32;
        cpacr.write_volatile(cpacr.read_volatile() | (0xF << 20));
        asm!("dsb", "isb");
        let mut src = &raw const __data_load;
        let mut dst = &raw mut __data_start;
        while dst < &raw mut __data_end {
            dst.write_volatile(src.read());
            dst = dst.add(1);
            src = src.add(1);
        }
        let mut dst = &raw mut __bss_start;
        while dst < &raw mut __bss_end {
            dst.write_volatile(0);
            dst = dst.add(1);
        }
        __libc_init_array();
    }
    exit(main())
}

#[unsafe(no_mangle)]
unsafe extern "C" fn fault_handler() -> ! {
    let mut out = Console::new();
    let _ = writeln!(out, "fault");
    out.flush();
    exit(false)
}

// The vector table: initial stack pointer, then the handlers (faults report and exit instead of hanging).
global_asm!(
    ".section .vectors, \"a\", %progbits",
    ".word __stack_top",
    ".word {reset}",
    ".rept 5",
    ".word {fault}",
    ".endr",
    ".word 0, 0, 0, 0",
    ".word {fault}, {fault}, 0, {fault}, {fault}",
    reset = sym reset_handler,
    fault = sym fault_handler,
);
