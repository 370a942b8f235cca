"""Peak RAM of the native engine, layer by layer (`optimize: balanced`) against row by row over the input
(`optimize: ram`), beside TFLM + CMSIS-NN's `arena_used_bytes`, on QEMU mps2-an386 (`-icount shift=0`).

Models: person_detect and kws_ref_model from ../shared/models, and a MobileNetV1-0.25-shaped model at 96x96x3
built here with Keras (random weights, seeded; quantized with seeded random calibration data). Per model and
mode: the planned arena, the kernels' scratch on `invoke`'s stack, their sum (what compares with TFLM's
arena_used_bytes, which holds CMSIS-NN's scratch buffers), the measured stack, instructions per inference and
the bit-exact verdict against the host TFLM interpreter; then the ratios to TFLM + CMSIS-NN and the target
(issue 15: peak arena at most 0.5x TFLM's) and the instruction cost of `ram` against `balanced`.
Usage: python benchmarks/ram.py [MODEL ...] [--inputs N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import device, tflm_columns  # noqa: E402

MODELS = REPO.parent / "shared" / "models"
BOARD = "mps2-an386"
MODES = ("balanced", "ram")
TARGET = 0.5
MOBILENET = "mobilenet_v1_025_96x96x3"


def mobilenet_v1_025() -> bytes:
    """MobileNetV1 with width 0.25 at 96x96x3 (person_detect's layers on a colour input, ReLU6 and biases
    instead of batch norm), random weights, int8 from 32 seeded random calibration images."""
    from tinypipe.stages._ml import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(7)
    L = keras.layers
    layers = [keras.Input((96, 96, 3), batch_size=1),
              L.Conv2D(8, 3, strides=2, padding="same", activation="relu6")]
    for channels, stride in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), *[(128, 1)] * 5,
                             (256, 2), (256, 1)]:
        layers += [L.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6"),
                   L.Conv2D(channels, 1, activation="relu6")]
    model = keras.Sequential([*layers, L.GlobalAveragePooling2D(), L.Dense(2)])
    rng = np.random.default_rng(7)

    def representative():
        for _ in range(32):
            yield [rng.uniform(-1.0, 1.0, size=(1, 96, 96, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return bytes(converter.convert())


def model_bytes(name: str) -> bytes:
    return mobilenet_v1_025() if name == MOBILENET else (MODELS / f"{name}.tflite").read_bytes()


def measure_native(name: str, data: bytes, inputs: np.ndarray, optimize: str, work: Path) -> dict:
    print(f"{name}: native, optimize {optimize}", file=sys.stderr, flush=True)
    built = device.build_firmware(data, name, inputs, BOARD, work, optimize=optimize)
    result = device.run_firmware(built, work / "run")
    info = built.info
    return {"instructions": result["instructions_per_inference"], "bit_exact": result["bit_exact"],
            "arena": info["arena_bytes"], "scratch": info["scratch_bytes"], "stack": result["stack_bytes"],
            "bound": info["arena_lower_bound"], "overlapped": len(info["overlapped_ops"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["person_detect", MOBILENET, "kws_ref_model"])
    parser.add_argument("--inputs", type=int, default=2)
    args = parser.parse_args()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tinypipe-ram-") as tmp:
        for name in args.models:
            data = model_bytes(name)
            from tinypipe.tflite.reader import parse_model

            graph = parse_model(data).main
            shape = graph.tensors[graph.inputs[0]].shape
            inputs = np.random.default_rng(0).integers(-128, 128, size=(args.inputs, *shape), dtype=np.int8)
            native = {mode: measure_native(name, data, inputs, mode, Path(tmp) / name / mode) for mode in MODES}
            print(f"{name}: engine tflm, TFLM + CMSIS-NN", file=sys.stderr, flush=True)
            tflm = tflm_columns.measure(name, data, inputs, BOARD, "cmsis_nn", "model_ops", Path(tmp) / name / "tflm")
            rows[name] = {"native": native, "tflm": tflm}
    print(f"peak RAM on QEMU {BOARD} (-icount shift=0), measured in this run")
    print(f"{'model':<26} {'engine':<16} {'arena B':>8} {'scratch B':>9} {'sum B':>8} {'bound B':>8} {'stack B':>8} "
          f"{'instr/inf':>11} {'bit-exact':>9}")
    for name, r in rows.items():
        for mode, n in r["native"].items():
            print(f"{name:<26} {'native ' + mode:<16} {n['arena']:>8,} {n['scratch']:>9,} "
                  f"{n['arena'] + n['scratch']:>8,} {n['bound']:>8,} {n['stack']:>8,} {n['instructions']:>11,} "
                  f"{str(n['bit_exact']):>9}")
        t = r["tflm"]
        print(f"{name:<26} {'TFLM + CMSIS-NN':<16} {t['arena_used']:>8,} {'(in it)':>9} {t['arena_used']:>8,} "
              f"{'':>8} {'':>8} {t['instructions']:>11,} {str(t['bit_exact']):>9}")
    print(f"\nratios to TFLM + CMSIS-NN's arena_used_bytes (target: ram <= {TARGET}x), instruction cost of ram")
    print(f"{'model':<26} {'balanced':>9} {'ram arena':>9} {'ram +scratch':>12} {'verdict':>7} {'ram/balanced instr':>18}")
    for name, r in rows.items():
        used = r["tflm"]["arena_used"]
        b, m = r["native"]["balanced"], r["native"]["ram"]
        with_scratch = (m["arena"] + m["scratch"]) / used
        print(f"{name:<26} {(b['arena'] + b['scratch']) / used:>9.2f} {m['arena'] / used:>9.2f} {with_scratch:>12.2f} "
              f"{'PASS' if with_scratch <= TARGET else 'MISS':>7} {m['instructions'] / b['instructions']:>18.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
