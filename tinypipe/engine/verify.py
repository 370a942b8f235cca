"""`tinypipe verify`: rebuild from scratch and check every stage's output is bit-for-bit what the lock records.

Nothing is shared with the normal run: a temporary store, user-level cache and lock, so a cached artifact
cannot hide a non-reproducible stage. Stops at `build` by default (the ELF); `--until run` also reruns the
firmware, whose `run.json` is reproducible too (it carries no wall-clock time).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from tinypipe.core.errors import CheckFailed, UserError
from tinypipe.engine.pipeline import Pipeline, Reporter


@dataclass
class Verdict:
    variant: str
    stage: str
    locked: str
    rebuilt: str | None
    caveat: str = ""  # the stage's `caveat`: what may differ on another machine (see stages.base.Stage)

    @property
    def same(self) -> bool:
        return self.locked == self.rebuilt


def verify(target: Path, board: str | None = None, engine: str | None = None, until: str = "build",
           reporter: Reporter | None = None) -> list[Verdict]:
    original = Pipeline(target, board=board, engine=engine, until=until, paranoid=True)
    corrupt: list[str] = []
    original.store.warn = original.shared_store.warn = corrupt.append
    for node in original.graph.nodes:  # every stored output must still hash to what it recorded
        if node.meta() is None and corrupt:
            raise CheckFailed(f"the stored output of {node.name} ({', '.join(node.variants)}) differs from its "
                              f"recorded hash: {corrupt[0]}; `tinypipe run` rebuilds it")
    missing = [(v.name, stage) for v in original.variants for stage in original.graph.by_variant[v.name]
               if original.lock.entry(v.name, stage) is None]
    if missing:
        v, stage = missing[0]
        raise UserError(f"{original.lock.path}: no locked output for {stage} ({v})",
                        "run `tinypipe run` first: verify rebuilds what the lock records and compares")
    stale = [(v.name, stage) for v in original.variants for stage, node in original.graph.by_variant[v.name].items()
             if node.key() != original.lock.entry(v.name, stage)["key"]]
    if stale:
        v, stage = stale[0]
        raise UserError(f"{original.lock.path} is not current: the inputs of {stage} ({v}) changed since it was "
                        "written", "run `tinypipe run` first (`tinypipe status --why` shows what changed)")
    with tempfile.TemporaryDirectory(prefix="tinypipe-verify-") as scratch:
        fresh = Pipeline(target, board=board, engine=engine, until=until, scratch=Path(scratch))
        outcome = fresh.run(reporter)
        if outcome.failed():
            first = outcome.failed()[0]
            raise UserError(f"the rebuild failed in {first.stage}: {first.error}")
        verdicts = []
        for v in fresh.variants:
            for stage, node in fresh.graph.by_variant[v.name].items():
                meta = node.meta()
                verdicts.append(Verdict(v.name, stage, original.lock.entry(v.name, stage)["output"],
                                        meta["output"] if meta else None, node.stage.caveat))
    return verdicts
