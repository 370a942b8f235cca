"""Stage `tflm_lib`: TensorFlow Lite Micro compiled for the variant's CPU into `libtflm.a` (user-level cache).

One library per (CPU flags, float ABI, kernel set, source tree): every project with the same target shares it.
The sources and flags follow the tree's PROVENANCE.md (see `_tflm`); objects are cached by content, so a
changed source recompiles alone and a second kernel set or CPU reuses nothing it should not.

Outputs: `libtflm.a` and `tflm.json` (kernel set, compile flags, source fingerprint, object counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from tinypipe.core.fs import atomic_write_json
from tinypipe.stages import _tflm
from tinypipe.stages.base import Stage, StageContext, StageResult

LIBRARY = "libtflm.a"
MANIFEST = "tflm.json"


def _config(variant) -> dict:
    s = _tflm.settings(variant)
    return {
        "cpu": variant.cpu,
        "float_abi": _tflm.float_abi(variant),
        "kernels": s.kernels,
        "opt": _tflm.OPT_LEVEL,
        "flags": _tflm.compile_flags(variant, s.kernels),
        "source": _tflm.source_identity(_tflm.locate_source(variant)),
    }


def _tools(variant) -> dict:
    return {"arm-none-eabi-g++": _tflm.tool_version(_tflm.CXX)}


STAGE = Stage(name="tflm_lib", version="1", needs=(), config=_config, tools=_tools, shared=True,
              description="compile TensorFlow Lite Micro for the CPU into libtflm.a")


def build_library(variant, root: Path, out: Path, *, kernels: str | None = None,
                  only_kernels: Iterable[str] | None = None, jobs: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> StageResult:
    """Compile one build's sources and archive them into `out/libtflm.a`; write `out/tflm.json`."""
    kernels = kernels or _tflm.settings(variant).kernels
    sources = _tflm.library_sources(root, kernels, only_kernels)
    flags = _tflm.compile_flags(variant, kernels)
    objects, stats = _tflm.compile_sources(root, sources, flags, jobs=jobs, progress=progress)
    _tflm.archive(objects, out / LIBRARY)
    summary = {"kernels": kernels, "sources": len(sources), "compiled": stats.compiled, "reused": stats.reused,
               "library_bytes": (out / LIBRARY).stat().st_size}
    atomic_write_json(out / MANIFEST, {
        "kernels": kernels, "cpu_flags": _tflm.cpu_flags(variant), "flags": flags,
        "source": _tflm.source_identity(root), "sources": sources,
        "only_kernels": None if only_kernels is None else sorted(only_kernels),
    })
    return summary


def run(ctx: StageContext) -> StageResult:
    root = _tflm.require_source(ctx.variant, ctx.project_dir)
    summary = build_library(ctx.variant, root, ctx.out,
                            progress=lambda done, total: ctx.progress(done, total, "compiling TFLM"))
    ctx.log(f"libtflm.a ({summary['kernels']}): {summary['sources']} sources, {summary['compiled']} compiled, "
            f"{summary['reused']} from the object cache")
    return summary
