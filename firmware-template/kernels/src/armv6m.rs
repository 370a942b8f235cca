//! Inner loops for ARMv6-M cores (Cortex-M0, M0+, M1: Thumb-1 only, no MLA, no DSP), as inline assembly:
//! written in Rust, LLVM keeps the four accumulators of a depthwise or fully connected block on the stack
//! (eight low registers do not hold them with the loop's pointers): about 40 instructions per depthwise tap.
//! Here the accumulators live in the high registers r8-r11 (Thumb-1's ADD reaches them), and LDRSB's
//! register offset fetches a tap's input byte in one instruction. Compiled only with `cfg(tinyml_armv6m)`
//! (set by build.rs). Every loop has a portable twin computing the same bits (wrapping 32-bit
//! multiply-accumulates).
#![allow(unsafe_code)]

use core::arch::asm;

/// `depthwise::taps_4lanes_bytes` for one block: `count` taps `(w02, w13, offset)` (weights as int16 pairs,
/// `offset` a byte index from `base`) against the int8 bytes of `x`. 16 instructions per tap: LDM, LDRSB,
/// four (extract, MULS, ADD) and the loop's compare and branch. `reach` bounds every tap's `offset + 1`
/// (the caller takes the maximum over the whole filter once per call); `None` when `base + reach` passes the
/// end of `x`: the caller then runs the portable loop, so nothing outside `x` is ever read.
#[inline(always)]
pub fn taps_4lanes_bytes(x: &[u32], base: usize, reach: usize, taps: &[u32], count: usize, acc: [i32; 4]) -> Option<[i32; 4]> {
    // `count` from the caller: `taps.len() / 3` would call the library's division (no divider on ARMv6-M)
    let taps = taps.get(..3 * count)?;
    if base + reach > 4 * x.len() {
        return None;
    }
    if count == 0 {
        return Some(acc);
    }
    let mut acc = acc;
    let bytes = x.as_ptr() as *const i8;
    let end = taps.as_ptr_range().end;
    // SAFETY: reads the `3 * count` words of `taps` (the loop ends when the tap pointer reaches `end`), one byte
    // `base + offset < base + reach <= 4 * x.len()` of `x` per tap, and the four words of `acc`. r8-r12 and lr are declared clobbered; the stack is not touched.
    unsafe {
        asm!(
            "mov r12, r2",
            "mov lr, r3",
            "ldr r2, [r3, #0]",
            "mov r8, r2",
            "ldr r2, [r3, #4]",
            "mov r9, r2",
            "ldr r2, [r3, #8]",
            "mov r10, r2",
            "ldr r2, [r3, #12]",
            "mov r11, r2",
            "2:",
            "ldm r0!, {{r2, r3, r4}}",
            "ldrsb r4, [r1, r4]",
            "sxth r5, r2",
            "muls r5, r4, r5",
            "add r8, r5",
            "asrs r2, r2, #16",
            "muls r2, r4, r2",
            "add r10, r2",
            "sxth r5, r3",
            "muls r5, r4, r5",
            "add r9, r5",
            "asrs r3, r3, #16",
            "muls r3, r4, r3",
            "add r11, r3",
            "cmp r0, r12",
            "bne 2b",
            "mov r3, lr",
            "mov r2, r8",
            "str r2, [r3, #0]",
            "mov r2, r9",
            "str r2, [r3, #4]",
            "mov r2, r10",
            "str r2, [r3, #8]",
            "mov r2, r11",
            "str r2, [r3, #12]",
            inout("r0") taps.as_ptr() => _,
            in("r1") bytes.wrapping_add(base),
            inout("r2") end => _,
            inout("r3") acc.as_mut_ptr() => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack),
        );
    }
    Some(acc)
}

/// Input byte `$j` of the current word against byte `$j` of the four rows' words (at byte offsets `$j`,
/// `4 + $j`, `8 + $j`, `12 + $j` of the block), into the accumulators r8-r11.
macro_rules! fc_byte {
    ($j:literal, $w0:literal, $w1:literal, $w2:literal, $w3:literal) => {
        concat!(
            "ldrb r4, [r0, #", $j, "]\n", "sxtb r4, r4\n",
            "ldrb r5, [r1, #", $w0, "]\n", "sxtb r5, r5\n", "muls r5, r4, r5\n", "add r8, r5\n",
            "ldrb r5, [r1, #", $w1, "]\n", "sxtb r5, r5\n", "muls r5, r4, r5\n", "add r9, r5\n",
            "ldrb r5, [r1, #", $w2, "]\n", "sxtb r5, r5\n", "muls r5, r4, r5\n", "add r10, r5\n",
            "ldrb r5, [r1, #", $w3, "]\n", "sxtb r5, r5\n", "muls r5, r4, r5\n", "add r11, r5\n",
        )
    };
}

/// `fully_connected::dot_4rows`: the whole words of `x` against a block of four rows interleaved word by word
/// (`w`: per input word, one word of each row). 76 instructions per 16 multiply-accumulates: per input byte a
/// load and an extension, per weight byte a load, an extension, MULS and ADD; the loop's four.
#[inline(always)]
pub fn dot_4rows(x: &[i8], w: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let words = (x.len() / 4).min(w.len() / 4);
    if words == 0 {
        return acc;
    }
    let mut acc = acc;
    let end = x[..4 * words].as_ptr_range().end;
    // SAFETY: reads the `4 * words` bytes of `x` (the loop ends when its pointer reaches `end`) and the
    // `4 * words` words of `w` (four per input word), and the four words of `acc`. r8-r12 and lr are declared
    // clobbered; the stack is not touched.
    unsafe {
        asm!(
            "mov r12, r2",
            "mov lr, r3",
            "ldr r2, [r3, #0]",
            "mov r8, r2",
            "ldr r2, [r3, #4]",
            "mov r9, r2",
            "ldr r2, [r3, #8]",
            "mov r10, r2",
            "ldr r2, [r3, #12]",
            "mov r11, r2",
            "2:",
            fc_byte!("0", "0", "4", "8", "12"),
            fc_byte!("1", "1", "5", "9", "13"),
            fc_byte!("2", "2", "6", "10", "14"),
            fc_byte!("3", "3", "7", "11", "15"),
            "adds r0, #4",
            "adds r1, #16",
            "cmp r0, r12",
            "bne 2b",
            "mov r3, lr",
            "mov r2, r8",
            "str r2, [r3, #0]",
            "mov r2, r9",
            "str r2, [r3, #4]",
            "mov r2, r10",
            "str r2, [r3, #8]",
            "mov r2, r11",
            "str r2, [r3, #12]",
            inout("r0") x.as_ptr() => _,
            inout("r1") w.as_ptr() => _,
            inout("r2") end => _,
            inout("r3") acc.as_mut_ptr() => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
            options(nostack),
        );
    }
    acc
}
