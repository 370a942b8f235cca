"""Model input/output as both engines and the host oracle see it: element types, float32 bit patterns, and
TFLite's QUANTIZE of a float input (what the device must reproduce before int8 inference).

Engine-neutral: the native engine, the TFLM engine and the reference stage use these; none owns them.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

IO_DTYPES = {"int8": "i8", "float32": "f32"}  # model input/output dtype -> Rust element type


def f32_bits(x: float) -> int:
    """The IEEE-754 bit pattern of `x` rounded to float32 (how generated code spells a scale exactly)."""
    return struct.unpack("<I", struct.pack("<f", x))[0]


def quantize_input(x: "np.ndarray", scale: float, zero_point: int, dtype: Any) -> "np.ndarray":
    """float -> int8/int16 exactly as TFLite's QUANTIZE kernel does it (reference AffineQuantize):

    `clamp(round_half_away_from_zero(float32(x) / float32(scale)) + zero_point)`. TfLiteRound is std::round,
    so ties go away from zero; numpy's `np.round` would round ties to even and differ by one on exact halves,
    and `floor(|q| + 0.5)` would round 0.49999997 up (the sum rounds to 1.0 in float32). The fraction left by
    truncation is exact, as in the kernels crate's `quantize_f32`.
    """
    import numpy as np

    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.asarray(x, dtype=np.float32) / np.float32(scale)
        whole = np.trunc(scaled)
        frac = scaled - whole
        rounded = whole + (frac >= np.float32(0.5)) - (frac <= np.float32(-0.5))
        rounded = np.nan_to_num(rounded, nan=0.0)
    return np.clip(np.clip(rounded, -2.0 ** 40, 2.0 ** 40).astype(np.int64) + int(zero_point), info.min,
                   info.max).astype(dtype)
