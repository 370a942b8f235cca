"""The generic stages, one module each, on the contract in `base.py`. Which stages a variant runs, in which
order, is the engine registry's (`tinypipe.engines.pipeline_for`); stage modules never import each other."""

from __future__ import annotations

import importlib
from types import ModuleType


def load(module: str) -> ModuleType:
    """Import a stage module by dotted path (cheap: heavy imports live inside `run`)."""
    return importlib.import_module(module)
