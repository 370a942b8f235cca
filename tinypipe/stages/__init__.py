"""Stage modules, one per pipeline stage. `pipeline_for` says which stages a variant needs, in order."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from tinypipe.core.errors import UserError

# Order matters: a stage's `needs` come before it. Each entry is a role; ENGINE_MODULES says which module
# fills a role for an engine (both engines produce a `codegen` output with the same firmware contract).
NATIVE_PIPELINE = ("data", "train", "quantize", "reference", "codegen", "toolchain", "firmware", "build", "run")
TFLM_PIPELINE = ("data", "train", "quantize", "reference", "tflm_ops", "tflm_lib", "codegen", "toolchain", "firmware",
                 "build", "run")
ENGINE_MODULES = {"native": {}, "tflm": {"codegen": "codegen_tflm"}}
ALL_STAGES = tuple(dict.fromkeys(NATIVE_PIPELINE + TFLM_PIPELINE))


def pipeline_for(engine: str) -> tuple[tuple[str, str], ...]:
    """(role, module name) for every stage the engine's pipeline runs, in order."""
    if engine == "native":
        roles = NATIVE_PIPELINE
    elif engine == "tflm":
        if importlib.util.find_spec("tinypipe.stages.codegen_tflm") is None:
            raise UserError("engine 'tflm' is not available in this version of tinypipe", "use `engine: native`")
        roles = TFLM_PIPELINE
    else:
        raise UserError(f"unknown engine {engine!r}", "choose `native` or `tflm`")
    modules = ENGINE_MODULES[engine]
    return tuple((role, modules.get(role, role)) for role in roles)


def load(module: str) -> ModuleType:
    """Import the stage module `tinypipe.stages.<module>` (cheap: heavy imports live inside `run`)."""
    return importlib.import_module(f"tinypipe.stages.{module}")
