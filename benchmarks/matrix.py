"""Matrix wall time, `-j 2` against `-j 1`, side by side in one run, for the two rebuilds issue 17 names:

(a) pipelines/gesture-matrix from an empty project store: data, training, quantization and the oracle once, then
    per cell codegen, render, cargo and QEMU;
(b) the cells below an unchanged training stage: the kernels crate and the linker script are edited in the
    firmware template (a comment; a symbol), which changes the codegen and firmware keys of every cell and its
    ELF, so codegen, firmware, build and run rerun, and nothing upstream of them.

The user-level cache (Rust sysroots) is warmed first and shared by every timing, so no timing builds a sysroot.
Every timing runs in a fresh copy of the project (for (b), a copy of one fully built project). The firmware
template is a private copy (`TINYPIPE_FIRMWARE_TEMPLATE`) so that (b) can edit it. The deliberately oversized
micro:bit cell fails in every run (exit 2); every other cell must be bit-exact.
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
TARGETS = {"a": 1.5, "b": 1.8}
KERNELS_SOURCE = Path("kernels") / "src" / "lib.rs"  # in the template copy: feeds the codegen key
LINKER_SCRIPT = "link.x.in"  # a symbol defined in it: every ELF changes, so every run stage reruns


def run_matrix(project: Path, jobs: int, env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tinypipe", "run", str(project), "-j", str(jobs), "--json"],
                          cwd=REPO, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    broken = [r["variant"] for r in doc.get("results", [])
              if r["variant"] != EXPECTED_FAILURE and r["bit_exact"] is not True]
    if proc.returncode not in (0, 2) or broken or not doc:
        sys.exit(f"matrix run -j {jobs} failed (exit {proc.returncode}, not bit-exact: {broken}):\n{proc.stderr}")
    return seconds, doc


def ran(doc: dict) -> dict[str, int]:
    """How many stages of each kind ran."""
    out: dict[str, int] = {}
    for stage in doc["stages"]:
        if stage["status"] == "ran":
            out[stage["stage"]] = out.get(stage["stage"], 0) + 1
    return out


def fresh_project(workdir: Path, name: str) -> Path:
    project = workdir / f"{name}-{time.monotonic_ns()}"
    project.mkdir()
    shutil.copy(PROJECT / "project.yaml", project / "project.yaml")
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="timings per setting (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinypipe-matrix-bench-") as tmp:
        workdir = Path(tmp)
        template = workdir / "template"
        shutil.copytree(REPO / "firmware-template", template, ignore=shutil.ignore_patterns("target"))
        env = {**os.environ, "TINYPIPE_FIRMWARE_TEMPLATE": str(template)}
        built = fresh_project(workdir, "built")
        warm, _ = run_matrix(built, 2, env)  # fills the user-level cache; `built` is (b)'s starting point
        cache = os.environ.get("TINYPIPE_CACHE") or "the user cache"
        print(f"warm-up (toolchains into {cache}): {warm:.1f} s", flush=True)
        timings: dict[str, dict[int, float]] = {"a": {}, "b": {}}
        stages: dict[str, dict[str, int]] = {}
        for jobs in (1, 2):
            samples = []
            for _ in range(args.repeat):
                seconds, doc = run_matrix(fresh_project(workdir, f"a-j{jobs}"), jobs, env)
                samples.append(seconds)
                stages["a"] = ran(doc)
            timings["a"][jobs] = statistics.median(samples)
        report("a", timings, stages, args.repeat)
        with open(template / KERNELS_SOURCE, "a") as f:
            f.write("// benchmarks/matrix.py: a change below training\n")
        with open(template / LINKER_SCRIPT, "a") as f:
            f.write("tinypipe_benchmark_edit = 1;\n")
        for jobs in (1, 2):
            samples = []
            for i in range(args.repeat):
                project = workdir / f"b-j{jobs}-{i}"
                shutil.copytree(built, project, symlinks=True)
                seconds, doc = run_matrix(project, jobs, env)
                samples.append(seconds)
                stages["b"] = ran(doc)
                if "train" in stages["b"] or not {"codegen", "build", "run"} <= set(stages["b"]):
                    sys.exit(f"(b) should rebuild below training only; it ran {stages['b']}")
            timings["b"][jobs] = statistics.median(samples)
        report("b", timings, stages, args.repeat)


def report(case: str, timings: dict[str, dict[int, float]], stages: dict[str, dict[str, int]], repeat: int) -> None:
    what = {"a": "(a) from an empty store", "b": "(b) below unchanged training"}[case]
    ratio = timings[case][1] / timings[case][2]
    print(f"{what}: -j 1 {timings[case][1]:6.1f} s, -j 2 {timings[case][2]:6.1f} s, ratio {ratio:.2f}x "
          f"(target >= {TARGETS[case]}x: {'ok' if ratio >= TARGETS[case] else 'MISSED'}; median of {repeat}, "
          f"{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f})")
    print(f"    stages that ran: {', '.join(f'{s} {n}' for s, n in stages[case].items())}", flush=True)


if __name__ == "__main__":
    main()
