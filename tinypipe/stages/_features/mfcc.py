"""The audio front end (`features: {kind: mfcc | log_mel}`) in fixed point: the numpy twin of the kernels crate's
`features::mfcc::audio_features`, integer step for integer step, so the host's features (training, the oracle's
inputs) and the device's are the same numbers.

Per frame of `frame_length` raw int16 samples, `frame_stride` apart within the window:

1. window: `x * hann_q15 + 2^14 >> 15` (a Hann window in q15), zero-padded to `fft_length`;
2. spectrum: the fixed-point FFT (`fixed.fft_q15`, scaled by 1/N), power `re^2 + im^2` per bin for the
   `fft_length / 2 + 1` bins up to half the sample rate;
3. mel: each of `mel_bins` triangular filters (HTK mel scale, from `low_hz` to `high_hz`, weights in q15, the
   filter bank of CMSIS-DSP's MFCC) sums `weight * power` in 64 bits;
4. log: `log2(energy)` in Q16: the exponent from the leading zeros, the mantissa's log from a 33-entry table with
   linear interpolation (`LOG2_TABLE`, the same literal in Rust); an energy of 0 counts as 1. `log_mel` stops
   here, rounded to Q8: `(log + 2^7) >> 8`, below 2^14 as every energy is below 2^63;
5. `mfcc` only: a DCT-II (CMSIS-DSP's matrix, in q15) of the Q16 logs, `(sum(dct * log) + 2^(k-1)) >> k` with
   `k = 15 + dct_shift`, the smallest shift that keeps every coefficient an int16 whatever the logs
   (`dct_shift`: 10 for 20 mel bins, so the coefficients are in Q6).

Every feature is an int16 (what the features framework carries), `[frames, mel_bins]` (log_mel) or
`[frames, coefficients]` (mfcc) per window: time along the rows, the mel bins or coefficients as the channels a
`conv1d` mixes. The tables (window, filters, DCT) are computed once, here, and rendered into the firmware as
constants, so the device never evaluates a float.

Not a stage (no STAGE). numpy is imported inside functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tinypipe.stages._features import fixed

if TYPE_CHECKING:
    import numpy as np

Q15 = 1 << 15
LOG2_FRACTION_BITS = 16  # the log's Q format
LOG2_TABLE_BITS = 5  # 32 segments: max error of the interpolated log2(1 + f) about 2e-4
LOG_MEL_SHIFT = 8  # log_mel features in Q8
LOG2_BOUND = 64 << LOG2_FRACTION_BITS  # every Q16 log of an energy below 2^63 is smaller


def log2_table() -> list[int]:
    """round(log2(1 + i / 32) * 2^16) for i = 0..32: the mantissa's log at the segment ends."""
    segments = 1 << LOG2_TABLE_BITS
    return [round(math.log2(1 + i / segments) * (1 << LOG2_FRACTION_BITS)) for i in range(segments + 1)]


LOG2_TABLE = log2_table()


def hz_to_mel(hz: float) -> float:
    """The HTK mel scale (CMSIS-DSP's `frequencyToMelSpace`: 1127 ln(1 + f / 700))."""
    return 1127.0 * math.log(1.0 + hz / 700.0)


@dataclass(frozen=True)
class MelFilter:
    """One triangular filter: q15 weights of FFT bins `first`, `first + 1`, ..."""
    first: int
    weights: tuple[int, ...]


@dataclass(frozen=True)
class AudioFrontEnd:
    """The resolved parameters of `features: {kind: mfcc | log_mel}` (lengths in samples)."""
    kind: str
    sample_rate_hz: float
    frame_length: int
    frame_stride: int
    fft_length: int
    mel_bins: int
    coefficients: int  # the DCT's outputs (mfcc); mel_bins for log_mel
    low_hz: float
    high_hz: float

    @property
    def spectrum_bins(self) -> int:
        return self.fft_length // 2 + 1

    def frames(self, window: int) -> int:
        return 1 + (window - self.frame_length) // self.frame_stride

    def output_shape(self, window: int) -> tuple[int, int]:
        return self.frames(window), self.coefficients if self.kind == "mfcc" else self.mel_bins

    # --- the tables, computed at build time ---------------------------------------------------------------------

    def window_q15(self) -> list[int]:
        """A periodic Hann window of frame_length taps in q15 (the peak 1.0 held as 32767)."""
        n = self.frame_length
        return [min(Q15 - 1, round(Q15 * 0.5 * (1 - math.cos(2 * math.pi * i / n)))) for i in range(n)]

    def mel_filters(self) -> list[MelFilter]:
        """Triangles on the mel scale, as CMSIS-DSP's `mfcc.melFilterMatrix` builds them (so the tables are
        comparable to the q15 bit): `mel_bins + 2` edges evenly spaced in mel from `low_hz` to `high_hz`, filter `m`
        rising from edge `m` to `m + 1` and falling to `m + 2`, each FFT bin weighed by where its frequency falls
        in mel. A filter too narrow to hold a bin takes the bin nearest its centre (weight 1): every mel bin
        measures something."""
        low, high = hz_to_mel(self.low_hz), hz_to_mel(self.high_hz)
        step = (high - low) / (self.mel_bins + 1)
        edges = [low + i * step for i in range(self.mel_bins + 1)] + [high]
        bin_hz = (self.sample_rate_hz / 2) / (self.fft_length // 2)
        bin_mels = [hz_to_mel(k * bin_hz) for k in range(self.spectrum_bins)]
        filters = []
        for m in range(self.mel_bins):
            left, centre, right = edges[m], edges[m + 1], edges[m + 2]
            weights = {}
            for k, mel in enumerate(bin_mels):
                rising, falling = (mel - left) / (centre - left), (right - mel) / (right - centre)
                weight = min(Q15 - 1, round(Q15 * max(0.0, min(rising, falling))))
                if weight > 0 and k > 0:  # bin 0 (DC) is in no filter
                    weights[k] = weight
            if not weights:
                centre_hz = 700.0 * (math.exp(centre / 1127.0) - 1.0)
                weights[max(1, min(self.spectrum_bins - 1, round(centre_hz / bin_hz)))] = Q15 - 1
            first, last = min(weights), max(weights)
            filters.append(MelFilter(first, tuple(weights.get(k, 0) for k in range(first, last + 1))))
        return filters

    def filter_tables(self) -> tuple[list[int], list[int], list[int]]:
        """The filters as the device holds them: each one's first FFT bin, the offsets of each one's weights
        in the concatenated weights (one more than there are filters), and those weights."""
        first, offsets, weights = [], [0], []
        for filt in self.mel_filters():
            first.append(filt.first)
            weights += filt.weights
            offsets.append(len(weights))
        return first, offsets, weights

    def dct_q15(self) -> list[list[int]]:
        """The DCT-II, coefficients x mel_bins, in q15: `sqrt(2 / mel_bins) cos(pi j (m + 0.5) / mel_bins)`, CMSIS-DSP's
        `mfcc.dctMatrix` (every row scaled alike, so coefficient 0 is sqrt(2) times the orthonormal one)."""
        bins = self.mel_bins
        norm = math.sqrt(2.0 / bins)
        return [[max(-Q15, min(Q15 - 1, round(Q15 * norm * math.cos(j * math.pi * (m + 0.5) / bins))))
                 for m in range(bins)] for j in range(self.coefficients)]

    def dct_shift(self) -> int:
        """The extra right shift of the DCT's sum: the smallest that keeps every coefficient within an int16 for
        any logs below LOG2_BOUND (the worst case is a row's absolute sum times the largest log)."""
        worst = max(sum(abs(d) for d in row) for row in self.dct_q15()) * LOG2_BOUND
        shift = 0
        while (worst + (1 << (14 + shift))) >> (15 + shift) > 32767:
            shift += 1
        return shift

    # --- the arithmetic, on many frames at once ---------------------------------------------------------------

    def compute(self, windows: "np.ndarray") -> "np.ndarray":
        """int16 features [n, frames, values] of raw int16 windows [n, window] (or [n, window, 1])."""
        import numpy as np

        x = np.asarray(windows)
        if x.ndim == 3:
            x = x[..., 0]
        x = x.astype(np.int64)
        frames = self.frames(x.shape[1])
        starts = np.arange(frames) * self.frame_stride
        framed = x[:, starts[:, None] + np.arange(self.frame_length)[None, :]]  # [n, frames, frame_length]
        windowed = (framed * np.asarray(self.window_q15(), np.int64) + (1 << 14)) >> 15
        padded = np.zeros(windowed.shape[:-1] + (self.fft_length,), np.int64)
        padded[..., :self.frame_length] = windowed
        re, im = fixed.fft_q15(padded)
        bins = self.spectrum_bins
        power = fixed.power(re[..., :bins], im[..., :bins])
        energies = self.mel_energies(power)
        logs = log2_q16(energies)
        if self.kind == "log_mel":
            return ((logs + (1 << (LOG_MEL_SHIFT - 1))) >> LOG_MEL_SHIFT).astype(np.int16)
        return dct(logs, np.asarray(self.dct_q15(), np.int64), 15 + self.dct_shift()).astype(np.int16)

    def mel_energies(self, power: "np.ndarray") -> "np.ndarray":
        """sum(weight * power) per filter, [..., mel_bins] in int64 (the device's u64)."""
        import numpy as np

        out = np.zeros(power.shape[:-1] + (self.mel_bins,), np.int64)
        for m, filt in enumerate(self.mel_filters()):
            span = power[..., filt.first:filt.first + len(filt.weights)]
            out[..., m] = (span * np.asarray(filt.weights, np.int64)).sum(axis=-1)
        return out


def log2_q16(values: "np.ndarray") -> "np.ndarray":
    """floor-exact integer log2 of non-negative int64 values in Q16 (0 for 0 and 1): exponent from the highest set
    bit, the next 16 bits of the mantissa through LOG2_TABLE with linear interpolation."""
    import numpy as np

    v = np.maximum(np.asarray(values, np.int64), 1)
    exponent = np.zeros(v.shape, np.int64)
    rest = v.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = rest >= (np.int64(1) << step)
        exponent += step * big
        rest = np.where(big, rest >> step, rest)
    down = np.maximum(exponent - LOG2_FRACTION_BITS, 0)
    up = np.maximum(LOG2_FRACTION_BITS - exponent, 0)
    fraction = ((v >> down) << up) & ((1 << LOG2_FRACTION_BITS) - 1)
    low_bits = LOG2_FRACTION_BITS - LOG2_TABLE_BITS
    index, remainder = fraction >> low_bits, fraction & ((1 << low_bits) - 1)
    table = np.asarray(LOG2_TABLE, np.int64)
    mantissa = table[index] + (((table[index + 1] - table[index]) * remainder) >> low_bits)
    return (exponent << LOG2_FRACTION_BITS) + mantissa


def dct(logs: "np.ndarray", matrix: "np.ndarray", shift: int) -> "np.ndarray":
    """[..., mel_bins] int64 -> [..., coefficients]: (sum(matrix[j, m] * logs[m]) + 2^(shift-1)) >> shift."""
    import numpy as np

    return (np.einsum("...m,jm->...j", logs, matrix) + (1 << (shift - 1))) >> shift


def rust_config(front: AudioFrontEnd, window: int) -> str:
    """The firmware's `src/audio_config.rs` body: the window, the tables as `static`s in flash and
    `AUDIO_FRONT_END`, the `tinyml_kernels::features::mfcc::AudioFrontEnd` that points at them."""
    first, offsets, weights = front.filter_tables()
    dct = [value for row in front.dct_q15() for value in row] if front.kind == "mfcc" else []
    frames, values = front.output_shape(window)

    def table(name: str, kind: str, items: list[int]) -> str:
        rows = "".join(f"\n    {', '.join(str(v) for v in items[i:i + 16])}," for i in range(0, len(items), 16))
        return f"static {name}: [{kind}; {len(items)}] = [{rows}\n];\n"

    coefficients = f", {front.coefficients} coefficients" if front.kind == "mfcc" else ""
    return (
        f"// {front.kind}: {frames} frames of {front.frame_length} samples, {front.frame_stride} apart, each through a "
        f"{front.fft_length}-point FFT\n// and {front.mel_bins} mel filters from {front.low_hz:g} to "
        f"{front.high_hz:g} Hz{coefficients}: {frames} x {values} features\n\n"
        "use tinyml_kernels::features::mfcc::{AudioFrontEnd, MelFilters};\n\n"
        f"pub const WINDOW: usize = {window};\n"
        f"pub const FFT_LENGTH: usize = {front.fft_length};\n"
        f"pub const MEL_BINS: usize = {front.mel_bins};\n"
        f"/// Features per window: {frames} frames x {values} values.\n"
        f"pub const FEATURES: usize = {frames * values};\n"
        + table("WINDOW_Q15", "i16", front.window_q15())
        + table("TWIDDLES", "i16", fixed.twiddles(front.fft_length))
        + table("FILTER_FIRST", "u16", first)
        + table("FILTER_OFFSETS", "u16", offsets)
        + table("FILTER_WEIGHTS", "i16", weights)
        + table("DCT_Q15", "i16", dct)
        + "pub static AUDIO_FRONT_END: AudioFrontEnd = AudioFrontEnd {\n"
        f"    frame_stride: {front.frame_stride},\n"
        f"    dct_shift: {front.dct_shift() if front.kind == 'mfcc' else 0},\n"
        "    window: &WINDOW_Q15,\n    twiddles: &TWIDDLES,\n"
        "    filters: MelFilters { first: &FILTER_FIRST, offsets: &FILTER_OFFSETS, weights: &FILTER_WEIGHTS },\n"
        "    dct: &DCT_Q15,\n};\n"
    )


# --- the features framework's interface (`stages/_features`: a kind's module) ------------------------------------

def front_end(spec: dict) -> AudioFrontEnd:
    """The front end of a resolved spec (`_features.resolve`)."""
    return AudioFrontEnd(spec["kind"], float(spec["sample_rate_hz"]), int(spec["frame_length"]),
                         int(spec["frame_stride"]), int(spec["fft_length"]), int(spec["mel_bins"]),
                         int(spec["coefficients"]), float(spec["low_hz"]), float(spec["high_hz"]))


def features_per_axis(spec: dict) -> int:
    """Features per window of the one microphone axis: frames x values per frame."""
    frames, values = front_end(spec).output_shape(int(spec["window"]))
    return frames * values


def names(spec: dict) -> list[str]:
    front = front_end(spec)
    frames, values = front.output_shape(int(spec["window"]))
    value = "mfcc" if front.kind == "mfcc" else "mel"
    return [f"frame{f}.{value}{v}" for f in range(frames) for v in range(values)]


def compute(raw: "np.ndarray", spec: dict) -> "np.ndarray":
    """int64 features [..., frames, values] of raw int16 windows [..., window, 1]: time along the rows, the mel bins
    or coefficients as the model's channels."""
    import numpy as np

    x = np.asarray(raw)
    flat = x.reshape(-1, x.shape[-2])
    out = front_end(spec).compute(flat).astype(np.int64)
    return out.reshape(x.shape[:-2] + out.shape[1:])
