//! FULLY_CONNECTED, int8 in/out, int8 weights (per-tensor or per-channel), int32 bias.
//! TFLM: `reference_integer_ops::FullyConnected` / `FullyConnectedPerChannel`.
//!
//! Four output rows at a time, so every input word is loaded and widened once per four rows. The weights
//! come re-laid by the code generator ([`fc_weight_words`]): rows padded with zeros to whole words and to a
//! multiple of four rows, and the four rows of a block interleaved word by word, so one block's words for
//! one input word are adjacent (one LDM on the DSP path). [`fully_connected_s8_widened`] takes them
//! pre-widened: each word of four int8 as the two int16-pair words `(v0, v2)`, `(v1, v3)` (no SXTB16 of
//! weights in the DSP inner loop, twice the weights' flash); on the DSP path it also widens each input row
//! once into scratch, so the inner loop is loads and SMLADs only.

use crate::conv::{mac_pairs, widen_word};
use crate::quant::{clamp_s8, rescale_doubled, rescale_general, variant_fits, Rescale};

#[derive(Clone, Copy, Debug)]
pub struct FullyConnected {
    pub batches: usize,
    pub accum_depth: usize,
    pub output_depth: usize,
    pub output_offset: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// Number of `u32` weight words: `round_up(output_depth, 4) * ceil(accum_depth / 4)`.
pub const fn fc_weight_words(p: &FullyConnected) -> usize {
    p.output_depth.div_ceil(4) * 4 * p.accum_depth.div_ceil(4)
}

/// Number of `u32` weight words of [`fully_connected_s8_widened`]: twice [`fc_weight_words`].
pub const fn fc_weight_widened_words(p: &FullyConnected) -> usize {
    2 * fc_weight_words(p)
}

/// `output[b][o] = requant(bias[o] + sum_d weights[o][d] * input[b][d])`.
///
/// `bias` is folded: TFLM's `bias + input_offset * sum_d weights[o][d]`, computed at code-generation time,
/// which is exact because every input element takes part in every sum. `rescale` has one entry per output
/// channel, or a single one serving every channel (a per-tensor scale: one entry in flash instead of one
/// per row), applied to twice the sum, or with `GENERAL` to the plain sum (see [`Rescale`]). `GENERAL`, `FULL`:
/// the requantization variant (see [`variant_fits`]). `bias` wraps around like the int32 sum (its true value
/// may not fit: the sum's does).
pub fn fully_connected_s8<const GENERAL: bool, const FULL: bool>(
    p: &FullyConnected,
    input: &[i8],
    weights: &[u32],
    bias: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
) {
    fully_connected::<GENERAL, FULL, false>(p, input, weights, bias, rescale, output, &mut []);
}

/// [`fully_connected_s8`] with pre-widened weights (see the module doc). `scratch`: at least
/// [`fc_scratch_words`] words, where the DSP path widens each input row once for all its blocks (a shorter one
/// makes it widen the row again for every block, as [`fully_connected_s8`] does).
pub fn fully_connected_s8_widened<const GENERAL: bool, const FULL: bool>(
    p: &FullyConnected,
    input: &[i8],
    weights: &[u32],
    bias: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
) {
    fully_connected::<GENERAL, FULL, true>(p, input, weights, bias, rescale, output, scratch);
}

/// Words of scratch [`fully_connected_s8_widened`] widens an input row into: two per input word.
pub const fn fc_scratch_words(p: &FullyConnected) -> usize {
    2 * p.accum_depth.div_ceil(4)
}

/// Entries of a [`fully_connected_s8_coded`] code table: per code length 1..=16 its limit, then its base.
pub const CODE_TABLE_WORDS: usize = 32;

/// [`fully_connected_s8`] with its weights entropy-coded (the `size` mode, where that saves flash): the rows,
/// each zero-padded to whole words, one after the other as one canonical Huffman code (lengths up to 16 bits,
/// most significant bit first; the code generator's `entropy.py` writes it). Each row is decoded into
/// `scratch` (at least [`fc_coded_scratch_words`]) just before its dot products with every batch row, so the
/// int8 weights never take more RAM than one row: each is used once per input row. `table`:
/// [`CODE_TABLE_WORDS`] words, per length `l` the exclusive limit of its codes left-justified in 16 bits
/// (`limit[l - 1]`), then `base[l - 1]`: the index in `symbols` of its first code minus that code (wrapping);
/// `symbols`: the int8 values in code order. A stream that ends early reads as zeros (never out of bounds).
/// `bias`, `rescale`, `GENERAL` and `FULL` as for [`fully_connected_s8`].
#[allow(clippy::too_many_arguments)] // the arrays of one layer, as the generated call holds them
pub fn fully_connected_s8_coded<const GENERAL: bool, const FULL: bool>(
    p: &FullyConnected,
    input: &[i8],
    stream: &[u8],
    table: &[u32],
    symbols: &[i8],
    bias: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
) {
    let (depth, out_depth) = (p.accum_depth, p.output_depth);
    let (Some(limits), Some(bases)) = (table.get(..16), table.get(16..CODE_TABLE_WORDS)) else { return };
    if depth == 0
        || out_depth == 0
        || input.len() < p.batches * depth
        || output.len() < p.batches * out_depth
        || scratch.len() < fc_coded_scratch_words(p)
        || bias.len() < out_depth
        || rescale.is_empty()
        || (rescale.len() > 1 && rescale.len() < out_depth)
        || !variant_fits::<GENERAL, FULL>(rescale, p.act_min, p.act_max)
    {
        return;
    }
    let (row, lut) = scratch.split_at_mut(depth.div_ceil(4));
    let Some(lut) = lut.first_chunk_mut::<256>() else { return };
    let code = Code::new(limits, bases, symbols, lut);
    let mut bits = Bits { stream, next: 0, window: 0, held: 0 };
    for (o, (b, rs)) in bias.iter().zip(rescale.iter().cycle()).take(out_depth).enumerate() {
        bits.words(&code, row);
        // per tensor, `rescale` holds one entry: `cycle` repeats it for every row
        for (x, out_row) in input.chunks_exact(depth).zip(output.chunks_exact_mut(out_depth)).take(p.batches) {
            let acc = dot_row(x, row, *b);
            // the plain sum, which the short path takes doubled
            let v = if GENERAL && rs.is_general() {
                rescale_general(acc, *rs, p.output_offset)
            } else {
                rescale_doubled(acc.wrapping_shl(1), *rs)
            };
            if let Some(out) = out_row.get_mut(o) {
                *out = clamp_s8::<FULL>(v, p.act_min, p.act_max);
            }
        }
    }
}

/// Words of scratch [`fully_connected_s8_coded`] needs: one row, then its 256-entry lookup table.
pub const fn fc_coded_scratch_words(p: &FullyConnected) -> usize {
    p.accum_depth.div_ceil(4) + 256
}

/// `acc + row . x`: `x` int8 (any length), `row` its weights as words, zero-padded.
#[inline(always)]
fn dot_row(x: &[i8], row: &[u32], mut acc: i32) -> i32 {
    let whole = x.chunks_exact(4);
    let mut tail = [0u8; 4];
    for (t, v) in tail.iter_mut().zip(whole.remainder()) {
        *t = *v as u8;
    }
    let tail = u32::from_le_bytes(tail);
    let mut words = row.iter();
    for (xs, w) in whole.zip(&mut words) {
        acc = mac_word(u32::from_le_bytes([xs[0] as u8, xs[1] as u8, xs[2] as u8, xs[3] as u8]), *w, acc);
    }
    if let Some(w) = words.next() {
        acc = mac_word(tail, *w, acc); // the padding: zero weights, zero inputs
    }
    acc
}

/// `acc` plus the dot product of the four int8 of `x` and of `w`.
#[inline(always)]
fn mac_word(x: u32, w: u32, acc: i32) -> i32 {
    #[cfg(tinyml_dsp)]
    {
        use crate::dsp::{smlad, sxtb16, sxtb16_ror8};
        let (x_even, x_odd) = widen_word(x);
        smlad(sxtb16_ror8(w), x_odd, smlad(sxtb16(w), x_even, acc))
    }
    #[cfg(not(tinyml_dsp))]
    {
        let (xs, v) = (bytes(x), bytes(w));
        acc.wrapping_add(v[0] * xs[0] + v[1] * xs[1] + v[2] * xs[2] + v[3] * xs[3])
    }
}

/// A layer's code: its table, and a lookup table built from it in scratch that decodes a code of up to 8 bits
/// from the stream's next 8 bits in one step (`(value as u8) << 24 | length`: the value already in the byte
/// that [`Bits::words`] shifts down into its word; 0: a longer code, searched for). Building it costs about as
/// much as decoding 256 values, and saves most of the length search for each one.
struct Code<'a> {
    limits: &'a [u32],
    bases: &'a [u32],
    symbols: &'a [i8],
    lut: &'a [u32; 256],
}

impl<'a> Code<'a> {
    fn new(limits: &'a [u32], bases: &'a [u32], symbols: &'a [i8], lut: &'a mut [u32; 256]) -> Self {
        for (prefix, entry) in lut.iter_mut().enumerate() {
            let v = (prefix as u32) << 8;
            let len = Self::length(limits, v, 0);
            *entry = if len < 8 { Self::entry(bases, symbols, v, len) } else { 0 };
        }
        Code { limits, bases, symbols, lut }
    }

    /// The length minus one of the code at the top of the 16 bits `v`, searched from `from` (a length minus one).
    #[inline(always)]
    fn length(limits: &[u32], v: u32, from: usize) -> usize {
        let mut len = from;
        while len < 15 && limits.get(len).is_some_and(|limit| v >= *limit) {
            len += 1;
        }
        len
    }

    /// A code longer than 8 bits at the top of the 16 bits `v`, as a lookup table entry. Not inlined: rare.
    #[inline(never)]
    fn long(&self, v: u32) -> u32 {
        Self::entry(self.bases, self.symbols, v, Self::length(self.limits, v, 8))
    }

    /// The lookup table entry of the code of length `len + 1` at the top of the 16 bits `v`.
    #[inline(always)]
    fn entry(bases: &[u32], symbols: &[i8], v: u32, len: usize) -> u32 {
        let index = bases.get(len).copied().unwrap_or(0).wrapping_add(v >> (15 - len)) as usize;
        (symbols.get(index).copied().unwrap_or(0) as u8 as u32) << 24 | (len as u32 + 1)
    }
}

/// The code's bit reader: `window` holds the next `held` bits of the stream from its most significant bit,
/// `next` indexes the stream's next byte.
struct Bits<'a> {
    stream: &'a [u8],
    next: usize,
    window: u32,
    held: u32,
}

impl Bits<'_> {
    /// Stream bytes `i` and `i + 1`, big-endian, zeros past the end. Not inlined: only at the stream's end.
    #[inline(never)]
    fn two_bytes(&self, i: usize) -> u32 {
        let byte = |i: usize| self.stream.get(i).copied().unwrap_or(0) as u32;
        byte(i) << 8 | byte(i + 1)
    }

    /// The next `4 * words.len()` values into `words`, four to a word (the first in the low byte). Not inlined:
    /// the loop gets the registers to itself. Per value: at least 16 bits in the window (two more bytes when it
    /// holds fewer; a code has 16 at most), its top 8 bits looked up, the rare longer code searched for.
    #[inline(never)]
    fn words(&mut self, code: &Code, words: &mut [u32]) {
        let (mut window, mut held, mut next) = (self.window, self.held, self.next);
        let stream = self.stream;
        // one value into the top byte of `$w` (four make a word, the first in the low byte); written out four
        // times rather than looped (a macro: opt-level z would not inline a closure called four times)
        macro_rules! one {
            ($w:expr) => {{
                if held < 16 {
                    window |= match stream.get(next..next + 2) {
                        Some(&[a, b]) => (a as u32) << 8 | b as u32,
                        _ => self.two_bytes(next), // the stream's end
                    } << (16 - held);
                    next += 2;
                    held += 16;
                }
                let mut entry = code.lut[(window >> 24) as usize];
                if entry == 0 {
                    entry = code.long(window >> 16);
                }
                let len = entry & 0x1f;
                window <<= len;
                held -= len;
                $w >> 8 | (entry & 0xff00_0000)
            }};
        }
        for word in words.iter_mut() {
            let w = one!(0u32);
            let w = one!(w);
            let w = one!(w);
            *word = one!(w);
        }
        (self.window, self.held, self.next) = (window, held, next);
    }
}

#[inline(always)]
fn fully_connected<const GENERAL: bool, const FULL: bool, const WIDENED: bool>(
    p: &FullyConnected,
    input: &[i8],
    weights: &[u32],
    bias: &[i32],
    rescale: &[Rescale],
    output: &mut [i8],
    scratch: &mut [u32],
) {
    let weight_words = if WIDENED { fc_weight_widened_words(p) } else { fc_weight_words(p) };
    let (depth, out_depth) = (p.accum_depth, p.output_depth);
    if depth == 0
        || out_depth == 0
        || input.len() < p.batches * depth
        || output.len() < p.batches * out_depth
        || weights.len() < weight_words
        || bias.len() < out_depth
        || rescale.is_empty()
        || (rescale.len() > 1 && rescale.len() < out_depth)
    {
        return;
    }
    let weights = &weights[..weight_words];
    let per_tensor = rescale.len() < out_depth;
    let rescale = &rescale[..rescale.len().min(out_depth)];
    if !variant_fits::<GENERAL, FULL>(rescale, p.act_min, p.act_max) {
        return;
    }
    let (general, full) = (GENERAL, FULL);
    #[cfg(not(all(tinyml_dsp, not(tinyml_mve))))]
    let _ = scratch; // only the DSP path widens the input ahead
    for (x, out_row) in input.chunks_exact(depth).zip(output.chunks_exact_mut(out_depth)).take(p.batches) {
        #[cfg(tinyml_mve)]
        let first_block = if !WIDENED && !general && depth % 16 == 0 {
            let act = (p.act_min, p.act_max);
            if per_tensor {
                crate::mve::fc_blocks::<true>(x, weights, depth / 16, out_depth / 4, bias, rescale, act, out_row);
            } else {
                crate::mve::fc_blocks::<false>(x, weights, depth / 16, out_depth / 4, bias, rescale, act, out_row);
            }
            out_depth / 4
        } else {
            0
        };
        #[cfg(all(tinyml_dsp, not(tinyml_mve)))]
        let first_block = if WIDENED && full && !general && depth % 4 == 0 && scratch.len() >= 2 * (depth / 4) {
            // the row widened once into scratch, then no input load or SXTB16 in the inner loop
            let xw = &mut scratch[..2 * (depth / 4)];
            for (pair, xs) in xw.chunks_exact_mut(2).zip(x.chunks_exact(4)) {
                let (even, odd) = widen_word(u32::from_le_bytes([xs[0] as u8, xs[1] as u8, xs[2] as u8, xs[3] as u8]));
                pair[0] = even;
                pair[1] = odd;
            }
            if per_tensor {
                crate::dsp::fc_blocks_wide_x::<true>(xw, weights, depth / 4, out_depth / 4, bias, rescale, out_row);
            } else {
                crate::dsp::fc_blocks_wide_x::<false>(xw, weights, depth / 4, out_depth / 4, bias, rescale, out_row);
            }
            out_depth / 4
        } else if full && !general && depth % 4 == 0 {
            if per_tensor {
                crate::dsp::fc_blocks::<true, WIDENED>(x, weights, depth / 4, out_depth / 4, bias, rescale, out_row);
            } else {
                crate::dsp::fc_blocks::<false, WIDENED>(x, weights, depth / 4, out_depth / 4, bias, rescale, out_row);
            }
            out_depth / 4
        } else {
            0
        };
        // the Armv7-M twin of the DSP block loop: int8 weights only (the code generator widens only for DSP cores)
        #[cfg(all(tinyml_armv7m, not(tinyml_dsp)))]
        let first_block = if !WIDENED && full && !general && depth % 4 == 0 {
            if per_tensor {
                crate::armv7m::fc_blocks::<true>(x, weights, depth / 4, out_depth / 4, bias, rescale, out_row);
            } else {
                crate::armv7m::fc_blocks::<false>(x, weights, depth / 4, out_depth / 4, bias, rescale, out_row);
            }
            out_depth / 4
        } else {
            0
        };
        #[cfg(not(any(tinyml_dsp, tinyml_armv7m)))]
        let first_block = 0;
        match (general, full) {
            (true, _) => blocks::<true, false, WIDENED>(p, x, weights, bias, rescale, per_tensor, out_row, first_block),
            (false, true) => blocks::<false, true, WIDENED>(p, x, weights, bias, rescale, per_tensor, out_row, first_block),
            (false, false) => blocks::<false, false, WIDENED>(p, x, weights, bias, rescale, per_tensor, out_row, first_block),
        }
    }
}

/// Blocks of four output rows from `first_block` on, for one input row `x`; `per_tensor`: `rescale[0]` serves
/// every row.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the slices of one layer, as its caller holds them: inlined anyway
fn blocks<const GENERAL: bool, const FULL: bool, const WIDENED: bool>(
    p: &FullyConnected,
    x: &[i8],
    weights: &[u32],
    bias: &[i32],
    rescale: &[Rescale],
    per_tensor: bool,
    out_row: &mut [i8],
    first_block: usize,
) {
    let broadcast = [rescale.first().copied().unwrap_or(Rescale { multiplier: 0, add: 1 }); 4];
    let depth = p.accum_depth;
    let words = depth.div_ceil(4);
    let whole = x.chunks_exact(4);
    let mut tail = [0u8; 4];
    for (t, v) in tail.iter_mut().zip(whole.remainder()) {
        *t = *v as u8;
    }
    let tail = if whole.remainder().is_empty() { None } else { Some(u32::from_le_bytes(tail)) };
    let per_word = if WIDENED { 8 } else { 4 };
    for (block, w) in weights.chunks_exact(per_word * words).enumerate().skip(first_block) {
        let o = 4 * block;
        let mut acc = [0i32; 4];
        for (a, b) in acc.iter_mut().zip(bias.iter().skip(o)) {
            *a = *b;
        }
        let (w_whole, w_tail) = w.split_at(per_word * (depth / 4));
        if WIDENED {
            for (xs, ws) in x.chunks_exact(4).zip(w_whole.chunks_exact(8)) {
                acc = mac_4rows_widened(u32::from_le_bytes([xs[0] as u8, xs[1] as u8, xs[2] as u8, xs[3] as u8]), ws, acc);
            }
            if let (Some(t), Some(ws)) = (tail, w_tail.get(..8)) {
                acc = mac_4rows_widened(t, ws, acc);
            }
        } else {
            acc = dot_4rows(x, w_whole, acc);
            if let (Some(t), Some(ws)) = (tail, w_tail.get(..4)) {
                acc = mac_4rows(t, ws, acc);
            }
        }
        let rs_block = if per_tensor { &broadcast[..] } else { rescale.get(o..).unwrap_or(&[]) };
        for ((out, a), rs) in out_row.iter_mut().skip(o).zip(acc).zip(rs_block) {
            // the accumulators hold the plain sum, which the short path takes doubled
            let v = if GENERAL && rs.is_general() {
                rescale_general(a, *rs, p.output_offset)
            } else {
                rescale_doubled(a.wrapping_shl(1), *rs)
            };
            *out = clamp_s8::<FULL>(v, p.act_min, p.act_max);
        }
    }
}

/// The whole words of `x` against a block of four interleaved rows. Not inlined: the loop gets the
/// registers to itself.
#[inline(never)]
fn dot_4rows(x: &[i8], w: &[u32], acc: [i32; 4]) -> [i32; 4] {
    #[cfg(tinyml_mve)]
    {
        // whole vectors of 16 inputs on MVE, the words after them on the DSP path
        let (x_head, x_rest) = x.split_at(x.len() / 16 * 16);
        let acc = crate::mve::dot_4rows(x_head, w, acc);
        crate::dsp::dot_4rows(x_rest, w.get(x_head.len()..).unwrap_or(&[]), acc)
    }
    #[cfg(all(tinyml_dsp, not(tinyml_mve)))]
    {
        crate::dsp::dot_4rows(x, w, acc)
    }
    #[cfg(tinyml_armv6m)]
    {
        crate::armv6m::dot_4rows(x, w, acc)
    }
    #[cfg(not(any(tinyml_dsp, tinyml_armv6m)))]
    {
        let mut acc = acc;
        for (xs, ws) in x.chunks_exact(4).zip(w.chunks_exact(4)) {
            let xs = bytes(u32::from_le_bytes([xs[0] as u8, xs[1] as u8, xs[2] as u8, xs[3] as u8]));
            for (a, w) in acc.iter_mut().zip(ws) {
                let v = bytes(*w);
                *a = a.wrapping_add(v[0] * xs[0] + v[1] * xs[1] + v[2] * xs[2] + v[3] * xs[3]);
            }
        }
        acc
    }
}

/// One input word (four int8) against the same word of four rows (the tail of a row).
#[inline(always)]
fn mac_4rows(x: u32, ws: &[u32], mut acc: [i32; 4]) -> [i32; 4] {
    #[cfg(tinyml_dsp)]
    {
        use crate::dsp::{smlad, sxtb16, sxtb16_ror8};
        let (x_even, x_odd) = widen_word(x);
        for (a, w) in acc.iter_mut().zip(ws) {
            *a = smlad(sxtb16_ror8(*w), x_odd, smlad(sxtb16(*w), x_even, *a));
        }
    }
    #[cfg(not(tinyml_dsp))]
    {
        let xs = bytes(x);
        for (a, w) in acc.iter_mut().zip(ws) {
            let v = bytes(*w);
            *a = a.wrapping_add(v[0] * xs[0] + v[1] * xs[1] + v[2] * xs[2] + v[3] * xs[3]);
        }
    }
    acc
}

/// One input word (four int8) against four pre-widened rows' words (per row: `(v0, v2)`, `(v1, v3)`).
#[inline(always)]
fn mac_4rows_widened(x: u32, ws: &[u32], mut acc: [i32; 4]) -> [i32; 4] {
    let (x_even, x_odd) = widen_word(x);
    for (a, w) in acc.iter_mut().zip(ws.chunks_exact(2)) {
        *a = mac_pairs(w[1], x_odd, mac_pairs(w[0], x_even, *a));
    }
    acc
}

/// The four int8 of a word, sign-extended.
#[cfg(not(tinyml_dsp))]
#[inline(always)]
fn bytes(w: u32) -> [i32; 4] {
    [(w << 24) as i32 >> 24, (w << 16) as i32 >> 24, (w << 8) as i32 >> 24, w as i32 >> 24]
}
