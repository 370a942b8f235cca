"""Fixed-point DSP on the host: numpy integer emulation (int64) of the device's `tinyml_kernels::features`
routines, bit for bit. Every function works on the last axis and broadcasts over the leading ones (windows,
axes), so the training set's features cost one vectorised pass.

The rounding is the device's: `(v + 2^(k-1)) >> k` on int64, an arithmetic shift (halves round up). numpy is
imported inside functions (a no-op run must not import it through the config).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

Q15_ONE = 32767  # the twiddles' 1.0: cos and sin in Q15, never 32768 (an i16 cannot hold it)
BIQUAD_FRACTION_BITS = 28  # biquad coefficients in Q28: |a1| < 2 and |b| < 4 fit an i32 with room


def is_power_of_two(n: int) -> bool:
    return n >= 2 and n & (n - 1) == 0


def twiddles(length: int) -> list[int]:
    """The FFT's twiddle table for `length` points: cos then sin of 2*pi*k/length, k < length/2, in Q15,
    interleaved [cos0, sin0, cos1, sin1, ...]; rendered into the firmware so both sides use these integers."""
    table = []
    for k in range(length // 2):
        angle = 2 * math.pi * k / length
        table += [int(round(math.cos(angle) * Q15_ONE)), int(round(math.sin(angle) * Q15_ONE))]
    return table


def _bit_reversed(length: int) -> "np.ndarray":
    import numpy as np

    bits = length.bit_length() - 1
    return np.array([int(f"{i:0{bits}b}"[::-1], 2) for i in range(length)], np.int64)


def _round_shift(v: "np.ndarray", k: int) -> "np.ndarray":
    return (v + (1 << (k - 1))) >> k


def fft_q15(samples: "np.ndarray", table: list[int] | None = None) -> tuple["np.ndarray", "np.ndarray"]:
    """The complex FFT of real int16 samples [..., N] (N a power of two), scaled by 1/N: radix-2 decimation in
    time, every stage's butterfly halved with rounding, so no value ever exceeds |x| * sqrt(2) (the sum of two
    values at most |x| each, halved) and nothing can overflow. Returns (re, im) int64 [..., N]: X[k] / N."""
    import numpy as np

    x = np.asarray(samples, np.int64)
    n = x.shape[-1]
    if not is_power_of_two(n):
        raise ValueError(f"FFT length {n} is not a power of two")
    table = np.asarray(twiddles(n) if table is None else table, np.int64)
    cos, sin = table[0::2], table[1::2]
    re = x[..., _bit_reversed(n)]
    im = np.zeros_like(re)
    span = 2
    while span <= n:
        half = span // 2
        starts = np.arange(0, n, span)
        offsets = np.arange(half)
        top = (starts[:, None] + offsets[None, :]).ravel()
        bottom = top + half
        wr = np.tile(cos[offsets * (n // span)], len(starts))
        wi = np.tile(sin[offsets * (n // span)], len(starts))
        br, bi = re[..., bottom], im[..., bottom]
        # t = b * conj(w) with w = cos + i sin: the forward transform's e^(-2 pi i k / N)
        tr = _round_shift(br * wr + bi * wi, 15)
        ti = _round_shift(bi * wr - br * wi, 15)
        ar, ai = re[..., top], im[..., top]
        re[..., top], im[..., top] = _round_shift(ar + tr, 1), _round_shift(ai + ti, 1)
        re[..., bottom], im[..., bottom] = _round_shift(ar - tr, 1), _round_shift(ai - ti, 1)
        span *= 2
    return re, im


def power(re: "np.ndarray", im: "np.ndarray") -> "np.ndarray":
    """|X|^2 per bin, int64 (below 2^33 for the FFT's output)."""
    return re * re + im * im


def log2_q8(values: "np.ndarray") -> "np.ndarray":
    """log2(v + 1) in Q8 for non-negative int64 v < 2^62: the leading one's position, then the next 8 bits as
    the fraction (the piecewise-linear log2 of Mitchell's approximation; exact at powers of two)."""
    import numpy as np

    v = np.asarray(values, np.int64) + 1
    msb = np.zeros(v.shape, np.int64)
    for bit in (32, 16, 8, 4, 2, 1):  # binary search for the leading one, as the device's leading_zeros
        step = (v >> (msb + bit)) > 0
        msb = msb + np.where(step, bit, 0)
    # the 8 bits below the leading one: shift left when there are fewer than 8
    fraction = np.where(msb >= 8, v >> np.maximum(msb - 8, 0), v << np.maximum(8 - msb, 0)) & 0xFF
    return msb * 256 + fraction


def isqrt(values: "np.ndarray") -> "np.ndarray":
    """floor(sqrt(v)) of non-negative int64 v < 2^62, exactly (the device's bit-by-bit integer square root)."""
    import numpy as np

    v = np.asarray(values, np.int64)
    root = np.zeros(v.shape, np.int64)
    for bit in range(30, -1, -1):
        trial = root + (1 << bit)
        root = np.where(trial * trial <= v, trial, root)
    return root


def biquad_q28(samples: "np.ndarray", coefficients: list[int]) -> "np.ndarray":
    """A biquad (direct form I) over int16 samples [..., N] from zero state: y = (b0 x[n] + b1 x[n-1] + b2 x[n-2]
    - a1 y[n-1] - a2 y[n-2]) >> 28, rounded, saturated to int16. `coefficients` = [b0, b1, b2, a1, a2] in Q28."""
    import numpy as np

    b0, b1, b2, a1, a2 = (np.int64(c) for c in coefficients)
    x = np.asarray(samples, np.int64)
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = np.zeros(x.shape[:-1], np.int64)
    for n in range(x.shape[-1]):  # recursive: one step per sample, vectorised over windows and axes
        acc = b0 * x[..., n] + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        out = np.clip(_round_shift(acc, BIQUAD_FRACTION_BITS), -32768, 32767)
        y[..., n] = out
        x2, x1, y2, y1 = x1, x[..., n], y1, out
    return y


def biquad_coefficients(kind: str, cutoff_hz: float, sample_rate_hz: float) -> list[int]:
    """A second-order Butterworth low- or high-pass (Q = 1/sqrt 2; the audio EQ cookbook's formulas), in Q28."""
    w = 2 * math.pi * cutoff_hz / sample_rate_hz
    alpha = math.sin(w) / math.sqrt(2)
    cos_w = math.cos(w)
    a0 = 1 + alpha
    if kind == "lowpass":
        b = [(1 - cos_w) / 2, 1 - cos_w, (1 - cos_w) / 2]
    else:
        b = [(1 + cos_w) / 2, -(1 + cos_w), (1 + cos_w) / 2]
    a = [-2 * cos_w, 1 - alpha]
    return [int(round(c / a0 * (1 << BIQUAD_FRACTION_BITS))) for c in (*b, *a)]
