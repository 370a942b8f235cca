"""Per-channel biases and requantization packed bit by bit, for `optimize: size` (kernels' channels.rs).

A conv or depthwise layer's kernel reads, per output channel, an i32 bias and an eight-byte `Rescale`
(multiplier, add). Trained models carry far fewer bits than those twelve bytes: biases of 16 to 22 bits,
multipliers whose low bits are zero throughout a layer, a few distinct `add` words per layer (the shift and
output zero point). `pack` stores a layer's channels in one bit stream of fixed-width records, which `invoke`
unpacks into stack buffers just before the layer: the kernel reads the same values. The format (channels.rs
reads it, `unpack` here models it):

- the stream: u32 words, least significant bit first; channel `o`'s record starts at bit `o * record_bits`;
- a record: the bias in `bias_bits` (two's complement), the multiplier shifted right by `mult_shift` in
  `mult_bits` (unsigned), the index of the channel's `add` word in the layer's table in `add_bits`.
"""

from __future__ import annotations

from dataclasses import dataclass

# the parameter struct a packed layer adds to flash (`k::PackedChannels`: five words), and the `unpack_channels`
# call in `invoke` (about four words of Thumb-2): a layer is packed only when the stream and its table save more
PACK_OVERHEAD = 36


@dataclass(frozen=True)
class Packed:
    count: int
    bias_bits: int
    mult_bits: int
    mult_shift: int
    add_bits: int
    words: tuple[int, ...]
    adds: tuple[int, ...]

    @property
    def record_bits(self) -> int:
        return self.bias_bits + self.mult_bits + self.add_bits

    @property
    def nbytes(self) -> int:
        return 4 * len(self.words) + 4 * len(self.adds) + PACK_OVERHEAD

    def params(self) -> dict[str, int]:
        return {"count": self.count, "bias_bits": self.bias_bits, "mult_bits": self.mult_bits,
                "mult_shift": self.mult_shift, "add_bits": self.add_bits}


def signed_bits(values) -> int:
    """The fewest bits that hold every value in two's complement (0 when all are 0)."""
    width = max((v.bit_length() if v >= 0 else (~v).bit_length() for v in values), default=0)
    return width + 1 if any(values) else 0


def pack(bias: tuple[int, ...], multipliers: tuple[int, ...], adds: tuple[int, ...]) -> Packed | None:
    """One layer's channels: i32 `bias`, `Rescale` multipliers and `add` words as the kernel reads them; None
    when a multiplier is negative (never from TFLite's quantization)."""
    if not bias or len(bias) != len(multipliers) or len(bias) != len(adds) or min(multipliers) < 0:
        return None
    bias_bits = signed_bits(bias)
    nonzero = [m for m in multipliers if m]
    shift = min(((m & -m).bit_length() - 1 for m in nonzero), default=0)
    mult_bits = max(((m >> shift).bit_length() for m in multipliers), default=0)
    table = tuple(sorted(set(adds)))
    add_bits = (len(table) - 1).bit_length()
    index = {a: i for i, a in enumerate(table)}
    record = bias_bits + mult_bits + add_bits
    stream = 0
    for o, (b, m, a) in enumerate(zip(bias, multipliers, adds)):
        fields = (b & ((1 << bias_bits) - 1)) | (m >> shift) << bias_bits | index[a] << (bias_bits + mult_bits)
        stream |= fields << (o * record)
    n_words = -(-len(bias) * record // 32)
    words = tuple((stream >> (32 * i)) & 0xFFFFFFFF for i in range(n_words))
    return Packed(len(bias), bias_bits, mult_bits, shift, add_bits, words, table)


def unpack(p: Packed) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(bias, multipliers, adds) back from `p`, as channels.rs `unpack_channels` reads them."""
    stream = sum(w << (32 * i) for i, w in enumerate(p.words))
    bias, mults, adds = [], [], []
    for o in range(p.count):
        r = stream >> (o * p.record_bits)
        b = r & ((1 << p.bias_bits) - 1)
        bias.append(b - (1 << p.bias_bits) if p.bias_bits and b >> (p.bias_bits - 1) else b)
        mults.append(((r >> p.bias_bits) & ((1 << p.mult_bits) - 1)) << p.mult_shift)
        adds.append(p.adds[(r >> (p.bias_bits + p.mult_bits)) & ((1 << p.add_bits) - 1)])
    return tuple(bias), tuple(mults), tuple(adds)
