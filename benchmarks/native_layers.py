"""Per-layer instruction profile of the native engine on QEMU, through the generated `invoke_with_hook`.

For each model: one firmware whose main times every operator (SysTick x 40 = instructions under
`-icount shift=0`), run on a few seeded random inputs; prints instructions and instructions per MAC per
operator, with the operator's shapes, so the slow kernels stand out.
Usage: python benchmarks/native_layers.py [MODEL ...] [--board mps2-an386] [--inputs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import device  # noqa: E402
from tinypipe.engines.native.generate import generate  # noqa: E402

MODELS = REPO.parent / "shared" / "models"
DEFAULT_MODELS = ("hello_world_int8", "micro_speech_quantized", "kws_ref_model", "ad01_int8", "person_detect")


def _shape(s) -> str:
    return "x".join(str(d) for d in s)


def profile(name: str, board: str, count: int, work: Path) -> tuple[dict, dict[int, float]]:
    """(codegen info, op index -> instructions per inference)."""
    model_bytes = (MODELS / f"{name}.tflite").read_bytes()
    info = generate(model_bytes, name).info
    inputs = np.random.default_rng(0).integers(-128, 128, size=(count, *info["input"]["shape"]), dtype=np.int8)
    build_dir = device.build_harness({name: (model_bytes, inputs)}, board, work, device.profile_main(name))
    ticks = device.parse_profile(device.run_harness(build_dir, board))
    per_tick = device.instructions_per_tick(board)
    return info, {op: t * per_tick / count for op, t in ticks.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--board", default="mps2-an386")
    parser.add_argument("--inputs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tinypipe-layers-") as tmp:
        for name in args.models:
            info, instructions = profile(name, args.board, args.inputs, Path(tmp) / name)
            total = sum(instructions.values())
            print(f"\n{name} on {args.board}: {total / 1e6:.3f} M instructions per inference, "
                  f"{total / max(info['macs'], 1):.2f} per MAC")
            print(f"{'op':>4} {'operator':<18} {'input':<14} {'output':<14} {'MACs':>9} {'instr':>11} "
                  f"{'/MAC':>6} {'share':>6}")
            for op in info["ops"]:
                if op["index"] not in instructions:
                    continue
                n = instructions[op["index"]]
                per_mac = f"{n / op['macs']:6.2f}" if op["macs"] else "     -"
                print(f"{op['index']:>4} {op['op']:<18} {_shape(op['input_shape']):<14} "
                      f"{_shape(op['output_shape']):<14} {op['macs']:>9} {n:>11.0f} {per_mac} {n / total:6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
