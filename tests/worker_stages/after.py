"""Stage `after`: needs `crash`."""

from tinypipe.stages.base import Stage

STAGE = Stage(name="after", version="1", needs=("crash",), config=lambda v: {"board": v.board.name})


def run(ctx):
    (ctx.out / "after.txt").write_text((ctx.inputs["crash"] / "ok.txt").read_text())
    return {}
