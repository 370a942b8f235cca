//! Element-wise int8 operators.
//!
//! Unary ones (RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH, QUANTIZE) map each int8 value through a
//! 256-entry table the code generator fills with TFLM's arithmetic for every possible input: one load per
//! element.
//! Binary ones (ADD, SUB, MUL) compute TFLM's `reference_integer_ops` arithmetic per element, with
//! broadcasting by strides (0 along a broadcast dimension) over up to five dimensions
//! (TFLM: `BroadcastAdd4DSlow`, `BroadcastQuantSubSlow`, `BroadcastMul4DSlow`).

use crate::quant::multiply_by_quantized_multiplier;

#[derive(Clone, Copy, Debug)]
pub struct Lookup {
    pub len: usize,
}

/// `y[i] = table[x[i] + 128]`.
pub fn lookup_s8(p: &Lookup, input: &[i8], table: &[i8; 256], output: &mut [i8]) {
    if input.len() < p.len || output.len() < p.len {
        return;
    }
    for (o, &v) in output.iter_mut().zip(input).take(p.len) {
        *o = table[(v as i32 + 128) as u8 as usize];
    }
}

/// The loop nest of a broadcasting binary operator: output dimensions (outermost first) and each input's
/// strides in elements (0 where it is broadcast).
#[derive(Clone, Copy, Debug)]
pub struct Broadcast {
    pub dims: [usize; 5],
    pub a_strides: [usize; 5],
    pub b_strides: [usize; 5],
}

impl Broadcast {
    fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Largest index + 1 read through `strides`.
    fn reach(&self, strides: &[usize; 5]) -> usize {
        1 + self.dims.iter().zip(strides).map(|(d, s)| d.saturating_sub(1) * s).sum::<usize>()
    }

    fn fits(&self, a: &[i8], b: &[i8], y: &[i8]) -> bool {
        self.len() > 0 && y.len() >= self.len() && a.len() >= self.reach(&self.a_strides)
            && b.len() >= self.reach(&self.b_strides)
    }

    /// Calls `f(a, b)` for every output element in order.
    #[inline(always)]
    fn for_each(&self, a: &[i8], b: &[i8], y: &mut [i8], f: impl Fn(i32, i32) -> i8) {
        let [d0, d1, d2, d3, d4] = self.dims;
        let (sa, sb) = (self.a_strides, self.b_strides);
        let mut out = y.iter_mut();
        for i0 in 0..d0 {
            for i1 in 0..d1 {
                for i2 in 0..d2 {
                    for i3 in 0..d3 {
                        let ra = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3];
                        let rb = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3];
                        for i4 in 0..d4 {
                            let va = a.get(ra + i4 * sa[4]).copied().unwrap_or(0) as i32;
                            let vb = b.get(rb + i4 * sb[4]).copied().unwrap_or(0) as i32;
                            if let Some(o) = out.next() {
                                *o = f(va, vb);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// ADD and SUB (`negate_b`): TFLM's `AddFunc` / `SubFunc` for int8.
#[derive(Clone, Copy, Debug)]
pub struct Add {
    pub shape: Broadcast,
    pub a_offset: i32,
    pub b_offset: i32,
    pub left_shift: i32,
    pub a_multiplier: i32,
    pub a_shift: i32,
    pub b_multiplier: i32,
    pub b_shift: i32,
    pub negate_b: bool,
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

pub fn add_s8(p: &Add, a: &[i8], b: &[i8], output: &mut [i8]) {
    if !p.shape.fits(a, b, output) {
        return;
    }
    p.shape.for_each(a, b, output, |x, z| {
        let sa = multiply_by_quantized_multiplier((x + p.a_offset) << p.left_shift, p.a_multiplier, p.a_shift);
        let sb = multiply_by_quantized_multiplier((z + p.b_offset) << p.left_shift, p.b_multiplier, p.b_shift);
        let raw = if p.negate_b { sa - sb } else { sa + sb };
        let v = multiply_by_quantized_multiplier(raw, p.output_multiplier, p.output_shift) + p.output_offset;
        v.max(p.act_min).min(p.act_max) as i8
    });
}

/// MUL: TFLM's `MulElementwise` for int8.
#[derive(Clone, Copy, Debug)]
pub struct Mul {
    pub shape: Broadcast,
    pub a_offset: i32,
    pub b_offset: i32,
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

pub fn mul_s8(p: &Mul, a: &[i8], b: &[i8], output: &mut [i8]) {
    if !p.shape.fits(a, b, output) {
        return;
    }
    p.shape.for_each(a, b, output, |x, z| {
        let prod = (x + p.a_offset) * (z + p.b_offset);
        let v = multiply_by_quantized_multiplier(prod, p.output_multiplier, p.output_shift) + p.output_offset;
        v.max(p.act_min).min(p.act_max) as i8
    });
}
