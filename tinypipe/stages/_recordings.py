"""The user's own data: CSV recordings (`data.source: csv`) or WAV recordings (`data.source: wav`, mono PCM
16-bit) found, read, checked, split by recording and cut into windows; or windows the user cut, from a NumPy
`.npz` file (`data.source: npz`), checked.

Layout of `data.path`: `<class>/*.csv` (one folder per class, one file per recording), or `train/<class>/*.csv`
and `test/<class>/*.csv` for a split the user fixed (`*.wav` likewise). Each CSV file has a header row naming its
columns; `sensor.axes` picks columns by name, in order. A WAV file is one axis, its samples as int16 values;
one at another rate than `sensor.sample_rate_hz` is resampled (linear interpolation, rounded to integers). Every
problem with the files is a UserError naming the file and the row (rows count the header as row 1, like an
editor's line numbers), raised before any window is written.

Not a stage (no STAGE). Cheap to import: numpy inside functions; `recordings_key` only stats files and hashes the
ones whose mtime or size changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tinypipe.core.errors import UserError
from tinypipe.core.hashing import file_hash, file_hashes

if TYPE_CHECKING:
    import numpy as np

    from tinypipe.config.schema import Variant

SPLITS = ("train", "val", "test")
FIXED = ("train", "test")  # sub-folders of data.path that mean "the user fixed the split"


def recordings_dir(variant: "Variant") -> Path:
    """`data.path`, resolved against the project directory; it must be a folder."""
    raw = variant.config["data"]["path"]
    root = variant.resolve(raw)
    if not root.is_dir():
        raise UserError(f"data.path: folder not found: {root}",
                        "point data.path at the folder of recordings; a relative path starts at project.yaml's "
                        "directory")
    return root


def npz_file(variant: "Variant") -> Path:
    """`data.path` of `source: npz`, resolved against the project directory; it must be a file."""
    path = variant.resolve(variant.config["data"]["path"])
    if not path.is_file():
        raise UserError(f"data.path: file not found: {path}",
                        "point data.path at the .npz file; a relative path starts at project.yaml's directory")
    return path


def recordings_key(variant: "Variant") -> dict[str, str]:
    """{path relative to data.path: sha256} of every recording (csv), or {file name: sha256} of the .npz: the data
    stage's key names each file, so `status --why` can say which recording was added, removed or edited."""
    if variant.config["data"]["source"] == "npz":
        path = npz_file(variant)
        return {path.name: file_hash(path)}
    return file_hashes(recordings_dir(variant), SUFFIX[variant.config["data"]["source"]])


SUFFIX = {"csv": ".csv", "wav": ".wav"}  # the recording files of each recordings source


# --- finding the recordings --------------------------------------------------------------------------------------

def _class_folders(folder: Path) -> dict[str, Path]:
    return {d.name: d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def _recording_files(folder: Path, suffix: str) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix == suffix and not f.name.startswith("."))


def discover(root: Path, label: str, wanted: list[str] | None,
             suffix: str = ".csv") -> tuple[list[str], dict[str, dict[str, list[Path]]]]:
    """(classes in label order, {part: {class: recordings}}), part "all" or, for a fixed split, "train" and "test".
    `label` is how messages name the folder (data.path as written); `suffix` the recordings' (.csv, .wav)."""
    fixed = [(root / name).is_dir() for name in FIXED]
    if any(fixed) and not all(fixed):
        have, lack = (FIXED if fixed[0] else FIXED[::-1])
        raise UserError(f"data.path: {label}/ has a {have}/ folder but no {lack}/ folder",
                        f"for a fixed split put recordings in {label}/train/<class>/ and {label}/test/<class>/; "
                        "otherwise one folder per class, and tinypipe splits them")
    parts = {name: _class_folders(root / name) for name in FIXED} if all(fixed) else {"all": _class_folders(root)}
    found = sorted(set().union(*(set(folders) for folders in parts.values())))
    if wanted is None:
        classes = found
        if len(classes) < 2:
            raise UserError(f"data.path: {label}/ has {len(classes)} class folder(s); a classifier needs 2 or more",
                            f"put each class's recordings in its own folder: {label}/<class>/*{suffix}")
    else:
        classes = list(wanted)
        if len(set(classes)) != len(classes):
            raise UserError("data.classes: a class is listed twice", "list each class once")
    layout: dict[str, dict[str, list[Path]]] = {}
    for part, folders in parts.items():
        where = label if part == "all" else f"{label}/{part}"
        layout[part] = {}
        for name in classes:
            if name not in folders:
                raise UserError(f"data.classes: class {name!r} has no folder {where}/{name}/ "
                                f"(class folders there: {', '.join(sorted(folders)) or 'none'})",
                                "add the folder of recordings, or drop the class from data.classes")
            files = _recording_files(folders[name], suffix)
            if not files:
                raise UserError(f"data.path: {where}/{name}/ holds no {suffix} recording",
                                f"add the class's recordings (one {suffix} file each), or drop the class")
            layout[part][name] = files
    return classes, layout


# --- reading one recording --------------------------------------------------------------------------------------

def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


OTHER_SEPARATORS = {";": ("semicolons", ";"), "\t": ("tabs", "\\t"), "|": ("bars", "|")}  # what, as sed spells it


def _check_separator(header: list[str], name: str) -> None:
    """A header that is one field holding `;`, tabs or `|`: the file is not comma-separated (a spreadsheet's
    export in a locale whose decimal mark is the comma, or a TSV), which would otherwise read as one column."""
    if len(header) == 1:
        for separator, (what, spelled) in OTHER_SEPARATORS.items():
            if separator in header[0]:
                raise UserError(f"{name} row 1: fields separated by {what}, not commas ({header[0][:60]!r})",
                                "save the recording as comma-separated values with decimal points; "
                                f"e.g. sed -i 's/{spelled}/,/g' on a file without decimal commas")


def read_recording(path: Path, name: str, axes: list[str]) -> "np.ndarray":
    """The columns `axes` of one CSV recording, float32 [rows, len(axes)]; `name` is how messages name the file."""
    import csv
    import io

    import numpy as np

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = raw[:exc.start].count(b"\n") + 1
        raise UserError(f"{name} row {row}: not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})",
                        "save the recording as UTF-8 CSV") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise UserError(f"{name}: not a CSV file ({exc})", "save the recording as comma-separated values") from None
    if not any(cell.strip() for row in rows for cell in row):
        raise UserError(f"{name}: the file is empty", "delete it, or record again")
    header = [cell.strip() for cell in rows[0]]
    _check_separator(header, name)
    if header and all(_is_number(cell) for cell in header):
        raise UserError(f"{name} row 1: no header row (the first row is numbers: {','.join(rows[0])[:60]})",
                        f"add a first row naming the columns, e.g. {','.join(axes)}")
    missing = [a for a in axes if a not in header]
    if missing:
        raise UserError(f"{name}: no column {missing[0]!r} (columns found: {', '.join(header)})",
                        "name the columns in the header row as in sensor.axes, or change sensor.axes")
    # (row number in the file, fields); blank lines are skipped but keep the numbering of the rows after them
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if not body:
        raise UserError(f"{name}: a header and no samples", "delete it, or record again")
    for number, row in body:
        if len(row) != len(header):
            raise UserError(f"{name} row {number}: {len(row)} fields, the header has {len(header)}",
                            "give every row one value per column (a missing value is not allowed)")
    columns = [header.index(a) for a in axes]
    cells = [[row[c].strip() for c in columns] for _, row in body]
    try:
        values = np.asarray(cells, dtype=np.float64)
    except ValueError:
        for (number, _), row in zip(body, cells):
            for axis, cell in zip(axes, row):
                if not _is_number(cell):
                    raise UserError(f"{name} row {number}, column {axis!r}: {cell!r} is not a number",
                                    "every sample of the axes' columns must be a number") from None
        raise
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        i, j = bad[0]
        raise UserError(f"{name} row {body[i][0]}, column {axes[j]!r}: {cells[i][j]!r} is not a finite number",
                        "drop or fill the missing samples before training (NaN and infinity are not allowed)")
    return values.astype(np.float32)


# --- windows and the split by recording -----------------------------------------------------------------------

def cut_windows(samples: "np.ndarray", window: int, hop: int, short: str) -> "np.ndarray":
    """[k, window, axes]: windows `hop` samples apart (the tail after the last whole window unused); a recording
    shorter than `window` gives one window padded with its last sample (`short: pad`) or none (`drop`)."""
    import numpy as np

    n = len(samples)
    if n < window:
        if short == "drop":
            return np.zeros((0, window, samples.shape[1]), dtype=np.float32)
        return np.concatenate([samples, np.repeat(samples[-1:], window - n, axis=0)])[None]
    starts = range(0, n - window + 1, hop)
    return np.stack([samples[s:s + window] for s in starts])


def split_recordings(layout: dict[str, dict[str, list[Path]]], classes: list[str], fractions, seed: int,
                     label: str) -> dict[str, list[tuple[int, Path]]]:
    """{split: [(label, recording)]}: per class, the recordings shuffled (seeded) and cut by the fractions —
    whole recordings, so windows of one recording never sit in two splits. A fixed split keeps its test folder
    and carves validation from its train folder."""
    import numpy as np

    rng = np.random.default_rng([seed, 1_000_003])
    fixed = "all" not in layout
    val_share = fractions.val / (fractions.train + fractions.val) if fixed else fractions.val
    out: dict[str, list[tuple[int, Path]]] = {s: [] for s in SPLITS}
    for index, name in enumerate(classes):
        pool = layout["train" if fixed else "all"][name]
        order = [pool[i] for i in rng.permutation(len(pool))]
        n_test = 0 if fixed else max(1, round(len(order) * fractions.test))
        n_val = max(1, round(len(order) * val_share)) if val_share > 0 else 0
        if len(order) - n_test - n_val < 1:
            where = f"{label}/train/{name}" if fixed else f"{label}/{name}"
            need = n_test + n_val + 1
            raise UserError(f"data.path: {where}/ has {len(order)} recording(s); the split needs at least {need} "
                            f"({'1 test, ' if n_test else ''}{n_val} validation, 1 training)",
                            "add recordings of the class (windows of one recording never go to two splits), "
                            "or set data.split.val to 0")
        test = layout["test"][name] if fixed else order[:n_test]
        out["test"] += [(index, p) for p in test]
        out["val"] += [(index, p) for p in order[n_test:n_test + n_val]]
        out["train"] += [(index, p) for p in order[n_test + n_val:]]
    return out


@dataclass
class Recordings:
    classes: list[str]
    arrays: dict[str, "np.ndarray"]  # x_train, y_train, x_val, y_val, x_test, y_test (the data stage's npz)
    sources: dict[str, "np.ndarray"]  # split -> int32 [windows]: the recording each window was cut from
    recordings: dict[str, list[str]]  # split -> recordings (paths relative to data.path), in `sources` order
    dropped: list[str] = field(default_factory=list)  # recordings shorter than a window, dropped
    samples: dict[str, int] = field(default_factory=dict)  # recording -> its length in samples (as read)


def load(root: Path, label: str, wanted: list[str] | None, read, suffix: str, axes: int, window: int,
         hop: int | None, short: str, fractions, seed: int) -> Recordings:
    """Every recording read (`read(path, name)` -> float32 [samples, axes]) and checked, split by recording, cut
    into windows; windows shuffled within a split."""
    import numpy as np

    classes, layout = discover(root, label, wanted, suffix)
    assignment = split_recordings(layout, classes, fractions, seed, label)
    rng = np.random.default_rng([seed, 1_000_033])
    arrays, sources, recordings, dropped, lengths = {}, {}, {}, [], {}
    for split in SPLITS:
        xs, ys, src, names = [], [], [], []
        for index, path in assignment[split]:
            rel = path.relative_to(root).as_posix()
            samples = read(path, f"{label}/{rel}")
            lengths[rel] = int(len(samples))
            windows = cut_windows(samples, window, hop or window, short)
            if not len(windows):
                dropped.append(rel)
            xs.append(windows)
            ys.append(np.full(len(windows), index, dtype=np.int32))
            src.append(np.full(len(windows), len(names), dtype=np.int32))
            names.append(rel)
        x = np.concatenate(xs) if xs else np.zeros((0, window, axes), dtype=np.float32)
        y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.int32)
        s = np.concatenate(src) if src else np.zeros(0, dtype=np.int32)
        for index, name in enumerate(classes):
            if split != "val" and not (y == index).any():
                raise UserError(f"data.path: class {name!r} has no {split} window: its {split} recordings are all "
                                f"shorter than sensor.window ({window} samples) and were dropped",
                                "record longer, shorten sensor.window, or set data.short: pad")
        order = rng.permutation(len(y))
        arrays[f"x_{split}"], arrays[f"y_{split}"], sources[split] = x[order], y[order], s[order]
        recordings[split] = names
    return Recordings(classes, arrays, sources, recordings, dropped, lengths)


# --- reading one WAV recording ----------------------------------------------------------------------------------

WAV_FIX = "export it as mono 16-bit PCM WAV (e.g. `sox in.wav -c 1 -b 16 -e signed-integer out.wav`)"


@dataclass
class Resampled:
    """A WAV file read at another rate than sensor.sample_rate_hz (and resampled to it)."""
    name: str
    rate_hz: int


def read_wav(path: Path, name: str, rate_hz: float, resampled: list[Resampled]) -> "np.ndarray":
    """A mono PCM 16-bit WAV file as float32 [samples, 1] holding its int16 values, at `rate_hz`: a file at
    another rate is resampled by linear interpolation (rounded to integers, deterministic) and noted in
    `resampled`. Anything but mono 16-bit PCM is a UserError naming what the file holds."""
    import wave

    import numpy as np

    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, file_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise UserError(f"{name}: not a PCM WAV file ({exc})", WAV_FIX) from None
    if channels != 1:
        raise UserError(f"{name}: {channels} channels; data.source: wav reads mono recordings", WAV_FIX)
    if width != 2:
        raise UserError(f"{name}: {8 * width}-bit samples; data.source: wav reads 16-bit PCM", WAV_FIX)
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
    if not len(samples):
        raise UserError(f"{name}: the recording has no samples", "delete it, or record again")
    if file_rate != rate_hz:
        resampled.append(Resampled(name, file_rate))
        count = max(1, int(round(len(samples) * rate_hz / file_rate)))
        at = np.arange(count) * (file_rate / rate_hz)  # each output sample's time, in input samples
        samples = np.clip(np.rint(np.interp(at, np.arange(len(samples)), samples)), -32768, 32767)
    return samples.astype(np.float32)[:, None]


# --- windows from a .npz file ---------------------------------------------------------------------------------

NPZ_WHOLE = ("x", "y")
NPZ_FIXED = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: Path, label: str, classes: list[str], axes: list[str], window: int) -> dict[str, "np.ndarray"]:
    """The checked arrays of a `source: npz` file: {x, y} or {x_train, y_train, x_test, y_test[, x_val, y_val]}
    (x float32 [n, window, axes], y int32 in [0, len(classes)))."""
    import zipfile

    import numpy as np

    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{label}: not a NumPy .npz file ({exc})",
                        "save the windows with numpy.savez(path, x=windows, y=labels)") from None
    if not hasattr(loaded, "files"):
        raise UserError(f"{label}: a single .npy array, not an .npz file of arrays",
                        "save the windows with numpy.savez(path, x=windows, y=labels)")
    with loaded:
        names = set(loaded.files)
        val = {"x_val", "y_val"} & names
        if names >= set(NPZ_FIXED) and not names & set(NPZ_WHOLE) and len(val) != 1:
            wanted = NPZ_FIXED + (("x_val", "y_val") if val else ())
        elif names >= set(NPZ_WHOLE) and not names & {*NPZ_FIXED, *val}:
            wanted = NPZ_WHOLE
        else:
            raise UserError(f"{label}: arrays {', '.join(sorted(names)) or 'none'}; expected x and y, or x_train, "
                            "y_train, x_test and y_test (optionally x_val and y_val)",
                            "save the windows with numpy.savez(path, x=windows, y=labels)")
        try:
            arrays = {name: loaded[name] for name in wanted}
        except ValueError as exc:  # an object array needs pickle, which a data file must never run
            raise UserError(f"{label}: {exc}", "store plain numeric arrays (no Python objects)") from None
    out = {}
    for xname in wanted[::2]:
        yname = "y" + xname[1:]
        x, y = arrays[xname], arrays[yname]
        want = (window, len(axes))
        if x.ndim != 3 or x.shape[1:] != want or not (np.issubdtype(x.dtype, np.integer)
                                                        or np.issubdtype(x.dtype, np.floating)):
            raise UserError(f"{label}: {xname} is {x.dtype} {list(x.shape)}; sensor.window and sensor.axes need "
                            f"numbers of shape [windows, {window}, {len(axes)}]",
                            "cut the windows to sensor.window samples of every axis in sensor.axes, in order")
        bad = np.argwhere(~np.isfinite(x))
        if len(bad):
            where = ", ".join(str(int(i)) for i in bad[0])
            raise UserError(f"{label}: {xname}[{where}] is {x[tuple(bad[0])]}, not a finite number",
                            "drop or fill the missing samples before training (NaN and infinity are not allowed)")
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise UserError(f"{label}: {yname} is {y.dtype} {list(y.shape)}; it needs one integer label per window "
                            f"of {xname} ({len(x)})", "give y as integer indices into data.classes")
        outside = np.flatnonzero((y < 0) | (y >= len(classes)))
        if len(outside):
            i = int(outside[0])
            raise UserError(f"{label}: {yname}[{i}] is {int(y[i])}; data.classes has {len(classes)} classes "
                            f"(labels 0 to {len(classes) - 1})", "list one class per label in data.classes")
        if xname != "x_val":
            missing = [c for i, c in enumerate(classes) if not (y == i).any()]
            if missing:
                raise UserError(f"{label}: {yname} has no window of class {missing[0]!r}",
                                "every class needs windows to train on and to test with")
        out[xname], out[yname] = x.astype(np.float32), y.astype(np.int32)
    return out
