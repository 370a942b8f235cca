"""Executors run stage tasks; the scheduler (`Pipeline._schedule`) decides what is ready and owns the store.

An executor has job slots. `free_slots()` says how many tasks may be submitted now (the process executor
answers 0 or 1: it reads jobserver tokens one at a time, and only when a stage is ready for one);
`submit(task)` hands a task to a free slot; `wait(timeout)` returns the events
that arrived (a stage's log lines and progress, then exactly one `done` or `error` per task); `cancel()` kills
everything still running; `close()` ends the workers. The task says which stage module to run and where its
inputs and temporary output directory are; it never carries live objects, so it can cross a process (or, for
an executor to come, a machine) boundary.

`ProcessExecutor` (the default) runs each stage in a long-lived worker process of its own session: the
stage's stdout and stderr (TensorFlow's prints, compiler output) go to the stage's log file, never to the
terminal the live display draws on, and killing a worker's process group also kills the cargo, rustc, QEMU or
gcc it started. Its `-j N` slots are a jobserver (`core.jobserver`) shared with those tools: a stage starts only
on a free slot (the run's implicit one, or a token), and cargo, rustc and our TFLM compiles take the tokens of
further parallel jobs from the same pipe, so N bounds stages and compilers together. `InlineExecutor` runs
stages in this process, one at a time (tests of the engine on stand-in stages, which exist only in the test's
process).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from tinypipe.engine.store import LOG as LOG_FILE  # a stage's own output, in its store entry


@dataclass
class Task:
    ident: int  # unique within one run
    module: str  # stage module, a dotted path
    variant: Any  # config.variant.Variant (pickled to workers)
    inputs: dict[str, Path]
    out: Path
    project_dir: Path
    stage: str = ""
    variant_names: tuple[str, ...] = ()
    key_inputs: dict | None = None  # what the entry's key is the hash of (an executor elsewhere commits under it)

    @property
    def log_path(self) -> Path:
        return self.out / LOG_FILE


@dataclass
class Event:
    task: int
    kind: str  # log | progress | done | error
    payload: Any = None


@dataclass
class Failure:
    """A stage's exception, as data: it crosses a process boundary without pickling the exception itself."""

    category: str  # user | check | internal | died
    message: str
    hint: str | None = None
    traceback: str = ""


class Executor(Protocol):
    def free_slots(self) -> int: ...
    def submit(self, task: Task) -> None: ...
    def wait(self, timeout: float) -> list[Event]: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...


def describe_failure(exc: BaseException) -> Failure:
    import traceback

    from tinypipe.core.errors import CheckFailed, UserError

    if isinstance(exc, UserError):
        return Failure("user", exc.message, exc.hint)
    if isinstance(exc, CheckFailed):
        return Failure("check", str(exc))
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Failure("user", no_space_message(exc), "free some space (`tinypipe gc` deletes unreferenced "
                       "entries), then run again")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure("internal", f"{type(exc).__name__}: {exc}", traceback=text)


def no_space_message(exc: OSError) -> str:
    where = f" writing {exc.filename}" if exc.filename else ""
    return (f"no space left on the device{where}: the stage's partial output was discarded, the store is "
            "unchanged")


def run_task(task: Task, send: Callable[[Event], None], load: Callable[[str], Any] | None = None) -> None:
    """Run one stage task, sending its log, progress and outcome as events (never raises an Exception)."""
    import sys

    from tinypipe.stages.base import StageContext

    if load is None:
        from tinypipe.stages import load

    def log(message: str) -> None:
        sys.stderr.write(f"[tinypipe] {message}\n")
        sys.stderr.flush()
        send(Event(task.ident, "log", message))

    def progress(done: int, total: int, message: str = "") -> None:
        send(Event(task.ident, "progress", (done, total, message)))

    ctx = StageContext(variant=task.variant, inputs=dict(task.inputs), out=Path(task.out),
                       project_dir=Path(task.project_dir), _log=log, _progress=progress)
    try:
        summary = load(task.module).run(ctx) or {}
    except Exception as exc:  # noqa: BLE001 - every failure is reported as an event
        send(Event(task.ident, "error", describe_failure(exc)))
        return
    send(Event(task.ident, "done", summary))


class InlineExecutor:
    """Runs each task in this process when submitted; one slot. Stage output is not redirected."""

    def __init__(self, load: Callable[[str], Any] | None = None):
        self.load = load
        self._events: list[Event] = []

    def free_slots(self) -> int:
        return 1

    def submit(self, task: Task) -> None:
        run_task(task, self._events.append, self.load)

    def wait(self, timeout: float) -> list[Event]:
        events, self._events = self._events, []
        return events

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


# --- worker processes --------------------------------------------------------------------------------------


def _worker_main(conn, parent_pid: int, jobserver_path: str | None = None, jobs: int = 1) -> None:
    """A worker's life: its own session (so its process group holds every tool it starts), stdin from
    /dev/null, and between tasks stdout/stderr to /dev/null; during a task both go to the task's log file.
    The tools it starts take their extra job slots from the run's jobserver at `jobserver_path`."""
    import sys
    import threading

    from tinypipe.core import jobserver, proc

    os.setsid()
    if jobserver_path is not None:
        jobserver.enter_as_client(jobserver_path, jobs)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a worker ends
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)

    def orphan_watch() -> None:  # the run was killed (even SIGKILL): take our compilers down with us
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os.killpg(0, signal.SIGKILL)

    threading.Thread(target=orphan_watch, daemon=True).start()
    proc.set_transcript(sys.stderr)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(task.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        try:
            run_task(task, conn.send)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)


IMPLICIT_SLOT = b""  # a worker's slot when it is the run's own, not a token from the pipe


@dataclass
class _Worker:
    process: Any
    conn: Any
    task: Task | None = None
    slot: bytes | None = None  # the job slot its task runs on: IMPLICIT_SLOT or a token to give back


class ProcessExecutor:
    """Up to `jobs` long-lived worker processes, started when first needed (TensorFlow is imported once per
    worker), each running a stage on one slot of the run's jobserver."""

    def __init__(self, jobs: int = 1):
        from tinypipe.core.jobserver import Jobserver

        self.jobserver = Jobserver(max(1, int(jobs)))
        self._workers: list[_Worker] = []
        self._implicit_free = True
        self._reserved: bytes | None = None  # a token read for the next submit
        self._want_token = False  # the scheduler has a stage ready and no slot for it
        self._tokens_lost = False  # a worker died: its tools may have taken tokens with them

    def _spawn(self) -> _Worker:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold threads or TensorFlow
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_worker_main, name="tinypipe-worker",
                              args=(child, os.getpid(), self.jobserver.path, self.jobserver.jobs))
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._workers.append(worker)
        return worker

    def free_slots(self) -> int:
        """1 when a stage can start now (the implicit slot is free, or a token was read), else 0: the
        compilers of running stages may hold every token."""
        if self._tokens_lost and not any(w.task is not None for w in self._workers):
            self.jobserver.refill(held=int(self._reserved is not None))
            self._tokens_lost = False
        if self._implicit_free:
            self._want_token = False
            return 1
        if self._reserved is None:
            self._reserved = self.jobserver.tokens.try_acquire()
        self._want_token = self._reserved is None
        return int(self._reserved is not None)

    def submit(self, task: Task) -> None:
        if self._implicit_free:
            slot, self._implicit_free = IMPLICIT_SLOT, False
        elif self._reserved is not None:
            slot, self._reserved = self._reserved, None
        else:
            raise RuntimeError("submit without a free job slot (call free_slots first)")
        self._want_token = False
        worker = next((w for w in self._workers if w.task is None), None)
        if worker is None:
            worker = self._spawn()
        worker.task, worker.slot = task, slot
        worker.conn.send(task)

    def _free(self, worker: _Worker) -> None:
        slot, worker.task, worker.slot = worker.slot, None, None
        if slot == IMPLICIT_SLOT:
            self._implicit_free = True
        elif slot is not None:
            self.jobserver.tokens.release(slot)

    def wait(self, timeout: float) -> list[Event]:
        """Events from the running stages; returns early (maybe with none) when a token comes back for a
        stage that waits for a slot."""
        from multiprocessing.connection import wait

        if self._reserved is not None:  # read for a stage that started on the implicit slot after all
            self.jobserver.tokens.release(self._reserved)
            self._reserved = None
        busy = {w.conn: w for w in self._workers if w.task is not None}
        tokens = self.jobserver.tokens.fileno()
        if not busy:
            return []
        events: list[Event] = []
        for ready in wait([*busy, *([tokens] if self._want_token else [])], timeout):
            if ready == tokens:
                self._reserved = self.jobserver.tokens.try_acquire()
                self._want_token = self._reserved is None
                continue
            worker = busy[ready]
            try:
                while ready.poll():
                    event = ready.recv()
                    events.append(event)
                    if event.kind in ("done", "error"):
                        self._free(worker)
            except (EOFError, OSError):
                events.append(self._died(worker))
        return events

    def _died(self, worker: _Worker) -> Event:
        """A worker that died mid-task (segfault, OOM kill): its stage fails, a new worker takes its slot later."""
        task = worker.task
        worker.process.join(timeout=2)
        code = worker.process.exitcode
        self._kill_group(worker)
        self._workers.remove(worker)
        self._free(worker)
        self._tokens_lost = True
        how = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exited with {code}")
        return Event(task.ident if task else -1, "error", Failure(
            "died", f"the worker process running this stage died ({how})",
            hint="its output is in the stage log; a crash in TensorFlow or a tool is often memory: "
                 "try again with fewer jobs (-j 1)"))

    @staticmethod
    def _kill_group(worker: _Worker, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(worker.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def cancel(self) -> None:
        """Kill every worker and whatever it started; returns once they are gone (at most about a second)."""
        for worker in self._workers:
            self._kill_group(worker, signal.SIGTERM)
        deadline = time.monotonic() + 0.5
        for worker in self._workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            self._kill_group(worker)  # the group may outlive its leader: SIGKILL whatever is left
            worker.process.join(timeout=0.5)
            worker.conn.close()
        self._workers.clear()

    def close(self) -> None:
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=2)
        self.cancel()
        self.jobserver.close()
