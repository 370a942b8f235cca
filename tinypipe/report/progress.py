"""Live progress on stderr: a line per stage as it starts and ends, a bar for stages that report steps.

On a terminal this is a rich live display; elsewhere (CI logs, pipes) plain lines, one per event. Stages run in
worker processes whose output goes to their log files, so nothing but the reporter writes to our stderr while
the display is live: the display never captures (and never re-emits) any stream.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from tinypipe.engine.graph import Node


def _label(node: Node) -> str:
    variants = node.variants
    scope = variants[0] if len(variants) == 1 else f"{len(variants)} variants"
    return f"{node.name:<10} {scope}"


class PlainReporter:
    """One line per event; also used when stderr is not a terminal."""

    def __init__(self, stream=None, quiet: bool = False, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.verbose = verbose
        self._last_progress: dict[int, float] = {}
        self._guard = threading.Lock()

    def _write(self, text: str) -> None:
        with self._guard:
            self.stream.write(text + "\n")
            self.stream.flush()

    def warn(self, message: str) -> None:
        self._write(f"warning: {message}")

    def start(self, node: Node) -> None:
        if not self.quiet:
            self._write(f"  ▶ {_label(node)}: {node.stage.description or 'running'}")

    def progress(self, node: Node, done: int, total: int, message: str) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if now - self._last_progress.get(id(node), 0.0) < 2.0 and done < total:
            return  # throttle: a CI log needs a heartbeat, not every step
        self._last_progress[id(node)] = now
        self._write(f"    {node.name} {done}/{total} {message}")

    def log(self, node: Node, message: str) -> None:
        if not self.quiet:
            self._write(f"    {node.name}: {message}")

    def finish(self, node: Node, status: str, seconds: float) -> None:
        if self.quiet:
            return
        if status == "cached":
            if self.verbose:
                self._write(f"  · {_label(node)}: cached")
        else:
            self._write(f"  ✓ {_label(node)}: {status} in {seconds:.1f}s")

    def fail(self, node: Node, error: BaseException) -> None:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        self._write(f"  ✗ {_label(node)}: failed: {first}")

    @contextlib.contextmanager
    def step(self, label: str, message: str):
        """Work outside the stages (an export's library build) shown like a stage: started, then done."""
        if not self.quiet:
            self._write(f"  ▶ {label}: {message}")
        started = time.monotonic()
        yield
        if not self.quiet:
            self._write(f"  ✓ {label}: done in {time.monotonic() - started:.1f}s")


class RichReporter:
    """A rich Progress: spinner and bar per running stage, a final line per finished stage."""

    def __init__(self, console, verbose: bool = False):
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console
        self.verbose = verbose
        # redirect_*=False: rich must not swap sys.stdout/sys.stderr for proxies that write back to its console
        self.progress_ui = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.fields[label]}"), BarColumn(bar_width=24),
            TextColumn("{task.fields[message]}"), TimeElapsedColumn(), console=console,
            transient=True, redirect_stdout=False, redirect_stderr=False,
        )
        self.tasks: dict[int, int] = {}
        self._guard = threading.Lock()

    def __enter__(self):
        self.progress_ui.start()
        return self

    def __exit__(self, *exc):
        self.progress_ui.stop()  # also shows the cursor again, on Ctrl-C too

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    def start(self, node: Node) -> None:
        with self._guard:
            self.tasks[id(node)] = self.progress_ui.add_task(
                "", total=None, label=_label(node), message=node.stage.description)

    def progress(self, node: Node, done: int, total: int, message: str) -> None:
        task = self.tasks.get(id(node))
        if task is not None:
            self.progress_ui.update(task, completed=done, total=total, message=message)

    def log(self, node: Node, message: str) -> None:
        task = self.tasks.get(id(node))
        if task is not None:
            self.progress_ui.update(task, message=message)
        if self.verbose:
            self.console.print(f"    [dim]{node.name}: {message}[/dim]", highlight=False)

    def _done(self, node: Node) -> None:
        with self._guard:
            task = self.tasks.pop(id(node), None)
        if task is not None:
            self.progress_ui.remove_task(task)

    def finish(self, node: Node, status: str, seconds: float) -> None:
        self._done(node)
        if status == "cached":
            if self.verbose:
                self.console.print(f"  [dim]· {_label(node)}: cached[/dim]")
        else:
            self.console.print(f"  [green]✓[/green] {_label(node)}: {status} in {seconds:.1f}s")

    @contextlib.contextmanager
    def step(self, label: str, message: str):
        """Work outside the stages (an export's library build) shown like a stage: a spinner, then a line."""
        with self._guard:
            task = self.progress_ui.add_task("", total=None, label=label, message=message)
        started = time.monotonic()
        try:
            yield
        finally:
            with self._guard:
                self.progress_ui.remove_task(task)
        self.console.print(f"  [green]✓[/green] {label}: done in {time.monotonic() - started:.1f}s")

    def fail(self, node: Node, error: BaseException) -> None:
        self._done(node)
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.console.print(f"  [red]✗ {_label(node)}: failed:[/red] {first}", markup=True, highlight=False)
