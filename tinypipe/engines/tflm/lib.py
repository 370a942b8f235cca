"""Stage `tflm_lib`: TensorFlow Lite Micro compiled for the variant's CPU into `libtflm.a` (user-level cache).

One library per (CPU flags, float ABI, kernel set, source tree, op selection): every project with the same
target and the same ops shares it. The op selection comes from `tflm_ops` — the model's ops by default, so the
library is TFLM's core plus the kernel files those ops need (`_tflm.kernel_files_for_ops`), or every kernel with
`tflm.library: full`. Its key therefore holds the op list, never the model or the project's path.
The sources and flags follow the tree's PROVENANCE.md (see `_tflm`); objects are cached by content, so a model
with other ops compiles only its missing kernels, and a changed source recompiles alone.

Outputs: `libtflm.a` and `tflm.json` (kernel set, ops, compile flags, source fingerprint, sources).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from tinypipe.core.fs import atomic_write_json, read_json
from tinypipe.engines.tflm import source as _tflm
from tinypipe.stages.base import Stage, StageContext, StageResult
from tinypipe.engines.tflm.ops import OPS_FILE
from tinypipe.toolchain import objects, tools
from tinypipe.toolchain.flags import gcc_flags, hard_float

LIBRARY = "libtflm.a"
MANIFEST = "tflm.json"


def _config(variant) -> dict:
    s = _tflm.settings(variant)
    return {
        "cpu": variant.cpu,
        "float_abi": "hard" if hard_float(variant) else "soft",
        "kernels": s.kernels,
        "opt": _tflm.OPT_LEVEL,
        "flags": _tflm.compile_flags(variant, s.kernels),
        "source": _tflm.source_identity(_tflm.locate_source(variant)),
    }


def _tools(variant) -> dict:
    return {tools.GXX: tools.version(tools.GXX)}


STAGE = Stage(name="tflm_lib", version="2", needs=("tflm_ops",), config=_config, tools=_tools, shared=True,
              description="compile TensorFlow Lite Micro (core + the ops' kernels) for the CPU into libtflm.a")


def build_library(variant, root: Path, out: Path, *, kernels: str | None = None, ops: Iterable[str] | None = None,
                  jobs: int | None = None, progress: Callable[[int, int], None] | None = None) -> StageResult:
    """Compile one build's sources — TFLM's core plus the kernels of `ops`, or every kernel when `ops` is None —
    and archive them into `out/libtflm.a`; write `out/tflm.json`."""
    kernels = kernels or _tflm.settings(variant).kernels
    ops = None if ops is None else sorted(set(ops))
    kernel_files = None if ops is None else _tflm.kernel_files_for_ops(root, kernels, ops)
    sources = _tflm.library_sources(root, kernels, kernel_files)
    flags = _tflm.compile_flags(variant, kernels)
    compiled, stats = objects.compile_sources(root, sources, flags, jobs=jobs, progress=progress)
    objects.archive(compiled, out / LIBRARY)
    summary = {"kernels": kernels, "library": "full" if ops is None else "model_ops", "ops": ops,
               "sources": len(sources), "compiled": stats.compiled, "reused": stats.reused,
               "library_bytes": (out / LIBRARY).stat().st_size}
    atomic_write_json(out / MANIFEST, {
        "kernels": kernels, "library": summary["library"], "ops": ops, "kernel_files": kernel_files,
        "cpu_flags": gcc_flags(variant), "flags": flags, "source": _tflm.source_identity(root),
        "sources": sources,
    })
    return summary


def run(ctx: StageContext) -> StageResult:
    root = _tflm.require_source(ctx.variant, ctx.project_dir)
    selection = read_json(ctx.input("tflm_ops", OPS_FILE))
    summary = build_library(ctx.variant, root, ctx.out, ops=selection["ops"],
                            progress=lambda done, total: ctx.progress(done, total, "compiling TFLM"))
    what = "every kernel" if summary["ops"] is None else ", ".join(summary["ops"])
    ctx.log(f"libtflm.a ({summary['kernels']}; {what}): {summary['sources']} sources, {summary['compiled']} "
            f"compiled, {summary['reused']} from the object cache")
    return summary
