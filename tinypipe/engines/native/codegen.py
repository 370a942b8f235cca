"""Stage `codegen` for engine native: the quantized `.tflite` -> Rust source for the `tinyml-kernels` crate.

Writes (the firmware contract shared with engine tflm: `model.rs` exposes the element types `Input` and
`Output`, `INPUT_LEN`, `OUTPUT_LEN`, `invoke(&[Input], &mut [Output])` and `input_from_real`):
- `model.rs`: weights as `static` arrays, every TFLM `Prepare` result as constants, one planned static arena,
  `invoke`, `invoke_with_arena` and `invoke_with_hook` (a callback after each operator, for per-layer timing);
- `codegen.json`: `{engine, ops: [{index, op, kernel, input_shape, output_shape, macs, weight_bytes,
  input_offset, output_offset, general_channels}], arena_bytes, arena_lower_bound, arena_strategies (placement order -> bytes),
  arena_strategy, in_place_ops (operator indices writing over an input), overlapped_ops (operator index -> bytes
  its input starts after its output, row by row: `optimize: ram`), patch (null, or the operators run in row
  bands: {ops, bands, band_buffer_bytes, extra_macs, macs}), arena_layer_by_layer (the arena without those two),
  weight_bytes, macs, input, output, input_len, output_len, widened_weights}` with the input's and output's shape,
  dtype, scale and zero point; in the `native.optimize` mode `size` also `opt_level`, the cargo opt-level the
  firmware stage builds with. A patch's operators have kernel `<kernel>_band`, overlapped ones `<kernel>_rows`.
  `widened_weights`: convolution filters pre-widened for the DSP path (`widen_for_mode` decides). In `size`, the
  fully connected layers whose weights are entropy-coded (entropy.py), if any: `compressed_weights: [{op, bytes,
  coded_bytes}]` (their flash plain and coded).

The key covers the kernels crate and the code generator's own source (a content hash of a few dozen small
files, cheap enough for every no-op run), so editing either regenerates.
"""

from __future__ import annotations

from pathlib import Path

from tinypipe.core.fs import atomic_write_json, atomic_write_text
from tinypipe.core.hashing import sha256_json, tree_hash
from tinypipe.core.paths import kernels_dir
from tinypipe.engines.native.modes import DEFAULT
from tinypipe.stages.base import Stage, StageContext, StageResult

_HERE = Path(__file__).resolve().parent
_GENERATOR_SOURCES = (_HERE, _HERE.parents[1] / "tflite")  # this package and the model reader
_NOT_SOURCE = ("__pycache__", "*.pyc", "target", "Cargo.lock", "*.swp", "*~")


def source_hash() -> str:
    """Content hash of the kernels crate (the one the firmware vendors) and the generator's Python source."""
    return sha256_json({"kernels": tree_hash(kernels_dir(), _NOT_SOURCE),
                        **{d.name: tree_hash(d, _NOT_SOURCE) for d in _GENERATOR_SOURCES}})


def optimize_mode(variant) -> str:
    return (variant.config.get("native") or {}).get("optimize") or DEFAULT


def widen_for_mode(optimize: str, board, model_bytes: int) -> bool:
    """Pre-widened convolution filters (faster on the DSP path, up to the model's size again in flash): `speed`
    whenever the board has the DSP extension and room for the model twice; `balanced` by `widens_weights`
    (room for it twice in half the flash); never in `size`, nor in `ram`, whose row and band kernels take int8."""
    from tinypipe.engines.native.generate import widens_weights

    if optimize == "speed":  # not on a Helium core either: its vector loops read the int8 filters
        return "dsp" in board.features and "mve" not in board.features and 2 * model_bytes <= board.flash.size
    if optimize in ("size", "ram"):
        return False
    return widens_weights(board.features, board.flash.size, model_bytes)


def _config(variant) -> dict:
    config = {"engine": variant.engine, "cpu": variant.cpu, "features": list(variant.board.features),
              "flash_bytes": variant.board.flash.size, "source": source_hash()}
    if optimize_mode(variant) != DEFAULT:  # the default keeps the key it had before modes
        config["optimize"] = optimize_mode(variant)
    return config


STAGE = Stage(name="codegen", version="1", needs=("quantize",), config=_config,
              description="native engine: .tflite -> Rust calls into tinyml-kernels (weights, arena, invoke)")


def run(ctx: StageContext) -> StageResult:
    from tinypipe.engines.native.generate import generate

    model_path = ctx.input("quantize", "model.tflite")
    model_bytes = model_path.read_bytes()
    optimize = optimize_mode(ctx.variant)
    widen = widen_for_mode(optimize, ctx.variant.board, len(model_bytes))
    generated = generate(model_bytes, str(model_path), optimize, widen_weights=widen)
    info = dict(generated.info)
    info["engine"] = "native"
    info["input_len"] = 1
    for d in info["input"]["shape"]:
        info["input_len"] *= d
    info["output_len"] = 1
    for d in info["output"]["shape"]:
        info["output_len"] *= d
    atomic_write_text(ctx.out / "model.rs", generated.model_rs)
    atomic_write_json(ctx.out / "codegen.json", info)
    ops = [o["op"] for o in info["ops"]]
    general = [o for o in info["ops"] if o["general_channels"]]
    if general:
        ctx.log(f"{len(general)} layers sum in plain int32 and requantize with TFLM's general path (operators "
                f"{', '.join(str(o['index']) for o in general)}): their accumulators can reach 2^30, or a multiplier "
                "is too large for the short path")
    ctx.log(f"native model: {len(ops)} ops, {info['macs']} MACs, weights {info['weight_bytes']} B, arena "
            f"{info['arena_bytes']} B (lower bound {info['arena_lower_bound']} B, {info['arena_strategy']} placement, "
            f"{len(info['in_place_ops'])} ops in place)"
            + (f", optimized for {optimize_mode(ctx.variant)}" if optimize_mode(ctx.variant) != DEFAULT else ""))
    return {"engine": "native", "ops": ops, "input_len": info["input_len"], "output_len": info["output_len"],
            "arena_bytes": info["arena_bytes"], "arena_lower_bound": info["arena_lower_bound"],
            "weight_bytes": info["weight_bytes"], "macs": info["macs"]}
