"""Matrix wall time: pipelines/gesture-matrix with `-j 1` and with `-j 2`, side by side in one run.

The user-level cache (Rust sysroots) is warmed first, so both timings build what a matrix rebuilds after a
model change: data, training and the oracle once, then per cell codegen, render, cargo and QEMU. Each timing
starts from an empty project store in a fresh copy of the project. The deliberately oversized micro:bit cell
fails in both (exit 2); the other cells must succeed.
Usage: python benchmarks/matrix.py [--repeat N]   (TINYPIPE_CACHE chooses the user-level cache to warm)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "pipelines" / "gesture-matrix"
EXPECTED_FAILURE = "microbit-native"


def run_matrix(workdir: Path, jobs: int) -> tuple[float, dict]:
    project = workdir / f"j{jobs}-{time.monotonic_ns()}"
    project.mkdir()
    shutil.copy(PROJECT / "project.yaml", project / "project.yaml")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tinypipe", "run", str(project), "-j", str(jobs), "--json"],
                          cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    broken = [r["variant"] for r in doc.get("results", [])
              if r["variant"] != EXPECTED_FAILURE and r["bit_exact"] is not True]
    if proc.returncode not in (0, 2) or broken or not doc:
        sys.exit(f"matrix run -j {jobs} failed (exit {proc.returncode}, not bit-exact: {broken}):\n{proc.stderr}")
    return seconds, doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="timings per setting (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinypipe-matrix-bench-") as tmp:
        workdir = Path(tmp)
        warm, _ = run_matrix(workdir, jobs=2)  # builds any missing sysroot into the user-level cache
        print(f"warm-up (toolchains into {os.environ.get('TINYPIPE_CACHE') or 'the user cache'}): {warm:.1f} s")
        timings = {}
        for jobs in (1, 2):
            samples = [run_matrix(workdir, jobs)[0] for _ in range(args.repeat)]
            timings[jobs] = statistics.median(samples)
    print(f"matrix wall time, warm toolchain cache, {os.cpu_count()} CPUs:")
    print(f"  -j 1  {timings[1]:6.1f} s")
    print(f"  -j 2  {timings[2]:6.1f} s")
    print(f"  ratio -j 1 / -j 2 = {timings[1] / timings[2]:.2f}x")


if __name__ == "__main__":
    main()
