"""tinypipe's native engine: an int8 .tflite -> Rust source that calls the `tinyml-kernels` crate.

`generate(model_bytes, source)` parses the flatbuffer, lowers every operator to a kernel call with the
parameters TFLM's `Prepare` would compute, plans one static arena and returns the text of `model.rs` plus a
JSON-able summary (what the codegen stage writes as `codegen.json`). Pure Python, no TensorFlow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tinypipe.engines.native.emit import emit_model_rs, scratch_sizes
from tinypipe.engines.native.lower import SUPPORTED_OPS, Program, lower
from tinypipe.engines.native.modes import DEFAULT, mode, plan_options
from tinypipe.engines.native.plan import ArenaPlan, plan_arena
from tinypipe.tflite.reader import parse_model

# The Rust crate the generated code calls; the firmware template vendors it as `kernels/`.
KERNELS_DIR = Path(__file__).resolve().parents[3] / "firmware-template" / "kernels"

__all__ = ["KERNELS_DIR", "SUPPORTED_OPS", "Generated", "generate"]


@dataclass(frozen=True)
class Generated:
    model_rs: str
    info: dict


def _io(program: Program) -> dict:
    def one(idx: int) -> dict:
        t = program.tensors[idx]
        q = t.quantization
        return {"shape": list(t.shape), "dtype": t.dtype,
                "scale": q.scale[0] if q else None, "zero_point": q.zero_point[0] if q and q.zero_point else 0}

    return {"input": one(program.input), "output": one(program.output)}


def _summary(program: Program, plan: ArenaPlan, io: dict, sha256: str) -> dict:
    scratch_words, stage_bytes = scratch_sizes(program)
    ops = []
    for s in program.steps:
        ops.append({
            "index": s.index, "op": s.op, "kernel": s.kernel or "alias", "input_tensor": s.input,
            "output_tensor": s.output, "input_shape": list(s.in_shape),
            "output_shape": list(s.out_shape), "macs": s.macs, "weight_bytes": sum(a.nbytes for a in s.arrays),
            "input_offset": plan.offset(s.input), "output_offset": plan.offset(s.output),
            "general_channels": s.general_channels,
        })
    return {
        "model_sha256": sha256,
        "ops": ops,
        "arena_bytes": plan.size,
        "arena_lower_bound": plan.lower_bound,
        "arena_strategies": plan.strategies,
        "arena_strategy": plan.strategy,
        "in_place_ops": sorted(plan.in_place),
        "scratch_bytes": 4 * scratch_words + stage_bytes,
        "weight_bytes": sum(o["weight_bytes"] for o in ops),
        "macs": sum(o["macs"] for o in ops),
        "input": io["input"],
        "output": io["output"],
    }


def generate(model_bytes: bytes, source: str = "model.tflite", optimize: str = DEFAULT) -> Generated:
    """`optimize`: a `native.optimize` mode (modes.py); the default's output is what it was before modes."""
    model = parse_model(model_bytes, source)
    program = lower(model)
    sizes = {t.index: t.nbytes for t in program.tensors}
    plan = plan_arena(program.steps, sizes, program.input, program.output, program.alias_of,
                      options=plan_options(optimize))
    io = _io(program)
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    info = _summary(program, plan, io, sha256)
    # Only what a mode changes goes into the output: a mode that generates what `balanced` does shares the
    # downstream entries (firmware, build, run) with it, and a project without modes keeps its bytes.
    if mode(optimize).opt_level is not None:
        info["opt_level"] = mode(optimize).opt_level
    header = [
        f"model: {Path(source).name} (sha256 {sha256[:16]}…)",
        f"ops: {', '.join(s.op for s in program.steps)}",
        f"MACs: {info['macs']}, weights: {info['weight_bytes']} bytes, arena: {plan.size} bytes "
        f"(lower bound {plan.lower_bound}), kernel scratch on the stack: {info['scratch_bytes']} bytes",
    ]
    if mode(optimize).opt_level is not None:
        header.append(f"optimize: {optimize} ({mode(optimize).summary}, cargo opt-level {mode(optimize).opt_level})")
    return Generated(model_rs=emit_model_rs(program, plan, header, io), info=info)
