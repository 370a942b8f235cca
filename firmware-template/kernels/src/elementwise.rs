//! Element-wise int8 operators.
//!
//! Unary ones (RELU, RELU6, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH, QUANTIZE) map each int8 value through a
//! 256-entry table the code generator fills with TFLM's arithmetic for every possible input: one load per
//! element.
//! Binary ones (ADD, SUB, MUL) compute TFLM's `reference_integer_ops` arithmetic per element, with
//! broadcasting by strides (0 along a broadcast dimension) over up to five dimensions
//! (TFLM: `BroadcastAdd4DSlow`, `BroadcastQuantSubSlow`, `BroadcastMul4DSlow`).
//! ADD and SUB also come table-driven ([`AddTable`]): each operand's rescaled value depends on its int8 byte
//! only, so the code generator computes both in advance, and one requantization per element remains.

use crate::quant::{clamp_s8, multiply_by_quantized_multiplier};

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

    /// Whether neither input is broadcast: both laid out like the output, so element `k` of each pairs with
    /// output element `k`.
    fn flat(&self) -> bool {
        let mut step = 1;
        for d in (0..5).rev() {
            let s = if self.dims[d] > 1 { step } else { 0 };
            if self.a_strides[d] != s || self.b_strides[d] != s {
                return false;
            }
            step *= self.dims[d];
        }
        true
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

/// ADD and SUB from precomputed operand tables: `tables[v as u8]` is twice TFLM's rescaled first operand
/// `MultiplyByQuantizedMultiplierSmallerThanOneExp((v + a_offset) << left_shift, ...)` for the int8 value
/// `v`, `tables[256 + v as u8]` twice the second one's (negated for SUB), so their sum is twice TFLM's
/// `raw_sum` (the code generator bounds it below 2^30). The output's `MultiplyByQuantizedMultiplier` with a
/// right shift `right >= 1` then reduces to one rounding high multiply (see [`Self::requantize`]).
#[derive(Clone, Copy, Debug)]
pub struct AddTable {
    pub shape: Broadcast,
    pub output_multiplier: i32,
    /// `2^(right - 1) + output_offset * 2^right`
    pub output_add: i32,
    /// `-output_shift`, at least 1
    pub right: i32,
    pub act_min: i32,
    pub act_max: i32,
}

impl AddTable {
    /// TFLM's output stage for `raw2 = 2 * raw_sum`, plus the output zero point: a doubling high multiply
    /// rounding halves up is `floor((2 * raw * m + 2^31) / 2^32)` (for either sign: TFLM's nudge and
    /// truncating division round halves away from zero, which for this product is the same), and the
    /// rounding right shift of that adds `2^(right-1)`, less one for a negative value (halves away from zero),
    /// before flooring. Nested floors of additions merge, so `output_add` enters the high multiply's
    /// accumulator and only the sign's correction follows it. The sign is `raw`'s: where it differs from the
    /// high multiply's, that is 0 and both corrections give 0.
    #[inline(always)]
    fn requantize<const FULL: bool>(&self, raw2: i32) -> i8 {
        #[cfg(tinyml_dsp)]
        let hi = crate::dsp::smmlar(raw2, self.output_multiplier, self.output_add);
        #[cfg(not(tinyml_dsp))]
        let hi = (((i64::from(self.output_add) << 32) + i64::from(raw2) * i64::from(self.output_multiplier)
            + (1 << 31)) >> 32) as i32;
        let v = (hi + (raw2 >> 31)) >> self.right;
        clamp_s8::<FULL>(v, self.act_min, self.act_max)
    }

    fn full(&self) -> bool {
        self.act_min == -128 && self.act_max == 127
    }
}

/// The two operand tables of [`AddTable`].
#[inline(always)]
fn halves(tables: &[i32; 512]) -> (&[i32; 256], &[i32; 256]) {
    let (a, b) = tables.split_at(256);
    // both halves are 256 long: the conversions cannot fail
    (a.try_into().unwrap_or(&[0; 256]), b.try_into().unwrap_or(&[0; 256]))
}

#[inline(always)]
fn add_table_run<const FULL: bool>(p: &AddTable, a: &[i8], b: &[i8], tables: &[i32; 512], output: &mut [i8]) {
    let (ta, tb) = halves(tables);
    let sum = |x: i8, z: i8| ta[x as u8 as usize].wrapping_add(tb[z as u8 as usize]);
    if p.shape.flat() {
        let n = p.shape.len();
        for ((o, &x), &z) in output[..n].iter_mut().zip(&a[..n]).zip(&b[..n]) {
            *o = p.requantize::<FULL>(sum(x, z));
        }
    } else {
        let mut out = output.iter_mut();
        p.shape.visit(|ia, ib| {
            let raw2 = sum(a.get(ia).copied().unwrap_or(0), b.get(ib).copied().unwrap_or(0));
            if let Some(o) = out.next() {
                *o = p.requantize::<FULL>(raw2);
            }
        });
    }
}

/// ADD or SUB with [`AddTable`]'s precomputed operand tables.
pub fn add_s8_table(p: &AddTable, a: &[i8], b: &[i8], tables: &[i32; 512], output: &mut [i8]) {
    if !p.shape.fits(a, b, output) {
        return;
    }
    if p.full() {
        add_table_run::<true>(p, a, b, tables, output)
    } else {
        add_table_run::<false>(p, a, b, tables, output)
    }
}

#[inline(always)]
fn add_table_in_place_run<const IN_B: bool, const FULL: bool>(p: &AddTable, other: &[i8], tables: &[i32; 512], buf: &mut [i8]) {
    let (ta, tb) = halves(tables);
    let sum = |x: i8, z: i8| ta[x as u8 as usize].wrapping_add(tb[z as u8 as usize]);
    if p.shape.flat() {
        let n = p.shape.len();
        for (o, &t) in buf[..n].iter_mut().zip(&other[..n]) {
            *o = p.requantize::<FULL>(if IN_B { sum(t, *o) } else { sum(*o, t) });
        }
    } else {
        p.shape.for_each_in_place::<IN_B>(other, buf, |x, z| p.requantize::<FULL>(sum(x as i8, z as i8)));
    }
}

/// `add_s8_table` writing its output over operand `b` (`IN_B`) or `a`, held in `buf`; `other` is the other
/// operand.
pub fn add_s8_table_in_place<const IN_B: bool>(p: &AddTable, other: &[i8], tables: &[i32; 512], buf: &mut [i8]) {
    let n = p.shape.len();
    let (own, theirs) = if IN_B { (&p.shape.b_strides, &p.shape.a_strides) } else { (&p.shape.a_strides, &p.shape.b_strides) };
    if n == 0 || buf.len() < n || buf.len() < p.shape.reach(own) || other.len() < p.shape.reach(theirs) {
        return;
    }
    if p.full() {
        add_table_in_place_run::<IN_B, true>(p, other, tables, buf)
    } else {
        add_table_in_place_run::<IN_B, false>(p, other, tables, buf)
    }
}
