//! Host unit tests (`cargo test`, the portable path): each kernel against TFLM's reference arithmetic written
//! out plainly here, at the edges the bit-exact model tests (tests/test_native.py) reach rarely — zero points
//! at -128 and 127, shift extremes, broadcast shapes, padding, slices shorter than the parameters say.

use crate::*;

/// TFLM's `MultiplyByQuantizedMultiplier` in i64, as a check on the i32 version.
fn mbqm_reference(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = if shift > 0 { shift } else { 0 };
    let right = if shift > 0 { 0 } else { -shift };
    let x = x.wrapping_shl(left as u32) as i64;
    let m = multiplier as i64;
    let high = if x == i32::MIN as i64 && m == i32::MIN as i64 {
        i32::MAX as i64
    } else {
        let ab = x * m;
        let nudge = if ab >= 0 { 1i64 << 30 } else { 1 - (1i64 << 30) };
        (ab + nudge) / (1i64 << 31)
    };
    if right == 0 {
        return high as i32;
    }
    let mask = (1i64 << right) - 1;
    let remainder = high & mask;
    let threshold = (mask >> 1) + i64::from(high < 0);
    ((high >> right) + i64::from(remainder > threshold)) as i32
}

mod fixed_point {
    use crate::fixedpoint::*;

    #[test]
    fn doubling_high_mul_saturates_only_at_min_times_min() {
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX), -i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        assert_eq!(saturating_rounding_doubling_high_mul(0, i32::MIN), 0);
    }

    #[test]
    fn doubling_high_mul_rounds_like_gemmlowp() {
        // 1 * 2^30 * 2 / 2^32 = 0.5 -> 1; gemmlowp's nudge for a negative product is 1 - 2^30, so -0.5 -> 0
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1); // -1.5 -> -1
    }

    #[test]
    fn rounding_divide_by_pot_rounds_half_away_from_zero_at_every_exponent() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot(12345, 0), 12345);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 30), -2);
    }

    #[test]
    fn saturating_shift_left_clamps() {
        assert_eq!(saturating_shift_left(1 << 20, 12), i32::MAX);
        assert_eq!(saturating_shift_left(-(1 << 20), 12), i32::MIN);
        assert_eq!(saturating_shift_left(3, 2), 12);
    }
}

mod requantization {
    use super::mbqm_reference;
    use crate::multiply_by_quantized_multiplier;

    #[test]
    fn matches_the_i64_reference_at_shift_extremes() {
        let xs = [0, 1, -1, 127, -128, 1 << 20, -(1 << 20), i32::MAX, i32::MIN, 123_456_789, -987_654_321];
        let multipliers = [1 << 30, i32::MAX, 1_518_500_250, 1_073_741_824 + 1];
        for shift in [-31, -30, -16, -1, 0, 1, 7, 31] {
            for &m in &multipliers {
                for &x in &xs {
                    assert_eq!(multiply_by_quantized_multiplier(x, m, shift), mbqm_reference(x, m, shift),
                               "x={x} m={m} shift={shift}");
                }
            }
        }
    }
}

mod conversion {
    use crate::*;

    #[test]
    fn quantize_saturates_at_zero_points_on_the_int8_limits() {
        assert_eq!(quantize_f32(0.0, 0.5, -128), -128);
        assert_eq!(quantize_f32(-1000.0, 0.5, -128), -128);
        assert_eq!(quantize_f32(1000.0, 0.5, -128), 127);
        assert_eq!(quantize_f32(0.0, 0.5, 127), 127);
        assert_eq!(quantize_f32(-1.0, 0.5, 127), 125);
        assert_eq!(quantize_f32(f32::NAN, 0.5, 3), 3);
    }

    #[test]
    fn quantize_rounds_half_away_from_zero() {
        assert_eq!(quantize_f32(1.25, 0.5, 0), 3); // 2.5 -> 3
        assert_eq!(quantize_f32(-1.25, 0.5, 0), -3);
        assert_eq!(quantize_f32(0.74, 0.5, 0), 1);
    }

    #[test]
    fn store_and_load_round_trip_float_bytes_little_endian() {
        let values = [1.5f32, -0.0, f32::MAX];
        let mut bytes = [0i8; 12];
        store(&mut bytes, &values);
        assert_eq!(bytes[..4].iter().map(|&b| b as u8).collect::<Vec<_>>(), 1.5f32.to_le_bytes());
        let mut back = [0f32; 3];
        load(&mut back, &bytes);
        assert_eq!(back.map(f32::to_bits), values.map(f32::to_bits));
    }
}

mod arena_splits {
    use crate::*;

    #[test]
    fn const_checks_agree_with_the_splits() {
        let mut arena = [0i8; 16];
        for a in 0..18 {
            for an in 0..6 {
                for b in 0..18 {
                    for bn in 0..6 {
                        assert_eq!(io_fits(16, a, an, b, bn), split_io(&mut arena, a, an, b, bn).is_some(),
                                   "io {a}+{an} -> {b}+{bn}");
                        assert_eq!(inputs_fit(16, [(a, an)], b, bn),
                                   split_inputs(&mut arena, [(a, an)], b, bn).is_some(), "inputs {a}+{an} -> {b}+{bn}");
                    }
                }
                assert_eq!(range_fits(16, a, an), arena.get(a..a + an).is_some());
            }
        }
        assert!(!range_fits(16, usize::MAX, 2) && !io_fits(16, usize::MAX, 2, 0, 1));
    }

    #[test]
    fn inputs_may_overlap_each_other_but_not_the_output() {
        let mut arena = [0i8; 8];
        assert!(inputs_fit(8, [(0, 4), (0, 4)], 4, 4));
        assert!(split_inputs(&mut arena, [(0, 4), (0, 4)], 4, 4).is_some());
        assert!(!inputs_fit(8, [(0, 4), (3, 2)], 4, 4));
    }
}

mod elementwise_ops {
    use crate::*;

    const IDENTITY: i32 = 1 << 30; // 0.5 as Q31, with shift 1: x * 1

    fn add(shape: Broadcast, output_offset: i32, act: (i32, i32)) -> Add {
        Add {
            shape, a_offset: 0, b_offset: 0, left_shift: 0, a_multiplier: IDENTITY, a_shift: 1,
            b_multiplier: IDENTITY, b_shift: 1, negate_b: false, output_multiplier: IDENTITY, output_shift: 1,
            output_offset, act_min: act.0, act_max: act.1,
        }
    }

    #[test]
    fn add_broadcasts_a_row_over_every_row() {
        // a: 2x3, b: 1x3 broadcast along the rows (stride 0)
        let shape = Broadcast { dims: [1, 1, 1, 2, 3], a_strides: [0, 0, 0, 3, 1], b_strides: [0, 0, 0, 0, 1] };
        let mut y = [0i8; 6];
        add_s8(&add(shape, 0, (-128, 127)), &[1, 2, 3, 4, 5, 6], &[10, 20, 30], &mut y);
        assert_eq!(y, [11, 22, 33, 14, 25, 36]);
    }

    #[test]
    fn add_of_a_scalar_saturates_with_zero_points_at_the_limits() {
        let shape = Broadcast { dims: [1, 1, 1, 1, 4], a_strides: [0, 0, 0, 0, 1], b_strides: [0; 5] };
        let mut p = add(shape, 127, (-128, 127));
        p.a_offset = 128; // input zero point -128
        let mut y = [0i8; 4];
        add_s8(&p, &[-128, -127, 0, 127], &[0], &mut y);
        assert_eq!(y, [127; 4]);
        p.output_offset = -128;
        add_s8(&p, &[-128, -127, 0, 127], &[0], &mut y);
        assert_eq!(y, [-128, -127, 0, 127]);
    }

    #[test]
    fn add_in_place_matches_add() {
        let shape = Broadcast { dims: [1, 1, 1, 1, 3], a_strides: [0, 0, 0, 0, 1], b_strides: [0, 0, 0, 0, 1] };
        let p = add(shape, 0, (-128, 127));
        let mut y = [0i8; 3];
        add_s8(&p, &[1, 2, 3], &[4, 5, 6], &mut y);
        let mut buf = [4i8, 5, 6];
        add_s8_in_place::<true>(&p, &[1, 2, 3], &mut buf);
        assert_eq!(buf, y);
    }

    #[test]
    fn sub_negates_the_second_operand() {
        let shape = Broadcast { dims: [1, 1, 1, 1, 2], a_strides: [0, 0, 0, 0, 1], b_strides: [0, 0, 0, 0, 1] };
        let mut p = add(shape, 0, (-128, 127));
        p.negate_b = true;
        let mut y = [0i8; 2];
        add_s8(&p, &[5, -100], &[7, 100], &mut y);
        assert_eq!(y, [-2, -128]);
    }

    #[test]
    fn mul_broadcasts_a_column() {
        // a: 2x2, b: 2x1 broadcast along the columns
        let shape = Broadcast { dims: [1, 1, 1, 2, 2], a_strides: [0, 0, 0, 2, 1], b_strides: [0, 0, 0, 1, 0] };
        let p = Mul { shape, a_offset: 0, b_offset: 0, output_multiplier: IDENTITY, output_shift: 1, output_offset: 0,
                      act_min: -128, act_max: 127 };
        let mut y = [0i8; 4];
        mul_s8(&p, &[1, 2, 3, 4], &[10, -50], &mut y);
        assert_eq!(y, [10, 20, -128, -128]);
    }

    #[test]
    fn short_slices_leave_the_output_untouched() {
        let shape = Broadcast { dims: [1, 1, 1, 1, 4], a_strides: [0, 0, 0, 0, 1], b_strides: [0, 0, 0, 0, 1] };
        let mut y = [9i8; 4];
        add_s8(&add(shape, 0, (-128, 127)), &[1, 2, 3], &[1, 2, 3, 4], &mut y);
        assert_eq!(y, [9; 4]);
    }

    #[test]
    fn lookup_indexes_by_value_plus_128() {
        let mut table = [0i8; 256];
        for (i, t) in table.iter_mut().enumerate() {
            *t = (255 - i) as u8 as i8;
        }
        let mut y = [0i8; 3];
        lookup_s8(&Lookup { len: 3 }, &[-128, 0, 127], &table, &mut y);
        assert_eq!(y, [-1, 127, 0]);
    }
}

mod pooling {
    use crate::*;

    fn pool(in_w: usize, out_w: usize, filter_w: usize, stride_w: usize, pad_w: usize) -> Pool2d {
        Pool2d { batches: 1, in_h: 1, in_w, channels: 1, out_h: 1, out_w, filter_h: 1, filter_w, stride_h: 1,
                 stride_w, pad_h: 0, pad_w, act_min: -128, act_max: 127 }
    }

    #[test]
    fn max_pool_takes_the_window_maximum_and_clamps() {
        let mut y = [0i8; 2];
        max_pool2d_s8(&pool(4, 2, 2, 2, 0), &[-128, -127, 5, 127], &mut y);
        assert_eq!(y, [-127, 127]);
        let mut p = pool(4, 2, 2, 2, 0);
        p.act_max = 6;
        max_pool2d_s8(&p, &[-128, -127, 5, 127], &mut y);
        assert_eq!(y, [-127, 6]);
    }

    #[test]
    fn average_pool_counts_only_taps_inside_the_input_and_rounds_half_away() {
        // SAME padding: the first window covers [pad, x0, x1] -> average of 2 taps
        let mut y = [0i8; 2];
        average_pool2d_s8(&pool(3, 2, 3, 2, 1), &[1, 2, -3], &mut y);
        assert_eq!(y, [2, -1]); // (1 + 2) / 2 = 1.5 -> 2; (2 - 3) / 2 = -0.5 -> -1
    }
}

mod softmax_op {
    use crate::*;

    // beta = 1, input scale 1/16: TFLM's PreprocessSoftmaxScaling gives multiplier 2^30, left shift 23 for it
    const P: Softmax = Softmax { outer: 2, depth: 4, input_multiplier: 1 << 30, input_left_shift: 23, diff_min: -248 };

    #[test]
    fn equal_inputs_share_the_probability_and_rows_are_independent() {
        let mut y = [0i8; 8];
        softmax_s8(&P, &[7, 7, 7, 7, -128, -128, -128, 127], &mut y);
        assert_eq!(&y[..4], &[-64; 4]); // 1/4 at scale 1/256, zero point -128
        assert_eq!(y[7], 127); // one value 255/16 above the others takes everything
        assert!(y[4..7].iter().all(|&v| v == -128));
        let mut in_place = [7i8, 7, 7, 7, -128, -128, -128, 127];
        softmax_s8_in_place(&P, &mut in_place);
        assert_eq!(in_place, y);
    }
}

mod reduction {
    use crate::*;

    #[test]
    fn mean_over_the_last_axis_with_the_zero_point_at_minus_128() {
        // 2 rows of 3; input zero point -128 folded into zero_point_sum; output = mean with offset -128
        let p = Mean { out_dims: [1, 1, 1, 1, 2], out_strides: [0, 0, 0, 0, 3], reduce_dims: [1, 1, 1, 1, 3],
                       reduce_strides: [0, 0, 0, 0, 1], zero_point_sum: -128 * 3,
                       multiplier: 1_431_655_765, shift: -1, output_offset: -128 }; // 1/3
        let mut y = [0i8; 2];
        mean_s8(&p, &[-128, -128, -128, 127, 127, 127], &mut y);
        assert_eq!(y, [-128, 127]);
    }
}

mod copies {
    use crate::*;

    #[test]
    fn pad_fills_then_copies_into_the_middle() {
        let p = StridedCopy { dims: [1, 1, 1, 1, 2], in_start: 0, in_strides: [0, 0, 0, 0, 1], out_start: 1,
                              out_strides: [0, 0, 0, 0, 1], out_len: 4, pad: true, fill: -128 };
        let mut y = [0i8; 4];
        strided_copy_s8(&p, &[5, 6], &mut y);
        assert_eq!(y, [-128, 5, 6, -128]);
    }

    #[test]
    fn a_negative_stride_walks_backwards() {
        let p = StridedCopy { dims: [1, 1, 1, 1, 3], in_start: 2, in_strides: [0, 0, 0, 0, -1], out_start: 0,
                              out_strides: [0, 0, 0, 0, 1], out_len: 3, pad: false, fill: 0 };
        let mut y = [0i8; 3];
        strided_copy_s8(&p, &[1, 2, 3], &mut y);
        assert_eq!(y, [3, 2, 1]);
    }

    #[test]
    fn transpose_swaps_axes() {
        // 2x3 -> 3x2
        let p = StridedCopy { dims: [1, 1, 1, 3, 2], in_start: 0, in_strides: [0, 0, 0, 1, 3], out_start: 0,
                              out_strides: [0, 0, 0, 2, 1], out_len: 6, pad: false, fill: 0 };
        let mut y = [0i8; 6];
        strided_copy_s8(&p, &[1, 2, 3, 4, 5, 6], &mut y);
        assert_eq!(y, [1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn concatenation_interleaves_rows() {
        let mut y = [0i8; 6];
        concatenation_s8(&Concatenation { outer: 2, sizes: [1, 2] }, [&[1, 2], &[3, 4, 5, 6]], &mut y);
        assert_eq!(y, [1, 3, 4, 2, 5, 6]);
    }
}

mod raw_input {
    use crate::quantize_raw_i16;

    /// The same step in i128 and exact rational rounding (halves away from zero), at the raw range's edges.
    fn reference(raw: i16, multiplier: i32, bias: i64, shift: u32) -> i8 {
        let acc = i128::from(raw) * i128::from(multiplier) + i128::from(bias);
        let divisor = 1i128 << shift;
        let magnitude = (acc.abs() + divisor / 2) / divisor; // ties away from zero
        let q = if acc < 0 { -magnitude } else { magnitude };
        q.clamp(-128, 127) as i8
    }

    #[test]
    fn matches_exact_rounding_across_the_int16_range() {
        let cases: [(i32, i64, u32); 5] = [
            (1 << 30, 0, 38),                          // 1/256: ties at every multiple of 128
            (1_503_238_554, -3 << 40, 41),             // a multiplier below one and a negative bias
            (i32::MAX, (1i64 << 47) * 100, 47),        // the largest multiplier and bias tinypipe makes
            (-(1 << 30), 5, 30),                       // negative multiplier: still rounded symmetrically
            (1 << 30, 0, 0),                           // no shift: plain saturation
        ];
        for &(multiplier, bias, shift) in &cases {
            for raw in (i16::MIN..=i16::MAX).step_by(7).chain([i16::MIN, -1, 0, 1, i16::MAX]) {
                assert_eq!(quantize_raw_i16(raw, multiplier, bias, shift), reference(raw, multiplier, bias, shift),
                           "raw {raw}, multiplier {multiplier}, bias {bias}, shift {shift}");
            }
        }
    }
}
