"""Generate the microphone example's recordings: four kinds of sound as mono 16-bit WAV files at 8 kHz.

    python pipelines/keywords/make_data.py [OUT] [--seed N] [--per-class N] [--seconds S]

OUT defaults to data/ next to this file. Writes OUT/<class>/rec_NN.wav, one folder per class, the layout
`data.source: wav` reads:

    low     a hum: a tone of 150-450 Hz with its second harmonic, slowly drifting in loudness
    high    a whistle: a tone of 1.5-3 kHz with a slight vibrato
    chirp   rising sweeps (400 Hz to 3.2 kHz, 100-200 ms each) repeated back to back
    noise   bursts of white noise (30-90 ms) at random moments

Every recording also carries a faint background hiss and a random gain, so no class is told apart by its level
alone. The same seed writes the same bytes (numpy's PCG64 generator; no other randomness), so the recordings are
a reproducible input: a second run changes nothing tinypipe hashes.
"""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np

RATE_HZ = 8000
CLASSES = ("low", "high", "chirp", "noise")
BACKGROUND = 60.0  # rms of the hiss under every recording, in int16 counts


def low(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    freq = rng.uniform(150, 450)
    phase = 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
    swell = 0.75 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t)
    return swell * (0.8 * np.sin(phase) + 0.2 * np.sin(2 * phase))


def high(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    freq = rng.uniform(1500, 3000)
    vibrato = 0.01 * freq * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
    return np.sin(2 * np.pi * np.cumsum(freq + vibrato) / RATE_HZ + rng.uniform(0, 2 * np.pi))


def chirp(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    sweep_s = rng.uniform(0.1, 0.2)
    start, stop = 400.0, 3200.0
    local = (t + rng.uniform(0, sweep_s)) % sweep_s  # time since the current sweep began
    freq = start + (stop - start) * local / sweep_s
    return np.sin(2 * np.pi * np.cumsum(freq) / RATE_HZ)


def noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    out = np.zeros_like(t)
    at = rng.uniform(0, 0.05)
    while at < t[-1]:
        length = rng.uniform(0.03, 0.09)
        inside = (t >= at) & (t < at + length)
        out[inside] = rng.normal(0, 0.5, int(inside.sum()))
        at += length + rng.uniform(0.02, 0.08)
    return np.clip(out, -1, 1)


SOUNDS = {"low": low, "high": high, "chirp": chirp, "noise": noise}


def recording(rng: np.random.Generator, kind: str, seconds: float) -> np.ndarray:
    """One recording of `kind` as int16 samples."""
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    gain = rng.uniform(3000, 14000)
    signal = gain * SOUNDS[kind](rng, t) + rng.normal(0, BACKGROUND, t.size)
    return np.clip(np.round(signal), -32768, 32767).astype("<i2")


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes(samples.tobytes())


def write(out: Path, seed: int = 0, per_class: int = 10, seconds: float = 0.6) -> int:
    """Write `per_class` recordings of each class under `out`; returns how many files were written."""
    rng = np.random.default_rng(seed)
    for kind in CLASSES:
        for index in range(per_class):
            write_wav(out / kind / f"rec_{index:02d}.wav", recording(rng, kind, seconds))
    return per_class * len(CLASSES)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path(__file__).resolve().parent / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0.6)
    args = parser.parse_args()
    files = write(args.out, args.seed, args.per_class, args.seconds)
    print(f"{files} recordings of {args.seconds:g} s at {RATE_HZ} Hz ({', '.join(CLASSES)}) -> {args.out}")
