//! float32 <-> int8 at a model's edges: QUANTIZE (float32 -> int8) and DEQUANTIZE (int8 -> float32), as TFLM's
//! reference `AffineQuantize` and `Dequantize` compute them, and moving a model's input and output (int8 or
//! float32) in and out of the arena.
//!
//! The arena is a byte array with no alignment promise, so a float32 tensor in it is stored as little-endian
//! bytes and read and written four bytes at a time.
//!
//! Bit-exactness: `AffineQuantize` computes `round(x / float(scale)) + zero_point` in single precision with
//! `std::round` (ties away from zero), which [`quantize_f32`] reproduces. `Dequantize` computes
//! `float(double(scale) * (x - zero_point))`: the double product of a 24-bit significand and a 9-bit integer
//! is exact, so rounding it once to float equals the single-precision product `scale * (x - zero_point)`,
//! which is what [`dequantize_s8_f32`] computes. (Out-of-range values — a quotient beyond `i32` or a NaN —
//! are undefined behaviour in TFLM's C++; here they saturate to -128 or 127, NaN to the zero point.)

/// A model input or output element: `i8` (a quantized tensor) or `f32` (a float32 tensor).
pub trait Element: Copy + Default + PartialOrd {
    /// Bytes per element in the arena.
    const BYTES: usize;
    /// The element stored at the start of `bytes` (little-endian); `Default` when `bytes` is too short.
    fn load(bytes: &[i8]) -> Self;
    /// Store the element at the start of `bytes` (little-endian); nothing when `bytes` is too short.
    fn store(self, bytes: &mut [i8]);
}

impl Element for i8 {
    const BYTES: usize = 1;

    #[inline(always)]
    fn load(bytes: &[i8]) -> Self {
        bytes.first().copied().unwrap_or(0)
    }

    #[inline(always)]
    fn store(self, bytes: &mut [i8]) {
        if let Some(b) = bytes.first_mut() {
            *b = self;
        }
    }
}

impl Element for f32 {
    const BYTES: usize = 4;

    #[inline(always)]
    fn load(bytes: &[i8]) -> Self {
        match bytes {
            [a, b, c, d, ..] => f32::from_le_bytes([*a as u8, *b as u8, *c as u8, *d as u8]),
            _ => 0.0,
        }
    }

    #[inline(always)]
    fn store(self, bytes: &mut [i8]) {
        if let Some(dst) = bytes.get_mut(..4) {
            for (d, s) in dst.iter_mut().zip(self.to_le_bytes()) {
                *d = s as i8;
            }
        }
    }
}

/// Copy as many elements of `src` as fit into the arena bytes `dst`.
#[inline(always)]
pub fn store<T: Element>(dst: &mut [i8], src: &[T]) {
    for (d, s) in dst.chunks_exact_mut(T::BYTES).zip(src) {
        s.store(d);
    }
}

/// Copy as many elements as `dst` holds from the arena bytes `src`.
#[inline(always)]
pub fn load<T: Element>(dst: &mut [T], src: &[i8]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(T::BYTES)) {
        *d = T::load(s);
    }
}

/// A real value to int8 as TFLM's QUANTIZE does: `clamp(round(x / scale) + zero_point, -128, 127)` with
/// single-precision division and rounding half away from zero.
#[inline(always)]
pub fn quantize_f32(x: f32, scale: f32, zero_point: i32) -> i8 {
    let q = x / scale;
    let t = q as i32; // toward zero; saturating, NaN -> 0
    // exact: `t` is `q` without its fraction, and below 2^23 every such difference is representable
    let frac = q - t as f32;
    let rounded = if frac >= 0.5 {
        t.saturating_add(1)
    } else if frac <= -0.5 {
        t.saturating_sub(1)
    } else {
        t
    };
    rounded.saturating_add(zero_point).clamp(-128, 127) as i8
}

/// QUANTIZE float32 -> int8. `scale_bits` is the output scale's IEEE-754 bit pattern (exact in generated code).
#[derive(Clone, Copy, Debug)]
pub struct Quantize {
    pub len: usize,
    pub scale_bits: u32,
    pub zero_point: i32,
}

/// A float32's bit pattern as an unsigned key in the floats' order (NaNs beyond the infinities).
#[inline(always)]
pub fn f32_order_key(bits: u32) -> u32 {
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// `input`: `len` float32 values as little-endian bytes; `output`: `len` int8 values.
///
/// With a hardware FPU (`eabihf` targets) each value is divided as [`quantize_f32`] does. Without one, a
/// float division in software costs hundreds of instructions, so the value's order key is looked up
/// instead in `thresholds`: for k = -127..127, the key of the smallest float32 whose output is >= k, computed
/// by tinypipe with TFLM's arithmetic; the output is -128 plus the number of thresholds at or below the key.
/// Both give the same bits for every value but NaN (TFLM: undefined; here the zero point with an FPU, -128
/// or 127 by sign without).
pub fn quantize_f32_s8(p: &Quantize, input: &[i8], thresholds: &[u32; 255], output: &mut [i8]) {
    if input.len() < 4 * p.len || output.len() < p.len {
        return;
    }
    #[cfg(target_abi = "eabihf")]
    {
        let _ = thresholds;
        let scale = f32::from_bits(p.scale_bits);
        for (o, x) in output.iter_mut().zip(input.chunks_exact(4)).take(p.len) {
            *o = quantize_f32(f32::load(x), scale, p.zero_point);
        }
    }
    #[cfg(not(target_abi = "eabihf"))]
    for (o, x) in output.iter_mut().zip(input.chunks_exact(4)).take(p.len) {
        let key = f32_order_key(f32::load(x).to_bits());
        *o = (thresholds.partition_point(|&t| t <= key) as i32 - 128) as i8;
    }
}

/// DEQUANTIZE int8 -> float32. `scale_bits` is the input scale's IEEE-754 bit pattern.
#[derive(Clone, Copy, Debug)]
pub struct Dequantize {
    pub len: usize,
    pub scale_bits: u32,
    pub zero_point: i32,
}

/// `input`: `len` int8 values; `output`: `len` float32 values as little-endian bytes.
pub fn dequantize_s8_f32(p: &Dequantize, input: &[i8], output: &mut [i8]) {
    if input.len() < p.len || output.len() < 4 * p.len {
        return;
    }
    let scale = f32::from_bits(p.scale_bits);
    for (&x, o) in input.iter().zip(output.chunks_exact_mut(4)).take(p.len) {
        (scale * (x as i32 - p.zero_point) as f32).store(o);
    }
}
