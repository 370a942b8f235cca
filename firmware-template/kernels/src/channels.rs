//! Per-channel biases and requantization, bit-packed (`optimize: size`).
//!
//! A conv or depthwise layer stores, per output channel, an `i32` bias and an eight-byte [`Rescale`]: twelve
//! bytes, of which trained models use about six (biases of 16 to 22 bits, multipliers whose low bits are
//! zero, a handful of distinct `add` words per layer). The code generator packs a layer's channels into one
//! bit stream instead, and `invoke` unpacks them into stack buffers just before the layer's kernel, which
//! then reads the same slices it would read from flash: the same bits, in about half the flash, for a few
//! instructions per channel.
//!
//! Format: the stream is `u32` words, least significant bit first; channel `o`'s record starts at bit
//! `o * (bias_bits + mult_bits + add_bits)` and holds the bias (two's complement in `bias_bits`), the
//! multiplier shifted right by `mult_shift` (unsigned, `mult_bits`), then the index of the channel's
//! `Rescale::add` in the layer's table of distinct values (`add_bits`). A field of width 0 reads 0.

use crate::quant::Rescale;

/// The shape of one layer's packed channels; the stream and the `add` table are passed beside it.
#[derive(Clone, Copy, Debug)]
pub struct PackedChannels {
    pub count: usize,
    pub bias_bits: u32,
    pub mult_bits: u32,
    pub mult_shift: u32,
    pub add_bits: u32,
}

impl PackedChannels {
    /// Bits of one channel's record.
    pub const fn record_bits(&self) -> usize {
        (self.bias_bits + self.mult_bits + self.add_bits) as usize
    }

    /// `u32` words of the stream.
    pub const fn words(&self) -> usize {
        (self.count * self.record_bits()).div_ceil(32)
    }
}

/// `bits` (at most 32) of the stream from bit `at`; past its end the stream reads zeros.
#[inline(always)]
fn field(words: &[u32], at: usize, bits: u32) -> u32 {
    if bits == 0 {
        return 0;
    }
    let (w, s) = (at / 32, (at % 32) as u32);
    let lo = words.get(w).copied().unwrap_or(0);
    let hi = words.get(w + 1).copied().unwrap_or(0);
    // the two words as one 64-bit window, without 64-bit shifts (a library call on ARMv6-M)
    let v = if s == 0 { lo } else { (lo >> s) | (hi << (32 - s)) };
    if bits == 32 {
        v
    } else {
        v & ((1u32 << bits) - 1)
    }
}

/// Unpack `p.count` channels into `bias` and `rescale` and return those prefixes. Buffers shorter than
/// `p.count` give shorter slices (which the layer's kernel then refuses: it writes nothing).
pub fn unpack_channels<'b, 'r>(
    p: &PackedChannels,
    words: &[u32],
    adds: &[i32],
    bias: &'b mut [i32],
    rescale: &'r mut [Rescale],
) -> (&'b [i32], &'r [Rescale]) {
    let n = p.count.min(bias.len()).min(rescale.len());
    let (bias, rescale) = (&mut bias[..n], &mut rescale[..n]);
    let record = p.record_bits();
    for (o, (b, r)) in bias.iter_mut().zip(rescale.iter_mut()).enumerate() {
        let at = o * record;
        let raw = field(words, at, p.bias_bits);
        *b = match p.bias_bits {
            0 => 0,
            32 => raw as i32,
            bits => ((raw << (32 - bits)) as i32) >> (32 - bits),
        };
        let multiplier = (field(words, at + p.bias_bits as usize, p.mult_bits) << p.mult_shift) as i32;
        let index = field(words, at + (p.bias_bits + p.mult_bits) as usize, p.add_bits) as usize;
        *r = Rescale { multiplier, add: adds.get(index).copied().unwrap_or(0) };
    }
    (bias, rescale)
}
