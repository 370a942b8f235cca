"""The native engine in each `native.optimize` mode against TFLM + CMSIS-NN, measured side by side in one run.

Three tables (benchmarks/engine_tables.py formats them, with the targets of issue 15):
1. models: kws_ref_model, person_detect and ad01_int8 (../shared/models) and the ResNet-8-shaped and
   MobileNetV1-0.25-at-96x96x3-shaped models benchmarks/keras_models.py builds (random weights, seeded), on QEMU
   mps2-an386 (Cortex-M4F): per mode instructions per inference, per MAC, arena (planned activations plus
   kernel scratch; TFLM: `arena_used_bytes`), application flash (without the test windows the emulator
   replays), ratios to TFLM + CMSIS-NN, PASS/MISS, and the bit-exact verdict against the host interpreter.
2. layers: per model, each operator's instructions on both engines (native's `invoke_traced` hook, TFLM's
   profiler), from separate profiled builds so that the first table's flash is the application's own.
3. cores: kws_ref_model, native against TFLM + CMSIS-NN on every emulated core (M0 where it fits, M3, M4, M7,
   M33, M55); on a core where it fits neither engine (the micro:bit's 16 KB of RAM), a second row with
   micro_speech_quantized.

A mode that generates the same code as one measured before it (today `speed` and `ram` generate what
`balanced` does, until their kernels and schedules land) is not built again: its row says `(= balanced)`.
A cell that cannot be measured (a model that does not fit a board, an engine that cannot build for a core)
prints its error instead of numbers; the run goes on.

Usage: python benchmarks/engines.py [MODEL ...] [--board B] [--modes speed size ...] [--tables models layers cores]
       [--cores cortex-m3 cortex-m4 ...] [--inputs N]
A quick look: `kws_ref_model --modes balanced size --tables models`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import device, engine_tables, keras_models, tflm_columns  # noqa: E402
from benchmarks.engine_tables import MODES  # noqa: E402
from tinypipe.core.errors import UserError  # noqa: E402

MODELS_DIR = REPO.parent / "shared" / "models"
ORDER = ("kws_ref_model", "person_detect", "ad01_int8", *keras_models.NAMES)
BOARD = "mps2-an386"  # of the models and layers tables (--board)
CORES = {"cortex-m0": "microbit", "cortex-m3": "mps2-an385", "cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500",
         "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547"}
CORES_MODEL = "kws_ref_model"
CORES_FALLBACK = "micro_speech_quantized"  # on a core whose boards CORES_MODEL does not fit (the micro:bit's 16 KB)
LAYERS_MODE = "speed"  # the per-operator and per-core tables compare native's fastest mode
TFLM_KERNELS = "cmsis_nn"
TFLM_LIBRARY = "model_ops"


def model_bytes(name: str) -> bytes:
    return keras_models.model_bytes(name) if name in keras_models.NAMES else (MODELS_DIR / f"{name}.tflite").read_bytes()


def seeded_inputs(model: bytes, name: str, count: int) -> np.ndarray:
    from tinypipe.tflite.reader import parse_model

    graph = parse_model(model, f"{name}.tflite").main
    shape = graph.tensors[graph.inputs[0]].shape
    return np.random.default_rng(0).integers(-128, 128, size=(count, *shape), dtype=np.int8)


def attempt(label: str, measure) -> dict:
    """`measure()`, or `{"error": ...}` naming what went wrong: one cell failing does not end the benchmark."""
    print(f"{label} ...", file=sys.stderr, flush=True)
    try:
        return measure()
    except UserError as exc:  # a model that does not fit a board, say: the table says so
        print(f"  {exc}", file=sys.stderr, flush=True)
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    except Exception as exc:  # noqa: BLE001 - reported in the table, with the traceback on stderr
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def measure_native(name: str, model: bytes, inputs: np.ndarray, board: str, mode: str, work: Path,
                   profile_layers: bool = False) -> dict:
    built = device.build_firmware(model, name, inputs, board, work, optimize=mode, profile_layers=profile_layers)
    result = device.run_firmware(built, work / "run")
    info = built.info
    return {"instructions": result["instructions_per_inference"], "bit_exact": result["bit_exact"],
            "macs": info["macs"], "arena": info["arena_bytes"] + info["scratch_bytes"],
            "app_flash": built.sizes["app_flash_bytes"], "layers": result.get("layers"), "ops": info["ops"]}


def measure_modes(name: str, model: bytes, inputs: np.ndarray, board: str, modes, work: Path) -> dict[str, dict]:
    """mode -> measurement on `board`; a mode whose generated code equals an earlier mode's reuses its numbers."""
    from tinypipe.engines.native.codegen import widen_for_mode
    from tinypipe.engines.native.generate import generate

    out: dict[str, dict] = {}
    seen: dict[tuple, str] = {}
    for mode in modes:
        generated = generate(model, f"{name}.tflite", mode,
                             widen_weights=widen_for_mode(mode, device.BOARDS[board], len(model)))
        code = (generated.model_rs, generated.info.get("opt_level"))
        if code in seen and "error" not in out[seen[code]]:
            out[mode] = dict(out[seen[code]], same_as=seen[code])
            continue
        seen[code] = mode
        out[mode] = attempt(f"{name}: native {mode} on {board}",
                            lambda: measure_native(name, model, inputs, board, mode, work / f"native-{mode}"))
    return out


def measure_tflm(name: str, model: bytes, inputs: np.ndarray, board: str, work: Path,
                 profile_layers: bool = False) -> dict:
    return attempt(f"{name}: TFLM + CMSIS-NN on {board}{' (profiled)' if profile_layers else ''}",
                   lambda: tflm_columns.measure(name, model, inputs, board, TFLM_KERNELS, TFLM_LIBRARY, work,
                                                profile_layers))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help=f"some of {', '.join(ORDER)} (default: all five)")
    parser.add_argument("--board", default=BOARD, help=f"the board of the models and layers tables (default {BOARD})")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--tables", nargs="+", default=["models", "layers", "cores"],
                        choices=("models", "layers", "cores"))
    parser.add_argument("--cores", nargs="+", default=list(CORES), choices=list(CORES))
    parser.add_argument("--inputs", type=int, default=2, help="seeded random inputs per model (default 2)")
    args = parser.parse_args()
    unknown = [name for name in args.models if name not in ORDER]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}: choose from {', '.join(ORDER)}")
    args.models = args.models or list(ORDER)
    board = args.board

    with tempfile.TemporaryDirectory(prefix="tinypipe-engines-") as tmp:
        work = Path(tmp)
        inputs = {name: seeded_inputs(model_bytes(name), name, args.inputs) for name in args.models}
        if "models" in args.tables:
            native = {name: measure_modes(name, model_bytes(name), inputs[name], board, args.modes, work / name)
                      for name in args.models}
            tflm = {name: measure_tflm(name, model_bytes(name), inputs[name], board, work / name / "tflm")
                    for name in args.models}
            print(f"native engine per native.optimize mode vs TFLM + CMSIS-NN on QEMU {board} (-icount shift=0: "
                  f"instructions), {args.inputs} seeded random inputs per model, measured in this run; ratios are "
                  "native / TFLM + CMSIS-NN (arena: TFLM's arena_used_bytes)")
            print("\n".join(engine_tables.models_table(native, tflm)), flush=True)
        if "layers" in args.tables:
            for name in args.models:
                n = attempt(f"{name}: native {LAYERS_MODE}, profiled", lambda: measure_native(
                    name, model_bytes(name), inputs[name], board, LAYERS_MODE, work / name / "native-layers", True))
                t = measure_tflm(name, model_bytes(name), inputs[name], board, work / name / "tflm-layers", True)
                print()
                if "error" in n or "error" in t:
                    print(f"{name}: no per-operator table: " + "; ".join(r["error"] for r in (n, t) if "error" in r))
                    continue
                print("\n".join(engine_tables.layers_table(name, n["ops"], n["layers"], t["layers"])), flush=True)
        if "cores" in args.tables:
            model = model_bytes(CORES_MODEL)
            core_inputs = inputs.get(CORES_MODEL)
            if core_inputs is None:
                core_inputs = seeded_inputs(model, CORES_MODEL, args.inputs)
            print("\n" + "\n".join(engine_tables.cores_header(CORES_MODEL)), flush=True)
            for core in args.cores:  # a row as soon as it is measured: the TFLM libraries take a while per core
                board = CORES[core]
                where = work / "cores" / board
                n = attempt(f"{CORES_MODEL}: native {LAYERS_MODE} on {board}", lambda: measure_native(
                    CORES_MODEL, model, core_inputs, board, LAYERS_MODE, where / "native"))
                t = measure_tflm(CORES_MODEL, model, core_inputs, board, where / "tflm")
                print(engine_tables.core_row(core, board, n, t), flush=True)
                if all("DoesNotFit" in r.get("error", "") for r in (n, t)):
                    # "M0 where it fits": the core gets a row with the smaller model both engines fit
                    small = model_bytes(CORES_FALLBACK)
                    small_inputs = seeded_inputs(small, CORES_FALLBACK, args.inputs)
                    n = attempt(f"{CORES_FALLBACK}: native {LAYERS_MODE} on {board}", lambda: measure_native(
                        CORES_FALLBACK, small, small_inputs, board, LAYERS_MODE, where / "native-small"))
                    t = measure_tflm(CORES_FALLBACK, small, small_inputs, board, where / "tflm-small")
                    print(engine_tables.core_row(core, board, n, t, model=CORES_FALLBACK), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
