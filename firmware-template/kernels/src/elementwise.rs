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

/// `lookup_s8` with the output written over the input.
pub fn lookup_s8_in_place(p: &Lookup, table: &[i8; 256], buf: &mut [i8]) {
    for v in buf.iter_mut().take(p.len) {
        *v = table[(*v as i32 + 128) as u8 as usize];
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

    /// Calls `visit(index into a, index into b)` for every output element, in order.
    #[inline(always)]
    fn visit(&self, mut visit: impl FnMut(usize, usize)) {
        let [d0, d1, d2, d3, d4] = self.dims;
        let (sa, sb) = (self.a_strides, self.b_strides);
        for i0 in 0..d0 {
            for i1 in 0..d1 {
                for i2 in 0..d2 {
                    for i3 in 0..d3 {
                        let ra = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3];
                        let rb = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3];
                        for i4 in 0..d4 {
                            visit(ra + i4 * sa[4], rb + i4 * sb[4]);
                        }
                    }
                }
            }
        }
    }

    /// Calls `f(a, b)` for every output element in order.
    #[inline(always)]
    fn for_each(&self, a: &[i8], b: &[i8], y: &mut [i8], f: impl Fn(i32, i32) -> i8) {
        let mut out = y.iter_mut();
        self.visit(|ia, ib| {
            let va = a.get(ia).copied().unwrap_or(0) as i32;
            let vb = b.get(ib).copied().unwrap_or(0) as i32;
            if let Some(o) = out.next() {
                *o = f(va, vb);
            }
        });
    }

    /// `for_each` with the output written over one operand (`b` when `IN_B`, else `a`) held in `buf`; the
    /// code generator does this only when that operand is laid out like the output (no broadcasting), so
    /// element `k` is read just before it is overwritten.
    #[inline(always)]
    fn for_each_in_place<const IN_B: bool>(&self, other: &[i8], buf: &mut [i8], f: impl Fn(i32, i32) -> i8) {
        let (own, theirs) = if IN_B { (&self.b_strides, &self.a_strides) } else { (&self.a_strides, &self.b_strides) };
        let n = self.len();
        if n == 0 || buf.len() < n || buf.len() < self.reach(own) || other.len() < self.reach(theirs) {
            return;
        }
        let mut k = 0;
        self.visit(|ia, ib| {
            let (mine, theirs) = if IN_B { (ib, ia) } else { (ia, ib) };
            let vm = buf.get(mine).copied().unwrap_or(0) as i32;
            let vo = other.get(theirs).copied().unwrap_or(0) as i32;
            if let Some(o) = buf.get_mut(k) {
                *o = if IN_B { f(vo, vm) } else { f(vm, vo) };
            }
            k += 1;
        });
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

impl Add {
    #[inline(always)]
    fn apply(&self, x: i32, z: i32) -> i8 {
        let shift = self.left_shift;
        let sa = multiply_by_quantized_multiplier((x + self.a_offset) << shift, self.a_multiplier, self.a_shift);
        let sb = multiply_by_quantized_multiplier((z + self.b_offset) << shift, self.b_multiplier, self.b_shift);
        let raw = if self.negate_b { sa - sb } else { sa + sb };
        let v = multiply_by_quantized_multiplier(raw, self.output_multiplier, self.output_shift) + self.output_offset;
        v.max(self.act_min).min(self.act_max) as i8
    }
}

pub fn add_s8(p: &Add, a: &[i8], b: &[i8], output: &mut [i8]) {
    if !p.shape.fits(a, b, output) {
        return;
    }
    p.shape.for_each(a, b, output, |x, z| p.apply(x, z));
}

/// `add_s8` writing its output over operand `b` (`IN_B`) or `a`, held in `buf`; `other` is the other operand.
pub fn add_s8_in_place<const IN_B: bool>(p: &Add, other: &[i8], buf: &mut [i8]) {
    p.shape.for_each_in_place::<IN_B>(other, buf, |x, z| p.apply(x, z));
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

impl Mul {
    #[inline(always)]
    fn apply(&self, x: i32, z: i32) -> i8 {
        let prod = (x + self.a_offset) * (z + self.b_offset);
        let v = multiply_by_quantized_multiplier(prod, self.output_multiplier, self.output_shift) + self.output_offset;
        v.max(self.act_min).min(self.act_max) as i8
    }
}

pub fn mul_s8(p: &Mul, a: &[i8], b: &[i8], output: &mut [i8]) {
    if !p.shape.fits(a, b, output) {
        return;
    }
    p.shape.for_each(a, b, output, |x, z| p.apply(x, z));
}

/// `mul_s8` writing its output over operand `b` (`IN_B`) or `a`, held in `buf`; `other` is the other operand.
pub fn mul_s8_in_place<const IN_B: bool>(p: &Mul, other: &[i8], buf: &mut [i8]) {
    p.shape.for_each_in_place::<IN_B>(other, buf, |x, z| p.apply(x, z));
}
