"""One project on disk: its config, variants, stores, lock and DAG; `run` executes the DAG through an executor."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tinypipe.config.loader import load_config, project_file
from tinypipe.config.matrix import expand
from tinypipe.core.errors import UserError
from tinypipe.core.hashing import sha256_json
from tinypipe.core.paths import user_cache_dir
from tinypipe.engine.executor import DoitExecutor, Executor
from tinypipe.engine.graph import Graph, Node, build_graph
from tinypipe.engine.lock import LOCK_FILE, Lock
from tinypipe.engine.store import Store
from tinypipe.stages import ALL_STAGES, load
from tinypipe.stages.base import StageContext

STATE_DIR = ".tinypipe"


class Reporter(Protocol):
    def start(self, node: Node) -> None: ...
    def progress(self, node: Node, done: int, total: int, message: str) -> None: ...
    def log(self, node: Node, message: str) -> None: ...
    def finish(self, node: Node, status: str, seconds: float) -> None: ...
    def fail(self, node: Node, error: BaseException) -> None: ...


class NullReporter:
    def start(self, node): pass
    def progress(self, node, done, total, message): pass
    def log(self, node, message): pass
    def finish(self, node, status, seconds): pass
    def fail(self, node, error): pass


@dataclass
class StageRecord:
    stage: str
    variants: list[str]
    status: str  # ran | cached | failed | skipped
    seconds: float = 0.0
    error: BaseException | None = None


@dataclass
class RunOutcome:
    records: list[StageRecord] = field(default_factory=list)

    def failed(self) -> list[StageRecord]:
        return [r for r in self.records if r.status == "failed"]


class Pipeline:
    def __init__(self, target: Path, board: str | None = None, engine: str | None = None,
                 until: str | None = None, scratch: Path | None = None):
        """`scratch`: keep every store, cache and lock under this directory instead (for `verify`)."""
        if until is not None and until not in ALL_STAGES:
            raise UserError(f"--until {until}: no such stage", f"stages: {', '.join(ALL_STAGES)}")
        self.dir = project_file(Path(target)).parent.resolve()
        state = self.dir / STATE_DIR if scratch is None else Path(scratch) / "project"
        self.config, self.config_path = load_config(Path(target), state)
        self.variants = expand(self.config, board=board, engine=engine, project_dir=self.dir)
        self.store = Store(state / "store")
        self.shared_store = Store((user_cache_dir() if scratch is None else Path(scratch) / "shared") / "store")
        lock_path = self.dir / LOCK_FILE if scratch is None else Path(scratch) / LOCK_FILE
        self.lock = Lock(lock_path, self.config["name"])
        self.state_dir = state
        self.graph: Graph = build_graph(self.variants, self.store, self.shared_store, until=until)

    # --- running ---------------------------------------------------------------------------------------

    def run(self, reporter: Reporter | None = None, jobs: int = 1, executor: Executor | None = None) -> RunOutcome:
        reporter = reporter or NullReporter()
        executor = executor or DoitExecutor(self.state_dir / "doit.json")
        self.store.sweep()
        self.shared_store.sweep()
        outcome = RunOutcome()
        guard = threading.Lock()

        def record(node: Node, status: str, seconds: float = 0.0, error: BaseException | None = None) -> None:
            with guard:
                outcome.records.append(StageRecord(node.name, list(node.variants), status, seconds, error))

        def cached(node: Node) -> bool:
            return node.meta() is not None

        def on_cached(node: Node) -> None:
            if node.stage.shared:  # user-level cache: record the use for `tinypipe gc --cache`
                node.store.touch(node.meta()["key"])
            self._lock_record(node, save=False)
            reporter.finish(node, "cached", 0.0)
            record(node, "cached")

        def work(node: Node) -> bool:
            if node.meta() is not None:  # doit's own database may not know an entry the store has
                on_cached(node)
                return True
            reporter.start(node)
            started = time.perf_counter()
            try:
                self._execute(node, reporter)
            except BaseException as exc:  # noqa: BLE001 - reported per cell; the others go on
                if not isinstance(exc, UserError):
                    exc.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
                reporter.fail(node, exc)
                record(node, "failed", time.perf_counter() - started, exc)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return False
            seconds = time.perf_counter() - started
            reporter.finish(node, "ran", seconds)
            record(node, "ran", seconds)
            return True

        if all(cached(node) for node in self.graph.nodes):
            for node in self.graph.nodes:  # nothing to schedule: the no-op path never loads the executor
                on_cached(node)
        else:
            executor.execute(self.graph, work, cached, on_cached, jobs)
        done = {id(n) for n in self.graph.nodes if n.meta() is not None}
        failed_names = {(r.stage, tuple(r.variants)) for r in outcome.records}
        for node in self.graph.nodes:
            if id(node) not in done and (node.name, tuple(node.variants)) not in failed_names:
                record(node, "skipped")
        self.lock.save()
        return outcome

    def _execute(self, node: Node, reporter: Reporter) -> None:
        key_inputs = node.key_inputs()
        if key_inputs is None:
            raise RuntimeError(f"{node.name}: upstream outputs missing when it was scheduled")
        key = sha256_json(key_inputs)
        module = load(node.module)
        tmp = node.store.begin()
        ctx = StageContext(
            variant=node.variant,
            inputs={dep.name: dep.entry_dir() for dep in node.needs},
            out=tmp,
            project_dir=self.dir,
            _log=lambda msg: reporter.log(node, msg),
            _progress=lambda done, total, msg="": reporter.progress(node, done, total, msg),
        )
        started = time.perf_counter()
        try:
            summary = module.run(ctx) or {}
        except BaseException:
            node.store.abort(tmp)
            raise
        meta = node.store.commit(tmp, key, {
            "stage": node.name, "variants": node.variants, "inputs": key_inputs, "summary": summary,
            "seconds": round(time.perf_counter() - started, 3),
        })
        node.set_meta(meta)
        self._lock_record(node, save=True)

    def _lock_record(self, node: Node, save: bool) -> None:
        meta = node.meta()
        if meta is None:
            return
        self.lock.record(node.variants, node.name,
                         {"key": meta["key"], "output": meta["output"], "inputs": meta["inputs"]}, save=save)

    # --- results -----------------------------------------------------------------------------------------

    def summary(self, variant: str, stage: str) -> dict[str, Any] | None:
        node = self.graph.by_variant[variant].get(stage)
        meta = node.meta() if node is not None else None
        return None if meta is None else meta.get("summary", {})

    def results(self) -> list[dict[str, Any]]:
        """One row per variant in the `--json` shape of DESIGN.md; a value is None where its stage did not run."""
        rows = []
        for v in self.variants:
            quant = self.summary(v.name, "quantize") or {}
            codegen = self.summary(v.name, "codegen") or {}
            build = self.summary(v.name, "build") or {}
            run = self.summary(v.name, "run") or {}
            rows.append({
                "variant": v.name,
                "board": v.board.name,
                "engine": v.engine,
                "instructions_per_inference": run.get("instructions_per_inference"),
                "flash_bytes": build.get("flash_bytes"),
                "ram_bytes": build.get("ram_bytes"),
                "arena_bytes": codegen.get("arena_bytes"),
                "accuracy_host": quant.get("accuracy_host"),
                "accuracy_device": run.get("accuracy_device"),
                "bit_exact": run.get("bit_exact"),
                "layers": run.get("layers"),
            })
        return rows
