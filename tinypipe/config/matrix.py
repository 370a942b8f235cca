"""Matrix expansion: a validated project with `matrix:` becomes one Variant per cell, the cartesian product of
its boards, engines and sweeps (any other key of `matrix:`, a key path such as `model.layers[0].filters`).

Plain JSON only (a no-op run imports no pydantic): the loader has already validated every sweep value in a full
config and stored each one normalized (as the schema dumps it), so a cell is the validated config with the
sweep values set at their paths.
"""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path
from typing import Any

from tinypipe.config.boards import BOARDS
from tinypipe.config.variant import Variant
from tinypipe.core.errors import UserError

ENGINES = ("native", "tflm")
FIXED_AXES = ("board", "engine")
MAX_CELLS = 1024  # far beyond any sweep one machine runs; a typo'd range of thousands is refused, not expanded
MAX_NAME = 120  # characters in a variant name (a directory name under .tinypipe/out/)

_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*(?:\[(?:0|[1-9][0-9]*)\])*"
_PATH = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,23}$")


def parse_path(text: str) -> tuple | None:
    """`model.layers[0].filters` -> ("model", "layers", 0, "filters"); None if it is not a key path."""
    if not _PATH.match(text):
        return None
    out: list = []
    for segment in text.split("."):
        name, *indexes = segment.replace("]", "").split("[")
        out.append(name)
        out.extend(int(i) for i in indexes)
    return tuple(out)


def sweeps(config: dict[str, Any]) -> dict[str, list[Any]]:
    """The sweep axes of a config (JSON), path text -> values, sorted by path: the order of a mapping does not
    survive the config cache (canonical JSON), and the names and order of the cells must not depend on it."""
    matrix = config.get("matrix") or {}
    return {k: matrix[k] for k in sorted(matrix) if k not in FIXED_AXES}


def set_path(data: Any, path: tuple, value: Any) -> None:
    """Set `value` at `path` in place, creating missing mappings; raises LookupError (with the reason) when
    the path runs through a list that is too short, or into something that is neither a mapping nor a list."""
    cur = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = _text(path[:i]) or "the top level"
        if cur is None:
            raise LookupError(f"{where} is not set")
        if isinstance(part, int):
            if not isinstance(cur, list):
                raise LookupError(f"{where} is not a list")
            if part >= len(cur):
                raise LookupError(f"{where} has {len(cur)} item{'s' if len(cur) != 1 else ''}, no [{part}]")
            if last:
                cur[part] = value
            else:
                cur = cur[part]
        else:
            if not isinstance(cur, dict):
                raise LookupError(f"{where} is not a mapping")
            if last:
                cur[part] = value
            else:
                if cur.get(part) is None and not isinstance(path[i + 1], int):
                    cur[part] = {}
                cur = cur.get(part)


def _copied_along(data: dict[str, Any], path: tuple) -> dict[str, Any]:
    """A copy of `data` for `set_path(copy, path, …)`: the mappings and lists on `path` are copied, everything
    else is shared with `data` (a deep copy per cell is most of the cost of a 1,000-cell sweep)."""
    top = dict(data)
    cur: Any = top
    for part in path[:-1]:
        try:
            child = cur[part]
        except (LookupError, TypeError):
            break  # set_path creates what is missing, or raises
        if not isinstance(child, (dict, list)):
            break
        cur[part] = child = copy.copy(child)
        cur = child
    return top


def _text(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _short(path: tuple) -> str:
    """The axis in a variant name: the path without its section, indexes inlined (`layers0.filters`); a section's
    `kind` is named by its section (`features_spectral` reads better than `kind_spectral`)."""
    rest = path[1:] if len(path) > 1 and path[1:] != ("kind",) else path[:1]
    out = ""
    for part in rest:
        out += str(part) if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _label(value: Any) -> str | None:
    """A value as it reads in a name, or None when it does not make a short, filesystem-safe one."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        whole = isinstance(value, float) and value.is_integer() and abs(value) < 1e15
        text = str(int(value)) if whole else repr(value) if isinstance(value, float) else str(value)
    else:
        return None
    return text if _LABEL.match(text) else None


def axis_parts(config: dict[str, Any]) -> list[list[str]]:
    """Per sweep axis, the name part of each of its values: `epochs10`, `io_float32`, or `path_v0` by position
    when the values do not all make short, distinct labels. Distinct within an axis by construction."""
    axes = sweeps(config)
    paths = [parse_path(k) or (k,) for k in axes]
    shorts = [_short(p) for p in paths]
    if len(set(shorts)) != len(shorts):
        shorts = [_text(p).replace("[", "").replace("]", "") for p in paths]
    out = []
    for short, values in zip(shorts, axes.values()):
        labels = [_label(v) for v in values]
        if None in labels or len(set(labels)) != len(labels):
            out.append([f"{short}_v{i}" for i in range(len(values))])
        else:
            out.append([f"{short}{lab}" if re.match(r"^-?[0-9]", lab) else f"{short}_{lab}" for lab in labels])
    return out


def cell_names(boards: list[str], engines: list[str], parts: list[list[str]]) -> list[str]:
    """Names of the cells in product order (board, engine, then each sweep): readable, filesystem-safe, unique."""
    names = ["-".join(c) for c in itertools.product(boards, engines, *parts)]
    if len(set(names)) == len(names) and max(map(len, names)) <= MAX_NAME:
        return names
    # a sweep value with a `-` can make two readable names meet, and many axes a long one: number the sweep cells
    sweep_cells = list(itertools.product(*[range(len(p)) for p in parts]))
    return [f"{b}-{e}-cell{k}" for b, e, k in itertools.product(boards, engines, range(len(sweep_cells)))]


def expand(config: dict[str, Any], board: str | None = None, engine: str | None = None,
           project_dir: Path | None = None) -> list[Variant]:
    """All variants of a validated config (JSON), optionally narrowed by `--board` / `--engine`."""
    matrix = config.get("matrix") or {}
    boards = matrix.get("board") or [config["target"]["board"]]
    engines = matrix.get("engine") or [config["engine"]]
    if board is not None:
        if board not in BOARDS:
            raise UserError(f"--board {board}: unknown board", f"known boards: {', '.join(BOARDS)}")
        boards = [board]
    if engine is not None:
        if engine not in ENGINES:
            raise UserError(f"--engine {engine}: unknown engine", "choose native or tflm")
        engines = [engine]
    axes = sweeps(config)
    paths = [parse_path(k) for k in axes]
    parts = axis_parts(config)
    names = cell_names(boards, engines, parts)
    variants = []
    for name, (b, e, *picks) in zip(names, itertools.product(boards, engines, *[list(v) for v in axes.values()])):
        cell = dict(config, target=dict(config["target"], board=b), engine=e)
        for path, value in zip(paths, picks):
            cell = _copied_along(cell, path)
            set_path(cell, path, copy.deepcopy(value))
        variants.append(Variant(name=name, config=cell, board=BOARDS[b], engine=e, project_dir=project_dir,
                                sweep=dict(zip(axes, picks))))
    return variants
