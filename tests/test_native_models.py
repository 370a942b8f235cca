"""Every reference model through the real firmware, build and run stages on both kernel paths: 20 seeded
random inputs each, device outputs byte-equal to the host TFLM interpreter (the run stage's own verdict)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import build_firmware, native_variant, stage_context, write_reference
from tinypipe.engines.native.generate import generate
from tinypipe.stages import run

MODELS = ["hello_world_int8", "micro_speech_quantized", "kws_ref_model", "ad01_int8", "person_detect"]
INPUTS = 20

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-ld") and Path("/usr/bin/cargo").exists()),
        reason="needs qemu-system-arm, gcc-arm-none-eabi and Debian's cargo"),
]


@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an385"])  # DSP path, portable path
@pytest.mark.parametrize("model", MODELS)
def test_reference_model_is_bit_exact_on_qemu(model, board, shared_dir, rust_toolchain, host_tflm, tmp_path):
    data = (shared_dir / "models" / f"{model}.tflite").read_bytes()
    generated = generate(data, f"{model}.tflite")
    seed = MODELS.index(model) * 2 + (board == "mps2-an385")
    inputs = np.random.default_rng(seed).integers(-128, 128, size=(INPUTS, *generated.info["input"]["shape"]),
                                                  dtype=np.int8)
    oracle = host_tflm(data)
    reference = write_reference(tmp_path / "reference", inputs, np.stack([oracle.invoke(x) for x in inputs]))
    codegen = tmp_path / "codegen"
    codegen.mkdir()
    (codegen / "model.rs").write_text(generated.model_rs)
    variant = native_variant(board)
    built = build_firmware(variant, codegen, reference, rust_toolchain(board), tmp_path)
    result = run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert result["n"] == INPUTS
    assert result["bit_exact"] is True, f"{model} on {board}: {result['mismatches']}"
