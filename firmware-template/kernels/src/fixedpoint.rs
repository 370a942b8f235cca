//! gemmlowp-style fixed-point arithmetic on `i32`, with the exact rounding TFLM relies on.
//!
//! A value in "Qm" format has `m` integer bits and `31 - m` fractional bits. Additions wrap like the C++
//! original (whose operands never overflow in the paths used here).

/// `(a * b * 2) >> 32` rounded to nearest, ties away from zero; `i32::MIN * i32::MIN` saturates (ARM VQRDMULH).
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // truncating division (not a shift): rounds toward zero exactly like the C++ `/`
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero (`exponent` in 0..=31).
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// `x * 2^exponent`, saturating (`exponent` in 1..=30).
#[inline(always)]
pub fn saturating_shift_left(x: i32, exponent: u32) -> i32 {
    let threshold = (1i32 << (31 - exponent)) - 1;
    if x > threshold {
        i32::MAX
    } else if x < -threshold {
        i32::MIN
    } else {
        x << exponent
    }
}

/// (a + b) / 2 rounded away from zero, in 64-bit so it cannot overflow.
#[inline(always)]
fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

const Q0_ONE: i32 = i32::MAX;

/// exp(a) for a in [-1/4, 0), Q0 in and out: a Taylor expansion around -1/8.
fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const EXP_MINUS_ONE_EIGHTH: i32 = 1_895_147_668; // exp(-1/8) in Q0
    const ONE_THIRD: i32 = 715_827_883; // 1/3 in Q0
    let mul = saturating_rounding_doubling_high_mul;
    let x = a.wrapping_add(1 << 28); // a + 1/8
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = rounding_divide_by_pot(x4, 2);
    let poly = rounding_divide_by_pot(mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2), 1);
    EXP_MINUS_ONE_EIGHTH.wrapping_add(mul(EXP_MINUS_ONE_EIGHTH, x.wrapping_add(poly)))
}

/// exp(a) for a <= 0; `a` in Q5 (the softmax's scaled input difference), result in Q0.
pub fn exp_on_negative_values_q5(a: i32) -> i32 {
    const INTEGER_BITS: u32 = 5;
    const FRACTIONAL_BITS: u32 = 31 - INTEGER_BITS;
    // exp(-2^k) in Q0 for k = -2..=4, applied for each set bit of the whole quarters in -a
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    let one_quarter = 1i32 << (FRACTIONAL_BITS - 2);
    let a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(saturating_shift_left(
        a_mod_quarter_minus_one_quarter,
        INTEGER_BITS,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    for &(exponent, multiplier) in BARREL.iter() {
        let bit = (FRACTIONAL_BITS as i32 + exponent) as u32;
        if remainder & (1i32 << bit) != 0 {
            result = saturating_rounding_doubling_high_mul(result, multiplier);
        }
    }
    if a == 0 {
        Q0_ONE
    } else {
        result
    }
}

/// 1 / (1 + a) for a in [0, 1), Q0 in and out: three Newton-Raphson steps in Q2.
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    const FORTY_EIGHT_OVER_SEVENTEEN: i32 = 1_515_870_810; // Q2
    const MINUS_THIRTY_TWO_OVER_SEVENTEEN: i32 = -1_010_580_540; // Q2
    const Q2_ONE: i32 = 1 << 29;
    let mul = saturating_rounding_doubling_high_mul;
    let half_denominator = rounding_half_sum(a, Q0_ONE);
    let mut x = FORTY_EIGHT_OVER_SEVENTEEN.wrapping_add(mul(half_denominator, MINUS_THIRTY_TWO_OVER_SEVENTEEN));
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x);
        let one_minus = Q2_ONE.wrapping_sub(half_denominator_times_x);
        // Q2 * Q2 = Q4, rescaled to Q2
        x = x.wrapping_add(saturating_shift_left(mul(x, one_minus), 2));
    }
    // x / 2 in Q1 read as Q0
    saturating_shift_left(x, 1)
}

/// 1 / x for a positive `x` with `x_integer_bits` integer bits: returns (reciprocal in Q0 scaled by
/// 2^-num_bits_over_unit, num_bits_over_unit). TFLM's `GetReciprocal`.
pub fn reciprocal(x: i32, x_integer_bits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros();
    let num_bits_over_unit = x_integer_bits - headroom_plus_one as i32;
    let shifted_sum_minus_one = ((x as u32).wrapping_shl(headroom_plus_one)).wrapping_sub(1u32 << 31) as i32;
    (one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit)
}
