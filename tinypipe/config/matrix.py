"""Matrix expansion: a project with `matrix:` becomes one Variant per (board, engine) cell."""

from __future__ import annotations

import itertools
from pathlib import Path

from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant
from tinypipe.core.errors import UserError


def expand(project: Project, board: str | None = None, engine: str | None = None,
           project_dir: Path | None = None) -> list[Variant]:
    """All variants, optionally narrowed by `--board` / `--engine` from the command line."""
    boards = (project.matrix.board if project.matrix and project.matrix.board else None) or [project.target.board]
    engines = (project.matrix.engine if project.matrix and project.matrix.engine else None) or [project.engine]
    if board is not None:
        if board not in BOARDS:
            raise UserError(f"--board {board}: unknown board", f"known boards: {', '.join(BOARDS)}")
        boards = [board]
    if engine is not None:
        if engine not in ("native", "tflm"):
            raise UserError(f"--engine {engine}: unknown engine", "choose native or tflm")
        engines = [engine]
    variants = []
    for b, e in itertools.product(boards, engines):
        target = project.target.model_copy(update={"board": b})
        cell = project.model_copy(update={"target": target, "engine": e})
        variants.append(Variant(name=f"{b}-{e}", project=cell, board=BOARDS[b], engine=e, project_dir=project_dir))
    return variants
