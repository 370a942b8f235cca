"""`DaskExecutor`: ready stages run on the workers of a dask.distributed cluster; artifacts travel through the
remote cache.

The scheduler (`Pipeline._schedule`) is the same as for a local run: it pulls what the remote cache already
holds, and hands this executor only the stages nobody has built. For each one, the executor makes sure the
stage's inputs are on the remote (pushing any that only this machine has), then submits `run_on_worker` to the
cluster. On the worker, the inputs are pulled by key into the worker's own store (verified by hash, as every
pull is), the stage runs in a worker process of its own exactly as in a local run (its output captured to its
log), and the finished entry is committed to the worker's store and pushed to the remote under the key the
client computed. Back here, the entry is pulled into the run's temporary output directory and committed like a
local result, so the local store and lock end exactly as a local run leaves them, and the output hash is
recomputed from the bytes that arrived.

A worker lost mid-stage (killed, out of memory, its machine gone) is dask's to handle: the scheduler gives the
task to another worker. A stage is a pure function of its key, so running it twice is harmless. Workers need
tinypipe, its toolchains and the project's files at the same path (projects whose data lives in files beside
project.yaml need a shared file system); nothing else is shared.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tinypipe.core.errors import UserError
from tinypipe.core.hashing import sha256_json
from tinypipe.engine.executor import Event, Failure, ProcessExecutor, Task
from tinypipe.engine.remote import RemoteCache

SCHEDULER_ENV = "TINYPIPE_SCHEDULER"
WORKER_STORE = "tinypipe-store"  # in the dask worker's local directory


@dataclass
class RemoteTask:
    """What a worker needs to run one stage: the task (which carries its stage, variants and key inputs), the key
    its entry goes under, the keys of its inputs and the remote cache they travel through. Plain data: it is
    pickled to the worker."""

    task: Task
    key: str
    input_keys: dict[str, str]  # input name -> store key
    remote_url: str


def scheduler_address(flag: str | None, env: dict[str, str]) -> str:
    address = flag or env.get(SCHEDULER_ENV) or ""
    if not address.strip():
        raise UserError("--executor dask needs the address of a dask scheduler",
                        f"pass --scheduler tcp://HOST:PORT or set {SCHEDULER_ENV} (start one with "
                        "`dask scheduler`, and workers with `dask worker tcp://HOST:PORT`)")
    return address.strip()


class DaskExecutor:
    """Job slots are the cluster's worker threads; `remote` is the run's remote cache (it must accept pushes)."""

    pushes_itself = True  # finished entries are already on the remote: the scheduler need not push them

    def __init__(self, address: str, remote: RemoteCache | None, connect_timeout: float = 10.0):
        if remote is None or not remote.push_enabled:
            why = "no remote cache is configured" if remote is None else \
                f"the remote cache {remote.name} is read-only here"
            raise UserError(f"--executor dask moves artifacts through a remote cache the workers can write, but "
                            f"{why}",
                            "set `cache: {remote: URL}` in project.yaml, --remote-cache URL or "
                            "TINYPIPE_REMOTE_CACHE to a location every worker reaches (a shared directory, "
                            "sftp:// or s3://), with pushing on")
        try:
            from distributed import Client
        except ImportError as exc:
            raise UserError(f"--executor dask needs the `distributed` package ({exc})",
                            "pip install 'tinypipe[dask]'") from None
        self.remote = remote
        try:
            self.client = Client(address, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the dask scheduler at {address}: {exc}",
                            "check the address and that `dask scheduler` is running there") from None
        self._running: dict[Any, tuple[Task, str]] = {}  # future -> the task and its entry's key
        self._slots = 0
        self._slots_checked = 0.0

    # --- slots ----------------------------------------------------------------------------------------------

    def _cluster_threads(self) -> int:
        now = time.monotonic()
        if now - self._slots_checked > 2.0:  # workers come and go: ask the scheduler now and then
            workers = self.client.scheduler_info().get("workers", {})
            self._slots = sum(int(w.get("nthreads", 1)) for w in workers.values())
            self._slots_checked = now
        return max(1, self._slots)  # with no worker yet, one task waits in the cluster's queue

    def free_slots(self) -> int:
        return self._cluster_threads() - len(self._running)

    # --- tasks ----------------------------------------------------------------------------------------------

    def submit(self, task: Task) -> None:
        if not task.key_inputs:
            raise RuntimeError("a task for the dask executor carries its key inputs")
        input_keys = {}
        for name, path in task.inputs.items():
            key = Path(path).name  # a store entry's directory is its key
            if not self.remote.has(key) and not self.remote.push(key, Path(path)):
                raise UserError(f"could not put input {name} ({key[:12]}…) of this stage on the remote cache "
                                f"{self.remote.name}, so no worker can run it",
                                "check that the remote cache is reachable and writable from here")
            input_keys[name] = key
        spec = RemoteTask(task=task, key=sha256_json(task.key_inputs), input_keys=input_keys,
                          remote_url=self.remote.url)
        future = self.client.submit(run_on_worker, spec, key=f"tinypipe-{task.stage}-{spec.key[:16]}-{task.ident}",
                                    pure=False)
        self._running[future] = (task, spec.key)

    def wait(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        while True:
            done = [future for future in self._running if future.done()]
            if done or time.monotonic() >= deadline:
                break
            time.sleep(0.05)  # futures update from the client's own thread: polling them costs nothing
        events: list[Event] = []
        for future in done:
            events.extend(self._outcome(future, *self._running.pop(future)))
        return events

    def _outcome(self, future, task: Task, key: str) -> list[Event]:
        if future.status != "finished":
            exc = future.exception() if future.status == "error" else None
            detail = f"{type(exc).__name__}: {exc}" if exc is not None else future.status
            return [Event(task.ident, "error", Failure(
                "died", f"the dask cluster could not run this stage ({detail})",
                hint="see the dask workers' logs; a worker lost again and again points at memory or a "
                     "missing toolchain on the workers"))]
        kind, payload, logs = future.result()
        events = [Event(task.ident, "log", line) for line in logs]
        if kind == "done":
            if not self.remote.pull(key, Path(task.out)):
                return events + [Event(task.ident, "error", Failure(
                    "died", f"a worker ran this stage, but its entry {key[:12]}… could not be fetched from the "
                            f"remote cache {self.remote.name} whole and verified",
                    hint="the warning above says why; run again to rebuild it"))]
        events.append(Event(task.ident, kind, payload))
        return events

    def cancel(self) -> None:
        futures = list(self._running)
        self._running.clear()
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:  # noqa: BLE001 - cancelling on the way out must not hide why we stop
                pass

    def close(self) -> None:
        self.cancel()
        try:
            self.client.close(timeout=5)
        except Exception:  # noqa: BLE001
            pass


# --- on the worker ----------------------------------------------------------------------------------------------

_pools: dict[int, ProcessExecutor] = {}  # one worker process per dask thread, reused (TensorFlow imported once)
_pools_guard = threading.Lock()


def _process_executor() -> ProcessExecutor:
    import multiprocessing

    me = multiprocessing.current_process()
    if me.daemon:
        # A nanny starts dask workers as daemonic processes, which multiprocessing forbids to have children. The
        # promise behind the flag (nothing outlives the worker) holds without it: a stage's worker process kills
        # its whole group when its parent goes away.
        me.daemon = False
    with _pools_guard:
        return _pools.setdefault(threading.get_ident(), ProcessExecutor(1))


def run_on_worker(spec: RemoteTask) -> tuple[str, Any, list[str]]:
    """Runs on a dask worker: pull the inputs, run the stage in a worker process, commit and push its entry.
    Returns (done | error, the stage's summary or Failure, its log lines)."""
    from distributed import get_worker

    from tinypipe.engine.store import Store

    remote = RemoteCache(spec.remote_url)
    logs: list[str] = []
    remote.warn = lambda message: logs.append(f"warning: {message}")
    finished = remote.meta(spec.key)
    if finished is not None:  # another worker finished it (a task rerun after its worker was lost, say)
        return "done", finished.get("summary", {}), logs
    store = Store(Path(get_worker().local_directory) / WORKER_STORE)
    inputs = {}
    for name, key in spec.input_keys.items():
        if not store.has(key):
            tmp = store.begin()
            if not remote.pull(key, tmp):
                store.abort(tmp)
                return "error", Failure("user", f"input {name} ({key[:12]}…) is not on the remote cache "
                                                f"{remote.name} as this worker sees it", "\n".join(logs) or None), logs
            store.adopt(tmp, key)
        inputs[name] = store.root / key
    out = store.begin()
    task = replace(spec.task, inputs=inputs, out=out, ident=0)
    pool = _process_executor()
    started = time.perf_counter()
    pool.submit(task)
    while True:
        events = pool.wait(1.0)
        outcome = next((e for e in events if e.kind in ("done", "error")), None)
        logs.extend(str(e.payload) for e in events if e.kind == "log")
        if outcome is not None:
            break
    if outcome.kind == "error":
        store.abort(out)
        return "error", outcome.payload, logs
    entry_meta = store.commit(out, spec.key, {
        "stage": spec.task.stage, "variants": list(spec.task.variant_names), "inputs": spec.task.key_inputs,
        "summary": outcome.payload,
        "seconds": round(time.perf_counter() - started, 3),
    })
    if not remote.push(spec.key, store.root / spec.key):
        return "error", Failure("died", f"the entry could not be pushed to the remote cache {remote.name}",
                                "\n".join(logs) or None), logs
    return "done", entry_meta.get("summary", {}), logs
