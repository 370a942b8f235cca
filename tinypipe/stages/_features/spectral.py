"""`features: {kind: spectral}` on the host: per axis, from raw int16 samples, in the device's fixed point
(`tinyml_kernels::features::spectral`, bit for bit):

1. the optional biquad (`fixed.biquad_q28`, from zero state), saturated to int16;
2. the window's mean removed (rounded half up: `floor((2 * sum + W) / (2 * W))`), saturated to int16;
3. the RMS: `isqrt(sum(x^2) / W)` (floor divisions), at most 32767;
4. per non-overlapping frame of `fft_length` samples from the window's start, `fft_q15` and each bin's power;
   the power of bins 1 .. fft_length/2 summed over the frames and divided (floor) by their number;
5. the features, in this order: RMS, `log2_q8` of each bin's power, then for the `peaks` strongest bins
   (the larger power first, the lower bin on a tie) their bin numbers, then their `log2_q8` powers.

Windows are [..., window, axes]; the result is int64 [..., 1 + fft_length / 2 + 2 * peaks, axes].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tinypipe.stages._features import fixed

if TYPE_CHECKING:
    import numpy as np


def features_per_axis(spec: dict) -> int:
    return 1 + spec["fft_length"] // 2 + 2 * spec["peaks"]


def names(spec: dict) -> list[str]:
    """One name per feature row, for logs and the data summary."""
    bins = [f"bin{k}" for k in range(1, spec["fft_length"] // 2 + 1)]
    peaks = range(1, spec["peaks"] + 1)
    return ["rms", *bins, *(f"peak{p}_bin" for p in peaks), *(f"peak{p}_log2" for p in peaks)]


def compute(raw: "np.ndarray", spec: dict) -> "np.ndarray":
    import numpy as np

    x = np.moveaxis(np.asarray(raw, np.int64), -1, -2)  # [..., axes, window]: one signal per axis
    window, n = x.shape[-1], spec["fft_length"]
    if spec.get("filter"):
        x = fixed.biquad_q28(x, spec["filter"]["coefficients"])
    mean = (2 * x.sum(axis=-1, keepdims=True) + window) // (2 * window)
    x = np.clip(x - mean, -32768, 32767)
    rms = np.minimum(fixed.isqrt((x * x).sum(axis=-1) // window), 32767)
    frames = window // n
    table = spec["twiddles"]
    total = 0
    for frame in range(frames):
        real, imag = fixed.fft_q15(x[..., frame * n:(frame + 1) * n], table)
        total = total + fixed.power(real, imag)[..., 1:n // 2 + 1]
    power = total // frames
    strongest = np.argsort(-power, axis=-1, kind="stable")[..., :spec["peaks"]]  # ties: the lower bin first
    heights = np.take_along_axis(power, strongest, axis=-1)
    out = np.concatenate([rms[..., None], fixed.log2_q8(power), strongest + 1, fixed.log2_q8(heights)], axis=-1)
    return np.moveaxis(out, -1, -2)  # [..., features, axes]
