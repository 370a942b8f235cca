"""Executors schedule the DAG; what a node does is the caller's `work` function.

`DoitExecutor` hands the nodes to doit as tasks (uptodate = "the store has this key"), serially or on threads
with `-j N`. Any other executor — dask.distributed or Ray — needs only `execute`: submit `work(node)` for each
node whose needs are done, with the store on a shared filesystem or remote cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from tinypipe.engine.graph import Graph, Node


class Executor(Protocol):
    def execute(self, graph: Graph, work: Callable[[Node], None], cached: Callable[[Node], bool],
                on_cached: Callable[[Node], None], jobs: int) -> None:
        """Run `work(node)` for every node that is not `cached(node)`, after the nodes it needs.

        `work` records its own failure (and never raises); a node whose needs failed is skipped."""


class _DoitReporter:
    """doit's reporter interface, forwarding the one event our runner does not see: a task skipped as up to date."""

    def __init__(self, nodes: dict[str, Node], on_cached: Callable[[Node], None]):
        self.nodes = nodes
        self.on_cached = on_cached
        self.errors: list[str] = []

    def initialize(self, tasks, selected_tasks):  # noqa: D401 - doit API
        pass

    def get_status(self, task):
        pass

    def execute_task(self, task):
        pass

    def add_failure(self, task, fail):
        pass

    def add_success(self, task):
        pass

    def skip_uptodate(self, task):
        self.on_cached(self.nodes[task.name])

    def skip_ignore(self, task):
        pass

    def cleanup_error(self, exception):
        self.errors.append(str(exception))

    def runtime_error(self, msg):
        self.errors.append(msg)

    def teardown_task(self, task):
        pass

    def complete_run(self):
        pass


class DoitExecutor:
    def __init__(self, db_path: Path):
        self.db_path = Path(db_path)

    def execute(self, graph: Graph, work, cached, on_cached, jobs: int = 1) -> None:
        from doit.control import TaskControl
        from doit.dependency import Dependency, JsonDB
        from doit.runner import MThreadRunner, Runner
        from doit.task import Stream, Task

        nodes = {n.task_name: n for n in graph.nodes}
        tasks = []
        for node in graph.nodes:
            tasks.append(Task(
                node.task_name,
                actions=[(_action, (work, node))],
                task_dep=[dep.task_name for dep in node.needs],
                uptodate=[(_uptodate, (cached, node))],
                verbosity=2,  # our stages report through the reporter; doit must not capture
            ))
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        dep_manager = Dependency(JsonDB, str(self.db_path))
        reporter = _DoitReporter(nodes, on_cached)
        control = TaskControl(tasks)
        control.process(None)
        stream = Stream(2)
        if jobs > 1:
            runner = MThreadRunner(dep_manager, reporter, True, False, stream, jobs)
        else:
            runner = Runner(dep_manager, reporter, True, False, stream)
        runner.run_all(control.task_dispatcher())
        if reporter.errors:
            raise RuntimeError("doit: " + "; ".join(reporter.errors))


def _action(work: Callable[[Node], bool], node: Node):
    from doit.exceptions import TaskFailed

    ok = work(node)
    return None if ok else TaskFailed(f"{node.task_name} failed")


def _uptodate(cached: Callable[[Node], bool], node: Node) -> bool:
    return cached(node)
