//! Host unit tests (`cargo test`, the portable path): each kernel against TFLM's reference arithmetic written
//! out plainly here, at the edges the bit-exact model tests (tests/test_native.py) reach rarely — zero points
//! at -128 and 127, shift extremes, broadcast shapes, padding, slices shorter than the parameters say.

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

    /// `AddTable`'s parameters and tables for `p` (as tinypipe's `quant.add_tables` computes them).
    fn table_of(p: &Add) -> (AddTable, [i32; 512]) {
        let mut tables = [0i32; 512];
        for byte in 0..256usize {
            let v = byte as u8 as i8 as i32;
            let scaled = |offset: i32, m: i32, s: i32| 2 * multiply_by_quantized_multiplier((v + offset) << p.left_shift, m, s);
            tables[byte] = scaled(p.a_offset, p.a_multiplier, p.a_shift);
            let b = scaled(p.b_offset, p.b_multiplier, p.b_shift);
            tables[256 + byte] = if p.negate_b { -b } else { b };
        }
        let right = -p.output_shift;
        let t = AddTable {
            shape: p.shape, output_multiplier: p.output_multiplier,
            output_add: (1 << (right - 1)) + p.output_offset * (1 << right), right, act_min: p.act_min,
            act_max: p.act_max,
        };
        (t, tables)
    }

    #[test]
    fn add_table_matches_tflms_arithmetic_for_every_pair_of_bytes() {
        // every (a, b) byte pair once: a along the rows, b along the columns
        let a: Vec<i8> = (0..65536).map(|k| (k >> 8) as u8 as i8).collect();
        let b: Vec<i8> = (0..65536).map(|k| k as u8 as i8).collect();
        let flat = Broadcast { dims: [1, 1, 1, 256, 256], a_strides: [0, 0, 0, 256, 1], b_strides: [0, 0, 0, 256, 1] };
        // (a offset, b offset, multipliers and shifts, output multiplier and shift, offset, clamp, SUB): zero
        // points at the ends, each side's shift different, right shifts from 1 to 24, one-sided clamps
        let cases = [
            (128, -127, (1_518_500_250, -1), (1_073_741_824, 0), (1_431_655_765, -18), -128, (-128, 127), false),
            (-127, 128, (1_073_741_824, 0), (1_789_569_707, -5), (2_040_109_465, -21), 127, (-128, 127), true),
            (0, 3, (1_200_000_000, -2), (1_100_000_000, 0), (1_500_000_000, -1), 5, (-128, 127), false),
            (128, 128, (2_000_000_000, 0), (1_300_000_000, -3), (1_900_000_000, -24), -20, (-20, 127), false),
            (-5, 127, (1_073_741_824, 0), (1_073_741_824, -1), (1_717_986_918, -19), 40, (-128, 60), true),
        ];
        for (a_offset, b_offset, (am, ash), (bm, bsh), (om, osh), output_offset, (act_min, act_max), negate_b) in cases {
            let p = Add {
                shape: flat, a_offset, b_offset, left_shift: 20, a_multiplier: am, a_shift: ash, b_multiplier: bm,
                b_shift: bsh, negate_b, output_multiplier: om, output_shift: osh, output_offset, act_min, act_max,
            };
            let (t, tables) = table_of(&p);
            let (mut want, mut got) = (vec![0i8; 65536], vec![1i8; 65536]);
            add_s8(&p, &a, &b, &mut want);
            add_s8_table(&t, &a, &b, &tables, &mut got);
            assert!(want == got, "{p:?}");
            let mut buf = b.clone();
            add_s8_table_in_place::<true>(&t, &a, &tables, &mut buf);
            assert!(want == buf, "in place over b: {p:?}");
            // broadcasting: row r of a against b's row 7 (b_strides 0 along the rows)
            let mut pb = p;
            pb.shape.b_strides = [0; 5];
            pb.shape.b_strides[4] = 1;
            let mut tb = t;
            tb.shape = pb.shape;
            let (mut want, mut got) = (vec![0i8; 65536], vec![1i8; 65536]);
            add_s8(&pb, &a, &b[7 * 256..], &mut want);
            add_s8_table(&tb, &a, &b[7 * 256..], &tables, &mut got);
            assert!(want == got, "broadcast: {p:?}");
            let mut buf = a.clone();
            add_s8_table_in_place::<false>(&tb, &b[7 * 256..], &tables, &mut buf);
            assert!(want == buf, "broadcast in place over a: {p:?}");
        }
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

/// Conv, depthwise and fully connected kernels against TFLM's reference loops written out plainly (int32
/// sums over `input + input_offset` skipping padding taps, `MultiplyByQuantizedMultiplier`, clamp), with the
/// weights re-laid and the biases folded as the code generator does (lower.py), on the short path, with a
/// restricted activation range, and in general layers: biases of +-2^30 and more whose doubled sums would
/// overflow int32, and a multiplier above one.
mod matmul_kernels {
    use super::mbqm_reference;
    use crate::quant::GENERAL_TZ;
    use crate::*;

    /// A seeded xorshift: test data without a crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 16) as u32
        }
        fn int8s(&mut self, n: usize) -> Vec<i8> {
            (0..n).map(|_| self.next() as u8 as i8).collect()
        }
    }

    /// One output channel's requantization: (multiplier, shift) and bias.
    #[derive(Clone, Copy)]
    struct Channel {
        multiplier: i32,
        shift: i32,
        bias: i32,
    }

    /// Channels on the short path, or (`wide`) every other one with a bias of about +-2^30 or +-2^31 and
    /// a shift that brings such sums into int8 range, and one with a multiplier above one.
    fn channels(rng: &mut Rng, n: usize, wide: bool) -> Vec<Channel> {
        (0..n)
            .map(|c| {
                let multiplier = (1 << 30) + (rng.next() >> 2) as i32;
                match (wide, c % 4) {
                    (true, 1) => Channel { multiplier, shift: -24, bias: (1 << 30) + (rng.next() >> 12) as i32 },
                    (true, 3) => Channel { multiplier, shift: -25, bias: -2_140_000_000 },
                    (true, 2) if c == 2 => Channel { multiplier, shift: 1, bias: 100 },
                    _ => {
                        let bias = (rng.next() % 20_000) as i32 - 10_000;
                        Channel { multiplier, shift: -9 - (c % 3) as i32, bias }
                    }
                }
            })
            .collect()
    }

    /// lower.py `rescale` and `rescale_word`: the short path when the channel's bound and shift allow it.
    fn rescale(ch: Channel, output_offset: i32, bound: i64) -> Rescale {
        if ch.shift < 0 && bound < 1 << 30 {
            let e = -ch.shift;
            let add = (1i64 << (e - 1)) + output_offset as i64 * (1i64 << e);
            if add.abs() < 1 << 30 && e as u32 <= GENERAL_TZ {
                return Rescale { multiplier: ch.multiplier, add: add as i32 };
            }
        }
        Rescale { multiplier: ch.multiplier, add: (ch.shift << 26) | (1 << GENERAL_TZ) }
    }

    /// lower.py: per channel the folded bias (times its factor), its `Rescale`, and its factor: 1 for a
    /// plain sum (general channels), 2 for twice it. `per_layer` (conv, fully connected): every channel of
    /// a layer with a general one is general. `rows[c]`: channel c's weights.
    fn fold(chs: &[Channel], rows: &[Vec<i8>], input_offset: i32, output_offset: i32, per_layer: bool)
            -> (Vec<i32>, Vec<Rescale>, Vec<i32>) {
        let folded: Vec<i64> = chs
            .iter()
            .zip(rows)
            .map(|(ch, r)| ch.bias as i64 + input_offset as i64 * r.iter().map(|&w| w as i64).sum::<i64>())
            .collect();
        let mut rescales: Vec<Rescale> = chs
            .iter()
            .zip(rows)
            .zip(&folded)
            .map(|((ch, r), f)| {
                let bound = f.abs() + 128 * r.iter().map(|&w| (w as i64).abs()).sum::<i64>();
                rescale(*ch, output_offset, bound)
            })
            .collect();
        if per_layer && rescales.iter().any(|r| r.is_general()) {
            rescales = chs.iter().map(|ch| rescale(*ch, output_offset, 1 << 30)).collect();
        }
        let factors: Vec<i32> = rescales.iter().map(|r| if r.is_general() { 1 } else { 2 }).collect();
        (folded.iter().zip(&factors).map(|(f, k)| (*k as i64 * f) as i32).collect(), rescales, factors)
    }

    fn requantize(acc: i32, ch: Channel, output_offset: i32, act: (i32, i32)) -> i8 {
        (mbqm_reference(acc, ch.multiplier, ch.shift) + output_offset).clamp(act.0, act.1) as i8
    }

    fn words(bytes: &[i8]) -> Vec<u32> {
        bytes.chunks(4).map(|c| {
            let mut w = [0u8; 4];
            for (d, s) in w.iter_mut().zip(c) {
                *d = *s as u8;
            }
            u32::from_le_bytes(w)
        }).collect()
    }

    /// Every word of four int8 `v0..v3` as the two words `(v0, v2)` and `(v1, v3)` of int16 pairs (what the
    /// code generator's pre-widened filters hold).
    fn widened(words: &[u32]) -> Vec<u32> {
        let half = |v: u32| (v as u8 as i8 as i16 as u16) as u32;
        words.iter().flat_map(|&w| [half(w) | half(w >> 16) << 16, half(w >> 8) | half(w >> 24) << 16]).collect()
    }

    /// The `conv2d_s8_widened` filter: per pair of rows `(b0, b0, b1, b1)`, the pair's `4 * words` widened
    /// words, `(m0, add0, m1, add1, tz(add0), tz(add1))`.
    fn widened_stream(widened: &[u32], words: usize, bias: &[i32], rescales: &[Rescale]) -> Vec<u32> {
        let pad = Rescale { multiplier: 0, add: 1 };
        widened.chunks(4 * words).enumerate().flat_map(|(pair, rows)| {
            let b = |c: usize| bias.get(c).copied().unwrap_or(0) as u32;
            let r = |c: usize| rescales.get(c).copied().unwrap_or(pad);
            let (r0, r1) = (r(2 * pair), r(2 * pair + 1));
            let mut v = vec![b(2 * pair), b(2 * pair), b(2 * pair + 1), b(2 * pair + 1)];
            v.extend_from_slice(rows);
            v.extend([r0.multiplier as u32, r0.add as u32, r1.multiplier as u32, r1.add as u32]);
            v.extend([r0.add.trailing_zeros(), r1.add.trailing_zeros()]);
            v
        }).collect()
    }

    fn padded_row(row: &[i8], words: usize) -> Vec<i8> {
        let mut r = row.to_vec();
        r.resize(4 * words, 0);
        r
    }

    /// A convolution window's geometry, (height, width) each.
    struct Window {
        in_hw: (usize, usize),
        k: (usize, usize),
        stride: (usize, usize),
        dil: (usize, usize),
        pad: (usize, usize),
    }

    impl Window {
        /// Output pixel (oy, ox)'s taps inside the input, as (tap index, input pixel index): TFLM skips the rest.
        fn taps(&self, oy: usize, ox: usize) -> Vec<(usize, usize)> {
            let mut out = Vec::new();
            for ky in 0..self.k.0 {
                for kx in 0..self.k.1 {
                    let iy = (oy * self.stride.0 + ky * self.dil.0) as isize - self.pad.0 as isize;
                    let ix = (ox * self.stride.1 + kx * self.dil.1) as isize - self.pad.1 as isize;
                    if iy >= 0 && ix >= 0 && iy < self.in_hw.0 as isize && ix < self.in_hw.1 as isize {
                        out.push((ky * self.k.1 + kx, iy as usize * self.in_hw.1 + ix as usize));
                    }
                }
            }
            out
        }
    }

    fn conv_case(p: Conv2d, wide: bool, seed: u64) {
        let mut rng = Rng(seed);
        let patch = p.k_h * p.k_w * p.in_c;
        let input = rng.int8s(p.in_h * p.in_w * p.in_c);
        let rows: Vec<Vec<i8>> = (0..p.out_c).map(|_| rng.int8s(patch)).collect();
        let chs = channels(&mut rng, p.out_c, wide);
        let act = (p.act_min, p.act_max);
        let mut expected = vec![0i8; p.out_h * p.out_w * p.out_c];
        let window = Window { in_hw: (p.in_h, p.in_w), k: (p.k_h, p.k_w), stride: (p.stride_h, p.stride_w),
                              dil: (p.dil_h, p.dil_w), pad: (p.pad_h, p.pad_w) };
        for (oy, ox) in (0..p.out_h).flat_map(|oy| (0..p.out_w).map(move |ox| (oy, ox))) {
            for (o, (row, ch)) in rows.iter().zip(&chs).enumerate() {
                let mut acc = 0i32;
                for (tap, px) in window.taps(oy, ox) {
                    for c in 0..p.in_c {
                        let x = input[px * p.in_c + c] as i32;
                        acc = acc.wrapping_add(row[tap * p.in_c + c] as i32 * (x + p.input_offset));
                    }
                }
                let v = requantize(acc.wrapping_add(ch.bias), *ch, p.output_offset, act);
                expected[(oy * p.out_w + ox) * p.out_c + o] = v;
            }
        }
        let (bias, rescales, factors) = fold(&chs, &rows, p.input_offset, p.output_offset, true);
        assert_eq!(factors.iter().all(|&k| k == 1), wide);
        // conv_filter_words: rows padded to words, a zero row for an odd count, pairs interleaved by word
        let row_words = p.row_words();
        let mut padded: Vec<Vec<u32>> = rows.iter().map(|r| words(&padded_row(r, row_words))).collect();
        if p.out_c % 2 == 1 {
            padded.push(vec![0; row_words]);
        }
        let filter: Vec<u32> =
            padded.chunks(2).flat_map(|pair| (0..row_words).flat_map(move |g| [pair[0][g], pair[1][g]])).collect();
        let mut output = vec![0i8; expected.len()];
        let mut scratch = vec![0u32; p.scratch_words()];
        let mut stage = vec![0i8; p.stage_bytes()];
        conv2d_s8(&p, &input, &filter, &bias, &rescales, &mut output, &mut scratch, &mut stage);
        assert_eq!(output, expected, "conv {p:?} wide={wide}");
        // `optimize: size`: the same filter and folded biases, one patch of `row_words` words
        let mut compact = vec![0i8; expected.len()];
        let mut patch = vec![0u32; p.row_words()];
        conv2d_s8_compact(&p, &input, &filter, &bias, &rescales, &mut compact, &mut patch);
        assert_eq!(compact, expected, "compact conv {p:?} wide={wide}");
        // conv_filter_widened_words: each word as its two int16-pair words, row 0's then row 1's, each pair
        // between its doubled biases and its rescales with their shifts (a padding row: zero bias, add 1)
        // doubled weights unless the layer sums plainly (general): the kernel then widens plain patches
        let double = |w: u32| ((w as u16).wrapping_mul(2) as u32) | (((w >> 16) as u16).wrapping_mul(2) as u32) << 16;
        let wide_rows: Vec<u32> = widened(&filter).into_iter().map(|w| if wide { w } else { double(w) }).collect();
        let filter = widened_stream(&wide_rows, row_words, &bias, &rescales);
        assert_eq!(filter.len(), conv_filter_widened_words(&p));
        let mut output = vec![0i8; expected.len()];
        conv2d_s8_widened(&p, &input, &filter, &mut output, &mut scratch, &mut stage);
        assert_eq!(output, expected, "conv widened {p:?} wide={wide}");
    }

    #[allow(clippy::too_many_arguments)] // one test case's shape, spelled out at the call
    fn conv(in_hw: (usize, usize), in_c: usize, out_c: usize, k: (usize, usize), stride: usize, pad: (usize, usize),
            zero_points: (i32, i32), act: (i32, i32)) -> Conv2d {
        let out_h = (in_hw.0 + 2 * pad.0 - k.0) / stride + 1;
        let out_w = (in_hw.1 + 2 * pad.1 - k.1) / stride + 1;
        Conv2d { batches: 1, in_h: in_hw.0, in_w: in_hw.1, in_c, out_h, out_w, out_c, k_h: k.0, k_w: k.1,
                 stride_h: stride, stride_w: stride, dil_h: 1, dil_w: 1, pad_h: pad.0, pad_w: pad.1,
                 input_offset: -zero_points.0, output_offset: zero_points.1, act_min: act.0, act_max: act.1 }
    }

    #[test]
    fn conv_matches_tflm_on_the_short_and_the_general_path() {
        for wide in [false, true] {
            // 3x3 SAME with zero points at the int8 limits, odd output channels and pixels
            conv_case(conv((5, 4), 3, 5, (3, 3), 1, (1, 1), (-128, 127), (-128, 127)), wide, 1);
            conv_case(conv((5, 4), 3, 5, (3, 3), 1, (1, 1), (127, -128), (-128, 127)), wide, 2);
            // 1x1 stride 2, a RELU-like range; 2x3 VALID with 6 channels (patch not a multiple of four)
            conv_case(conv((6, 6), 8, 4, (1, 1), 2, (0, 0), (3, -5), (-5, 127)), wide, 3);
            conv_case(conv((4, 7), 6, 6, (2, 3), 1, (0, 0), (-1, 0), (-128, 100)), wide, 4);
            // four channels padded on every side (the size mode's word-wise patch with zero-point words)
            conv_case(conv((5, 5), 4, 3, (3, 3), 2, (1, 1), (5, -2), (-128, 127)), wide, 11);
        }
    }

    fn depthwise_case(p: DepthwiseConv2d, wide: bool, seed: u64) {
        let mut rng = Rng(seed);
        let out_c = p.in_c * p.depth_multiplier;
        let taps = p.k_h * p.k_w;
        let input = rng.int8s(p.in_h * p.in_w * p.in_c);
        let filter_1hwc = rng.int8s(taps * out_c);
        let rows: Vec<Vec<i8>> = (0..out_c).map(|o| (0..taps).map(|t| filter_1hwc[t * out_c + o]).collect()).collect();
        let chs = channels(&mut rng, out_c, wide);
        let act = (p.act_min, p.act_max);
        let mut expected = vec![0i8; p.out_h * p.out_w * out_c];
        let window = Window { in_hw: (p.in_h, p.in_w), k: (p.k_h, p.k_w), stride: (p.stride_h, p.stride_w),
                              dil: (p.dil_h, p.dil_w), pad: (p.pad_h, p.pad_w) };
        for (oy, ox) in (0..p.out_h).flat_map(|oy| (0..p.out_w).map(move |ox| (oy, ox))) {
            for (o, (row, ch)) in rows.iter().zip(&chs).enumerate() {
                let mut acc = 0i32;
                for (tap, px) in window.taps(oy, ox) {
                    let x = input[px * p.in_c + o / p.depth_multiplier] as i32;
                    acc = acc.wrapping_add(row[tap] as i32 * (x + p.input_offset));
                }
                let v = requantize(acc.wrapping_add(ch.bias), *ch, p.output_offset, act);
                expected[(oy * p.out_w + ox) * out_c + o] = v;
            }
        }
        let (mut bias, mut rescales, factors) = fold(&chs, &rows, p.input_offset, p.output_offset, false);
        assert_eq!(factors.contains(&1), wide);
        let lanes = p.lanes();
        bias.resize(lanes, 0);
        rescales.resize(lanes, Rescale { multiplier: 0, add: 1 });
        // depthwise_filter_words: per block of four lanes, per tap, (w02, w13, offset)
        let w = |tap: usize, o: usize| if o < out_c { factors[o] * filter_1hwc[tap * out_c + o] as i32 } else { 0 };
        let pack = |lo: i32, hi: i32| (lo as u32 & 0xFFFF) | (hi as u32 & 0xFFFF) << 16;
        let mut filter = Vec::new();
        for b in 0..lanes / 4 {
            let o = 4 * b;
            for ky in 0..p.k_h {
                for kx in 0..p.k_w {
                    let tap = ky * p.k_w + kx;
                    let offset = if p.broadcast() {
                        ky * 4 * p.row_words() + kx * p.dil_w * p.in_c + o / p.depth_multiplier
                    } else {
                        ky * p.row_words() + kx * p.dil_w * lanes / 2
                    };
                    filter.extend([pack(w(tap, o), w(tap, o + 2)), pack(w(tap, o + 1), w(tap, o + 3)), offset as u32]);
                }
            }
        }
        let mut output = vec![0i8; expected.len()];
        let mut scratch = vec![0u32; p.scratch_words()];
        depthwise_conv2d_s8(&p, &input, &filter, &bias, &rescales, &mut output, &mut scratch);
        assert_eq!(output, expected, "depthwise {p:?} wide={wide}");
        // `optimize: size`: TFLite's int8 filter as it is, the variant the code generator picks, and the
        // biases and rescales through a packed stream (channels.rs)
        let (words, adds, packed) = pack_channels(&bias[..out_c], &rescales[..out_c]);
        let (mut b_buf, mut r_buf) = (vec![0i32; out_c], vec![Rescale { multiplier: 0, add: 0 }; out_c]);
        let (b, r) = unpack_channels(&packed, &words, &adds, &mut b_buf, &mut r_buf);
        assert_eq!((b, r), (&bias[..out_c], &rescales[..out_c]));
        let mut compact = vec![0i8; expected.len()];
        type Kernel = fn(&DepthwiseConv2d, &[i8], &[i8], &[i32], &[Rescale], &mut [i8]);
        let run = |f: Kernel, out: &mut [i8]| f(&p, &input, &filter_1hwc, &bias[..out_c], &rescales[..out_c], out);
        match compact_variant(&p) {
            (4, false) => run(depthwise_conv2d_s8_compact::<4, false>, &mut compact),
            (4, true) => run(depthwise_conv2d_s8_compact::<4, true>, &mut compact),
            _ => run(depthwise_conv2d_s8_compact::<1, false>, &mut compact),
        }
        assert_eq!(compact, expected, "compact depthwise {p:?} wide={wide}");
        // a variant that does not fit the layer writes nothing
        let other = if compact_variant(&p) == (1, false) { depthwise_conv2d_s8_compact::<4, true> } else {
            depthwise_conv2d_s8_compact::<1, false>
        };
        let mut untouched = vec![7i8; expected.len()];
        run(other, &mut untouched);
        assert!(untouched.iter().all(|&v| v == 7));
    }

    /// channels.py's `pack`, written out: fixed-width records, least significant bit first.
    fn pack_channels(bias: &[i32], rescales: &[Rescale]) -> (Vec<u32>, Vec<i32>, PackedChannels) {
        let width = |v: u64| 64 - v.leading_zeros();
        let bias_bits = bias.iter().map(|&b| width((if b < 0 { !b } else { b }) as u64) + 1).max().unwrap_or(0);
        let shift = rescales.iter().filter(|r| r.multiplier != 0).map(|r| r.multiplier.trailing_zeros()).min().unwrap_or(0);
        let mult_bits = rescales.iter().map(|r| width((r.multiplier >> shift) as u64)).max().unwrap_or(0);
        let mut adds: Vec<i32> = rescales.iter().map(|r| r.add).collect();
        adds.sort_unstable();
        adds.dedup();
        let add_bits = width(adds.len() as u64 - 1);
        let packed = PackedChannels { count: bias.len(), bias_bits, mult_bits, mult_shift: shift, add_bits };
        let mut words = vec![0u32; packed.words() + 1];
        let mut put = |at: usize, bits: u32, v: u64| {
            for i in 0..bits as usize {
                words[(at + i) / 32] |= (((v >> i) & 1) as u32) << ((at + i) % 32);
            }
        };
        for (o, (b, r)) in bias.iter().zip(rescales).enumerate() {
            let at = o * packed.record_bits();
            put(at, bias_bits, *b as u32 as u64);
            put(at + bias_bits as usize, mult_bits, (r.multiplier >> shift) as u64);
            let index = adds.iter().position(|a| *a == r.add).unwrap_or(0);
            put(at + (bias_bits + mult_bits) as usize, add_bits, index as u64);
        }
        words.truncate(packed.words());
        (words, adds, packed)
    }

    #[allow(clippy::too_many_arguments)] // one test case's shape, spelled out at the call
    fn depthwise(in_hw: (usize, usize), in_c: usize, dm: usize, k: usize, stride: usize, pad: usize,
                 zero_points: (i32, i32), act: (i32, i32)) -> DepthwiseConv2d {
        let out_h = (in_hw.0 + 2 * pad - k) / stride + 1;
        let out_w = (in_hw.1 + 2 * pad - k) / stride + 1;
        DepthwiseConv2d { batches: 1, in_h: in_hw.0, in_w: in_hw.1, in_c, out_h, out_w, depth_multiplier: dm,
                          k_h: k, k_w: k, stride_h: stride, stride_w: stride, dil_h: 1, dil_w: 1, pad_h: pad,
                          pad_w: pad, input_offset: -zero_points.0, output_offset: zero_points.1, act_min: act.0,
                          act_max: act.1 }
    }

    #[test]
    fn depthwise_matches_tflm_on_the_short_and_the_general_path() {
        for wide in [false, true] {
            // lanes are channels (a multiple of four), a partial block (6 channels), multiplier 2 and 4
            depthwise_case(depthwise((5, 6), 8, 1, 3, 1, 1, (-128, 127), (-128, 127)), wide, 5);
            depthwise_case(depthwise((5, 5), 6, 1, 3, 2, 1, (127, -128), (0, 127)), wide, 6);
            depthwise_case(depthwise((4, 5), 3, 2, 3, 1, 0, (5, 3), (-128, 127)), wide, 7);
            depthwise_case(depthwise((5, 4), 2, 4, 3, 1, 1, (-7, -2), (-128, 60)), wide, 8);
            // the compact kernel's blockings: four adjacent channels, stride 2 with padding on one side only
            depthwise_case(depthwise((7, 6), 12, 1, 3, 2, 1, (3, -1), (-128, 127)), wide, 9);
            depthwise_case(depthwise((3, 3), 1, 8, 3, 1, 1, (-128, -128), (-128, 127)), wide, 10);
        }
    }

    #[allow(clippy::too_many_arguments)] // one test case's shape, spelled out at the call
    /// `values` under a fixed complete canonical code (`entropy.py`'s format): byte `k` (the value as u8) has a
    /// 4-bit code below 8, 8 bits below 72, 9 below 144, else 10. (stream, table, symbols).
    fn canonical_code(values: impl Iterator<Item = i8>) -> (Vec<u8>, Vec<u32>, Vec<i8>) {
        let length = |k: usize| match k {
            0..8 => 4,
            8..72 => 8,
            72..144 => 9,
            _ => 10,
        };
        let mut count = [0u32; 17];
        for k in 0..256 {
            count[length(k)] += 1;
        }
        let (mut first, mut limits, mut bases, mut codes) = (0u32, vec![], vec![], [0u32; 256]);
        let mut offset = 0usize;
        for (len, &n) in count.iter().enumerate().take(17).skip(1) {
            limits.push((first + n) << (16 - len));
            bases.push((offset as u32).wrapping_sub(first));
            for (k, code) in codes.iter_mut().enumerate().skip(offset).take(n as usize) {
                *code = first + (k - offset) as u32;
            }
            offset += n as usize;
            first = (first + n) << 1;
        }
        let (mut stream, mut acc, mut held) = (vec![], 0u64, 0);
        for v in values {
            let k = v as u8 as usize;
            acc = acc << length(k) | codes[k] as u64;
            held += length(k);
            while held >= 8 {
                held -= 8;
                stream.push((acc >> held) as u8);
            }
        }
        if held > 0 {
            stream.push((acc << (8 - held)) as u8);
        }
        (stream, [limits, bases].concat(), (0..=255u8).map(|k| k as i8).collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn fc_case(batches: usize, depth: usize, out_depth: usize, per_tensor: bool, zero_points: (i32, i32),
               act: (i32, i32), wide: bool, seed: u64) {
        let mut rng = Rng(seed);
        let input = rng.int8s(batches * depth);
        let rows: Vec<Vec<i8>> = (0..out_depth).map(|_| rng.int8s(depth)).collect();
        let mut chs = channels(&mut rng, out_depth, wide);
        if per_tensor {
            let first = chs[if wide { 1 } else { 0 }];
            for ch in chs.iter_mut() {
                (ch.multiplier, ch.shift) = (first.multiplier, first.shift);
            }
        }
        let (input_offset, output_offset) = (-zero_points.0, zero_points.1);
        let mut expected = vec![0i8; batches * out_depth];
        for b in 0..batches {
            for (o, (row, ch)) in rows.iter().zip(&chs).enumerate() {
                let acc = row.iter().zip(&input[b * depth..]).fold(ch.bias, |a, (&w, &x)| {
                    a.wrapping_add(w as i32 * (x as i32 + input_offset))
                });
                expected[b * out_depth + o] = requantize(acc, *ch, output_offset, act);
            }
        }
        let (bias, mut rescales, factors) = fold(&chs, &rows, input_offset, output_offset, true);
        // fully connected sums are always plain: `fold`'s factors only say whether the layer is general
        let bias: Vec<i32> = bias.iter().zip(&factors).map(|(b, k)| b / k).collect();
        let general = factors[0] == 1;
        if rescales.iter().all(|r| *r == rescales[0]) {
            rescales.truncate(1);
        }
        // fc_weight_words: rows padded to words and to a multiple of four rows, blocks interleaved by word
        let row_words = depth.div_ceil(4);
        let mut padded: Vec<Vec<u32>> = rows.iter().map(|r| words(&padded_row(r, row_words))).collect();
        padded.resize(out_depth.div_ceil(4) * 4, vec![0; row_words]);
        let block_words =
            |block: &[Vec<u32>]| (0..row_words).flat_map(|g| block.iter().map(move |r| r[g])).collect::<Vec<_>>();
        let weights: Vec<u32> = padded.chunks(4).flat_map(block_words).collect();
        let p = FullyConnected { batches, accum_depth: depth, output_depth: out_depth, output_offset, act_min: act.0,
                                 act_max: act.1 };
        let mut output = vec![0i8; expected.len()];
        let full = act == (-128, 127);
        match (general, full) {
            (true, true) => fully_connected_s8::<true, true>(&p, &input, &weights, &bias, &rescales, &mut output),
            (true, false) => fully_connected_s8::<true, false>(&p, &input, &weights, &bias, &rescales, &mut output),
            (false, true) => fully_connected_s8::<false, true>(&p, &input, &weights, &bias, &rescales, &mut output),
            (false, false) => fully_connected_s8::<false, false>(&p, &input, &weights, &bias, &rescales, &mut output),
        }
        assert_eq!(output, expected, "fc {batches}x{depth} -> {out_depth} per_tensor={per_tensor} wide={wide}");
        // fc_weight_widened_words: each word as its two int16-pair words
        let widened_weights = widened(&weights);
        assert_eq!(widened_weights.len(), fc_weight_widened_words(&p));
        let mut output = vec![0i8; expected.len()];
        let mut scratch = vec![0u32; fc_scratch_words(&p)];
        match (general, full) {
            (true, _) => fully_connected_s8_widened::<true, false>(&p, &input, &widened_weights, &bias, &rescales, &mut output, &mut scratch),
            (false, true) => fully_connected_s8_widened::<false, true>(&p, &input, &widened_weights, &bias, &rescales, &mut output, &mut scratch),
            (false, false) => fully_connected_s8_widened::<false, false>(&p, &input, &widened_weights, &bias, &rescales, &mut output, &mut scratch),
        }
        assert_eq!(output, expected, "fc widened {batches}x{depth} -> {out_depth} per_tensor={per_tensor} wide={wide}");
        // fully_connected_s8_coded: the rows, each padded to words, under a canonical code of lengths 4, 8, 9 and
        // 10 (its lookup table's path and the longer codes' search)
        let (stream, table, symbols) = canonical_code(rows.iter().flat_map(|r| padded_row(r, row_words)));
        let mut output = vec![0i8; expected.len()];
        let mut scratch = vec![0u32; fc_coded_scratch_words(&p)];
        let (w, t, sy) = (&stream[..], &table[..], &symbols[..]);
        match (general, full) {
            (true, _) => fully_connected_s8_coded::<true, false>(&p, &input, w, t, sy, &bias, &rescales, &mut output, &mut scratch),
            (false, true) => fully_connected_s8_coded::<false, true>(&p, &input, w, t, sy, &bias, &rescales, &mut output, &mut scratch),
            (false, false) => fully_connected_s8_coded::<false, false>(&p, &input, w, t, sy, &bias, &rescales, &mut output, &mut scratch),
        }
        assert_eq!(output, expected, "fc coded {batches}x{depth} -> {out_depth} per_tensor={per_tensor} wide={wide}");
        // the variant must match the layer: a short-path-only variant refuses a general layer's table
        if general {
            let mut untouched = vec![7i8; expected.len()];
            fully_connected_s8::<false, false>(&p, &input, &weights, &bias, &rescales, &mut untouched);
            assert!(untouched.iter().all(|&v| v == 7));
        }
    }

    #[test]
    fn fully_connected_matches_tflm_on_the_short_and_the_general_path() {
        for wide in [false, true] {
            fc_case(2, 10, 6, false, (-128, 127), (-128, 127), wide, 9);
            fc_case(1, 16, 8, true, (127, -128), (-128, 127), wide, 10);
            fc_case(3, 7, 5, false, (4, -3), (-3, 90), wide, 11);
        }
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

#[test]
fn high_mul_rounded_matches_the_64_bit_product() {
    let reference = |a: i32, b: i32| ((a as i64 * b as i64 + (1 << 31)) >> 32) as i32;
    let edges = [i32::MIN, i32::MIN + 1, -65537, -65536, -65535, -32769, -32768, -1, 0, 1, 32767, 32768, 65535, 65536,
                 i32::MAX - 1, i32::MAX];
    for &a in &edges {
        for &b in &edges {
            assert_eq!(crate::quant::high_mul_rounded(a, b), reference(a, b), "{a} * {b}");
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let (a, b) = (state as i32, (state >> 32) as i32);
        assert_eq!(crate::quant::high_mul_rounded(a, b), reference(a, b), "{a} * {b}");
    }
}
