//! Start-up: the vector table, the reset handler and the default exception handlers.
//!
//! The reset handler is assembly because it runs before Rust may: `.data` is not yet initialised, `.bss` not
//! yet zeroed and (on hard-float targets) the FPU is still off, so compiled code could read garbage or fault
//! on its first floating-point register access. It only uses instructions that exist on ARMv6-M too.
//!
//! Engines with C or C++ parts (the TFLM engine) need what crt0/crti would give them: `__libc_init_array`
//! runs their static constructors (for pure Rust the arrays are empty), `_init`/`_fini` are empty since crti is
//! not linked, and `__dso_handle` identifies the image to `__cxa_atexit`.

use core::arch::global_asm;

use crate::semihosting;

/// What the reset handler writes over the stack reservation; `stack::high_water` looks for the first word
/// that no longer holds it. The assembly below spells the same value through `stack_paint_literal!`.
pub const STACK_PAINT: u32 = 0xA5A5_A5A5;
macro_rules! stack_paint_literal {
    () => {
        "0xA5A5A5A5"
    };
}

// Only hard-float builds touch the FPU: enable CP10 and CP11 (CPACR bits 20..23) before any Rust code runs.
#[cfg(target_abi = "eabihf")]
macro_rules! enable_fpu {
    () => {
        "
    ldr r0, =0xE000ED88
    ldr r1, [r0]
    ldr r2, =0x00F00000
    orrs r1, r2
    str r1, [r0]
    dsb
    isb
"
    };
}
#[cfg(not(target_abi = "eabihf"))]
macro_rules! enable_fpu {
    () => {
        ""
    };
}

global_asm!(
    concat!(
        "
    .section .vector_table, \"a\", %progbits
    .global VECTOR_TABLE
    .p2align 2
VECTOR_TABLE:
    .word _stack_start
    .word reset_handler
    .word nmi_handler
    .word hard_fault_trampoline
    .word mem_manage_handler
    .word bus_fault_handler
    .word usage_fault_handler
    .word 0
    .word 0
    .word 0
    .word 0
    .word sv_call_handler
    .word debug_monitor_handler
    .word 0
    .word pend_sv_handler
    .word systick_handler

    .section .text.reset_handler, \"ax\", %progbits
    .global reset_handler
    .type reset_handler, %function
    .thumb_func
reset_handler:
    ldr r0, =_sdata
    ldr r1, =_edata
    ldr r2, =_sidata
1:
    cmp r0, r1
    bhs 2f
    ldr r3, [r2]
    str r3, [r0]
    adds r0, r0, #4
    adds r2, r2, #4
    b 1b
2:
    ldr r0, =_sbss
    ldr r1, =_ebss
    movs r2, #0
3:
    cmp r0, r1
    bhs 4f
    str r2, [r0]
    adds r0, r0, #4
    b 3b
4:
    ldr r0, =_stack_limit
    mov r1, sp
    ldr r2, =",
        stack_paint_literal!(),
        "
5:
    cmp r0, r1
    bhs 6f
    str r2, [r0]
    adds r0, r0, #4
    b 5b
6:
",
        enable_fpu!(),
        "
    bl __libc_init_array
    bl app_main
    udf #0
    .size reset_handler, . - reset_handler
    .ltorg

    .section .text._init, \"ax\", %progbits
    .global _init
    .global _fini
    .type _init, %function
    .type _fini, %function
    .thumb_func
_init:
    .thumb_func
_fini:
    bx lr
    .size _init, . - _init
    .size _fini, . - _fini

    .section .rodata.__dso_handle, \"a\", %progbits
    .global __dso_handle
    .p2align 2
__dso_handle:
    .word 0

    .section .text.hard_fault_trampoline, \"ax\", %progbits
    .global hard_fault_trampoline
    .type hard_fault_trampoline, %function
    .thumb_func
hard_fault_trampoline:
    @ a register branch: a 16-bit `b` cannot reach hard_fault_handler on ARMv6-M
    mrs r0, msp
    ldr r1, =hard_fault_handler
    bx r1
    .size hard_fault_trampoline, . - hard_fault_trampoline
    .ltorg
"
    )
);

/// The exception frame the core pushes on entry: r0-r3, r12, lr, pc, xpsr.
#[repr(C)]
pub struct ExceptionFrame {
    r0: u32,
    r1: u32,
    r2: u32,
    r3: u32,
    r12: u32,
    lr: u32,
    pc: u32,
    xpsr: u32,
}

extern "C" {
    static _stext: u16;
    static _etext: u16;
}

/// A HardFault: either a semihosting `bkpt` with no debugger attached — skipped (r0 = -1), and semihosting
/// switched off — or a real fault, reported and fatal. Returning from here returns from the exception (the
/// trampoline keeps LR = EXC_RETURN).
///
/// # Safety
///
/// Only for `hard_fault_trampoline`: `frame` is the main stack pointer at exception entry, which points at
/// the exception frame the core stacked (the firmware runs on MSP alone).
#[no_mangle]
unsafe extern "C" fn hard_fault_handler(frame: *mut ExceptionFrame) {
    // SAFETY: the caller's contract: a valid, aligned frame on the stack, which nothing else refers to while
    // the handler runs (exceptions of lower priority cannot preempt a HardFault).
    let frame = unsafe { &mut *frame };
    let code = &raw const _stext as u32..&raw const _etext as u32;
    // `is_semihosting_call` reads the halfword at `pc`: only for a pc inside the firmware's own code
    if code.contains(&frame.pc) && semihosting::is_semihosting_call(frame.pc) {
        semihosting::no_host();
        frame.pc += 2;
        frame.r0 = u32::MAX;
        return;
    }
    let mut line = semihosting::Line::new();
    line.push_str("hardfault pc=0x");
    line.push_hex_u32(frame.pc);
    line.push_str(" lr=0x");
    line.push_hex_u32(frame.lr);
    line.push_str(" cfsr=0x");
    // SAFETY: CFSR, a status register of the System Control Block: always mapped, aligned, no read side effect.
    line.push_hex_u32(unsafe { core::ptr::read_volatile(0xE000_ED28 as *const u32) });
    line.finish();
    semihosting::exit(semihosting::EXIT_RUNTIME_ERROR)
}

/// Any exception the firmware does not expect: say which one and stop with a failure.
fn unexpected(name: &str) -> ! {
    let mut line = semihosting::Line::new();
    line.push_str("unexpected exception: ");
    line.push_str(name);
    line.finish();
    semihosting::exit(semihosting::EXIT_RUNTIME_ERROR)
}

#[no_mangle]
extern "C" fn nmi_handler() {
    unexpected("NMI")
}
#[no_mangle]
extern "C" fn mem_manage_handler() {
    unexpected("MemManage")
}
#[no_mangle]
extern "C" fn bus_fault_handler() {
    unexpected("BusFault")
}
#[no_mangle]
extern "C" fn usage_fault_handler() {
    unexpected("UsageFault")
}
#[no_mangle]
extern "C" fn sv_call_handler() {
    unexpected("SVCall")
}
#[no_mangle]
extern "C" fn debug_monitor_handler() {
    unexpected("DebugMonitor")
}
#[no_mangle]
extern "C" fn pend_sv_handler() {
    unexpected("PendSV")
}
