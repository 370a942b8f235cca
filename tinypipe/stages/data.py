"""Stage `data`: a seeded, physically plausible accelerometer dataset (in g) split into train/val/test.

The built-in generator simulates a wrist- or board-mounted 3-axis accelerometer at `sensor.sample_rate_hz`:
every window sees gravity (1 g) through a randomly tilted mounting, a per-window gain error, white sensor
noise and a slow bias drift, plus the class's motion:

- `wave`: a 1-3 Hz swing in the x/y plane with varying amplitude, phase and swing direction;
- `tap`: a short 1.5-5 g impulse, mostly on z, at a random offset, ringing down in tens of milliseconds;
- `none`: the device at rest or barely moving (a faint slow sway, well under a wave's amplitude).

`data.source: csv` (or `wav`) reads the user's recordings instead (`_recordings.py`): split by recording, cut into windows;
`data.source: npz` reads windows the user cut, split one window at a time unless the file fixes the split.

Outputs: `data.npz` (x_train, y_train, x_val, y_val, x_test, y_test; x float32 [N, window, axes], y int32),
`classes.json` (class names in label order), `scaling.json` when an input scaling is declared (per-axis offset
and scale, with `data.normalize: standard` fitted on the training split; the windows stay raw); from recordings
also `recordings.json` (which recordings went to which split, and how many windows each gave: the split
manifest), and from WAV recordings `samples.json` (each recording's length in samples, after resampling).
"""

from __future__ import annotations

from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_json
from tinypipe.stages._ml import write_npz
from tinypipe.stages._recordings import recordings_dir, recordings_key
from tinypipe.stages.base import Stage, StageContext, StageResult

GENERATOR_CLASSES = ("wave", "tap", "none")
GENERATOR_AXES = ("x", "y", "z")
GENERATOR_KINDS = ("accelerometer", "imu", "generic")


USER_DATA_ONLY = ("path", "hop", "short", "normalize")  # keys the generator does not read
SCALING_KEYS = ("scale", "offset")  # sensor keys left out of the key while unset, so older projects keep theirs
USER_SOURCES = ("csv", "wav", "npz")


def _config(variant) -> dict:
    c = variant.config
    data = dict(c["data"])
    if data.get("source") in USER_SOURCES:
        data.pop("samples_per_class", None)
        data["files"] = recordings_key(variant)  # each file by content: `status --why` names the file
    else:
        for name in USER_DATA_ONLY:  # a generator project's key is what it was before csv and npz existed
            data.pop(name, None)
    if data.get("normalize") == "none":
        data.pop("normalize")
    sensor = {k: v for k, v in c["sensor"].items() if not (k in SCALING_KEYS and v is None)}
    return {"seed": c["seed"], "sensor": sensor, "data": data}


STAGE = Stage(name="data", version="1", needs=(), config=_config,
              description="generate or read, and split, the sensor dataset")


# --- the generator: each function returns float64 [n, window, 3] in g, drawing only from `rng` -----------------

def _tilted_gravity(rng, n):
    """Unit gravity vectors for a device mounted with up to ~25 degrees of random tilt from z-up."""
    import numpy as np

    pitch = rng.uniform(-0.45, 0.45, n)
    roll = rng.uniform(-0.45, 0.45, n)
    return np.stack([np.sin(pitch), -np.sin(roll) * np.cos(pitch), np.cos(roll) * np.cos(pitch)], axis=1)


def _wave(rng, t):
    import numpy as np

    n = t.shape[0]
    freq = rng.uniform(1.0, 3.0, (n, 1))
    amp = rng.uniform(0.25, 1.2, (n, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    direction = rng.uniform(0, np.pi, (n, 1))  # the swing's heading in the x/y plane
    ellipse = rng.uniform(0.0, 0.5, (n, 1))  # how far the swing opens into an ellipse
    ang = 2 * np.pi * freq * t + phase
    along, across = amp * np.sin(ang), amp * ellipse * np.cos(ang)
    x = along * np.cos(direction) - across * np.sin(direction)
    y = along * np.sin(direction) + across * np.cos(direction)
    z = 0.15 * amp * np.sin(2 * ang + rng.uniform(0, 2 * np.pi, (n, 1)))  # the arc lifts the hand at 2f
    return np.stack([x, y, z], axis=2)


def _tap(rng, t, sample_rate_hz):
    import numpy as np

    n, window = t.shape
    onset = rng.integers(int(0.1 * window), max(int(0.1 * window) + 1, int(0.75 * window)), n)
    dt = t - (onset[:, None] / sample_rate_hz)
    amp = rng.uniform(1.5, 5.0, (n, 1)) * rng.choice([-1.0, 1.0], (n, 1))
    ring_hz = np.minimum(rng.uniform(8.0, 20.0, (n, 1)), 0.4 * sample_rate_hz)  # kept below Nyquist
    decay_s = rng.uniform(0.03, 0.08, (n, 1))
    pulse = np.where(dt >= 0, amp * np.exp(-np.maximum(dt, 0) / decay_s) * np.cos(2 * np.pi * ring_hz * dt), 0.0)
    direction = np.stack([rng.normal(0, 0.25, n), rng.normal(0, 0.25, n), np.ones(n)], axis=1)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return pulse[:, :, None] * direction[:, None, :]


def _none(rng, t):
    import numpy as np

    n = t.shape[0]
    freq = rng.uniform(0.1, 0.8, (n, 1, 3))
    amp = rng.uniform(0.0, 0.08, (n, 1, 3))
    return amp * np.sin(2 * np.pi * freq * t[:, :, None] + rng.uniform(0, 2 * np.pi, (n, 1, 3)))


def _sensor(rng, motion, t):
    """Add what every window has: tilted gravity, gain error, slow bias drift and white noise."""

    n = motion.shape[0]
    gravity = _tilted_gravity(rng, n)[:, None, :]
    gain = rng.uniform(0.9, 1.1, (n, 1, 3))
    drift = rng.normal(0, 0.03, (n, 1, 3)) * (t[:, :, None] / t[:, -1:, None].clip(min=1e-9))
    noise = rng.normal(0, 1, motion.shape) * rng.uniform(0.01, 0.05, (n, 1, 1))
    return gain * (gravity + motion) + drift + noise


def generate(classes, samples_per_class, window, sample_rate_hz, axes, seed):
    """Return x float32 [len(classes) * samples_per_class, window, len(axes)] and y int32, class-major order."""
    import numpy as np

    unknown = [c for c in classes if c not in GENERATOR_CLASSES]
    if unknown:
        raise UserError(
            f"data.classes: the built-in accelerometer generator does not know class {unknown[0]!r}",
            "use classes from: wave, tap, none (or load your own data)",
        )
    missing = [a for a in axes if a not in GENERATOR_AXES]
    if missing:
        raise UserError(
            f"sensor.axes: the built-in accelerometer generator has no axis {missing[0]!r}",
            "use axes from: x, y, z",
        )
    if len(set(classes)) != len(classes):
        raise UserError("data.classes: a class is listed twice", "list each class once")
    t = np.broadcast_to(np.arange(window) / sample_rate_hz, (samples_per_class, window))
    columns = [GENERATOR_AXES.index(a) for a in axes]
    xs, ys = [], []
    for label, name in enumerate(classes):
        # one child generator per class: adding a class leaves the other classes' windows unchanged
        class_rng = np.random.default_rng([seed, GENERATOR_CLASSES.index(name)])
        if name == "wave":
            motion = _wave(class_rng, t)
        elif name == "tap":
            motion = _tap(class_rng, t, sample_rate_hz)
        else:
            motion = _none(class_rng, t)
        xs.append(_sensor(class_rng, motion, t)[:, :, columns])
        ys.append(np.full(samples_per_class, label, dtype=np.int32))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def stratified_split(y, fractions, seed):
    """Indices (train, val, test): per class, shuffle then cut by the fractions; each split shuffled again."""
    import numpy as np

    rng = np.random.default_rng([seed, 1_000_003])
    parts = {"train": [], "val": [], "test": []}
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = max(1, round(len(idx) * fractions.test))
        n_val = round(len(idx) * fractions.val)
        if len(idx) - n_test - n_val < 1:
            raise UserError(
                f"data.samples_per_class: {len(idx)} windows per class leave none for training after the split",
                "raise data.samples_per_class or data.split.train",
            )
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    return tuple(rng.permutation(np.concatenate(parts[k])) for k in ("train", "val", "test"))


def _from_recordings(ctx: StageContext):
    """(arrays, classes, extra summary) from the user's CSV or WAV recordings, with the split manifest written."""
    from tinypipe.stages import _recordings

    p = ctx.variant.project
    resampled: list = []
    if p.data.source == "wav":
        def read(path, name):
            return _recordings.read_wav(path, name, p.sensor.sample_rate_hz, resampled)
    else:
        def read(path, name):
            return _recordings.read_recording(path, name, p.sensor.axes)
    rec = _recordings.load(recordings_dir(ctx.variant), p.data.path.rstrip("/"), p.data.classes, read,
                           _recordings.SUFFIX[p.data.source], len(p.sensor.axes), p.sensor.window, p.data.hop,
                           p.data.short, p.data.split, p.seed)
    manifest = {split: {name: int((rec.sources[split] == i).sum()) for i, name in enumerate(rec.recordings[split])}
                for split in rec.recordings}
    atomic_write_json(ctx.out / "recordings.json", manifest)
    if p.data.source == "wav":  # a CSV's length is its line count (`describe`); its entry stays what it was
        atomic_write_json(ctx.out / "samples.json", rec.samples)
    if rec.dropped:
        ctx.log(f"{len(rec.dropped)} recording(s) shorter than the window ({p.sensor.window} samples) dropped: "
                f"{', '.join(rec.dropped[:3])}{' ...' if len(rec.dropped) > 3 else ''}")
    ctx.log(f"{sum(len(r) for r in rec.recordings.values())} recordings ("
            + " / ".join(f"{len(rec.recordings[s])} {s}" for s in ("train", "val", "test")) + ")")
    extra = {"recordings": {s: len(names) for s, names in rec.recordings.items()}, "dropped": len(rec.dropped)}
    if resampled:
        rate = f"{p.sensor.sample_rate_hz:g}"
        for item in resampled:
            ctx.log(f"warning: {item.name} is sampled at {item.rate_hz} Hz, sensor.sample_rate_hz is {rate} Hz: "
                    "resampled (linear interpolation)")
        extra["resampled"] = [{"file": item.name, "rate_hz": item.rate_hz} for item in resampled]
    return rec.arrays, rec.classes, extra


def carve_validation(y, share, seed):
    """Indices (train, val) of a fixed training set: per class, shuffle, then `share` of it (at least one window
    when share > 0) becomes validation."""
    import numpy as np

    rng = np.random.default_rng([seed, 1_000_037])
    train, val = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_val = max(1, round(len(idx) * share)) if share > 0 and len(idx) > 1 else 0
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(val))


def _from_npz(ctx: StageContext):
    """(arrays, classes, extra summary) from the user's .npz windows."""
    from tinypipe.stages import _recordings

    p = ctx.variant.project
    loaded = _recordings.load_npz(_recordings.npz_file(ctx.variant), p.data.path, p.data.classes, p.sensor.axes,
                                  p.sensor.window)
    if "x" in loaded:
        x, y = loaded["x"], loaded["y"]
        for label, name in enumerate(p.data.classes):
            n = int((y == label).sum())
            if n - max(1, round(n * p.data.split.test)) - round(n * p.data.split.val) < 1:
                raise UserError(f"{p.data.path}: class {name!r} has {n} window(s); the split leaves none to train on",
                                "add windows of the class, or fix the split with x_train/y_train/x_test/y_test")
        train, val, test = stratified_split(y, p.data.split, p.seed)
        arrays = {"x_train": x[train], "y_train": y[train], "x_val": x[val], "y_val": y[val],
                  "x_test": x[test], "y_test": y[test]}
    elif "x_val" in loaded:
        arrays = loaded
    else:
        share = p.data.split.val / (p.data.split.train + p.data.split.val)
        train, val = carve_validation(loaded["y_train"], share, p.seed)
        arrays = {"x_train": loaded["x_train"][train], "y_train": loaded["y_train"][train],
                  "x_val": loaded["x_train"][val], "y_val": loaded["y_train"][val],
                  "x_test": loaded["x_test"], "y_test": loaded["y_test"]}
    ctx.log(f"{p.data.path}: arrays {', '.join(sorted(loaded))}"
            + ("" if "x_val" in loaded or "x" in loaded else "; validation carved from x_train"))
    return arrays, list(p.data.classes), {"split": "by window" if "x" in loaded else "fixed"}


TRACES_PER_CLASS = 3


def example_traces(entry, per_class: int = TRACES_PER_CLASS) -> dict[str, list]:
    """{class: up to `per_class` training windows, each [window][axes] of raw values (4 significant digits)}
    from a data stage entry: the first windows of each class in the (shuffled, seeded) training split, for the
    data summary's plot (`tinypipe data`, the HTML report)."""
    import json

    import numpy as np

    classes = json.loads((entry / "classes.json").read_text())
    with np.load(entry / "data.npz") as npz:
        x, y = npz["x_train"], npz["y_train"]
    out = {}
    for label, name in enumerate(classes):
        picked = x[np.flatnonzero(y == label)[:per_class]]
        out[name] = [[[float(f"{v:.4g}") for v in sample] for sample in window] for window in picked]
    return out


def _csv_samples(path) -> int | None:
    """Samples in a CSV recording as the data stage counts them: its non-blank lines after the header."""
    try:
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    except OSError:
        return None
    return max(len(lines) - 1, 0)


def describe(entry, variant, summary: dict) -> dict:
    """What a data stage entry holds, for `tinypipe data` and the HTML report: source, window, classes, windows
    per class and split, the recordings of each split with their windows and length in samples (None unless
    recordings), the declared input scaling (or None) and a few example training windows per class (`traces`)."""
    import json

    data = variant.config["data"]
    recordings = None
    if (entry / "recordings.json").is_file():
        root = variant.resolve(data["path"])
        manifest = json.loads((entry / "recordings.json").read_text())
        # WAV: samples.json, the lengths as the data stage read them (resampled); CSV: count its lines
        lengths = json.loads((entry / "samples.json").read_text()) if (entry / "samples.json").is_file() else {}
        recordings = {split: {name: {"windows": n, "samples": lengths[name] if name in lengths
                                     else _csv_samples(root / name)} for name, n in names.items()}
                      for split, names in manifest.items()}
    return {"entry": str(entry), "source": data["source"], "path": data.get("path"),
            "window": summary.get("window"), "axes": summary.get("axes"),
            "classes": json.loads((entry / "classes.json").read_text()),
            "windows": summary.get("counts"), "dropped": summary.get("dropped"), "recordings": recordings,
            "scaling": summary.get("scaling"), "traces": example_traces(entry)}


def _rounded(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


def run(ctx: StageContext) -> StageResult:
    from tinypipe.stages import _scaling

    p = ctx.variant.project
    if p.data.source in ("csv", "wav"):
        arrays, classes, extra = _from_recordings(ctx)
    elif p.data.source == "npz":
        arrays, classes, extra = _from_npz(ctx)
    else:
        if p.sensor.kind not in GENERATOR_KINDS:
            raise UserError(
                f"sensor.kind: the built-in generator makes accelerometer data, not {p.sensor.kind!r} data",
                "set sensor.kind to accelerometer (or imu), or import a model with model.path",
            )
        x, y = generate(p.data.classes, p.data.samples_per_class, p.sensor.window, p.sensor.sample_rate_hz,
                        p.sensor.axes, p.seed)
        train, val, test = stratified_split(y, p.data.split, p.seed)
        arrays = {"x_train": x[train], "y_train": y[train], "x_val": x[val], "y_val": y[val],
                  "x_test": x[test], "y_test": y[test]}
        classes, extra = list(p.data.classes), {}
    scaling = _scaling.declared(p, arrays["x_train"])
    if scaling is not None:
        _scaling.require_raw_int16(arrays, classes, p.data.path)
        atomic_write_json(ctx.out / _scaling.SCALING_FILE, scaling.as_json())
        extra["scaling"] = scaling.as_json()
        ctx.log(f"input scaling ({scaling.how}): offset {_rounded(scaling.offset)}, scale {_rounded(scaling.scale)}")
    write_npz(ctx.out / "data.npz", arrays)
    atomic_write_json(ctx.out / "classes.json", classes)
    counts = {split: {name: int((arrays[f"y_{split}"] == i).sum()) for i, name in enumerate(classes)}
              for split in ("train", "val", "test")}
    sizes = {split: int(len(arrays[f"y_{split}"])) for split in ("train", "val", "test")}
    windows = sum(sizes.values())
    ctx.log(f"{windows} windows of {p.sensor.window} x {len(p.sensor.axes)} "
            f"({sizes['train']} train / {sizes['val']} val / {sizes['test']} test)")
    if p.data.source != "generator":
        for split in ("train", "val", "test"):
            ctx.log(f"  {split}: " + ", ".join(f"{name} {n}" for name, n in counts[split].items()))
    return {"windows": windows, **sizes, "window": p.sensor.window, "axes": list(p.sensor.axes),
            "counts": counts, **extra}
