"""tinypipe's native engine: an int8 .tflite -> Rust source that calls the `tinyml-kernels` crate.

`generate(model_bytes, source)` parses the flatbuffer, lowers every operator to a kernel call with the
parameters TFLM's `Prepare` would compute, plans one static arena and returns the text of `model.rs` plus a
JSON-able summary (what the codegen stage writes as `codegen.json`). Pure Python, no TensorFlow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tinypipe.engines.native.emit import CHANNEL_BYTES, channel_buffer, clamped_steps, emit_model_rs, scratch_sizes
from tinypipe.engines.native.lower import SUPPORTED_OPS, Program, lower
from tinypipe.engines.native.modes import DEFAULT, mode
from tinypipe.engines.native.patch import Patch, candidates, schedule
from tinypipe.engines.native.plan import ArenaPlan, plan_arena
from tinypipe.tflite.reader import parse_model

# The Rust crate the generated code calls; the firmware template vendors it as `kernels/`.
KERNELS_DIR = Path(__file__).resolve().parents[3] / "firmware-template" / "kernels"

__all__ = ["KERNELS_DIR", "SUPPORTED_OPS", "Generated", "generate", "reported_ops", "widens_weights"]


@dataclass(frozen=True)
class Generated:
    model_rs: str
    info: dict


def widens_weights(features, flash_bytes: int, model_bytes: int) -> bool:
    """Whether to pre-widen convolution filters for a board: they save the DSP inner loop's SXTB16s (about a
    fifth of a convolution's instructions) and can cost up to the model's size again in flash, so the board
    needs the DSP extension and room for the model twice in half its flash. Not on a Helium core: its vector
    loops (kernels/src/mve.rs) read the int8 filters and beat the widened scalar ones."""
    return "dsp" in features and "mve" not in features and 4 * model_bytes <= flash_bytes


def _io(program: Program) -> dict:
    def one(idx: int) -> dict:
        t = program.tensors[idx]
        q = t.quantization
        return {"shape": list(t.shape), "dtype": t.dtype,
                "scale": q.scale[0] if q else None, "zero_point": q.zero_point[0] if q and q.zero_point else 0}

    return {"input": one(program.input), "output": one(program.output)}


def _kernel(s, plan: ArenaPlan, patched: set[int]) -> str:
    if s.index in patched:
        return s.kernel + "_band"
    if s.index in plan.overlapped:
        return s.kernel + "_rows"
    return s.kernel or "alias"


def _offset(plan: ArenaPlan, tensor: int) -> int | None:
    """A tensor's arena offset; None for a patch's inner tensors, which never exist whole."""
    owner = plan.alias_of.get(tensor, tensor)
    return plan.buffers[owner].offset if owner in plan.buffers else None


def reported_ops(info: dict) -> list[dict]:
    """The operators whose outputs `invoke_with_hook` reports, in order: all that compute, but a patch's
    inner layers (their outputs only ever exist a band at a time)."""
    inner = set(info["patch"]["ops"][:-1]) if info.get("patch") else set()
    return [o for o in info["ops"] if o["kernel"] != "alias" and o["index"] not in inner]


def _summary(program: Program, plan: ArenaPlan, io: dict, sha256: str, patch: Patch | None,
             layer_by_layer: int) -> dict:
    scratch_words, stage_bytes = scratch_sizes(program)
    patched = {s.index for s in patch.steps} if patch else set()
    clamped = clamped_steps(program, schedule(program, patch))
    ops = []
    for s in program.steps:
        ops.append({
            "index": s.index, "op": s.op, "kernel": _kernel(s, plan, patched), "input_tensor": s.input,
            "output_tensor": s.output, "input_shape": list(s.in_shape),
            "output_shape": list(s.out_shape), "macs": s.macs, "weight_bytes": sum(a.nbytes for a in s.arrays),
            "input_offset": _offset(plan, s.input), "output_offset": _offset(plan, s.output),
            "general_channels": s.general_channels,
        })
        if s.index in clamped:  # run with the full int8 range, then clamped to its activation range (emit.py)
            ops[-1]["clamp_after"] = list(clamped[s.index])
    summary = {
        "model_sha256": sha256,
        "ops": ops,
        "arena_bytes": plan.size,
        "arena_lower_bound": plan.lower_bound,
        "arena_strategies": plan.strategies,
        "arena_strategy": plan.strategy,
        "in_place_ops": sorted(plan.in_place),
        "overlapped_ops": {str(op): shift for op, shift in sorted(plan.overlapped.items())},
        "patch": patch.summary() if patch else None,
        "arena_layer_by_layer": layer_by_layer,
        "scratch_bytes": 4 * scratch_words + stage_bytes + CHANNEL_BYTES * channel_buffer(program),
        "weight_bytes": sum(o["weight_bytes"] for o in ops),
        "macs": sum(o["macs"] for o in ops),
        "input": io["input"],
        "output": io["output"],
        "widened_weights": program.widened_weights,
    }
    coded = [{"op": s.index, "bytes": s.coded_weights[0], "coded_bytes": s.coded_weights[1]}
             for s in program.steps if s.coded_weights]
    if coded:  # only then: the modes that code nothing keep their codegen.json bytes
        summary["compressed_weights"] = coded
    return summary


def generate(model_bytes: bytes, source: str = "model.tflite", optimize: str = DEFAULT,
             widen_weights: bool = False) -> Generated:
    """`optimize`: a `native.optimize` mode (modes.py). `ram`: convolutions may write over their input row by row
    and the first layers may run patch-based where that lowers the arena (plan.py, patch.py); any other mode plans
    layer by layer. `widen_weights`: see `lower.lower`; never with "ram", whose row and band kernels take the int8
    filters, nor with "size" (the codegen stage chooses it per mode: codegen.widen_for_mode). "size" entropy-codes
    fully connected weights where that saves flash (`lower.lower`'s `code_weights`; codegen.json lists them in
    `compressed_weights`), takes the compact conv and int8 depthwise kernels and bit-packs the biases and
    rescales of their layers (`lower.lower`'s `compact`, channels.py)."""
    model = parse_model(model_bytes, source)
    # `size` keeps ADD's flash-free arithmetic; every other mode takes its tables
    program = lower(model, widen_weights and optimize not in ("ram", "size"), code_weights=optimize == "size",
                    add_tables=optimize != "size", compact=optimize == "size")
    plain = _plan(program, program.steps, {}, overlap=False)
    patch, plan = (None, plain) if optimize != "ram" else _plan_ram(program)
    io = _io(program)
    sha256 = hashlib.sha256(model_bytes).hexdigest()
    info = _summary(program, plan, io, sha256, patch, plain.size)
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
    if plan.overlapped:
        header.append(f"{len(plan.overlapped)} convolutions write row by row over their input")
    if patch:
        header.append(f"operators {patch.steps[0].index}..{patch.steps[-1].index} run in {len(patch.bands)} row bands "
                      f"(patch-based, {patch.extra_macs} MACs recomputed)")
    if patch or plan.overlapped:
        header.append(f"arena {plan.size} bytes instead of {plain.size} layer by layer")
    if mode(optimize).opt_level is not None:
        header.append(f"optimize: {optimize} ({mode(optimize).summary}, cargo opt-level {mode(optimize).opt_level})")
    return Generated(model_rs=emit_model_rs(program, plan, header, io, schedule(program, patch)), info=info)


def _plan(program: Program, steps: list, temps: dict[int, int], overlap: bool) -> ArenaPlan:
    sizes = {t.index: t.nbytes for t in program.tensors}
    sizes.update(temps)
    return plan_arena(steps, sizes, program.input, program.output, program.alias_of, overlap=overlap)


def _plan_ram(program: Program, finalists: int = 3) -> tuple[Patch | None, ArenaPlan]:
    """`optimize: ram`: the smallest arena over the plain schedule and patch-based ones, each with convolutions
    overlapping their input where that helps. Patches are ranked by the lower bound of their schedule with
    every possible overlap (cheap), the best few planned in full; a tie goes to the schedule that computes less."""
    temp = len(program.tensors)
    sizes = {t.index: t.nbytes for t in program.tensors}

    def bound(p: Patch) -> int:
        return plan_arena(schedule(program, p), {**sizes, temp: p.temp_bytes}, program.input, program.output,
                          program.alias_of, overlap=True, bound_only=True)

    ranked = sorted(((bound(p), p.extra_macs, k, p) for k, p in enumerate(candidates(program, temp))),
                    key=lambda c: c[:3])
    best_patch, best = None, min(_plan(program, program.steps, {}, overlap=True),
                                 _plan(program, program.steps, {}, overlap=False), key=lambda p: p.size)
    for _, _, _, p in ranked[:finalists]:
        trial = _plan(program, schedule(program, p), {temp: p.temp_bytes}, overlap=True)
        if trial.size < best.size or (trial.size == best.size and best_patch and p.extra_macs < best_patch.extra_macs):
            best_patch, best = p, trial
    return best_patch, best
