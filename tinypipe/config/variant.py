"""A Variant is one matrix cell: the validated project (as JSON) with board, engine and any sweep values set.

Stage keys read `variant.config` — plain JSON — so a no-op run never needs pydantic: the validated config comes
from the config cache. `variant.project` gives the typed pydantic model, validated on first use (stages that
actually run use it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinypipe.config.boards import Board

if TYPE_CHECKING:
    from tinypipe.config.schema import Project


class Variant:
    def __init__(self, name: str, project: "Project | None" = None, board: Board | None = None,
                 engine: str | None = None, config: dict[str, Any] | None = None,
                 project_dir: Path | None = None, sweep: dict[str, Any] | None = None):
        if config is None:
            if project is None:
                raise TypeError("Variant needs a project or its validated config")
            config = project.model_dump(mode="json")
        self.name = name
        self.config = config
        self.board = board
        self.engine = engine or config.get("engine", "native")
        self.project_dir = project_dir
        self.sweep = sweep or {}  # this cell's sweep values by key path (`{"model.epochs": 10}`)
        self._project = project

    @property
    def project(self) -> "Project":
        if self._project is None:
            from tinypipe.config.schema import Project

            self._project = Project.model_validate(self.config)
        return self._project

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the project directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() or self.project_dir is None else self.project_dir / p

    @property
    def triple(self) -> str:
        return self.config["target"].get("triple") or self.board.triple

    @property
    def cpu(self) -> str:
        return self.config["target"].get("cpu") or self.board.cpu

    @property
    def emulator(self) -> Board | None:
        """The board whose QEMU machine runs this variant, or None to run on a debug probe (`target.runner:
        probe` on a board pyocd knows, or a board QEMU does not model)."""
        if self.config["target"].get("runner", "emulator") == "probe" and self.board.pyocd_target:
            return None
        return self.board.emulator

    def __repr__(self) -> str:
        return f"Variant({self.name!r})"
