"""Compiler flags for one target, derived from the board registry: gcc's CPU, ISA, float ABI and FPU, rustc's CPU
and linker. Everything that compiles or links for a variant (the firmware, TFLM, the shim, the arena probe) takes
its flags from here, so C and Rust objects always agree on the float ABI and can be linked together.

`target` is anything with `board`, `cpu` and `triple` (a Variant: cpu and triple come from the board unless
`target:` overrides them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tinypipe.config.boards import BOARDS
from tinypipe.core.errors import UserError
from tinypipe.toolchain.tools import LD

if TYPE_CHECKING:
    from tinypipe.config.boards import Board


class Target(Protocol):
    board: "Board"
    cpu: str
    triple: str


def hard_float(target: Target) -> bool:
    """Rust's `eabihf` targets pass floats in FPU registers; C must use the same ABI to link with them."""
    return target.triple.endswith("eabihf")


def fpu(target: Target) -> str | None:
    """gcc's -mfpu for a hard-float target: the board's FPU, or (when `target.cpu` overrides the board's CPU) the
    FPU of a registry board with that CPU. None for soft float."""
    if not hard_float(target):
        return None
    if target.cpu == target.board.cpu and target.board.fpu:
        return target.board.fpu
    known = {b.cpu: b.fpu for b in BOARDS.values() if b.fpu}
    if target.cpu not in known:
        raise UserError(f"target {target.triple} is hard-float but tinypipe knows no FPU for cpu {target.cpu!r}",
                        f"use one of {', '.join(sorted(known))} or a soft-float triple")
    return known[target.cpu]


def gcc_flags(target: Target, explicit_fpu: bool = True) -> list[str]:
    """gcc's -mcpu, -mthumb, -mfloat-abi and (hard float) -mfpu for `target`.

    `explicit_fpu=False` leaves -mfpu out, for the toolchain stage's multilib queries and its recorded flags:
    gcc then derives the FPU from -mcpu (-mfpu=auto) and picks the same multilib, and the recorded flags stay
    what firmware keys were computed from.
    """
    flags = [f"-mcpu={target.cpu}", "-mthumb", f"-mfloat-abi={'hard' if hard_float(target) else 'soft'}"]
    if explicit_fpu and hard_float(target):
        flags.append(f"-mfpu={fpu(target)}")
    return flags


def rustc_flags(target: Target) -> list[str]:
    """rustc's code generation for the target's CPU, linked by GNU ld directly (no C compiler driver)."""
    return ["-C", f"linker={LD}", "-C", "linker-flavor=ld", "-C", f"target-cpu={target.cpu}"]
