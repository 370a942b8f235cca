"""One project on disk: its config, variants, stores, lock and DAG; `run` executes the DAG through an executor."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from tinypipe.config.loader import load_config, project_file
from tinypipe.config.matrix import expand
from tinypipe.core.errors import CheckFailed, StageCrashed, UserError
from tinypipe.core.hashing import sha256_json
from tinypipe.core.paths import user_cache_dir
from tinypipe.engine import out as stable_out
from tinypipe.engine.executor import Event, Executor, Failure, ProcessExecutor, Task, no_space_message
from tinypipe.engine.frontier import Frontier
from tinypipe.engine.graph import Graph, Node, build_graph
from tinypipe.engine.lock import LOCK_FILE, Lock
from tinypipe.engine.store import Store
from tinypipe.engines import all_stage_names

STATE_DIR = ".tinypipe"
WRITER_LOCK = "lock"  # .tinypipe/lock: held (flock) by the run writing the project; holds its PID
LOCK_SAVE_INTERVAL_S = 1.0


@contextlib.contextmanager
def writer_lock(state_dir: Path, wait: bool, say: Callable[[str], None]):
    """Hold the project's writer lock for the duration; the kernel releases it when the process dies."""
    import fcntl

    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / WRITER_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            if not wait:
                raise UserError(f"another tinypipe run (PID {holder}) is writing {state_dir.parent}",
                                "let it finish, or leave out --no-wait to wait for it") from None
            say(f"waiting for the run with PID {holder} to finish (it holds {state_dir / WRITER_LOCK})")
            fcntl.flock(fd, fcntl.LOCK_EX)  # Ctrl-C interrupts the wait
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _one_variant(variants: list, name: str):
    """The variant called `name`, or a UserError naming the project's variants."""
    import difflib

    for v in variants:
        if v.name == name:
            return v
    names = [v.name for v in variants]
    close = difflib.get_close_matches(name, names, n=1)
    raise UserError(f"--variant {name}: no such variant" + (f" (did you mean {close[0]!r}?)" if close else ""),
                    f"the project's variants: {', '.join(names)}")


class Reporter(Protocol):
    def warn(self, message: str) -> None: ...
    def start(self, node: Node) -> None: ...
    def progress(self, node: Node, done: int, total: int, message: str) -> None: ...
    def log(self, node: Node, message: str) -> None: ...
    def finish(self, node: Node, status: str, seconds: float) -> None: ...
    def fail(self, node: Node, error: BaseException) -> None: ...


class NullReporter:
    def warn(self, message): pass
    def start(self, node): pass
    def progress(self, node, done, total, message): pass
    def log(self, node, message): pass
    def finish(self, node, status, seconds): pass
    def fail(self, node, error): pass


@dataclass
class StageRecord:
    stage: str
    variants: list[str]
    status: str  # ran | cached | pulled (from the remote cache) | failed | skipped
    seconds: float = 0.0
    error: BaseException | None = None


@dataclass
class RunOutcome:
    records: list[StageRecord] = field(default_factory=list)
    lock_drift: list[str] = field(default_factory=list)  # `--locked`: outputs rebuilt unlike the lock records
    pushed: int = 0  # entries uploaded to the remote cache

    def failed(self) -> list[StageRecord]:
        return [r for r in self.records if r.status == "failed"]


class Pipeline:
    def __init__(self, target: Path, board: str | None = None, engine: str | None = None,
                 until: str | None = None, scratch: Path | None = None, paranoid: bool = False,
                 remote_cache: str | None = None, variant: str | None = None):
        """`scratch`: keep every store, cache and lock under this directory instead (for `verify`, which never
        uses a remote cache). `paranoid`: hash every cached entry's files before trusting it (not only those
        whose size or mtime moved). `remote_cache`: the `--remote-cache` URL, over $TINYPIPE_REMOTE_CACHE and
        `cache.remote` ("" turns a configured one off). `variant`: only this matrix cell (`--variant`)."""
        if until is not None and until not in all_stage_names():
            raise UserError(f"--until {until}: no such stage", f"stages: {', '.join(all_stage_names())}")
        self.dir = project_file(Path(target)).parent.resolve()
        state = self.dir / STATE_DIR if scratch is None else Path(scratch) / "project"
        self.config, self.config_path = load_config(Path(target), state)
        self.variants = expand(self.config, board=board, engine=engine, project_dir=self.dir)
        if variant is not None:
            self.variants = [_one_variant(self.variants, variant)]
        self.store = Store(state / "store", paranoid=paranoid)
        self.shared_store = Store((user_cache_dir() if scratch is None else Path(scratch) / "shared") / "store",
                                  paranoid=paranoid)
        lock_path = self.dir / LOCK_FILE if scratch is None else Path(scratch) / LOCK_FILE
        self.lock = Lock(lock_path, self.config["name"])
        self.state_dir = state
        self._lock_saved = float("-inf")
        self.graph: Graph = build_graph(self.variants, self.store, self.shared_store, until=until)
        self.remote = None if scratch is not None else _remote_cache(remote_cache, self.config, self.dir)

    # --- running ---------------------------------------------------------------------------------------

    def run(self, reporter: Reporter | None = None, jobs: int = 1, executor: Executor | None = None,
            wait: bool = True, locked: bool = False,
            make_executor: Callable[[], Executor] | None = None) -> RunOutcome:
        """Run every stage whose entry is missing, after the stages it needs, up to `jobs` at once.

        One run writes a project at a time: a second one waits for the first (or, with `wait=False`, stops
        with a UserError) and then finds what the first built. A failed stage fails only the stages that need
        it; the other cells go on. Ctrl-C (KeyboardInterrupt) kills every running stage with its tools,
        discards their partial outputs and re-raises. `locked`: first check the project against the lock and
        raise CheckFailed, naming every difference, before anything is built (`run --locked`). `make_executor`:
        what runs the stages instead of `jobs` local worker processes, called once something needs to run."""
        reporter = reporter or NullReporter()
        with writer_lock(self.state_dir, wait, reporter.warn):
            if locked:
                self.check_locked()
                self.lock.frozen = True  # the lock is the contract here: never rewritten
            self.store.warn = self.shared_store.warn = reporter.warn
            if self.remote is not None:
                self.remote.warn = reporter.warn
            self.store.sweep()
            self.shared_store.sweep()
            outcome = RunOutcome()
            if all(node.meta() is not None for node in self.graph.nodes):
                for node in self.graph.nodes:  # nothing to schedule: the no-op path starts no worker
                    self._on_cached(node, reporter, outcome)
                self.lock.save()
            else:
                if executor is None:  # made only now: a dask client connects only when something must run
                    executor = make_executor() if make_executor is not None else ProcessExecutor(jobs)
                try:
                    self._schedule(executor, reporter, outcome, locked)
                finally:
                    self.lock.save()
            try:
                stable_out.update(self.state_dir, self.graph)
            except OSError as exc:  # a full disk, or a file system without symlinks: the run itself stands
                reporter.warn(f"could not update {self.state_dir / stable_out.OUT_DIR}: {exc}")
            if locked:
                outcome.lock_drift = self.lock.drift()
            # in pipeline order, whatever order the stages finished in
            order = {(n.name, tuple(n.variants)): i for i, n in enumerate(self.graph.nodes)}
            outcome.records.sort(key=lambda r: order.get((r.stage, tuple(r.variants)), len(order)))
            return outcome

    def check_locked(self) -> None:
        """CheckFailed with a readable diff when the config, tools or inputs no longer match `tinypipe.lock`."""
        from tinypipe.engine.why import lock_mismatches

        problems = lock_mismatches(self.graph, self.lock)
        if problems:
            if len(problems) == 1 and problems[0].startswith("no "):
                raise CheckFailed(problems[0])
            raise CheckFailed(f"{self.lock.path.name} does not match the project; nothing was built:\n"
                              + "\n".join(f"  {p}" for p in problems)
                              + "\n  (run without --locked to rebuild and update the lock, then commit it)")

    def _unlocked_key(self, node: Node) -> str | None:
        """`--locked`: why `node` may not be built (its key is not the locked one: an upstream stage rebuilt
        unlike the lock records), or None."""
        key = node.key()
        entries = [self.lock.entry(v, node.name) for v in node.variants]
        if all(e is not None and e["key"] == key for e in entries):
            return None
        return (f"not built: its key {str(key)[:12]}… is not the locked one (an upstream stage rebuilt to an "
                "output the lock does not record)")

    def _on_cached(self, node: Node, reporter: Reporter, outcome: RunOutcome) -> None:
        key = node.meta()["key"]
        if node.stage.shared:  # user-level cache: record the use for `tinypipe gc --cache`
            node.store.touch(key)
        self._lock_record(node, save=False)
        if self.remote is not None and self.remote.push_enabled and not self.remote.has(key):
            self._push(node, outcome)  # built before the remote was configured, or by a run that could not push
        reporter.finish(node, "cached", 0.0)
        outcome.records.append(StageRecord(node.name, list(node.variants), "cached"))

    # --- the remote cache ----------------------------------------------------------------------------------------

    def _pull(self, node: Node, reporter: Reporter, outcome: RunOutcome) -> bool:
        """Fetch the node's entry from the remote cache into its store; True (and recorded as pulled) on success.
        A miss, a corrupt entry or an unreachable remote returns False (with a warning for the last two)."""
        if self.remote is None or self.remote.offline:
            return False
        key = node.key()
        started = time.perf_counter()
        tmp = node.store.begin()
        try:
            meta = node.store.adopt(tmp, key) if self.remote.pull(key, tmp, self._locked_output(node, key)) else None
        except OSError as exc:  # a full local disk: build it here instead, which will say so if it still fails
            reporter.warn(f"could not store the entry pulled from the remote cache: {exc}")
            meta = None
        finally:
            if tmp.exists():
                node.store.abort(tmp)
        if meta is None:
            return False
        node.set_meta(meta)
        self._lock_record(node, save=True)
        seconds = time.perf_counter() - started
        reporter.finish(node, "pulled", seconds)
        outcome.records.append(StageRecord(node.name, list(node.variants), "pulled", seconds))
        return True

    def _locked_output(self, node: Node, key: str) -> str | None:
        """The output tinypipe.lock records for this key, if it records this key: a pulled entry must match it."""
        for variant in node.variants:
            entry = self.lock.entry(variant, node.name)
            if entry is not None and entry["key"] == key:
                return entry["output"]
        return None

    def _push(self, node: Node, outcome: RunOutcome) -> None:
        if self.remote is not None and self.remote.push(node.meta()["key"], node.entry_dir()):
            outcome.pushed += 1

    def _schedule(self, executor: Executor, reporter: Reporter, outcome: RunOutcome, locked: bool) -> None:
        frontier = Frontier(self.graph.nodes)
        pull_tried: set[Node] = set()  # the remote cache is asked once, not again while a stage waits for a slot
        running: dict[int, tuple[Node, Task, float, dict]] = {}
        next_ident = 0

        def settle(node: Node, status: str, seconds: float = 0.0, error: BaseException | None = None) -> None:
            if status == "cached":
                self._on_cached(node, reporter, outcome)
            elif status != "pulled":  # `_pull` reported and recorded a pulled stage
                if status == "ran":
                    reporter.finish(node, "ran", seconds)
                elif status == "failed":
                    reporter.fail(node, error)
                outcome.records.append(StageRecord(node.name, list(node.variants), status, seconds, error))
            for skipped in frontier.settle(node, status):
                outcome.records.append(StageRecord(skipped.name, list(skipped.variants), "skipped"))

        def pulled(node: Node) -> bool:
            if node in pull_tried:
                return False
            pull_tried.add(node)
            return self._pull(node, reporter, outcome)

        try:
            while True:
                while (node := frontier.peek()) is not None:  # settle what needs no worker, start what fits
                    if node.meta() is not None:
                        settle(frontier.pop(), "cached")
                    elif locked and (refusal := self._unlocked_key(node)):
                        settle(frontier.pop(), "failed", error=CheckFailed(refusal))
                    elif pulled(node):
                        settle(frontier.pop(), "pulled")
                    elif executor.free_slots() > 0:
                        frontier.pop()
                        next_ident += 1
                        task, key_inputs = self._task(node, next_ident)
                        reporter.start(node)
                        running[next_ident] = (node, task, time.perf_counter(), key_inputs)
                        executor.submit(task)
                    else:
                        break
                if not running:
                    break  # nothing runs and nothing is ready: every stage is settled
                for event in executor.wait(0.2):
                    node, task, started, key_inputs = running[event.task]
                    if event.kind == "log":
                        reporter.log(node, event.payload)
                    elif event.kind == "progress":
                        reporter.progress(node, *event.payload)
                    else:
                        del running[event.task]
                        seconds = time.perf_counter() - started
                        if event.kind == "done":
                            try:
                                self._commit(node, task, key_inputs, event.payload, seconds)
                            except OSError as exc:  # a full disk: the entry is not written, the run goes on
                                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                                    raise
                                event = Event(event.task, "error", Failure("user", no_space_message(exc)))
                        if event.kind == "done":
                            if not getattr(executor, "pushes_itself", False):  # the dask workers push their own
                                self._push(node, outcome)
                            settle(node, "ran", seconds)
                        else:
                            settle(node, "failed", seconds, self._failed(node, task, event.payload))
        except BaseException:  # Ctrl-C, SIGTERM or our own bug: nothing may outlive the run or stay half-written
            executor.cancel()
            for node, task, started, _ in running.values():
                self._keep_log(node, task)
                node.store.abort(task.out)
            raise
        finally:
            executor.close()

    def _task(self, node: Node, ident: int) -> tuple[Task, dict]:
        key_inputs = node.key_inputs()
        if key_inputs is None:
            raise RuntimeError(f"{node.name}: upstream outputs missing when it was scheduled")
        tmp = node.store.begin()
        task = Task(ident=ident, module=node.module, variant=node.variant,
                    inputs={dep.name: dep.entry_dir() for dep in node.needs if dep.meta() is not None},
                    out=tmp, project_dir=self.dir,
                    stage=node.name, variant_names=tuple(node.variants), key_inputs=key_inputs)
        return task, key_inputs

    def _commit(self, node: Node, task: Task, key_inputs: dict, summary: dict, seconds: float) -> None:
        meta = node.store.commit(task.out, sha256_json(key_inputs), {
            "stage": node.name, "variants": node.variants, "inputs": key_inputs, "summary": summary,
            "seconds": round(seconds, 3),
        })
        node.set_meta(meta)
        # the lock is rewritten whole: at most once a second while stages finish (and at the end of the run); a
        # killed run loses nothing by it, the next run records the entries it finds in the store
        now = time.monotonic()
        save = now - self._lock_saved >= LOCK_SAVE_INTERVAL_S
        self._lock_record(node, save=save)
        if save:
            self._lock_saved = now

    def _failed(self, node: Node, task: Task, failure: Failure) -> BaseException:
        """The stage's failure as the exception the CLI maps to an exit code; its log is kept outside the store."""
        log = self._keep_log(node, task)
        node.store.abort(task.out)
        where = f" (its output: {log})" if log else ""
        if failure.category == "user":
            return UserError(failure.message, failure.hint)
        if failure.category == "check":
            return CheckFailed(failure.message + where)
        if failure.category == "died":
            return UserError(failure.message + where, failure.hint)
        error = StageCrashed(failure.message)
        error.__traceback_text__ = failure.traceback  # type: ignore[attr-defined]
        error.log = log  # type: ignore[attr-defined]
        return error

    def _keep_log(self, node: Node, task: Task) -> Path | None:
        """Move a failed or interrupted stage's log to `.tinypipe/logs/` before its entry is discarded."""
        log = task.log_path
        if not log.is_file() or log.stat().st_size == 0:
            return None
        keep = self.state_dir / "logs" / f"{node.name}-{node.variants[0]}.log"
        try:
            keep.parent.mkdir(parents=True, exist_ok=True)
            os.replace(log, keep)
        except OSError:  # a full disk: the log goes with the entry
            return None
        return keep

    def _lock_record(self, node: Node, save: bool) -> None:
        meta = node.meta()
        if meta is None:
            return
        self.lock.record(node.variants, node.name,
                         {"key": meta["key"], "output": meta["output"], "inputs": meta["inputs"]}, save=save,
                         caveat=node.stage.caveat)

    # --- results -----------------------------------------------------------------------------------------

    def summary(self, variant: str, stage: str) -> dict[str, Any] | None:
        node = self.graph.by_variant[variant].get(stage)
        meta = node.meta() if node is not None else None
        return None if meta is None else meta.get("summary", {})


def _remote_cache(flag: str | None, config: dict[str, Any], project_dir: Path):
    """The run's remote cache (engine/remote.py, which imports fsspec only when used), or None."""
    from tinypipe.engine.remote import RemoteCache, choose_url

    url = choose_url(flag, dict(os.environ), config, project_dir)
    if url is None:
        return None
    return RemoteCache(url, push=(config.get("cache") or {}).get("push", True))
