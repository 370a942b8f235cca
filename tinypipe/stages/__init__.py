"""Stage modules, one per pipeline stage. `pipeline_for` says which stages a variant needs, in order."""

from __future__ import annotations

import importlib
from types import ModuleType

from tinypipe.core.errors import UserError

# Order matters: a stage's `needs` come before it.
NATIVE_PIPELINE = ("data", "train", "quantize", "reference", "codegen", "toolchain", "firmware", "build", "run")

STAGE_HELP = {
    "data": "generate or load sensor windows and split them",
    "train": "train the Keras model (TensorFlow)",
    "quantize": "convert to a full-integer int8 .tflite; host accuracy",
    "reference": "host TFLM interpreter outputs for the test set (the oracle)",
    "codegen": "native engine: .tflite -> Rust source with static weights and arena",
    "toolchain": "Rust sysroot for the target (shared user-level cache)",
    "firmware": "render the no_std cargo project from firmware-template/",
    "build": "cargo build --release --offline; sizes",
    "run": "run on the emulator, compare with the oracle, count instructions",
}


def pipeline_for(engine: str) -> tuple[str, ...]:
    if engine == "native":
        return NATIVE_PIPELINE
    raise UserError(
        f"engine {engine!r} is not available in this version of tinypipe",
        "use `engine: native` (the TFLM engine through a C shim is being built)",
    )


def load(name: str) -> ModuleType:
    """Import the stage module `tinypipe.stages.<name>` (cheap: heavy imports live inside `run`)."""
    return importlib.import_module(f"tinypipe.stages.{name}")
