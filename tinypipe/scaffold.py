"""`tinypipe init DIR`: a new project with a commented project.yaml that runs as is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_text

TEMPLATE = """\
# A tinypipe project. `tinypipe run {dir}` trains, quantizes, builds and runs it; edit and run again.
name: {name}
version: 0.1.0               # `tinypipe release {dir}` writes dist/{name}-0.1.0/
seed: 0                      # every random choice (data, weights, splits) derives from this

sensor:
  kind: accelerometer
  axes: [x, y, z]
  sample_rate_hz: 50
  window: 64                 # samples per classified window

data:
  source: generator          # built-in generator: classes wave, tap, none
  classes: [wave, tap, none]
  samples_per_class: 200

model:
  layers:                    # conv1d, maxpool1d, avgpool1d, flatten, dense, dropout
    - {{type: conv1d, filters: 8, kernel_size: 5, activation: relu}}
    - {{type: maxpool1d, pool_size: 2}}
    - {{type: flatten}}
    - {{type: dense, units: 16, activation: relu}}
    - {{type: dense, units: 3}}
  epochs: 20

quantization:
  scheme: int8               # full-integer int8 (weights per channel, activations per tensor)
  io: int8                   # the model's input and output; float32 keeps them float (quantized inside)
  representative_samples: 100

target:
  board: mps2-an386          # `tinypipe boards` lists them
  profile_layers: false      # true: also time every operator on the device

engine: native               # our ahead-of-time Rust engine

budgets:
  accuracy_device_min: 0.8   # the run fails (exit 1) below this
"""


def init_project(directory: Path) -> Path:
    directory = Path(directory)
    path = directory / "project.yaml"
    if path.exists():
        raise UserError(f"{path} already exists", "choose another directory, or edit that file")
    name = directory.resolve().name or "project"
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, TEMPLATE.format(name=safe, dir=directory))
    return path


# --- `tinypipe init DIR --data FOLDER`: a project.yaml written from the user's recordings ------------------------

TIME_COLUMN = re.compile(r"^(t|time|times|timestamp|ts|seconds|secs|sec|millis|ms|us|micros|elapsed)"
                         r"([_ -]?(s|sec|secs|seconds|ms|millis|us|micros))?$", re.IGNORECASE)
INDEX_COLUMN = re.compile(r"^(index|idx|sample|samples|n|i|row|frame)$", re.IGNORECASE)
SAMPLED_FILES = 200  # recordings read to infer lengths, rate and value range (evenly spread over the classes)
MIN_WINDOW = 8


@dataclass
class Inferred:
    """What `init --data` found, for the summary it prints and the project.yaml it writes."""

    source: str  # csv | wav
    classes: dict[str, int]  # class -> recordings
    fixed_split: bool
    axes: list[str]
    ignored: list[str]  # CSV columns left out (time, index, text)
    rate_hz: float
    rate_from: str  # how the rate was found (a column, the WAV header, or not at all)
    shortest: int  # samples in the shortest recording read
    window: int
    integers: bool  # every value read is a whole number within int16: raw counts
    read: int  # recordings read


def _unit_seconds(name: str, median_step: float) -> float:
    """Seconds per unit of a time column, from its name (`_ms`, `millis`, `us`) or else its step (a step of a
    second or more between samples would be a very slow sensor: read as milliseconds)."""
    lowered = name.lower()
    if re.search(r"(^|[_ -])(us|micros)$", lowered) or lowered in ("us", "micros"):
        return 1e-6
    if re.search(r"(ms|millis)$", lowered):
        return 1e-3
    return 1e-3 if median_step >= 1.0 else 1.0


def _spread(files: list, count: int) -> list:
    if len(files) <= count:
        return files
    step = len(files) / count
    return [files[int(i * step)] for i in range(count)]


def _csv_columns(path: Path, label: str) -> tuple[list[str], list[str]]:
    """The header of one CSV recording and its first data row."""
    import csv

    from tinypipe.stages._recordings import _check_separator

    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        rows = csv.reader(handle)
        header = [cell.strip() for cell in next(rows, [])]
        first = next((row for row in rows if any(cell.strip() for cell in row)), [])
    if not header:
        raise UserError(f"{label}: the file is empty", "delete it, or record again")
    _check_separator(header, label)
    return header, [cell.strip() for cell in first]


def infer(root: Path, label: str) -> Inferred:
    """Look at a folder of recordings as the data stage will read it; UserError when it cannot be read."""
    import numpy as np

    from tinypipe.stages._recordings import _is_number, discover, read_recording, read_wav

    if root.is_file():
        raise UserError(f"--data {label}: a file, not a folder of recordings",
                        f"put each class's recordings in its own folder and give their parent: {root.parent}/<class>/"
                        f"{'*' + root.suffix if root.suffix else '*.csv'} -> --data {root.parent}")
    if not root.is_dir():
        raise UserError(f"--data {label}: no such folder", "give the folder that holds one folder of recordings per "
                                                           "class (or train/ and test/ with those inside)")
    suffixes = {p.suffix.lower() for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".csv", ".wav")}
    if not suffixes:
        raise UserError(f"--data {label}: no .csv or .wav recordings in it",
                        f"one folder per class, one file per recording: {label}/<class>/*.csv (or *.wav)")
    if len(suffixes) > 1:
        raise UserError(f"--data {label}: holds both .csv and .wav recordings",
                        "keep one kind per project: sensor CSV files or microphone WAV files")
    source = suffixes.pop().lstrip(".")
    classes, layout = discover(root, label, None, f".{source}")
    counts = {name: sum(len(part.get(name, [])) for part in layout.values()) for name in classes}
    files = [(f, name) for part in layout.values() for name in classes for f in part[name]]
    sampled = _spread(files, SAMPLED_FILES)
    rel = lambda f: f"{label}/{f.relative_to(root).as_posix()}"  # noqa: E731 - how messages name a file

    if source == "wav":
        import wave

        rates = []
        for f, _ in sampled:
            try:
                with wave.open(str(f), "rb") as w:
                    rates.append(w.getframerate())
            except (wave.Error, EOFError) as exc:
                raise UserError(f"{rel(f)}: not a PCM WAV file ({exc})",
                                "convert it: sox in.wav -c 1 -b 16 -e signed-integer out.wav") from None
        rate = float(max(set(rates), key=rates.count))
        lengths = [len(read_wav(f, rel(f), rate, [])) for f, _ in sampled]
        shortest = min(lengths)
        window = 2 ** round(np.log2(0.128 * rate))  # about 128 ms of sound, a power of two for the FFT frames
        while window > shortest and window > 256:
            window //= 2
        if window > shortest:
            raise UserError(f"--data {label}: the shortest recording has {shortest} samples ({shortest / rate:.3f} s)"
                            f"; a sound model wants windows of 256 samples or more",
                            "drop the shortest recordings, or record longer clips")
        return Inferred("wav", counts, "train" in layout, ["mic"], [], rate, "the WAV header", shortest, window,
                        True, len(sampled))

    header, first = _csv_columns(sampled[0][0], rel(sampled[0][0]))
    for f, _ in sampled[1:]:
        other, _ = _csv_columns(f, rel(f))
        if other != header:
            raise UserError(f"{rel(f)}: its columns ({', '.join(other)}) are not those of {rel(sampled[0][0])} "
                            f"({', '.join(header)})", "give every recording the same header row")
    if header and all(_is_number(cell) for cell in header):
        raise UserError(f"{rel(sampled[0][0])} row 1: no header row (the first row is numbers)",
                        "add a first row naming the columns, e.g. t,ax,ay,az")
    time_col = next((h for h in header if TIME_COLUMN.match(h)), None)
    text = [h for h, v in zip(header, first) if not _is_number(v)]
    ignored = [h for h in header if h == time_col or INDEX_COLUMN.match(h) or h in text]
    axes = [h for h in header if h not in ignored]
    if not axes:
        raise UserError(f"{rel(sampled[0][0])}: no sensor columns (columns: {', '.join(header)}; "
                        f"{', '.join(ignored)} read as time, index or text)",
                        "name the sensor's columns in the header row, e.g. ax,ay,az")
    samples, steps = [], []
    for f, _ in sampled:
        values = read_recording(f, rel(f), axes + ([time_col] if time_col else []))
        samples.append(values[:, :len(axes)])
        if time_col and len(values) > 1:
            step = float(np.median(np.diff(values[:, -1].astype(np.float64))))
            if step > 0:
                steps.append(step)
    shortest = min(len(s) for s in samples)
    if time_col and steps:
        step = float(np.median(steps))
        rate = float(f"{1.0 / (step * _unit_seconds(time_col, step)):.3g}")
        rate_from = f"column {time_col!r}"
    else:
        rate, rate_from = 50.0, "not in the recordings"
    window = min(shortest, max(16, int(round(rate))))  # about a second of samples, or the shortest recording
    if window < MIN_WINDOW:
        raise UserError(f"--data {label}: the shortest recording has {shortest} samples",
                        f"a window needs {MIN_WINDOW} samples or more: drop the shortest recordings")
    stacked = np.concatenate(samples)
    integers = bool(np.all(stacked == np.round(stacked)) and stacked.min() >= -32768 and stacked.max() <= 32767
                    and np.abs(stacked).max() > 127)
    return Inferred("csv", counts, "train" in layout, axes, ignored, rate, rate_from, shortest, window, integers,
                    len(sampled))


def _yaml_list(items: list[str]) -> str:
    import json

    return "[" + ", ".join(item if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", item) else json.dumps(item)
                           for item in items) + "]"


def _aligned(lines: list[str]) -> list[str]:
    """`key: value   # comment` lines with their comments in one column (lines without a comment as they are)."""
    parts = [line.split("   # ", 1) if "   # " in line else [line] for line in lines]
    width = max((len(p[0].rstrip()) for p in parts if len(p) == 2), default=0)
    return [f"{p[0].rstrip():<{width}}  # {p[1]}" if len(p) == 2 else p[0] for p in parts]


def render_from_data(name: str, data_path: str, found: Inferred, typed: str | None = None) -> str:
    """project.yaml for the recordings `found` describes, every inferred value commented with where it came from."""
    import json

    classes = list(found.classes)
    split = ("# the split you fixed: train/ and test/" if found.fixed_split
             else "# split by recording, stratified by class")
    lines = [
        f"# A tinypipe project written by `tinypipe init --data {typed or data_path}` from "
        f"{sum(found.classes.values())} "
        f"recordings in {len(classes)} classes.",
        "# Every value below was inferred from them: check the ones marked CHECK, then `tinypipe data` shows what",
        "# the data stage reads and `tinypipe run` trains, builds and runs the model.",
        f"name: {name}",
        "version: 0.1.0",
        "seed: 0",
        "",
        "sensor:",
    ]
    if found.source == "wav":
        lines += ["  kind: microphone",
                  "  axes: [mic]",
                  f"  sample_rate_hz: {found.rate_hz:g}   # from the WAV header; other rates are resampled to it",
                  f"  window: {found.window}   # about 128 ms of sound per classification"]
    else:
        rate_note = ("CHECK: no time column; set your sensor's rate" if found.rate_from == "not in the recordings"
                     else f"from {found.rate_from}")
        ignored = f" ({', '.join(found.ignored)} ignored)" if found.ignored else ""
        lines += [f"  axes: {_yaml_list(found.axes)}   # the CSV columns{ignored}",
                  f"  sample_rate_hz: {found.rate_hz:g}   # {rate_note}",
                  f"  window: {found.window}   # samples per classified window (shortest recording: "
                  f"{found.shortest})"]
    lines += ["",
              "data:",
              f"  source: {found.source}",
              f"  path: {json.dumps(data_path)}",
              f"  classes: {_yaml_list(classes)}   {split}",
              f"  hop: {max(1, found.window // 2)}   # windows overlap by half"]
    if found.source == "csv" and found.integers:
        lines += ["  normalize: standard   # whole numbers in int16's range: raw sensor counts, standardised per axis",
                  "   # ((raw - mean) / std, fitted on train) by the same fixed-point step on the device"]
    if found.source == "wav":
        lines += ["", "features:",
                  "  kind: mfcc",
                  "  frame_length: 32ms",
                  "  frame_stride: 16ms",
                  "  mel_bins: 20",
                  "  coefficients: 10"]
        layers = ["    - {type: conv1d, filters: 12, kernel_size: 3, activation: relu}",
                  "    - {type: flatten}"]
    elif found.window >= 32:
        layers = ["    - {type: conv1d, filters: 8, kernel_size: 5, activation: relu}",
                  "    - {type: maxpool1d, pool_size: 2}",
                  "    - {type: conv1d, filters: 16, kernel_size: 3, activation: relu}",
                  "    - {type: maxpool1d, pool_size: 2}",
                  "    - {type: flatten}",
                  "    - {type: dropout, rate: 0.2}"]
    else:
        layers = ["    - {type: flatten}",
                  "    - {type: dense, units: 16, activation: relu}"]
    lines += ["",
              "model:",
              "  layers:   # conv1d, maxpool1d, avgpool1d, flatten, dense, dropout",
              *layers,
              f"    - {{type: dense, units: {len(classes)}}}   # one unit per class",
              "  epochs: 30",
              "",
              "quantization:",
              "  scheme: int8",
              "  io: int8",
              "",
              "target:",
              "  board: mps2-an386   # `tinypipe boards` lists them",
              "",
              "engine: native",
              "",
              "budgets:",
              "  accuracy_device_min: 0.8   # the run fails (exit 1) below this",
              ""]
    return "\n".join(_aligned(lines))


def init_from_data(directory: Path, data: str) -> tuple[Path, Inferred]:
    """A new project in `directory` for the recordings in `data` (a path as the user typed it, from the current
    directory); project.yaml refers to them by a path relative to itself."""
    import os

    from tinypipe.config.loader import load_project

    directory = Path(directory)
    path = directory / "project.yaml"
    if path.exists():
        raise UserError(f"{path} already exists", "choose another directory, or edit that file")
    found = infer(Path(data), data.rstrip("/") or data)
    name = directory.resolve().name or "project"
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)
    directory.mkdir(parents=True, exist_ok=True)
    # as typed when absolute; else relative to project.yaml (which is how the data stage reads a relative path)
    where = data if Path(data).is_absolute() else Path(os.path.relpath(Path(data).resolve(), directory.resolve()))
    atomic_write_text(path, render_from_data(safe, Path(where).as_posix(), found, typed=data))
    try:
        load_project(directory)
    except UserError as exc:  # what we wrote must load: anything else is our bug, and the file must not stay
        path.unlink()
        raise RuntimeError(f"init --data wrote a project.yaml that does not load: {exc}") from exc
    return path, found
