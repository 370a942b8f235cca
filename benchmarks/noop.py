"""No-op run speed: `tinypipe run` with nothing changed vs bare doit re-running an equivalent 9-task file.

Both are measured here, in this run, as the median of several wall-clock timings of a fresh process.
Targets (issue: Foundation): tinypipe's no-op under 0.35 s on this machine kind, and within 2x of bare doit.
Usage: python benchmarks/noop.py [PROJECT_DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ["data", "train", "quantize", "reference", "codegen", "toolchain", "firmware", "build", "run"]

DODO = textwrap.dedent('''
    """Nine chained tasks, each producing a file from the previous one: the shape of tinypipe's pipeline."""
    STAGES = {stages!r}

    def _make(prev, out):
        def action():
            with open(out, "w") as f:
                f.write(open(prev).read() + out if prev else out)
        return action

    def task_pipeline():
        prev = None
        for name in STAGES:
            out = name + ".out"
            yield {{"name": name, "actions": [_make(prev, out)], "file_dep": [prev] if prev else [],
                   "targets": [out], "verbosity": 0}}
            prev = out
''')


def timed(argv: list[str], cwd: Path, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("project", nargs="?", default=str(REPO / "pipelines" / "gesture"))
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    bindir = Path(sys.executable).parent
    tinypipe = [str(bindir / "tinypipe"), "run", args.project, "--json"]

    print("warming: making sure the project is fully built (the first time this runs the whole pipeline)…")
    subprocess.run(tinypipe, check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "dodo.py").write_text(DODO.format(stages=STAGES))
        doit = [str(bindir / "doit"), "-f", "dodo.py"]
        subprocess.run(doit, cwd=work, check=True, stdout=subprocess.DEVNULL)  # first run builds the files
        t_doit = timed(doit, work, args.repeat)
        t_tp = timed(tinypipe, REPO, args.repeat)

    ratio = t_tp / t_doit
    ok_abs, ok_ratio = t_tp < 0.35, ratio <= 2.0
    print(f"tinypipe no-op run : {t_tp * 1000:7.1f} ms  (median of {args.repeat})  target < 350 ms  "
          f"{'ok' if ok_abs else 'MISSED'}")
    print(f"bare doit, 9 tasks : {t_doit * 1000:7.1f} ms")
    print(f"ratio tinypipe/doit: {ratio:7.2f}x    target <= 2.0x  {'ok' if ok_ratio else 'MISSED'}")
    return 0 if ok_abs and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
