"""Every reference model through the real firmware, build and run stages on both kernel paths: 20 seeded
random inputs each, device outputs byte-equal to the host TFLM interpreter (the run stage's own verdict)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tinypipe.engines.native.generate import generate

MODELS = ["hello_world_int8", "micro_speech_quantized", "kws_ref_model", "ad01_int8", "person_detect"]
INPUTS = 20

pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-ld") and Path("/usr/bin/cargo").exists()),
    reason="needs qemu-system-arm, gcc-arm-none-eabi and Debian's cargo")


@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an385"])  # DSP path, portable path
@pytest.mark.parametrize("model", MODELS)
def test_reference_model_is_bit_exact_on_qemu(model, board, shared_dir, tmp_path):
    from benchmarks import device

    data = (shared_dir / "models" / f"{model}.tflite").read_bytes()
    shape = generate(data, model).info["input"]["shape"]
    seed = MODELS.index(model) * 2 + (board == "mps2-an385")
    inputs = np.random.default_rng(seed).integers(-128, 128, size=(INPUTS, *shape), dtype=np.int8)
    built = device.build_firmware(data, model, inputs, board, tmp_path)
    result = device.run_firmware(built, tmp_path / "run")
    assert result["n"] == INPUTS
    assert result["bit_exact"] is True, f"{model} on {board}: {result['mismatches']}"
