"""Entropy-coded weights for the `size` mode: one canonical Huffman code per tensor over its int8 values.

Trained weights are far from uniform (ad01_int8's carry 5.2 bits of information per byte), so a code over a
fully connected layer's weights (its rows one after the other, each zero-padded to whole words) stores them in
about two thirds of their flash; the kernel (`fully_connected_s8_coded` in fully_connected.rs) decodes one row
at a time into scratch, just before its dot products. The format, which `decode` models step for step:

- the stream: the values' codes back to back, most significant bit first, in bytes (a stream read past its
  end reads zeros);
- the table, `CODE_TABLE_WORDS` u32: for each code length `l` in 1..16 the exclusive limit of its codes
  left-justified in 16 bits, `(first[l] + count[l]) << (16 - l)`, then for each `l` the base
  `offset[l] - first[l]` (wrapping u32), where `first[l]` is the length's first code and `offset[l]` the
  number of symbols with shorter codes;
- the symbols: the int8 values in code order (by length, then value).

Code lengths are capped at 16 bits (the decoder peeks 16): a tensor whose optimal code would go deeper gets its
rare counts flattened until it fits, which costs a few bytes at most.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

MAX_LEN = 16
CODE_TABLE_WORDS = 2 * MAX_LEN  # fully_connected.rs `CODE_TABLE_WORDS`


@dataclass(frozen=True)
class Coded:
    stream: bytes
    table: tuple[int, ...]  # CODE_TABLE_WORDS u32
    symbols: tuple[int, ...]  # int8, in code order
    count: int  # values coded

    @property
    def nbytes(self) -> int:
        """Flash the coded form takes: the stream, the table and the symbols."""
        return len(self.stream) + 4 * len(self.table) + len(self.symbols)


def code_lengths(counts: dict[int, int], max_len: int = MAX_LEN) -> dict[int, int]:
    """Huffman code lengths of the symbols with a nonzero count, none above `max_len` (a single symbol: 1)."""
    live = {s: c for s, c in counts.items() if c}
    if len(live) == 1:
        return {next(iter(live)): 1}
    while True:
        heap = [(c, n, (s,)) for n, (s, c) in enumerate(sorted(live.items()))]
        heapq.heapify(heap)
        depth = dict.fromkeys(live, 0)
        tie = len(heap)
        while len(heap) > 1:
            c1, _, a = heapq.heappop(heap)
            c2, _, b = heapq.heappop(heap)
            for s in a + b:
                depth[s] += 1
            heapq.heappush(heap, (c1 + c2, tie, a + b))
            tie += 1
        if max(depth.values()) <= max_len:
            return depth
        live = {s: (c + 1) // 2 for s, c in live.items()}  # flatten the rare counts, and try again


def canonical(lengths: dict[int, int]) -> tuple[list[int], dict[int, tuple[int, int]], tuple[int, ...]]:
    """(symbols in code order, symbol -> (code, length), the decoder's table)."""
    order = sorted(lengths, key=lambda s: (lengths[s], s))
    count = [0] * (MAX_LEN + 1)
    for s in order:
        count[lengths[s]] += 1
    codes: dict[int, tuple[int, int]] = {}
    limits, bases = [], []
    code = offset = 0
    for length in range(1, MAX_LEN + 1):
        first = code
        limits.append((first + count[length]) << (MAX_LEN - length))
        bases.append((offset - first) & 0xFFFFFFFF)
        for s in order[offset:offset + count[length]]:
            codes[s] = (code, length)
            code += 1
        offset += count[length]
        code <<= 1
    return order, codes, tuple(limits + bases)


def encode(values) -> Coded:
    """int8 values -> their code (see the module doc)."""
    values = [int(v) for v in values]
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    if not values:
        counts = {0: 1}
    order, codes, table = canonical(code_lengths(counts))
    acc = n = 0
    out = bytearray()
    for v in values:
        code, length = codes[v]
        acc = acc << length | code
        n += length
        while n >= 8:
            n -= 8
            out.append(acc >> n & 0xFF)
        acc &= (1 << n) - 1
    if n:
        out.append(acc << (8 - n) & 0xFF)
    return Coded(bytes(out), table, tuple(order), len(values))


def _length(limits, v: int, start: int) -> int:
    """The code's length minus one at the top of the 16 bits `v`, searched from `start` (`Code::length`)."""
    length = start
    while length < 15 and v >= limits[length]:
        length += 1
    return length


def _value(coded: Coded, v: int, length: int) -> int:
    index = (coded.table[MAX_LEN + length] + (v >> (15 - length))) & 0xFFFFFFFF
    return coded.symbols[index] if index < len(coded.symbols) else 0


def lookup_table(coded: Coded) -> list[int]:
    """The kernel's 256-entry table (`Code::new`): per top 8 bits, `(value as u8) << 24 | length` of a code of up
    to 8 bits, else 0."""
    limits = coded.table[:MAX_LEN]
    out = []
    for prefix in range(256):
        v = prefix << 8
        length = _length(limits, v, 0)
        out.append((_value(coded, v, length) & 0xFF) << 24 | (length + 1) if length < 8 else 0)
    return out


def decode(coded: Coded, count: int | None = None) -> list[int]:
    """The kernel's decoder in Python, step for step (`Bits::words` in fully_connected.rs): `count` values."""
    limits = coded.table[:MAX_LEN]
    lut = lookup_table(coded)
    window = held = nxt = 0
    out = []

    def byte(i: int) -> int:
        return coded.stream[i] if i < len(coded.stream) else 0

    for _ in range(coded.count if count is None else count):
        if held < 16:
            window |= (byte(nxt) << 8 | byte(nxt + 1)) << (16 - held)
            nxt += 2
            held += 16
        entry = lut[window >> 24]
        if not entry:  # `Code::long`
            v = window >> 16
            length = _length(limits, v, 8)
            entry = (_value(coded, v, length) & 0xFF) << 24 | (length + 1)
        length = entry & 0x1F
        out.append((entry >> 24) - ((entry >> 23) & 0x100))
        window = (window << length) & 0xFFFFFFFF
        held -= length
    return out
