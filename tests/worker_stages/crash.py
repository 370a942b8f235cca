"""Stage `crash`: its worker process dies of SIGSEGV in the cell on CRASH_BOARD, as a crashing native library
would; other cells pass."""

import os
import signal

from tinypipe.stages.base import Stage

CRASH_BOARD = "mps2-an500"
STAGE = Stage(name="crash", version="1", needs=(), config=lambda v: {"board": v.board.name})


def run(ctx):
    if ctx.variant.board.name == CRASH_BOARD:
        os.kill(os.getpid(), signal.SIGSEGV)
    (ctx.out / "ok.txt").write_text(ctx.variant.board.name)
    return {}
