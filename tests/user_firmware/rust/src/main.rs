//! A user's own firmware, written without tinypipe's template: it depends on an exported model crate by path
//! (renamed `model` in Cargo.toml, which tests/test_export.py writes) and runs it on QEMU's mps2-an386.
//!
//! For every window of `inputs.bin` (INPUT_LEN values of `Input`, i8 or little-endian f32; with the cargo
//! feature `raw`, RAW_WINDOW_LEN little-endian int16 sensor samples through the crate's `FrontEnd`) it prints
//! `out <index> <output bytes in hex>`,
//! then `done`, and exits through semihosting. Its start-up is the least a Cortex-M4F needs: a vector table,
//! `.data` copied, `.bss` zeroed, the FPU enabled.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::Write;

use model::{ArenaTooSmall, Model, ARENA_BYTES};

static INPUTS: &[u8] = include_bytes!("../inputs.bin");

global_asm!(
    ".section .vectors, \"a\", %progbits",
    ".global vectors",
    "vectors:",
    ".word _stack_top",
    ".word reset",
    ".rept 14",
    ".word fault",
    ".endr",
    ".section .text.reset, \"ax\", %progbits",
    ".global reset",
    ".type reset, %function",
    ".thumb_func",
    "reset:",
    "    ldr r0, =_sdata",
    "    ldr r1, =_edata",
    "    ldr r2, =_sidata",
    "1:  cmp r0, r1",
    "    bhs 2f",
    "    ldr r3, [r2], #4",
    "    str r3, [r0], #4",
    "    b 1b",
    "2:  ldr r0, =_sbss",
    "    ldr r1, =_ebss",
    "    movs r2, #0",
    "3:  cmp r0, r1",
    "    bhs 4f",
    "    str r2, [r0], #4",
    "    b 3b",
    "4:  ldr r0, =0xE000ED88", // CPACR: CP10 and CP11 full access, before any float instruction
    "    ldr r1, [r0]",
    "    orr r1, r1, #0x00F00000",
    "    str r1, [r0]",
    "    dsb",
    "    isb",
    "    bl start",
    "    b .",
    ".ltorg",
);

/// A semihosting call: `op` in r0, `arg` in r1, `bkpt 0xAB`.
fn semihosting(op: u32, arg: usize) -> u32 {
    let result;
    // SAFETY: the semihosting ABI: the host reads r1 (a pointer to a NUL-terminated line, or an exit reason)
    // and writes r0; QEMU runs with `-semihosting-config enable=on`.
    unsafe { asm!("bkpt 0xAB", inout("r0") op => result, in("r1") arg, options(nostack)) };
    result
}

fn exit(ok: bool) -> ! {
    // ADP_Stopped_ApplicationExit: QEMU exits 0; ADP_Stopped_RunTimeErrorUnknown: 1
    semihosting(0x18, if ok { 0x20026 } else { 0x20024 });
    loop {}
}

/// One output line, sent with one SYS_WRITE0 (which wants it NUL-terminated).
struct Line {
    bytes: [u8; 256],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self { bytes: [0; 256], len: 0 }
    }

    fn send(mut self) {
        let _ = self.write_str("\n");
        self.bytes[self.len] = 0; // `write_str` keeps one byte free for it
        semihosting(0x04, self.bytes.as_ptr() as usize);
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end >= self.bytes.len() {
            return Err(core::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn say(text: &str) {
    let mut line = Line::new();
    let _ = line.write_str(text);
    line.send();
}

#[no_mangle]
extern "C" fn start() -> ! {
    let mut too_small = [0i8; 8];
    if let Err(ArenaTooSmall { given, needed }) = Model::from_slice(&mut too_small[..]) {
        let mut line = Line::new();
        let _ = write!(line, "too_small {} {}", given, needed);
        line.send();
    }
    let mut arena = [0i8; ARENA_BYTES];
    let mut model = Model::new(&mut arena);
    #[cfg(not(feature = "raw"))]
    {
        use model::{Input, INPUT_LEN};
        let mut input = [Input::default(); INPUT_LEN];
        const ELEMENT: usize = core::mem::size_of::<Input>(); // i8 or f32, little-endian in inputs.bin
        for (index, window) in INPUTS.chunks_exact(INPUT_LEN * ELEMENT).enumerate() {
            for (x, bytes) in input.iter_mut().zip(window.chunks_exact(ELEMENT)) {
                if let Ok(bytes) = bytes.try_into() {
                    *x = Input::from_le_bytes(bytes);
                }
            }
            print_output(index, model.invoke(&input));
        }
    }
    #[cfg(feature = "raw")]
    {
        let mut front_end = model::FrontEnd::new();
        let mut raw = [0i16; model::RAW_WINDOW_LEN];
        for (index, window) in INPUTS.chunks_exact(model::RAW_WINDOW_LEN * 2).enumerate() {
            for (x, bytes) in raw.iter_mut().zip(window.chunks_exact(2)) {
                *x = i16::from_le_bytes([bytes[0], bytes[1]]);
            }
            print_output(index, model.invoke(front_end.input(&raw)));
        }
    }
    say("done");
    exit(true)
}

/// `out <index> <output bytes in hex>`.
fn print_output(index: usize, output: &[model::Output]) {
    let mut line = Line::new();
    let _ = write!(line, "out {} ", index);
    for y in output {
        for byte in y.to_le_bytes() {
            let _ = write!(line, "{:02x}", byte);
        }
    }
    line.send();
}

#[no_mangle]
extern "C" fn fault() -> ! {
    say("fault");
    exit(false)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    say("panic");
    exit(false)
}
