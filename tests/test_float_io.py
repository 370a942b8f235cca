"""`quantization.io: float32` end to end through the CLI: the model keeps float32 input and output (QUANTIZE after
the input, DEQUANTIZE before the output), the firmware feeds float32 windows and prints float32 outputs, and the
run stage compares them with the host TFLM interpreter bit for bit.

One project, the gesture example with float32 I/O, run as a matrix of the native engine on the Cortex-M4F
(hardware float), the Cortex-M3 (float in software) and the STM32F4 Discovery (its sensor application built
with float input, run on netduinoplus2); then the same project with `--engine tflm` on the Cortex-M4F. The
project also sets `target.profile_layers`, so every cell times each operator on the device.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import (GESTURE, SHARED, build_user_c_program, build_user_rust_firmware, run_json,
                          run_user_firmware, store_entry, tinypipe)

TFLM_TREE = SHARED / "third_party" / "tflm"
BOARDS = ["mps2-an386", "mps2-an385", "stm32f4-discovery"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm", "cargo")),
                       reason="needs arm-none-eabi-gcc, qemu-system-arm and cargo (`make setup`)"),
]


@pytest.fixture(scope="module")
def float_project(tmp_path_factory) -> tuple[Path, dict]:
    text = (GESTURE / "project.yaml").read_text()
    for old, new in (("  io: int8\n", "  io: float32\n"), ("\ntarget:\n", "\ntarget:\n  profile_layers: true\n"),
                     ("\nengine: native\n", f"\nengine: native\ntflm: {{path: {TFLM_TREE}, kernels: cmsis_nn}}\n"
                                            f"matrix:\n  board: [{', '.join(BOARDS)}]\n")):
        assert old in text, old
        text = text.replace(old, new)
    project = tmp_path_factory.mktemp("float-io") / "gesture-float"
    project.mkdir()
    (project / "project.yaml").write_text(text)
    return project, run_json(project)


def test_native_engine_runs_float32_io_bit_exact_on_every_board(float_project):
    project, doc = float_project
    rows = {row["board"]: row for row in doc["results"]}
    assert sorted(rows) == sorted(BOARDS)
    for board, row in rows.items():
        assert row["bit_exact"] is True, board
        assert row["accuracy_device"] == row["accuracy_host"] >= 0.9, board
    reference = json.loads((store_entry(project, "mps2-an386-native", "reference") / "reference.json").read_text())
    assert (reference["input_dtype"], reference["output_dtype"]) == ("float32", "float32")
    codegen = json.loads((store_entry(project, "mps2-an386-native", "codegen") / "codegen.json").read_text())
    ops = [o["op"] for o in codegen["ops"]]
    assert ops[0] == "QUANTIZE" and ops[-1] == "DEQUANTIZE"
    # the device printed float32 bytes: they decode to probabilities (the model ends in SOFTMAX)
    run_dir = store_entry(project, "mps2-an385-native", "run")
    outputs = np.fromfile(run_dir / "device_outputs.bin", dtype=np.float32).reshape(reference["n"], -1)
    assert outputs.shape[1] == 3 and np.all((outputs >= 0) & (outputs <= 1))
    assert np.allclose(outputs.sum(axis=1), 1.0, atol=0.02)
    first_line = next(line for line in (run_dir / "qemu.log").read_text().splitlines() if line.startswith("out 0 "))
    assert struct.unpack("<3f", bytes.fromhex(first_line.split()[2])) == tuple(outputs[0])


@pytest.mark.skipif(not (shutil.which("bindgen") and shutil.which("arm-none-eabi-g++")
                         and (TFLM_TREE / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file()),
                    reason="needs bindgen, arm-none-eabi-g++ and the shared TFLM tree")
def test_tflm_engine_runs_the_same_float32_model_bit_exact(float_project):
    project, native_doc = float_project
    doc = run_json(project, "--engine", "tflm", "--board", "mps2-an386", "-j", "2")  # two TFLM compilers at once
    (row,) = doc["results"]
    assert (row["engine"], row["bit_exact"]) == ("tflm", True)
    native = next(r for r in native_doc["results"] if r["board"] == "mps2-an386")
    assert row["accuracy_device"] == native["accuracy_device"]
    stages = {s["stage"]: s["status"] for s in doc["stages"]}
    assert stages["quantize"] == stages["reference"] == "cached"  # the model both engines ran is one
    native_out = store_entry(project, "mps2-an386-native", "run") / "device_outputs.bin"
    tflm_out = store_entry(project, "mps2-an386-tflm", "run") / "device_outputs.bin"
    assert native_out.read_bytes() == tflm_out.read_bytes()
    # target.profile_layers on tflm: TFLM's profiler times every operator it runs, the reshapes too
    codegen = json.loads((store_entry(project, "mps2-an386-tflm", "codegen") / "codegen.json").read_text())
    model = (store_entry(project, "mps2-an386-tflm", "codegen") / "model.tflite").read_bytes()
    from tinypipe.tflite import parse_model

    operators = [o.op for o in parse_model(model).main.operators]
    assert [(layer["op_index"], layer["op"]) for layer in row["layers"]] == list(enumerate(operators))
    assert set(codegen["ops"]) == set(operators)
    assert abs(sum(layer["share"] for layer in row["layers"]) - 1) < 1e-6
    # TFLM's set-up (AllocateTensors) happens in model::init before the first window is timed
    run_json_doc = json.loads((store_entry(project, "mps2-an386-tflm", "run") / "run.json").read_text())
    assert run_json_doc["instructions_max"] < 1.05 * run_json_doc["instructions_min"]
    # the operators are most of the whole; the rest is the interpreter between them and the copies in and out
    traced = sum(layer["instructions"] for layer in row["layers"])
    assert 0.7 < traced / row["instructions_per_inference"] < 1.0


def test_profile_layers_times_every_operator_on_the_device(float_project):
    project, doc = float_project
    codegen = json.loads((store_entry(project, "mps2-an386-native", "codegen") / "codegen.json").read_text())
    computing = [(o["index"], o["op"]) for o in codegen["ops"] if o["kernel"] != "alias"]
    for row in doc["results"]:
        layers = row["layers"]
        assert [(layer["op_index"], layer["op"]) for layer in layers] == computing, row["board"]
        assert all(layer["instructions"] > 0 for layer in layers)
        assert abs(sum(layer["share"] for layer in layers) - 1) < 1e-6
        # the traced pass adds a SysTick read per operator and skips the output copy: close to the plain pass
        traced = sum(layer["instructions"] for layer in layers)
        assert 0.85 < traced / row["instructions_per_inference"] < 1.15, (row["board"], traced)
    by_op = {layer["op"]: layer["instructions"] for layer in doc["results"][0]["layers"]}
    assert by_op["CONV_2D"] > by_op["SOFTMAX"]  # 12,480 MACs of convolution against a 3-value softmax
    report = tinypipe("report", str(project))
    assert report.returncode == 0 and "mps2-an385-native: instructions per operator" in report.stdout
    assert "DEQUANTIZE" in report.stdout
    page = project / "report.html"
    assert tinypipe("report", str(project), "--html", str(page)).returncode == 0
    assert "mps2-an386-native: instructions per operator" in page.read_text()


def test_the_exported_float32_model_runs_in_user_firmware_bit_exact(float_project, rust_toolchain, tmp_path):
    """`tinypipe export`'s crate and C library with float32 I/O (`f32` elements, `float` in C, floats passed in FPU
    registers) inside the hand-written firmwares of tests/user_firmware/, against the reference stage's oracle."""
    project, _ = float_project
    variant, board = "mps2-an386-native", "mps2-an386"
    result = tinypipe("export", str(project), "--crate", str(tmp_path / "crate"), "--variant", variant, "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    crate = json.loads(result.stdout)["crates"][0]
    assert (crate["input"]["dtype"], crate["output"]["dtype"]) == ("float32", "float32")
    assert "typedef float tp_input_t;" in Path(crate["files"]["c_header"]).read_text()
    reference = store_entry(project, variant, "reference")
    windows, out_bytes = 8, 4 * int(np.prod(crate["output"]["shape"]))
    in_bytes = 4 * int(np.prod(crate["input"]["shape"]))
    inputs = (reference / "test_inputs.bin").read_bytes()[:windows * in_bytes]
    oracle = (reference / "test_outputs.bin").read_bytes()
    expected = [oracle[i * out_bytes:(i + 1) * out_bytes] for i in range(windows)]
    (tmp_path / "rust").mkdir()
    (tmp_path / "c").mkdir()
    rust_elf = build_user_rust_firmware(crate, inputs, rust_toolchain(board), tmp_path / "rust")
    assert run_user_firmware(rust_elf, board)[1] == expected
    assert run_user_firmware(build_user_c_program(crate, inputs, tmp_path / "c"), board)[1] == expected
