"""Feature extraction (`features:` in project.yaml): raw int16 sensor windows -> the model's input, computed in
fixed point the same way on the host (numpy, here) and on the device (`tinyml_kernels::features`).

A kind is a module with `compute(raw, spec) -> int64 [..., rows, axes]`, `features_per_axis(spec)` and
`names(spec)`; `resolve` turns the project's `features:` section into the spec every side reads (defaults filled
in, coefficient tables computed), which the features stage stores as `features.json` and the firmware renders.
Not a stage (no STAGE). numpy is imported inside functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tinypipe.stages._features import fixed

if TYPE_CHECKING:
    import numpy as np

KINDS = {"spectral": "tinypipe.stages._features.spectral", "mfcc": "tinypipe.stages._features.mfcc",
         "log_mel": "tinypipe.stages._features.mfcc"}  # `raw` has no features stage
GENERATOR_COUNTS_PER_G = 4096  # the built-in generator's g as int16 counts: a +-8 g accelerometer


def kind_module(kind: str):
    return importlib.import_module(KINDS[kind])


def resolve(config: dict) -> dict:
    """The spec of a variant's features (its config dict): what the host computes and the firmware renders."""
    from tinypipe.config.schema import default_fft_length

    features, sensor = config["features"], config["sensor"]
    spec = {"kind": features["kind"], "window": int(sensor["window"]), "axes": len(sensor["axes"]),
            "sample_rate_hz": float(sensor["sample_rate_hz"])}
    if features["kind"] == "spectral":
        n = int(features.get("fft_length") or default_fft_length(spec["window"]))
        spec.update(fft_length=n, peaks=int(features["peaks"]), twiddles=fixed.twiddles(n), filter=None)
        if features.get("filter"):
            f = features["filter"]
            spec["filter"] = {"type": f["type"], "cutoff_hz": float(f["cutoff_hz"]),
                              "coefficients": fixed.biquad_coefficients(f["type"], f["cutoff_hz"],
                                                                        spec["sample_rate_hz"])}
    if features["kind"] in ("mfcc", "log_mel"):
        spec.update(audio_spec(features, sensor))
    spec["per_axis"] = kind_module(spec["kind"]).features_per_axis(spec)
    return spec


def compute(raw: "np.ndarray", spec: dict) -> "np.ndarray":
    """int64 features [..., per_axis, axes] of raw int16 windows [..., window, axes]."""
    return kind_module(spec["kind"]).compute(raw, spec)


def names(spec: dict) -> list[str]:
    return kind_module(spec["kind"]).names(spec)


def audio_spec(features: dict, sensor: dict) -> dict:
    """`mfcc`/`log_mel`: the front end's lengths in samples and its band, defaults filled in (`audio_frames`)."""
    from tinypipe.config.schema import Features, Sensor, audio_frames

    frame, stride, fft_length, high_hz = audio_frames(Features(**features), Sensor(**sensor))
    return {"frame_length": frame, "frame_stride": stride, "fft_length": fft_length,
            "mel_bins": int(features["mel_bins"]),
            "coefficients": int(features["coefficients"]) if features["kind"] == "mfcc" else int(features["mel_bins"]),
            "low_hz": float(features["low_hz"]), "high_hz": float(high_hz)}
