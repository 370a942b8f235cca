"""Planning and no-op cost of a ~1,000-stage sweep, through the real CLI.

The project is the gesture example with `matrix: {model.epochs: [1 … CELLS]}`: one data stage and one Rust
toolchain shared by every cell, and per cell train, quantize, reference, codegen, firmware, build and run
(8 x CELLS + 2 stages). Its store is filled without training anything: each stage, in DAG order, gets an entry
under its real key holding a small stand-in output (the out/ links' files included). A first `tinypipe run`
then finds everything cached and writes the lock; what is timed, each as the median of fresh processes, is
`tinypipe run --json` doing nothing (the path the no-op import rule covers: no rich), `tinypipe run` printing its
table, and `tinypipe plan`, against the targets of issue 17. Wall time is what the targets are about; the CPU
time the process used (user + system) is printed beside it, since other work on a loaded machine stretches only
the wall time (the load average is printed too).
Usage: python benchmarks/scale.py [--cells N] [--repeat N] [--profile]   (--profile: cProfile of one no-op run)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "pipelines" / "gesture" / "project.yaml"
NOOP_TARGET_S = 0.5
PLAN_TARGET_S = 1.0
STAND_IN_FILES = {"codegen": ("model.rs",), "build": ("firmware.elf", "firmware.bin", "size.json"),
                  "run": ("run.json",)}


def write_project(project: Path, cells: int) -> None:
    project.mkdir(parents=True)
    epochs = ", ".join(str(e) for e in range(1, cells + 1))
    (project / "project.yaml").write_text(EXAMPLE.read_text() + f"\nmatrix:\n  model.epochs: [{epochs}]\n")


def fill_store(project: Path) -> int:
    """Every stage's entry under its real key, with a stand-in output; returns how many stages."""
    from tinypipe.core.hashing import sha256_json
    from tinypipe.engine.pipeline import Pipeline

    pipeline = Pipeline(project)
    for node in pipeline.graph.nodes:  # topological: every upstream output is known when a node is keyed
        if node.meta() is not None:
            continue
        tmp = node.store.begin()
        (tmp / "output.txt").write_text(f"{node.name} for {', '.join(node.variants)}\n")
        for name in STAND_IN_FILES.get(node.name, ()):
            (tmp / name).write_text(f"stand-in {name}\n")
        inputs = node.key_inputs()
        node.set_meta(node.store.commit(tmp, sha256_json(inputs), {
            "stage": node.name, "variants": node.variants, "inputs": inputs, "summary": {}, "seconds": 0.0}))
    return len(pipeline.graph.nodes)


def timed(argv: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) of `repeat` runs of argv in a fresh process."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return statistics.median(walls), statistics.median(cpus)


def verdict(what: str, timing: tuple[float, float], target: float) -> str:
    wall, cpu = timing
    return (f"{what:<34} {wall:6.3f} s wall ({wall / target:4.2f} of the {target:.1f} s target: "
            f"{'ok' if wall <= target else 'MISSED'}), {cpu:6.3f} s CPU")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=143, help="matrix cells (8 stages each, plus 2 shared)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per command (median)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one no-op run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinypipe-scale-") as tmp:
        project = Path(tmp) / "sweep"
        env = {**os.environ, "TINYPIPE_CACHE": str(Path(tmp) / "cache")}
        # as installed, Python caches tinypipe's compiled modules (.pyc); with PYTHONDONTWRITEBYTECODE set (some
        # sandboxes and CI images set it) every run compiles them again, ~0.1 s that no user's run pays
        if env.pop("PYTHONDONTWRITEBYTECODE", None):
            print("PYTHONDONTWRITEBYTECODE is set here: unset for the timed runs, as in a normal install")
        os.environ["TINYPIPE_CACHE"] = env["TINYPIPE_CACHE"]
        write_project(project, args.cells)
        started = time.perf_counter()
        stages = fill_store(project)
        print(f"{args.cells} cells, {stages} stages; store filled with stand-ins in "
              f"{time.perf_counter() - started:.1f} s")
        cli = [sys.executable, "-m", "tinypipe"]
        timed([*cli, "run", str(project), "-q"], 1, env)  # writes the lock, the config cache, the out/ links
        noop = timed([*cli, "run", str(project), "-q", "--json"], args.repeat, env)
        table = timed([*cli, "run", str(project), "-q"], args.repeat, env)
        plan = timed([*cli, "plan", str(project)], args.repeat, env)
        print(f"medians of {args.repeat}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:")
        print(verdict("no-op `tinypipe run --json`", noop, NOOP_TARGET_S))
        print(verdict("no-op `tinypipe run` (the table)", table, NOOP_TARGET_S))
        print(verdict("`tinypipe plan`", plan, PLAN_TARGET_S))
        if args.profile:
            subprocess.run([sys.executable, "-m", "cProfile", "-s", "cumulative", "-m", "tinypipe", "run",
                            str(project), "-q", "--json"], cwd=REPO, env=env, check=True)
    return 0 if noop[0] <= NOOP_TARGET_S and plan[0] <= PLAN_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
