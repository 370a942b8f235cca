"""Planning and no-op cost of a ~1,000-stage sweep, through the real CLI.

The project is the gesture example with `matrix: {model.epochs: [1 … CELLS]}`: one data stage and one Rust
toolchain shared by every cell, and per cell train, quantize, reference, codegen, firmware, build and run
(8 x CELLS + 2 stages). Its store is filled without training anything: each stage, in DAG order, gets an entry
under its real key holding a small stand-in output (the out/ links' files included). A first `tinypipe run`
then finds everything cached and writes the lock; what is timed, each as the median of fresh processes, is
`tinypipe run` doing nothing and `tinypipe plan`, both against the targets of issue 17.
Usage: python benchmarks/scale.py [--cells N] [--repeat N] [--profile]   (--profile: cProfile of one no-op run)
"""

from __future__ import annotations

import argparse
import os
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


def timed(argv: list[str], repeat: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        samples.append(time.perf_counter() - started)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return statistics.median(samples)


def verdict(seconds: float, target: float) -> str:
    return f"{seconds:6.3f} s  target <= {target:.1f} s  ({seconds / target:.2f} of it)  " + (
        "ok" if seconds <= target else "MISSED")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=143, help="matrix cells (8 stages each, plus 2 shared)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per command (median)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one no-op run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinypipe-scale-") as tmp:
        project = Path(tmp) / "sweep"
        env = {**os.environ, "TINYPIPE_CACHE": str(Path(tmp) / "cache")}
        os.environ["TINYPIPE_CACHE"] = env["TINYPIPE_CACHE"]
        write_project(project, args.cells)
        started = time.perf_counter()
        stages = fill_store(project)
        print(f"{args.cells} cells, {stages} stages; store filled with stand-ins in "
              f"{time.perf_counter() - started:.1f} s")
        cli = [sys.executable, "-m", "tinypipe"]
        timed([*cli, "run", str(project), "-q"], 1, env)  # writes the lock and the out/ links once
        noop = timed([*cli, "run", str(project), "-q"], args.repeat, env)
        plan = timed([*cli, "plan", str(project)], args.repeat, env)
        print(f"no-op `tinypipe run` ({stages} stages, median of {args.repeat}): {verdict(noop, NOOP_TARGET_S)}")
        print(f"`tinypipe plan`      ({stages} stages, median of {args.repeat}): {verdict(plan, PLAN_TARGET_S)}")
        if args.profile:
            subprocess.run([sys.executable, "-m", "cProfile", "-s", "cumulative", "-m", "tinypipe", "run",
                            str(project), "-q"], cwd=REPO, env=env, check=True)
    return 0 if noop <= NOOP_TARGET_S and plan <= PLAN_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
