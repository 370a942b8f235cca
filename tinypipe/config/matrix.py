"""Matrix expansion: a validated project with `matrix:` becomes one Variant per (board, engine) cell."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tinypipe.config.boards import BOARDS
from tinypipe.config.variant import Variant
from tinypipe.core.errors import UserError

ENGINES = ("native", "tflm")


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
    variants = []
    for b, e in itertools.product(boards, engines):
        cell = dict(config, target=dict(config["target"], board=b), engine=e)
        variants.append(Variant(name=f"{b}-{e}", config=cell, board=BOARDS[b], engine=e, project_dir=project_dir))
    return variants
