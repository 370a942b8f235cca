"""Does a model fit a board? Checked from the engine's numbers before cargo runs, so an oversized matrix cell
fails in a second with the bytes it needs, instead of at the end of a link.

RAM: the engine's arena and the board's stack reservation, which must also hold the kernels' scratch (the
native engine keeps it on the stack). Flash: the weights (or the engine's model flatbuffer) and the test
windows the firmware replays. Code, the runtime and `.data` are not
counted (unknown before the build); the linker script's ASSERTs still catch a firmware that passes this check
but overflows by its code.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinypipe.core.errors import UserError


@dataclass(frozen=True)
class Footprint:
    arena_bytes: int
    scratch_bytes: int  # on the stack
    weight_bytes: int
    test_input_bytes: int
    stack_bytes: int

    @property
    def ram_bytes(self) -> int:
        return self.arena_bytes + self.stack_bytes

    @property
    def flash_bytes(self) -> int:
        return self.weight_bytes + self.test_input_bytes


class DoesNotFit(UserError):
    """A matrix cell whose model cannot fit its board's flash or RAM."""


def check_fit(board, footprint: Footprint) -> None:
    """Raise DoesNotFit naming the bytes needed and available when the footprint exceeds the board."""
    problems = []
    if footprint.ram_bytes > board.ram.size:
        problems.append(f"RAM needs {footprint.ram_bytes:,} B (arena {footprint.arena_bytes:,} + stack "
                        f"{footprint.stack_bytes:,}) but the board has {board.ram.size:,} B")
    if footprint.scratch_bytes > footprint.stack_bytes:
        problems.append(f"the kernels' scratch needs {footprint.scratch_bytes:,} B of stack but the board reserves "
                        f"{footprint.stack_bytes:,} B")
    if footprint.flash_bytes > board.flash.size:
        problems.append(f"flash needs at least {footprint.flash_bytes:,} B (weights {footprint.weight_bytes:,} + "
                        f"test windows {footprint.test_input_bytes:,}) but the board has {board.flash.size:,} B")
    if problems:
        raise DoesNotFit(f"the model does not fit board {board.name}: {'; '.join(problems)}",
                         "shrink the model (fewer filters or units, a shorter window) or drop this board from "
                         "the matrix; `tinypipe boards` lists flash and RAM")
