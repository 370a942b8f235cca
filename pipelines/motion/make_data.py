"""Lay out BasicMotions — real smartwatch recordings that ship inside the `aeon` package — as CSV folders.

    pip install aeon            # or: pip install -e '.[examples]'
    python pipelines/motion/make_data.py [OUT]      # OUT defaults to data/ next to this file

BasicMotions (Clements et al., timeseriesclassification.com): four students wore a smartwatch while standing,
walking, running and playing badminton; each series is 10 s of a 3-axis accelerometer and a 3-axis gyroscope at
10 Hz (100 samples, 6 channels), 40 training and 40 test series, 10 of each class in each. Writes

    OUT/train/<class>/train_NN.csv and OUT/test/<class>/test_NN.csv     header t,acc_x,acc_y,acc_z,gyr_x,gyr_y,gyr_z

(NN is the series' index in aeon's file, t in seconds), i.e. the fixed train/test split tinypipe's `data.source:
csv` reads. The files are read from the package's bundled `BasicMotions_{TRAIN,TEST}.ts` without importing aeon
(whose numba start-up takes seconds) and without the network; they are the arrays `aeon.datasets.
load_basic_motions(split=...)` returns, in the same order.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

RATE_HZ = 10
COLUMNS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")  # aeon's channel order: accelerometer, gyroscope


def bundled_file(split: str) -> Path:
    """aeon's bundled BasicMotions_<SPLIT>.ts, found without importing aeon."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("make_data.py: the `aeon` package is not installed: pip install aeon "
                 "(or pip install -e '.[examples]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "BasicMotions" / \
        f"BasicMotions_{split.upper()}.ts"
    if not path.is_file():
        sys.exit(f"make_data.py: {path} is missing: this aeon does not bundle BasicMotions")
    return path


def read_ts(path: Path) -> tuple[list[str], list[tuple[str, list[list[str]]]]]:
    """(class labels declared by the header, [(label, channels: [[value, ...] per channel])]) of a .ts file."""
    labels: list[str] = []
    series = []
    in_data = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower().startswith("@classlabel"):
                labels = line.split()[2:]
            in_data = line.lower() == "@data"
            continue
        *channels, label = line.split(":")
        if len(channels) != len(COLUMNS) or label not in labels:
            raise ValueError(f"{path}:{number}: {len(channels)} channels, label {label!r}")
        values = [c.split(",") for c in channels]
        if len({len(v) for v in values}) != 1:
            raise ValueError(f"{path}:{number}: channels of unequal length")
        series.append((label, values))
    return labels, series


def write(out: Path) -> dict[str, int]:
    """Write both splits under `out`; returns the number of series per split."""
    counts = {}
    for split in ("train", "test"):
        _, series = read_ts(bundled_file(split))
        for index, (label, channels) in enumerate(series):
            path = out / split / label.lower() / f"{split}_{index:02d}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = ["t," + ",".join(COLUMNS)]
            rows += [f"{i / RATE_HZ:.1f}," + ",".join(c[i] for c in channels) for i in range(len(channels[0]))]
            path.write_text("\n".join(rows) + "\n")
        counts[split] = len(series)
    return counts


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "data"
    done = write(target)
    print(f"BasicMotions: {done['train']} train and {done['test']} test series of 100 samples x 6 channels -> {target}")
