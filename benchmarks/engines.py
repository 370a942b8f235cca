"""Engines side by side on QEMU (`-icount shift=0`: SysTick x 40 = instructions), mps2-an386 (Cortex-M4F) unless
`--board` names another board of the registry (mps2-an385: the Cortex-M3, no DSP extension; mps3-an547: the
Cortex-M55, native's Helium path against TFLM + CMSIS-NN's MVE kernels).

Per model in ../shared/models: instructions per inference, instructions per MAC, flash bytes (the ELF's
text + rodata + data minus the test windows: model + code + runtime), arena bytes (the planned activation
arena plus the kernels' stack scratch) and the arena lower bound, all measured in this run for the native
engine, with its bit-exact verdict against the host TFLM interpreter. The TFLM reference and TFLM + CMSIS-NN
columns are measured in the same run on the same inputs (benchmarks/tflm_columns.py), with the ratios and
PASS/MISS against the targets (issue: Native AOT engine): native <= 0.7x the instructions of TFLM + CMSIS-NN on
kws_ref_model, ad01_int8 and person_detect; flash <= 0.6x TFLM's, per model and in total (a TOTAL row: the
sums over the models measured); arena <= TFLM's arena_used_bytes.
Usage: python benchmarks/engines.py [MODEL ...] [--board B] [--inputs N] [--tflm-library model_ops|full]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import device, tflm_columns  # noqa: E402

MODELS = REPO.parent / "shared" / "models"
BOARD = "mps2-an386"
ORDER = ("hello_world_int8", "micro_speech_quantized", "kws_ref_model", "ad01_int8", "person_detect")


def measure_native(name: str, count: int, board: str, work: Path) -> dict:
    model_bytes = (MODELS / f"{name}.tflite").read_bytes()
    from tinypipe.engines.native.generate import generate

    info = generate(model_bytes, name).info
    inputs = np.random.default_rng(0).integers(-128, 128, size=(count, *info["input"]["shape"]), dtype=np.int8)
    built = device.build_firmware(model_bytes, name, inputs, board, work)
    result = device.run_firmware(built, work / "run")
    sizes = built.sizes
    return {"instructions": result["instructions_per_inference"], "bit_exact": result["bit_exact"],
            "macs": info["macs"], "flash": sizes["flash_bytes"] - inputs.size,
            "arena": info["arena_bytes"] + info["scratch_bytes"], "lower_bound": info["arena_lower_bound"],
            "stack": result["stack_bytes"], "inputs": inputs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(ORDER))
    parser.add_argument("--board", default=BOARD, help=f"a QEMU board of the registry (default {BOARD})")
    parser.add_argument("--inputs", type=int, default=2)
    parser.add_argument("--tflm-library", choices=("model_ops", "full"), default="model_ops",
                        help="TFLM library per model: core + the model's kernels (default), or every kernel")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tinypipe-engines-") as tmp:
        for name in args.models:
            rows[name] = measure_native(name, args.inputs, args.board, Path(tmp) / name)
        tflm = tflm_columns.measure_all({name: ((MODELS / f"{name}.tflite").read_bytes(), r["inputs"])
                                         for name, r in rows.items()}, args.board, Path(tmp), args.tflm_library)
    print(f"native engine on QEMU {args.board} (-icount shift=0), measured in this run")
    print(f"{'model':<24} {'instr/inf':>11} {'instr/MAC':>9} {'flash B':>9} {'arena B':>8} {'bound B':>8} "
          f"{'stack B':>8} {'bit-exact':>9}")
    for name, r in rows.items():
        print(f"{name:<24} {r['instructions']:>11,} {r['instructions'] / max(r['macs'], 1):>9.2f} {r['flash']:>9,} "
              f"{r['arena']:>8,} {r['lower_bound']:>8,} {r['stack']:>8,} {str(r['bit_exact']):>9}")
    tflm_columns.report(rows, tflm, args.board, args.tflm_library)
    return 0


if __name__ == "__main__":
    sys.exit(main())
