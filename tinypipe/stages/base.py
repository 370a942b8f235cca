"""The stage contract: a stage is a pure function `inputs -> outputs` with a declared key.

A stage module defines `STAGE = Stage(...)` and a `run(ctx) -> dict` function. The module must be cheap to
import (no numpy/TensorFlow at top level): the engine imports every stage module to compute keys, and a no-op
run must stay fast. Heavy imports go inside `run`.

The store key of a stage is sha256 over canonical JSON of: stage name, `version`, `config(variant)`, the output
hashes of the `needs` stages, and `tools(variant)`. Bump `version` whenever the stage's code changes what it
writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from tinypipe.config.schema import Variant


def _no_tools(variant: "Variant") -> dict:
    return {}


def _always(variant: "Variant") -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    name: str
    version: str
    needs: tuple[str, ...]
    # the config subtree this stage depends on (JSON-able); feeds the key and `status --why`
    config: Callable[["Variant"], dict]
    # tool versions that feed the key (e.g. {"rustc": "rustc 1.96.0 ..."}); must be cheap (cached)
    tools: Callable[["Variant"], dict] = _no_tools
    # True: output lives in the user-level cache ($XDG_CACHE_HOME/tinypipe), shared between projects
    shared: bool = False
    description: str = ""
    # what may still make this stage's output differ on another machine although every input is the same (the
    # lock records it and `verify` prints it); empty for a stage that is bit-reproducible everywhere
    caveat: str = ""
    # whether a variant's pipeline has this stage at all (the features stage: not for `features.kind: raw`)
    runs_for: Callable[["Variant"], bool] = _always
    # stages read when the variant's pipeline has them (`features`): ctx.inputs holds them only then, and so does
    # the key, so a variant without them keeps the key it had before they existed
    uses: tuple[str, ...] = ()


@dataclass
class StageContext:
    variant: "Variant"
    inputs: dict[str, Path]  # upstream stage name -> its store entry directory (read-only)
    out: Path  # an empty temporary directory: write every output here; the engine renames it into the store
    project_dir: Path
    _log: Callable[[str], None] = field(default=print)
    _progress: Callable[[int, int, str], None] = field(default=lambda done, total, msg: None)

    def log(self, message: str) -> None:
        self._log(message)

    def progress(self, done: int, total: int, message: str = "") -> None:
        self._progress(done, total, message)

    def input(self, stage: str, filename: str) -> Path:
        return self.inputs[stage] / filename


StageResult = dict[str, Any]  # JSON summary of a stage run (metrics), kept in the entry's meta.json
