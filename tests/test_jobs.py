"""`-j N` is one budget of N job slots shared by stages and the compilers they start (a GNU make jobserver).

Compilers are wrapped by a script that appends `start`/`end` lines to a log: the most processes ever running at
once is read from the order of those lines, not from timings. The wrappers sleep briefly so that two compilers
allowed to overlap do overlap.
"""

import os
import shutil
import stat
from pathlib import Path

import pytest

import tinypipe.engine.graph as graph_mod
from tinypipe.core import jobserver
from tinypipe.core.errors import UserError
from tinypipe.engine.pipeline import Pipeline
from tinypipe.toolchain import objects, tools
from tests.worker_stages.crash import CRASH_BOARD

GCC = shutil.which(tools.GCC)
CARGO = "/usr/bin/cargo" if os.path.isfile("/usr/bin/cargo") else shutil.which("cargo")
needs_gcc = pytest.mark.skipif(GCC is None, reason=f"{tools.GCC} not installed (make setup installs it)")
needs_cargo = pytest.mark.skipif(CARGO is None, reason="cargo not installed (make setup installs cargo-web)")


def most_at_once(log: Path) -> int:
    running = peak = 0
    for line in log.read_text().splitlines():
        running += 1 if line.startswith("start") else -1
        peak = max(peak, running)
    return peak


def write_wrapper(path: Path, real: str | None, log: Path) -> Path:
    """A compiler wrapper logging its start and end; `real` None: run its arguments (a RUSTC_WRAPPER)."""
    run = f'"{real}" "$@"' if real else '"$@"'
    path.write_text(f'#!/bin/sh\necho "start $$" >> "{log}"\nsleep 0.2\n{run}\nrc=$?\n'
                    f'echo "end $$" >> "{log}"\nexit $rc\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def logged_gcc(tmp_path, monkeypatch):
    """arm-none-eabi-gcc on PATH logs each compile to the returned file."""
    log = tmp_path / "compilers.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_wrapper(bin_dir / tools.GCC, GCC, log)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TINYPIPE_CACHE", str(tmp_path / "cache"))  # tool versions are cached by binary path
    return log


def compile_six(root: Path) -> objects.CompileStats:
    sources = []
    for i in range(6):
        (root / f"s{i}.c").write_text(f"int f{i}(int x) {{ return x * {i + 3}; }}\n")
        sources.append(f"s{i}.c")
    flags = ["-O2", "-mcpu=cortex-m4", "-mthumb"]
    cache = objects.ObjectCache(root, cache_dir=root / "objects")
    return objects.compile_sources(root, sources, {"c": flags, "c++": flags}, cache=cache)[1]


def tokens_in(server: jobserver.Jobserver) -> int:
    taken = []
    while (token := server.tokens.try_acquire()) is not None:
        taken.append(token)
    for token in taken:
        server.tokens.release(token)
    return len(taken)


def under_jobserver(monkeypatch, server: jobserver.Jobserver) -> None:
    """This process runs on one slot of `server`, as a worker does."""
    fd = os.open(server.path, os.O_RDWR)
    flags = f"-j{server.jobs} --jobserver-auth={fd},{fd}"
    for name in jobserver.FLAG_VARIABLES:
        monkeypatch.setenv(name, flags)


@needs_gcc
@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_object_compiles_take_their_slots_from_the_jobserver(tmp_path, monkeypatch, logged_gcc, jobs):
    server = jobserver.Jobserver(jobs)
    try:
        under_jobserver(monkeypatch, server)
        stats = compile_six(tmp_path)
        assert stats.compiled == 6
        assert most_at_once(logged_gcc) == jobs
        assert tokens_in(server) == jobs - 1  # every token came back
    finally:
        server.close()


@needs_gcc
def test_a_token_another_tool_holds_is_not_used(tmp_path, monkeypatch, logged_gcc):
    server = jobserver.Jobserver(2)
    try:
        under_jobserver(monkeypatch, server)
        held = server.tokens.try_acquire()  # a cargo elsewhere in the run holds the only token
        assert held is not None
        compile_six(tmp_path)
        assert most_at_once(logged_gcc) == 1
        server.tokens.release(held)
    finally:
        server.close()


def test_a_budget_beyond_the_pipe_is_refused():
    with pytest.raises(UserError, match=r"-j 5000: the job budget must be between 1 and 4096"):
        jobserver.Jobserver(5000)


def test_tools_get_the_descriptors_make_and_cargo_read(monkeypatch):
    server = jobserver.Jobserver(2)
    try:
        under_jobserver(monkeypatch, server)
        fds = jobserver.inherited_fds()
        assert len(fds) == 1 and os.environ["CARGO_MAKEFLAGS"] == f"-j2 --jobserver-auth={fds[0]},{fds[0]}"
        os.close(fds[0])
        assert jobserver.inherited_fds() == ()  # a closed descriptor is not handed on
    finally:
        server.close()


# --- the whole path: stages in worker processes, cargo and gcc under -j -----------------------------------------

MATRIX = "name: t\nmodel:\n  layers:\n    - {{type: dense, units: 3}}\nmatrix:\n  board: [{}]\n"


def worker_pipeline(monkeypatch, tmp_path: Path, stages: dict[str, str], boards: list[str]) -> Pipeline:
    monkeypatch.setattr(graph_mod, "pipeline_for", lambda engine: tuple(stages.items()))
    (tmp_path / "project.yaml").write_text(MATRIX.format(", ".join(boards)))
    return Pipeline(tmp_path)


@pytest.mark.slow  # two cargo builds per -j: about 15 s
@needs_gcc
@needs_cargo
@pytest.mark.parametrize("jobs", [1, 2])
def test_j_bounds_stages_and_their_compilers_together(tmp_path, monkeypatch, logged_gcc, jobs):
    """Two cells, each a cargo build of three crates and four gcc compiles, in worker processes: with -j 1 never
    two compilers at once, with -j 2 never three (and two do overlap)."""
    monkeypatch.setenv("TINYPIPE_TEST_RUSTC_WRAPPER", str(write_wrapper(tmp_path / "rustc-wrapper", None,
                                                                        logged_gcc)))
    project = tmp_path / "project"
    project.mkdir()
    pipeline = worker_pipeline(monkeypatch, project, {"compilers": "tests.worker_stages.compilers"},
                               ["mps2-an386", "mps2-an385"])
    outcome = pipeline.run(jobs=jobs)
    assert [r.status for r in outcome.records] == ["ran"] * 2, [r.error for r in outcome.records]
    assert logged_gcc.read_text().count("start") >= 2 * (3 + 4)
    assert most_at_once(logged_gcc) == jobs


def test_a_worker_that_dies_fails_its_stage_and_the_other_cells_go_on(tmp_path, monkeypatch):
    pipeline = worker_pipeline(monkeypatch, tmp_path, {"crash": "tests.worker_stages.crash",
                                                       "after": "tests.worker_stages.after"},
                               ["mps2-an386", CRASH_BOARD, "mps2-an385"])
    outcome = pipeline.run(jobs=2)
    by_cell = {(r.stage, r.variants[0]): r for r in outcome.records}
    crashed = by_cell[("crash", f"{CRASH_BOARD}-native")]
    assert crashed.status == "failed"
    assert str(crashed.error).startswith("the worker process running this stage died (killed by signal SIGSEGV)")
    assert "try again with fewer jobs (-j 1)" in str(crashed.error)
    assert by_cell[("after", f"{CRASH_BOARD}-native")].status == "skipped"
    for board in ("mps2-an386", "mps2-an385"):
        assert by_cell[("crash", f"{board}-native")].status == "ran"
        assert by_cell[("after", f"{board}-native")].status == "ran"
