"""Stage `features` (only when `features.kind` is not `raw`): the data stage's windows as raw int16 samples ->
fixed-point features (`_features`), the numbers the firmware computes from the same samples.

Its entry has the data stage's layout, so train, quantize and reference read it instead of the data stage's
(`uses`): `data.npz` (x_*: the features as int16 values, [N, rows, axes], float32; y_* as the data stage's),
`classes.json`, and `scaling.json` (`standard`: every feature standardised on the training split, so the model's
int8 input is made from a feature by the integer step `_scaling` makes from a raw sample). Also `raw.npz`
(`x_test`: the raw int16 test windows the firmware replays) and `features.json` (the resolved spec: what the
firmware renders). A `matrix: {features.kind: [...]}` shares the data stage; the cells differ from here on.

The built-in generator's windows are in g: they become int16 counts at `GENERATOR_COUNTS_PER_G` first. Your own
recordings must be raw int16 samples (exit 2 naming the window otherwise).
"""

from __future__ import annotations

import shutil

from tinypipe.core.fs import atomic_write_json, read_json
from tinypipe.stages._ml import write_npz
from tinypipe.stages.base import Stage, StageContext, StageResult

FEATURES_FILE = "features.json"
RAW_FILE = "raw.npz"


def _config(variant) -> dict:
    c = variant.config
    sensor = c["sensor"]
    return {"features": c["features"], "generator": c["data"]["source"] == "generator",
            "sensor": {k: sensor[k] for k in ("window", "axes", "sample_rate_hz", "kind")}}


STAGE = Stage(name="features", version="1", needs=("data",), config=_config,
              runs_for=lambda variant: variant.config["features"]["kind"] != "raw",
              description="compute the fixed-point features of every window, as the device will")


def raw_windows(arrays: dict, generator: bool, classes: list[str], label: str) -> dict:
    """Every split's x as int16 counts: the generator's g scaled, or the user's samples checked."""
    import numpy as np

    from tinypipe.stages import _features, _scaling

    if generator:
        return {k: np.clip(np.round(v * _features.GENERATOR_COUNTS_PER_G), -32768, 32767).astype(np.int16)
                if k.startswith("x_") else v for k, v in arrays.items()}
    _scaling.require_raw_int16(arrays, classes, label)
    return {k: v.astype(np.int16) if k.startswith("x_") else v for k, v in arrays.items()}


SPREAD_FLOOR = 64  # a feature's spread is at least |mean| / 64 (and 1, its resolution): see `standardised`


def standardised(train_features) -> "object":
    """Per feature value (row and axis): (f - mean) / std on the training split. A (nearly) constant feature is
    divided by at least |mean| / SPREAD_FLOOR and 1 instead, so its mean stays a small multiple of the int8 input's
    step and the integer step that folds the two (`_scaling.InputScaling.fixed_point`) stays in range."""
    import numpy as np

    from tinypipe.stages._scaling import InputScaling

    flat = np.asarray(train_features, np.float64).reshape(len(train_features), -1)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    scale = [float(1 / max(s, abs(m) / SPREAD_FLOOR, 1.0)) for m, s in zip(mean, std)]
    return InputScaling([float(m) for m in mean], scale, "standard")


def run(ctx: StageContext) -> StageResult:
    import numpy as np

    from tinypipe.stages import _features
    from tinypipe.stages._ml import load_split
    from tinypipe.stages._scaling import SCALING_FILE

    p = ctx.variant.project
    classes = read_json(ctx.input("data", "classes.json"))
    arrays = raw_windows(load_split(ctx.inputs["data"]), p.data.source == "generator", classes,
                         p.data.path or "data")
    spec = _features.resolve(ctx.variant.config)
    features = {k: _features.compute(v, spec) if k.startswith("x_") else v for k, v in arrays.items()}
    largest = max(int(np.abs(v).max()) for k, v in features.items() if k.startswith("x_") and v.size)
    if largest > 32767:  # every kind's features are int16 by construction: this would be a bug
        raise AssertionError(f"a feature of {largest} does not fit int16")
    scaling = standardised(features["x_train"])
    write_npz(ctx.out / "data.npz", {k: v.astype(np.float32) if k.startswith("x_") else v
                                     for k, v in features.items()})
    write_npz(ctx.out / RAW_FILE, {"x_test": arrays["x_test"]})
    shutil.copyfile(ctx.input("data", "classes.json"), ctx.out / "classes.json")
    atomic_write_json(ctx.out / SCALING_FILE, scaling.as_json())
    atomic_write_json(ctx.out / FEATURES_FILE, spec)
    rows = _features.names(spec)
    ctx.log(f"{p.features.kind}: {len(rows)} features per axis x {spec['axes']} axes from {spec['window']}-sample "
            f"windows ({', '.join(rows[:4])}, ...)")
    return {"kind": spec["kind"], "per_axis": spec["per_axis"], "axes": spec["axes"],
            "shape": list(features["x_train"].shape[1:])}
