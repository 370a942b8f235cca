//! The real-time loop (`realtime` feature): the sensing loop a deployed model runs, measured against its
//! deadline after the test-set replay.
//!
//! The SysTick exception is the sample clock: every `sensor.sample_rate_hz`-th of a second it "reads the
//! sensor" into a ring buffer. Here the sensor replays the test windows from flash, back to back, one sample
//! (`AXES` values) at a time, as the real values they stand for (`Element::to_real`), or with `raw-input` as the
//! raw int16 readings themselves; under QEMU's `-icount shift=0` time counts instructions, so the run is
//! deterministic. Every `HOP` samples the main loop takes the newest `WINDOW` samples, turns them into the
//! model's input (the preprocessing: `model::input_from_real`, or the declared scaling's fixed-point step, or
//! with `features` the window's features and then their steps, `features.rs`) and runs `model::invoke` while
//! the samples keep arriving.
//!
//! A window misses its deadline when its processing has not finished by the time the next window is complete
//! (`HOP` more samples). A loop that falls further behind goes on with the newest complete window, and the
//! windows it skipped count as misses too. The worst window's time is split into preprocessing and inference
//! (SysTick ticks, interrupts included: the wall time the deadline is about).
//!
//! Output, one line: `realtime <ticks per sample> <hop> <windows due> <windows done> <misses> <worst window
//! ticks> <its preprocessing ticks> <its inference ticks> <input mismatches>`; with `HOP == WINDOW` each
//! window is one test window, and `input mismatches` counts the processed windows whose quantized values
//! differ from the stored test window (the sensor path must give back the exact model input).

use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::model;
use crate::realtime_config::{AXES, HOP, INTERRUPTS_PER_SAMPLE, TICKS_PER_INTERRUPT, WINDOW};
use crate::semihosting::Line;
use crate::systick;

/// Samples the ring holds: a window, and the hop that arrives while it is processed.
const RING_SAMPLES: usize = WINDOW + HOP;

const _: () = assert!(WINDOW > 0 && HOP > 0 && AXES > 0 && INTERRUPTS_PER_SAMPLE > 0);
const _: () = assert!(crate::TEST_WINDOW_LEN == WINDOW * AXES, "a test window must be WINDOW samples of AXES values");

// The sensor's side. Only the SysTick exception writes RING, SAMPLES and INTERRUPTS_LEFT, and the main loop
// only reads them while sampling runs; atomics (plain loads and stores, which ARMv6-M has) make every access
// sound without a critical section. A sample's values are stored before SAMPLES counts it (Release), and the
// main loop reads SAMPLES (Acquire) before the values: a counted sample is complete. A slot the exception
// overwrites while the main loop copies it is detected afterwards from SAMPLES (see `run`).
/// The last RING_SAMPLES samples, `AXES` f32 values each (as bits), sample `s` at `s % RING_SAMPLES`.
static RING: [AtomicU32; RING_SAMPLES * AXES] = [const { AtomicU32::new(0) }; RING_SAMPLES * AXES];
/// Samples taken since sampling started.
static SAMPLES: AtomicU32 = AtomicU32::new(0);
/// Samples to take: the length of the replayed stream; 0 while the loop is not running.
static STREAM_SAMPLES: AtomicU32 = AtomicU32::new(0);
/// SysTick exceptions until the next sample (a slow rate needs several 24-bit periods per sample).
static INTERRUPTS_LEFT: AtomicU32 = AtomicU32::new(0);

/// The SysTick exception's share: one sample every INTERRUPTS_PER_SAMPLE calls while the stream lasts.
pub fn on_systick() {
    let taken = SAMPLES.load(Ordering::Relaxed);
    if taken >= STREAM_SAMPLES.load(Ordering::Relaxed) {
        return;
    }
    let left = INTERRUPTS_LEFT.load(Ordering::Relaxed);
    if left > 1 {
        INTERRUPTS_LEFT.store(left - 1, Ordering::Relaxed);
        return;
    }
    INTERRUPTS_LEFT.store(INTERRUPTS_PER_SAMPLE, Ordering::Relaxed);
    let sample = taken as usize;
    let slot = (sample % RING_SAMPLES) * AXES;
    let values = &crate::test_inputs()[sample * AXES..][..AXES];
    for (cell, value) in RING[slot..slot + AXES].iter().zip(values) {
        cell.store(sensor_reading(value), Ordering::Relaxed);
    }
    SAMPLES.store(taken + 1, Ordering::Release);
}

/// What the "sensor" delivers for a stored test sample, as a ring cell: the real value (the model's input
/// dequantized), or with `raw-input` the raw int16 reading itself.
#[cfg(not(feature = "raw-input"))]
fn sensor_reading(value: &crate::TestSample) -> u32 {
    use crate::contract::Element;
    use crate::realtime_config::{INPUT_SCALE, INPUT_ZERO_POINT};

    value.to_real(INPUT_SCALE, INPUT_ZERO_POINT).to_bits()
}
#[cfg(feature = "raw-input")]
fn sensor_reading(value: &crate::TestSample) -> u32 {
    *value as u16 as u32
}

/// The preprocessing: a ring cell of axis `axis` as the model's input (quantized, or with `raw-input` the
/// declared scaling's fixed-point step).
#[cfg(not(feature = "raw-input"))]
fn preprocess(cell: u32, _axis: usize) -> model::Input {
    model::input_from_real(f32::from_bits(cell))
}
#[cfg(all(feature = "raw-input", not(feature = "features")))]
fn preprocess(cell: u32, axis: usize) -> model::Input {
    crate::raw_to_input(cell as u16 as i16, axis)
}

/// Whether the loop's model input equals the replay's for the same stored window.
#[cfg(not(feature = "raw-input"))]
fn is_test_window(window: &[model::Input], stored: &[crate::TestSample]) -> bool {
    window == stored
}
#[cfg(all(feature = "raw-input", not(feature = "features")))]
fn is_test_window(window: &[model::Input], stored: &[crate::TestSample]) -> bool {
    window.iter().zip(stored).enumerate().all(|(i, (&input, &raw))| input == crate::raw_to_input(raw, i))
}

/// The main loop's buffers in .bss (not on the stack, whose high-water mark is about the model).
struct Buffers(UnsafeCell<([model::Input; model::INPUT_LEN], [model::Output; model::OUTPUT_LEN])>);
// SAFETY: only `run` (main thread, never an interrupt handler) touches it, once.
unsafe impl Sync for Buffers {}
static BUFFERS: Buffers =
    Buffers(UnsafeCell::new(([0 as model::Input; model::INPUT_LEN], [0 as model::Output; model::OUTPUT_LEN])));

/// With `features`: the raw window copied out of the ring, and its features (in .bss too).
#[cfg(feature = "features")]
struct FeatureBuffers(UnsafeCell<([i16; WINDOW * AXES], [i16; model::INPUT_LEN])>);
// SAFETY: as for `Buffers`: only `preprocess_window`, called by `run` on the main thread, touches it.
#[cfg(feature = "features")]
unsafe impl Sync for FeatureBuffers {}
#[cfg(feature = "features")]
static FEATURE_BUFFERS: FeatureBuffers = FeatureBuffers(UnsafeCell::new(([0; WINDOW * AXES], [0; model::INPUT_LEN])));

/// The preprocessing of the window starting at sample `first`: ring cells -> the model's input; true when it
/// equals the stored test window's (checked only when each window is one test window, `HOP == WINDOW`).
#[cfg(not(feature = "features"))]
fn preprocess_window(first: usize, window: &mut [model::Input], stored: Option<&[crate::TestSample]>) -> bool {
    for (sample, values) in window.chunks_exact_mut(AXES).enumerate() {
        let slot = ((first + sample) % RING_SAMPLES) * AXES;
        for (axis, (value, cell)) in values.iter_mut().zip(&RING[slot..slot + AXES]).enumerate() {
            *value = preprocess(cell.load(Ordering::Relaxed), axis);
        }
    }
    stored.is_none_or(|stored| is_test_window(window, stored))
}

/// With `features`: the raw samples out of the ring (which must be the stored test window's), then the window's
/// features and their int8 steps.
#[cfg(feature = "features")]
fn preprocess_window(first: usize, window: &mut [model::Input], stored: Option<&[crate::TestSample]>) -> bool {
    // SAFETY: see `FeatureBuffers`; the references do not outlive this call.
    let (raw, values) = unsafe { &mut *FEATURE_BUFFERS.0.get() };
    for (sample, samples) in raw.chunks_exact_mut(AXES).enumerate() {
        let slot = ((first + sample) % RING_SAMPLES) * AXES;
        for (value, cell) in samples.iter_mut().zip(&RING[slot..slot + AXES]) {
            *value = cell.load(Ordering::Relaxed) as u16 as i16;
        }
    }
    crate::features::model_input(raw, values, window);
    stored.is_none_or(|stored| raw[..] == *stored)
}

/// What the loop measured (see the module doc for the line it prints).
pub struct Figures {
    windows_due: u32,
    windows_done: u32,
    misses: u32,
    worst_ticks: u64,
    worst_preprocessing_ticks: u64,
    worst_inference_ticks: u64,
    input_mismatches: u32,
}

/// Run the loop over the whole test stream, then give SysTick back to free-running timing.
pub fn run() -> Figures {
    // SAFETY: `run` is called once, from `app_main`, so this is the only reference to BUFFERS (see its `Sync`).
    let (window, output) = unsafe { &mut *BUFFERS.0.get() };
    let test_inputs = crate::test_inputs();
    let stream = test_inputs.len() / AXES;
    let due = if stream >= WINDOW { (stream - WINDOW) / HOP + 1 } else { 0 };
    let mut figures = Figures { windows_due: due as u32, windows_done: 0, misses: 0, worst_ticks: 0,
                                worst_preprocessing_ticks: 0, worst_inference_ticks: 0, input_mismatches: 0 };

    SAMPLES.store(0, Ordering::Relaxed);
    INTERRUPTS_LEFT.store(INTERRUPTS_PER_SAMPLE, Ordering::Relaxed);
    STREAM_SAMPLES.store(stream as u32, Ordering::Release);
    systick::start_periodic(TICKS_PER_INTERRUPT);

    let mut index = 0;
    while index < due {
        let first = index * HOP;
        let end = first + WINDOW;
        wait_for_samples(end);
        let begin = systick::now();
        let stored = if HOP == WINDOW { Some(&test_inputs[first * AXES..end * AXES]) } else { None };
        let sensed_exactly = preprocess_window(first, window, stored);
        // the oldest sample's slot is reused by sample `first + RING_SAMPLES`: if that one has arrived, the copy
        // may hold newer values and the window is lost
        let overrun = SAMPLES.load(Ordering::Acquire) as usize > first + RING_SAMPLES;
        let preprocessed = systick::now();
        if !overrun {
            model::invoke(window, output);
        }
        let finished = systick::now();
        let arrived = SAMPLES.load(Ordering::Acquire) as usize;

        if overrun || arrived >= end + HOP {
            figures.misses += 1;
        }
        if !overrun {
            figures.windows_done += 1;
            if finished - begin > figures.worst_ticks {
                figures.worst_ticks = finished - begin;
                figures.worst_preprocessing_ticks = preprocessed - begin;
                figures.worst_inference_ticks = finished - preprocessed;
            }
            if !sensed_exactly {
                figures.input_mismatches += 1;
            }
        }
        // fallen behind: go on with the newest complete window; the ones in between are missed
        let newest = ((arrived - WINDOW) / HOP).min(due - 1);
        if newest > index + 1 {
            figures.misses += (newest - index - 1) as u32;
            index = newest;
        } else {
            index += 1;
        }
    }

    STREAM_SAMPLES.store(0, Ordering::Relaxed);
    systick::start();
    figures
}

/// Sleep until `count` samples have arrived.
fn wait_for_samples(count: usize) {
    loop {
        // Interrupts off between the check and the sleep, or a sample arriving in between would be slept
        // through; WFI still wakes on the pending exception, which runs once they are back on.
        // SAFETY: `cpsid i` only sets PRIMASK; nothing relies on interrupts until `cpsie i` below. Not `nomem`:
        // the load below must stay after it.
        unsafe { asm!("cpsid i", options(nostack, preserves_flags)) };
        let arrived = SAMPLES.load(Ordering::Acquire) as usize >= count;
        if !arrived {
            // SAFETY: WFI only waits for an interrupt; one is always coming (SysTick runs).
            unsafe { asm!("wfi", options(nostack, preserves_flags)) };
        }
        // SAFETY: `cpsie i` clears PRIMASK: interrupts were on before `cpsid i` above.
        unsafe { asm!("cpsie i", options(nostack, preserves_flags)) };
        if arrived {
            return;
        }
    }
}

impl Figures {
    /// The `realtime` line (module doc).
    pub fn report(&self) {
        let mut line = Line::new();
        line.push_str("realtime");
        for value in [
            u64::from(TICKS_PER_INTERRUPT) * u64::from(INTERRUPTS_PER_SAMPLE),
            HOP as u64,
            u64::from(self.windows_due),
            u64::from(self.windows_done),
            u64::from(self.misses),
            self.worst_ticks,
            self.worst_preprocessing_ticks,
            self.worst_inference_ticks,
            u64::from(self.input_mismatches),
        ] {
            line.push_byte(b' ');
            line.push_u64(value);
        }
        line.finish();
    }
}
