//! Board support for the STM32F4 Discovery (STM32F407VG), register level and without crates: the on-board
//! LIS3DSH accelerometer on SPI1 (PA5 SCK, PA6 MISO, PA7 MOSI, PE3 chip select), the four user LEDs on
//! PD12-PD15, and DWT CYCCNT for cycles. Selected by the `board-stm32f4-discovery` feature; `src/app_config.rs`
//! carries the window, the sample rate and the class names from the pipeline.
//!
//! The core stays on the 16 MHz HSI it resets to: no PLL to wait for, which also keeps the same ELF running
//! on QEMU's netduinoplus2 (an STM32F405 whose clock tree and GPIO QEMU does not model: writes there are
//! ignored and reads return 0, so the LIS3DSH never answers and `run_application` returns).
//!
//! The application: sample X/Y/Z at `SAMPLE_RATE_HZ` (timed by SysTick), keep the last `WINDOW` samples,
//! turn them into model input with `model::input_from_real` (quantized with the model's input scale and zero
//! point, or as they are for a float32 input) — or, with a declared input scaling (`raw-input`), from the raw
//! counts by the same fixed-point step as the test windows; with `features` the window keeps the raw counts
//! and each classification computes the window's features first (`features::model_input`, what the replay
//! and the real-time loop call) — classify after every `STRIDE` new samples, and show the class on the LEDs:
//! `wave` turns the four LEDs round in a circle, `tap` flashes all four, `none` lights the green one; any
//! other class lights LED (class index mod 4).

use core::ptr::{read_volatile, write_volatile};

use crate::{model, systick};
use app_config::{CLASSES, SAMPLE_RATE_HZ, WINDOW};

#[path = "../app_config.rs"]
mod app_config;

const RCC: usize = 0x4002_3800;
const RCC_AHB1ENR: usize = RCC + 0x30;
const RCC_APB2ENR: usize = RCC + 0x44;
const GPIOA: usize = 0x4002_0000;
const GPIOD: usize = 0x4002_0C00;
const GPIOE: usize = 0x4002_1000;
const MODER: usize = 0x00;
const OSPEEDR: usize = 0x08;
const BSRR: usize = 0x18;
const AFRL: usize = 0x20;
const SPI1: usize = 0x4001_3000;
const SPI_CR1: usize = SPI1; // offset 0x00
const SPI_SR: usize = SPI1 + 0x08;
const SPI_DR: usize = SPI1 + 0x0C;
const SR_RXNE: u32 = 1 << 0;
const SR_TXE: u32 = 1 << 1;
const DEMCR: usize = 0xE000_EDFC;
const DWT_CTRL: usize = 0xE000_1000;
const DWT_CYCCNT: usize = 0xE000_1004;

/// Core clock (HSI) and SysTick rate on the chip.
const CORE_HZ: u64 = 16_000_000;
/// LED pins on port D: green LD4, orange LD3, red LD5, blue LD6.
const LED_PINS: [u32; 4] = [12, 13, 14, 15];
/// New samples between two classifications (a quarter window).
const STRIDE: usize = if WINDOW >= 4 { WINDOW / 4 } else { 1 };
/// SPI polls before a transfer counts as unanswered (no SPI peripheral, e.g. under QEMU).
const SPI_POLLS: u32 = 10_000;

// LIS3DSH registers: WHO_AM_I answers 0x3F; CTRL_REG4 = ODR | XYZ enable; CTRL_REG5 sets full scale.
const WHO_AM_I: u8 = 0x0F;
const LIS3DSH_ID: u8 = 0x3F;
const CTRL_REG4: u8 = 0x20;
const CTRL_REG5: u8 = 0x24;
const OUT_X_L: u8 = 0x28;
const READ: u8 = 0x80;
/// +-8 g full scale (the gestures reach 5 g): 0.24 mg per digit.
const FSCALE_8G: u8 = 0b011 << 3;
#[cfg_attr(feature = "raw-input", allow(dead_code))] // the declared scaling works on raw counts
const G_PER_DIGIT: f32 = 0.000_24;

/// A memory-mapped register. Every address passed here is one of the constants above: a 32-bit register of
/// the STM32F407 (RM0090) or the Cortex-M4 core, word-aligned and always mapped, so volatile accesses to it
/// are sound (on QEMU's netduinoplus2 the unmodelled ones read 0 and ignore writes).
fn reg(addr: usize) -> *mut u32 {
    addr as *mut u32
}

fn set_bits(addr: usize, mask: u32, value: u32) {
    // SAFETY: `addr` is a register constant (see `reg`); a read-modify-write from the one thread of execution,
    // and no interrupt handler touches these peripherals.
    unsafe { write_volatile(reg(addr), (read_volatile(reg(addr)) & !mask) | value) }
}

pub fn init() {
    // clocks for GPIOA, GPIOD, GPIOE and SPI1
    set_bits(RCC_AHB1ENR, 0, (1 << 0) | (1 << 3) | (1 << 4));
    set_bits(RCC_APB2ENR, 0, 1 << 12);
    // SAFETY: a read of an RCC register (see `reg`): the enable takes effect before the first SPI1 access.
    let _ = unsafe { read_volatile(reg(RCC_APB2ENR)) };
    // LEDs: PD12-15 outputs, off
    for pin in LED_PINS {
        set_bits(GPIOD + MODER, 0b11 << (2 * pin), 0b01 << (2 * pin));
    }
    leds(0);
    // SPI1 pins PA5/6/7: alternate function 5, high speed; chip select PE3: output, high (deselected)
    for pin in 5..=7u32 {
        set_bits(GPIOA + MODER, 0b11 << (2 * pin), 0b10 << (2 * pin));
        set_bits(GPIOA + OSPEEDR, 0b11 << (2 * pin), 0b10 << (2 * pin));
        set_bits(GPIOA + AFRL, 0xF << (4 * pin), 5 << (4 * pin));
    }
    set_bits(GPIOE + MODER, 0b11 << 6, 0b01 << 6);
    chip_select(false);
    // SPI1 master, mode 3 (CPOL = CPHA = 1, what the LIS3DSH wants), fPCLK/16 = 1 MHz, software NSS
    // SAFETY: SPI1's CR1 (see `reg`), clocked above; configured (SPE off) before it is enabled (bit 6).
    unsafe {
        write_volatile(reg(SPI_CR1), (1 << 9) | (1 << 8) | (0b011 << 3) | (1 << 2) | (1 << 1) | (1 << 0));
        write_volatile(reg(SPI_CR1), read_volatile(reg(SPI_CR1)) | (1 << 6));
    }
    // DWT cycle counter
    // SAFETY: the core's DEMCR and DWT registers (see `reg`): TRCENA first, then the counter is cleared and
    // started; nothing else uses the DWT.
    unsafe {
        write_volatile(reg(DEMCR), read_volatile(reg(DEMCR)) | (1 << 24));
        write_volatile(reg(DWT_CYCCNT), 0);
        write_volatile(reg(DWT_CTRL), read_volatile(reg(DWT_CTRL)) | 1);
    }
}

/// DWT CYCCNT, when the counter exists (QEMU has no DWT: its CTRL reads 0).
#[inline(always)]
pub fn cycles() -> Option<u32> {
    // SAFETY: reads of the core's DWT registers (see `reg`), which have no side effects.
    if unsafe { read_volatile(reg(DWT_CTRL)) } & 1 == 0 {
        return None;
    }
    // SAFETY: as above.
    Some(unsafe { read_volatile(reg(DWT_CYCCNT)) })
}

/// Light the LEDs whose bits are set in `mask` (bit 0 = green ... bit 3 = blue).
fn leds(mask: u32) {
    let mut bsrr = 0;
    for (i, pin) in LED_PINS.iter().enumerate() {
        bsrr |= if mask & (1 << i) != 0 { 1 << pin } else { 1 << (pin + 16) };
    }
    // SAFETY: GPIOD's BSRR (see `reg`): a write sets or resets exactly the LED pins, atomically.
    unsafe { write_volatile(reg(GPIOD + BSRR), bsrr) }
}

fn chip_select(selected: bool) {
    // SAFETY: GPIOE's BSRR (see `reg`): a write sets or resets PE3 alone, atomically.
    unsafe { write_volatile(reg(GPIOE + BSRR), if selected { 1 << (3 + 16) } else { 1 << 3 }) }
}

fn wait_for(flag: u32) -> Result<(), ()> {
    for _ in 0..SPI_POLLS {
        // SAFETY: SPI1's status register (see `reg`); reading it has no side effects.
        if unsafe { read_volatile(reg(SPI_SR)) } & flag != 0 {
            return Ok(());
        }
    }
    Err(())
}

fn transfer(byte: u8) -> Result<u8, ()> {
    wait_for(SR_TXE)?;
    // SAFETY: SPI1's data register (see `reg`), written once TXE says the transmit buffer is empty.
    unsafe { write_volatile(reg(SPI_DR), byte as u32) };
    wait_for(SR_RXNE)?;
    // SAFETY: SPI1's data register, read once RXNE says a byte arrived (the read clears RXNE).
    Ok(unsafe { read_volatile(reg(SPI_DR)) } as u8)
}

fn read_register(address: u8) -> Result<u8, ()> {
    chip_select(true);
    let value = transfer(READ | address).and_then(|_| transfer(0));
    chip_select(false);
    value
}

fn write_register(address: u8, value: u8) -> Result<(), ()> {
    chip_select(true);
    let done = transfer(address).and_then(|_| transfer(value));
    chip_select(false);
    done.map(|_| ())
}

/// One X/Y/Z sample in raw counts (`G_PER_DIGIT` g each).
fn read_sample() -> Result<[i16; 3], ()> {
    let mut out = [0; 3];
    for (axis, value) in out.iter_mut().enumerate() {
        let low = read_register(OUT_X_L + 2 * axis as u8)?;
        let high = read_register(OUT_X_L + 2 * axis as u8 + 1)?;
        *value = i16::from_le_bytes([low, high]);
    }
    Ok(out)
}

/// What the window keeps of each reading: the model's input value, or with `features` the raw count (the
/// features need the whole window, as the replayed test windows hold it).
#[cfg(not(feature = "features"))]
type Kept = model::Input;
#[cfg(feature = "features")]
type Kept = i16;

/// A raw reading of `axis` as the window keeps it: through the declared input scaling's fixed-point step, the
/// one the host used for the test windows (`raw-input`); otherwise in g, quantized with the model's input scale;
/// with `features` as it is.
#[cfg(all(feature = "raw-input", not(feature = "features")))]
fn keep(counts: i16, axis: usize) -> Kept {
    crate::raw_to_input(counts, axis)
}

#[cfg(not(feature = "raw-input"))]
fn keep(counts: i16, _axis: usize) -> Kept {
    model::input_from_real(counts as f32 * G_PER_DIGIT)
}

#[cfg(feature = "features")]
fn keep(counts: i16, _axis: usize) -> Kept {
    counts
}

/// The model's verdict on the window: its output for the window as kept.
#[cfg(not(feature = "features"))]
fn classify(window: &[Kept], output: &mut [model::Output]) {
    model::invoke(window, output);
}

/// With `features`: the window's features and their int8 steps first, by the replay's own function.
#[cfg(feature = "features")]
fn classify(window: &[Kept], output: &mut [model::Output]) {
    let mut values = [0i16; model::INPUT_LEN];
    let mut input = [0 as model::Input; model::INPUT_LEN];
    crate::features::model_input(window, &mut values, &mut input);
    model::invoke(&input, output);
}

fn argmax<T: PartialOrd>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// The LED mask for `class` at animation step `step`.
fn pattern(class: usize, step: u32) -> u32 {
    match CLASSES.get(class).copied() {
        Some("wave") => 1 << (step % 4),
        Some("tap") => if step % 2 == 0 { 0b1111 } else { 0 },
        Some("none") => 0b0001,
        _ => 1 << (class % 4),
    }
}

/// Runs for ever when the LIS3DSH answers; returns at once when it does not.
pub fn run_application() {
    if read_register(WHO_AM_I) != Ok(LIS3DSH_ID) {
        return;
    }
    // 50 Hz class ODR (0x5 << 4) with X, Y, Z enabled; +-8 g
    if write_register(CTRL_REG4, (0x5 << 4) | 0b111).is_err() || write_register(CTRL_REG5, FSCALE_8G).is_err() {
        return;
    }
    let axes = crate::TEST_WINDOW_LEN / WINDOW;
    let mut window = [0 as Kept; crate::TEST_WINDOW_LEN];
    let mut output = [0 as model::Output; model::OUTPUT_LEN];
    let period = CORE_HZ / SAMPLE_RATE_HZ as u64;
    let mut next = systick::now();
    let mut since_last = 0;
    let mut class = usize::MAX;
    let mut step = 0u32;
    loop {
        while systick::now() < next {}
        next += period;
        let Ok(sample) = read_sample() else { continue };
        window.copy_within(axes.., 0); // oldest sample out, newest in at the end
        for (axis, (slot, counts)) in window[crate::TEST_WINDOW_LEN - axes..].iter_mut().zip(sample).enumerate() {
            *slot = keep(counts, axis);
        }
        since_last += 1;
        if since_last >= STRIDE {
            since_last = 0;
            classify(&window, &mut output);
            class = argmax(&output);
        }
        if class != usize::MAX {
            step = step.wrapping_add(1);
            leds(pattern(class, step / (SAMPLE_RATE_HZ / 8).max(1)));
        }
    }
}
