"""The TFLM columns of `benchmarks/engines.py`: the same models and inputs through engine tflm, measured in the
same run as the native engine, with the reference kernels and with CMSIS-NN.

Per (model, kernel set) this builds what `tinypipe run` builds for `engine: tflm` — `libtflm.a` for the model's
ops (`tflm.library: model_ops`, the default; `--tflm-library full` for every kernel), the shim and `model.rs`
(codegen, with the arena measured on QEMU), the template firmware — through the stages' own functions, runs it
on QEMU with `-icount shift=0` and reads: instructions per inference, flash bytes (text + rodata + data minus
the test windows, as for native), the tensor arena (`arena_used_bytes()` after init, and the arena the
firmware reserves: the smallest that initialises plus one alignment step), and the bit-exact verdict.
Objects compile through the user-level object cache (`tflm-objects/`), so a second benchmark run is quick.

Targets (issue: Native AOT engine): native <= 0.7x the instructions of TFLM + CMSIS-NN on kws_ref_model,
ad01_int8 and person_detect; native flash <= 0.6x TFLM + CMSIS-NN's; native arena <= TFLM's arena_used_bytes.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import device
from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant
from tinypipe.engines.tflm import codegen as codegen_tflm
from tinypipe.engines.tflm import lib as tflm_lib
from tinypipe.engines.tflm import source as _tflm
from tinypipe.stages import build, firmware, run
from tinypipe.tflite.reader import parse_model

SHARED_TFLM = Path(__file__).resolve().parents[2] / "shared" / "third_party" / "tflm"
KERNEL_SETS = ("reference", "cmsis_nn")
LABELS = {"reference": "TFLM reference", "cmsis_nn": "TFLM + CMSIS-NN"}
TARGET_INSTRUCTIONS = {"kws_ref_model": 0.7, "ad01_int8": 0.7, "person_detect": 0.7}
TARGET_FLASH = 0.6
# DESIGN.md, "Measured bar for our engine" (TFLM + CMSIS-NN): a sanity check of this run's measurement
PUBLISHED_CMSIS = {"kws_ref_model": 7.70e6, "person_detect": 22.9e6, "ad01_int8": 0.58e6,
                   "micro_speech_quantized": 1.50e6}
PUBLISHED_BOARD = "mps2-an386"
PUBLISHED_ARENA = {"kws_ref_model": 22_820, "person_detect": 82_308, "ad01_int8": 2_580,
                   "micro_speech_quantized": 6_836}


def tflm_tree() -> Path:
    """$TINYPIPE_TFLM_PATH, else ../shared/third_party/tflm beside the checkout."""
    given = os.environ.get(_tflm.ENV_PATH)
    return Path(given) if given else SHARED_TFLM


def variant(board: str, root: Path, kernels: str, library: str, profile_layers: bool = False) -> Variant:
    project = Project.model_validate({"name": "bench", "model": {"path": "model.tflite"}, "engine": "tflm",
                                      "tflm": {"path": str(root), "kernels": kernels, "library": library},
                                      "target": {"board": board, "profile_layers": profile_layers}})
    return Variant(name=f"{board}-tflm-{kernels}", project=project, board=BOARDS[board], engine="tflm")


def _progress(label: str):
    """A line per quarter of the library's sources (the objects come from the cache or the compiler)."""
    def show(done: int, total: int) -> None:
        if done == total or done % max(total // 4, 1) == 0:
            print(f"  {label}: TFLM library {done}/{total} sources", file=sys.stderr, flush=True)
    return show


def measure(name: str, model_bytes: bytes, inputs: np.ndarray, board: str, kernels: str, library: str,
            work: Path, profile_layers: bool = False) -> dict:
    """One model on engine tflm with one kernel set; `inputs` are the native run's (int8, the model's shape).
    With `profile_layers` the shim has TFLM's per-operator profiler, and `layers` its instructions per operator."""
    root = _tflm.require_source(variant(board, tflm_tree(), kernels, library))
    v = variant(board, root, kernels, library, profile_layers)
    label = f"{name} {LABELS[kernels]}"
    started = time.perf_counter()
    ops = None if library == "full" else _tflm.model_ops(parse_model(model_bytes, f"{name}.tflite"))
    lib_dir = work / "tflm_lib"
    lib_dir.mkdir(parents=True)
    lib = tflm_lib.build_library(v, root, lib_dir, ops=ops, progress=_progress(label))
    quantize = work / "quantize"
    quantize.mkdir()
    (quantize / "model.tflite").write_bytes(model_bytes)
    print(f"  {label}: codegen (arena measured on QEMU), firmware, run", file=sys.stderr, flush=True)
    info = codegen_tflm.run(device.context(v, work / "codegen", quantize=quantize, tflm_lib=lib_dir))
    expected = np.stack([o[0] for o in device.oracle_outputs(model_bytes, inputs)])
    reference = device.write_reference(work / "reference", inputs.reshape(len(inputs), -1), expected)
    firmware.run(device.context(v, work / "firmware", codegen=work / "codegen", reference=reference))
    build.run(device.context(v, work / "build", firmware=work / "firmware",
                             toolchain=device.toolchain_entry(board)))
    result = run.run(device.context(v, work / "run", build=work / "build", reference=reference))
    sizes = device.Built(board, work / "build", reference, info).sizes
    return {"instructions": result["instructions_per_inference"], "bit_exact": result["bit_exact"],
            "mismatches": result["mismatches"]["count"], "flash": sizes["flash_bytes"] - inputs.size,
            "app_flash": sizes.get("app_flash_bytes"), "arena_used": info["arena_used_bytes"],
            "arena": info["arena_bytes"], "library_sources": lib["sources"], "library_compiled": lib["compiled"],
            "layers": result.get("layers"), "seconds": time.perf_counter() - started}


def measure_all(models: dict[str, tuple[bytes, np.ndarray]], board: str, work: Path,
                library: str = _tflm.DEFAULT_LIBRARY) -> dict[str, dict[str, dict]]:
    """model -> kernel set -> measurements, for the models and inputs the native engine ran."""
    rows: dict[str, dict[str, dict]] = {}
    for name, (model_bytes, inputs) in models.items():
        for kernels in KERNEL_SETS:
            print(f"{name}: engine tflm, {LABELS[kernels]} ({library} library)", file=sys.stderr, flush=True)
            rows.setdefault(name, {})[kernels] = measure(name, model_bytes, inputs, board, kernels, library,
                                                         work / name / f"tflm-{kernels}")
    return rows


def flash_totals(native: dict[str, dict], tflm: dict[str, dict[str, dict]]) -> tuple[int, int]:
    """(native flash, TFLM + CMSIS-NN flash) summed over the models both engines ran."""
    return (sum(native[name]["flash"] for name in tflm), sum(per["cmsis_nn"]["flash"] for per in tflm.values()))


def report(native: dict[str, dict], tflm: dict[str, dict[str, dict]], board: str, library: str) -> None:
    """The TFLM columns, then native against TFLM + CMSIS-NN with PASS/MISS per target."""
    print(f"\nengine tflm on QEMU {board} (-icount shift=0), same inputs, measured in this run "
          f"({library} libraries)")
    print(f"{'model':<24} {'kernels':<16} {'instr/inf':>11} {'instr/MAC':>9} {'flash B':>9} {'arena used':>10} "
          f"{'arena B':>8} {'bit-exact':>9}")
    for name, per_kernels in tflm.items():
        macs = max(native[name]["macs"], 1)
        for kernels, r in per_kernels.items():
            exact = str(r["bit_exact"]) if r["bit_exact"] else f"False ({r['mismatches']})"
            print(f"{name:<24} {LABELS[kernels]:<16} {r['instructions']:>11,} {r['instructions'] / macs:>9.2f} "
                  f"{r['flash']:>9,} {r['arena_used']:>10,} {r['arena']:>8,} {exact:>9}")

    print("\nnative / TFLM + CMSIS-NN (targets: instructions <= 0.7x on kws_ref_model, ad01_int8, person_detect; "
          "flash <= 0.6x; arena <= TFLM's arena_used_bytes)")
    print(f"{'model':<24} {'instr ratio':>11} {'target':>7} {'verdict':>7} {'flash ratio':>11} {'verdict':>7} "
          f"{'arena':>15} {'verdict':>7} {'vs reference':>12}")
    for name, per_kernels in tflm.items():
        n, c = native[name], per_kernels["cmsis_nn"]
        ratio = n["instructions"] / c["instructions"]
        target = TARGET_INSTRUCTIONS.get(name)
        instr_verdict = ("PASS" if ratio <= target else "MISS") if target else "-"
        flash_ratio = n["flash"] / c["flash"]
        flash_verdict = "PASS" if flash_ratio <= TARGET_FLASH else "MISS"
        arena_verdict = "PASS" if n["arena"] <= c["arena_used"] else "MISS"
        vs_ref = n["instructions"] / per_kernels["reference"]["instructions"]
        arena = f"{n['arena']:,}/{c['arena_used']:,}"
        print(f"{name:<24} {ratio:>11.2f} {f'{target:.1f}x' if target else '-':>7} {instr_verdict:>7} "
              f"{flash_ratio:>11.2f} {flash_verdict:>7} {arena:>15} "
              f"{arena_verdict:>7} {vs_ref:>12.2f}")
    if len(tflm) > 1:
        # the flash target over the models measured: per model it cannot hold where the int8 weights alone
        # exceed 0.6x of TFLM's flash (ad01_int8)
        native_flash, tflm_flash = flash_totals(native, tflm)
        total_ratio = native_flash / tflm_flash
        label = f"TOTAL ({len(tflm)} models)"
        print(f"{label:<24} {'-':>11} {'-':>7} {'-':>7} {total_ratio:>11.3f} "
              f"{'PASS' if total_ratio <= TARGET_FLASH else 'MISS':>7}   flash {native_flash:,} / {tflm_flash:,} B")

    # the published bar was measured on mps2-an386 (Cortex-M4F): no check of the measurement elsewhere
    sanity = [name for name in tflm if name in PUBLISHED_CMSIS] if board == PUBLISHED_BOARD else []
    if sanity:
        print("\nTFLM + CMSIS-NN measured here vs DESIGN.md's published bar (a check of the measurement)")
        for name in sanity:
            c = tflm[name]["cmsis_nn"]
            print(f"{name:<24} instructions {c['instructions']:>11,} vs {PUBLISHED_CMSIS[name]:>11,.0f} "
                  f"({c['instructions'] / PUBLISHED_CMSIS[name]:.2f}x); arena_used {c['arena_used']:,} vs "
                  f"{PUBLISHED_ARENA[name]:,}")
