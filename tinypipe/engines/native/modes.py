"""`native.optimize`: what each mode of the native engine trades for what, in one table.

A mode reaches three places: the arena planner (`ram`: convolutions overlapping their input, patch-based
first layers; generate.py, plan.py, patch.py), the kernel choices of the code generator, and the firmware
build (the cargo `opt-level` the codegen stage asks for in `codegen.json`, which the firmware stage writes
into the rendered Cargo.toml). `balanced` is what the engine did before modes existed, and its
keys and outputs are unchanged by them.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT = "balanced"


@dataclass(frozen=True)
class Mode:
    name: str
    opt_level: str | None  # the firmware's cargo opt-level; None: the template's (3)
    summary: str


MODES = {
    "speed": Mode("speed", None, "the fastest kernels, flash permitting"),
    "balanced": Mode("balanced", None, "fast kernels with compact weights (the default)"),
    "ram": Mode("ram", None, "the activation schedule with the lowest peak arena"),
    # "z" over "s": it also stops LLVM unrolling and vectorising loops, the largest code of the kernels
    # int8 depthwise filters as TFLite stores them, small conv and depthwise loops, bit-packed biases and
    # rescales, entropy-coded fully connected weights: about 1.5x the instructions of `balanced` for ~17% less flash
    "size": Mode("size", "z", "the least flash: compact kernels and weights, the firmware built for size"),
}


def mode(name: str | None) -> Mode:
    return MODES[name or DEFAULT]
