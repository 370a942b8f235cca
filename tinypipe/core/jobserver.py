"""One budget of `-j N` job slots shared by the run's stages and every compiler they start: GNU make's jobserver.

The run owns a pipe holding N-1 tokens (one byte each); it keeps the N-th slot implicitly, as make does. A stage
needs a slot to start: the first running stage takes the implicit one, every other one reads a token first and
writes it back when it ends. A running stage hands its slot down: its tools find the pipe in `MAKEFLAGS` and
`CARGO_MAKEFLAGS` (`-jN --jobserver-auth=R,W`), so cargo — a jobserver client, as is rustc — runs its first
rustc on the stage's slot and reads a token for each further rustc or codegen thread; our own parallel compiles
(`run_with_slots`) do the same. Nothing starts a CPU-heavy process without a slot, so `-j 1` never runs two.

The pipe is a named FIFO so a worker process (which inherits no descriptors) can open it by path; tools are given
the descriptor form, not `fifo:PATH`, because this machine's make 4.3 and gcc 12 read only that form. Each reader
that must not block opens its own non-blocking description of the pipe: O_NONBLOCK on a shared description would
change the blocking reads cargo and make do on it.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import tempfile
import weakref
from typing import Callable, Iterable, TypeVar

from tinypipe.core.errors import UserError

TOKEN = b"+"
MAX_JOBS = 4096  # tokens sit in a pipe buffer (64 KiB on Linux): far more than any machine has cores
FLAG_VARIABLES = ("MAKEFLAGS", "CARGO_MAKEFLAGS")  # CARGO_MAKEFLAGS wins in cargo and rustc; make reads MAKEFLAGS
_AUTH = re.compile(r"--jobserver-(?:auth|fds)=(?:fifo:(\S+)|(\d+),(\d+))")

Item = TypeVar("Item")
Result = TypeVar("Result")


class TokenPipe:
    """A non-blocking handle on a jobserver pipe: take a token if one is there, give one back."""

    def __init__(self, read_fd: int, write_fd: int):
        self.read_fd, self.write_fd = read_fd, write_fd

    @classmethod
    def open(cls, path: str) -> "TokenPipe":
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        return cls(fd, fd)

    @classmethod
    def private(cls, tokens: int) -> "TokenPipe":
        """A budget of this process alone (no jobserver around): an anonymous pipe holding `tokens`."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        pipe = cls(read_fd, write_fd)
        pipe.release(TOKEN * max(0, tokens))
        return pipe

    def fileno(self) -> int:
        return self.read_fd

    def try_acquire(self) -> bytes | None:
        """A token, or None when the pipe is empty now (every slot is in use)."""
        try:
            token = os.read(self.read_fd, 1)
        except BlockingIOError:
            return None
        return token or None

    def release(self, token: bytes) -> None:
        os.write(self.write_fd, token)  # the very byte read: make gives some of them a meaning

    def close(self) -> None:
        os.close(self.read_fd)
        if self.write_fd != self.read_fd:
            os.close(self.write_fd)


class Jobserver:
    """The run's `jobs` slots: a FIFO holding jobs-1 tokens, and the implicit slot the run itself holds."""

    def __init__(self, jobs: int):
        if not 1 <= jobs <= MAX_JOBS:
            raise UserError(f"-j {jobs}: the job budget must be between 1 and {MAX_JOBS}",
                            "pass -j with at most the number of cores (`nproc`)")
        self.jobs = jobs
        self._dir = tempfile.mkdtemp(prefix="tinypipe-jobserver-")
        self.path = os.path.join(self._dir, "fifo")
        os.mkfifo(self.path, 0o600)
        self.tokens = TokenPipe.open(self.path)
        self.tokens.release(TOKEN * (jobs - 1))
        # an executor kept for a process's lifetime (a dask worker's) is never closed: remove the FIFO at exit
        weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)

    def refill(self, held: int) -> None:
        """Put back tokens a killed process took with it: call only while nothing but us (holding `held`
        tokens) can hold one, so the pipe must hold jobs-1-held."""
        while self.tokens.try_acquire() is not None:
            pass
        missing = self.jobs - 1 - held
        if missing > 0:
            self.tokens.release(TOKEN * missing)

    def close(self) -> None:
        if self._dir is not None:
            self.tokens.close()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def enter_as_client(path: str, jobs: int) -> int:
    """In a process that will run on one slot of the jobserver at `path` (a worker): open the pipe for the tools
    it starts and point `MAKEFLAGS`/`CARGO_MAKEFLAGS` at it. Returns the descriptor the tools inherit."""
    fd = os.open(path, os.O_RDWR)  # blocking, as make's readers expect; a description of its own
    os.set_inheritable(fd, True)
    flags = f"-j{jobs} --jobserver-auth={fd},{fd}"
    for name in FLAG_VARIABLES:
        os.environ[name] = flags
    return fd


def _auth(environ: dict[str, str] | None = None) -> tuple[str | None, tuple[int, ...]]:
    """(FIFO path, descriptors) of the jobserver named in the environment; the last flag wins, as in make."""
    environ = os.environ if environ is None else environ
    for name in FLAG_VARIABLES:
        found = _AUTH.findall(environ.get(name, ""))
        if found:
            path, read, write = found[-1]
            return (path, ()) if path else (None, tuple(dict.fromkeys((int(read), int(write)))))
    return None, ()


def inherited_fds() -> tuple[int, ...]:
    """The jobserver descriptors a tool we start must keep open (none when there is no jobserver, or it is
    named by path or its descriptors are not open here)."""
    fds = _auth()[1]
    try:
        for fd in fds:
            os.fstat(fd)
    except OSError:
        return ()
    return fds


def client_pipe() -> TokenPipe | None:
    """A non-blocking handle on the jobserver this process runs under, or None when there is none."""
    path, fds = _auth()
    if path is None and fds:
        path = f"/proc/self/fd/{fds[0]}"  # reopening gives a description of our own to make non-blocking
    if path is None:
        return None
    try:
        return TokenPipe.open(path)
    except OSError:
        return None


def run_with_slots(work: Callable[[Item], Result], items: Iterable[Item], *, fallback_jobs: int | None = None,
                   on_done: Callable[[Item, Result], None] | None = None) -> list[Result]:
    """`work(item)` for every item, in threads, as many at once as job slots allow; results in item order.

    The first call runs on this process's own (implicit) slot, each further concurrent one on a token read from
    the jobserver, given back when the call returns. Without a jobserver in the environment, a private budget of
    `fallback_jobs` (default: the CPU count) slots. The first exception stops new calls and is raised once the
    running ones have ended."""
    import concurrent.futures

    tokens = client_pipe() or TokenPipe.private((fallback_jobs or os.cpu_count() or 1) - 1)
    pending = list(enumerate(items))
    results: dict[int, Result] = {}
    running: dict[concurrent.futures.Future, tuple[int, Item, bytes | None]] = {}
    wake_read, wake_write = os.pipe()
    error: BaseException | None = None
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(pending))) as pool:
            while pending or running:
                while pending and error is None:
                    token = None
                    if running:  # the implicit slot is taken: the next call needs a token
                        token = tokens.try_acquire()
                        if token is None:
                            break
                    index, item = pending.pop(0)
                    future = pool.submit(work, item)
                    running[future] = (index, item, token)
                    future.add_done_callback(lambda _: os.write(wake_write, b"."))
                waiting_for_token = bool(pending) and error is None and bool(running)
                ready, _, _ = select.select([wake_read, tokens] if waiting_for_token else [wake_read], [], [])
                if wake_read in ready:
                    os.read(wake_read, 4096)
                for future in [f for f in running if f.done()]:
                    index, item, token = running.pop(future)
                    if token is not None:
                        tokens.release(token)
                    try:
                        results[index] = future.result()
                    except BaseException as exc:  # noqa: BLE001 - raised below, after the others end
                        error = error or exc
                        continue
                    if on_done is not None:
                        on_done(item, results[index])
                if error is not None:
                    pending.clear()
    finally:
        os.close(wake_read)
        os.close(wake_write)
        tokens.close()
    if error is not None:
        raise error
    return [results[i] for i in sorted(results)]

