"""The size mode's entropy-coded weights (tinypipe/engines/native/entropy.py): whatever the int8 values, the
kernel's decoder (modelled step for step by `entropy.decode`) reads back exactly what the encoder wrote, codes
stay within the decoder's 16-bit peek, and skewed values take fewer bytes than plain ones. The Rust decoder
itself is checked against TFLM on ad01_int8 (test_native.py, host and QEMU)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tinypipe.engines.native import entropy

INT8 = st.integers(-128, 127)


@st.composite
def skewed(draw) -> list[int]:
    """int8 values drawn from a few to all 256 symbols with very unequal frequencies (a geometric-like spread
    reaches codes longer than the lookup table's 8 bits and, with enough symbols, the 16-bit cap)."""
    alphabet = draw(st.lists(INT8, min_size=1, max_size=256, unique=True))
    ratio = draw(st.floats(1.0, 2.5))
    top = draw(st.integers(1, 4000))
    values = [v for k, v in enumerate(alphabet) for _ in range(max(1, int(top / ratio ** k)))]
    draw(st.randoms(use_true_random=False)).shuffle(values)
    return values


def kraft(lengths: dict[int, int]) -> float:
    return sum(2.0 ** -n for n in lengths.values())


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.lists(INT8, max_size=400), skewed()))
def test_decoding_reads_back_every_value(values):
    coded = entropy.encode(values)
    assert entropy.decode(coded) == values
    assert len(coded.table) == entropy.CODE_TABLE_WORDS and all(0 <= w < 2 ** 32 for w in coded.table)
    assert sorted(coded.symbols) == sorted(set(values) or {0})


@settings(max_examples=40, deadline=None)
@given(skewed())
def test_codes_are_capped_complete_and_near_the_entropy(values):
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    lengths = entropy.code_lengths(counts)
    assert max(lengths.values()) <= entropy.MAX_LEN
    assert kraft(lengths) <= 1.0 and (len(lengths) == 1 or math.isclose(kraft(lengths), 1.0))
    coded = entropy.encode(values)
    bits = sum(counts[v] * lengths[v] for v in counts)
    assert len(coded.stream) == -(-bits // 8)
    n = len(values)
    entropy_bits = -sum(c * math.log2(c / n) for c in counts.values())
    if max(lengths.values()) < entropy.MAX_LEN:  # not flattened: Huffman is within one bit a value
        assert bits <= entropy_bits + n


def test_the_16_bit_cap_flattens_a_deep_code():
    """Counts doubling over 20 symbols would give an optimal code 19 bits deep: capped at 16, still decodable."""
    values = [v for k, v in enumerate(range(-10, 10)) for _ in range(2 ** k)]
    counts = {v: 2 ** k for k, v in enumerate(range(-10, 10))}
    assert max(entropy.code_lengths(counts, max_len=64).values()) == 19
    assert max(entropy.code_lengths(counts).values()) == entropy.MAX_LEN
    assert entropy.decode(entropy.encode(values)) == values


def test_a_single_value_codes_in_one_bit_each():
    coded = entropy.encode([-7] * 100)
    assert coded.symbols == (-7,) and len(coded.stream) == 13 and entropy.decode(coded) == [-7] * 100
