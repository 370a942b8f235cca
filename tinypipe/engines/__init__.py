"""The engine registry: the one place that names the engines. Adding an engine is adding a package here.

`pipeline_for(name)` gives a variant's stages in order: the generic ones around the engine's own.
"""

from __future__ import annotations

import importlib

from tinypipe.core.errors import UserError
from tinypipe.engines.base import Engine

ENGINES = {  # name -> package holding `ENGINE` (cheap to import: the engine's internals load in its stages)
    "native": "tinypipe.engines.native",
    "tflm": "tinypipe.engines.tflm",
}
DEFAULT_ENGINE = "native"

# `features` runs only for variants that compute features (its STAGE.runs_for)
BEFORE = (("data", "tinypipe.stages.data"), ("features", "tinypipe.stages.features"),
          ("train", "tinypipe.stages.train"), ("quantize", "tinypipe.stages.quantize"),
          ("reference", "tinypipe.stages.reference"))
AFTER = (("toolchain", "tinypipe.stages.toolchain"), ("firmware", "tinypipe.stages.firmware"),
         ("build", "tinypipe.stages.build"), ("run", "tinypipe.stages.run"))


def get(name: str) -> Engine:
    if name not in ENGINES:
        raise UserError(f"unknown engine {name!r}", f"choose one of: {', '.join(ENGINES)}")
    return importlib.import_module(ENGINES[name]).ENGINE


def pipeline_for(name: str) -> tuple[tuple[str, str], ...]:
    """(role, stage module) for every stage the engine's pipeline runs, in order."""
    return (*BEFORE, *get(name).stages, *AFTER)


def all_stage_names() -> tuple[str, ...]:
    """Every stage role of every engine, in pipeline order (for `--until` and help)."""
    middle = [role for name in ENGINES for role, _ in get(name).stages if role != "codegen"]
    return tuple(dict.fromkeys([r for r, _ in BEFORE] + middle + ["codegen"] + [r for r, _ in AFTER]))
