"""Engine tflm through the CLI (`tinypipe run DIR --json`), end to end on the real tools: the gesture example and
an import pipeline for every reference model, on QEMU mps2-an386, compared byte for byte with the host TFLM
interpreter.

Every project builds the default `tflm.library: model_ops` library (TFLM's core plus its model's kernels) in the
session's user-level cache, so the object cache is shared: a kernel compiled for one project is reused by the
next, and the second gesture-like project finds its whole library in the shared store.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import GESTURE, SHARED, by_stage, run_json, timed, timings_report

TFLM_TREE = SHARED / "third_party" / "tflm"
MODELS_DIR = SHARED / "models"
GESTURE_OPS = ["CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "RESHAPE", "SOFTMAX"]
# imported model -> (kernel sets, data.samples_per_class). The reference stage feeds an imported model that does
# not take the data's windows seeded random inputs, one per test window: classes x round(0.15 x samples) (at
# least one per class). person_detect needs ~300 M instructions per inference with the reference kernels, so it
# gets few inputs there.
IMPORTS = {
    "hello_world_int8": (("reference", "cmsis_nn"), 40),
    "micro_speech_quantized": (("reference", "cmsis_nn"), 40),
    "kws_ref_model": (("reference", "cmsis_nn"), 20),
    "ad01_int8": (("reference", "cmsis_nn"), 40),
    "person_detect": (("reference", "cmsis_nn"), 4),
}
TIMINGS: dict[str, float] = {}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("arm-none-eabi-g++", "qemu-system-arm", "bindgen", "cargo"))
        or not (TFLM_TREE / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file(),
        reason="needs arm-none-eabi-gcc, qemu-system-arm, bindgen, cargo (`make setup`) and the shared TFLM tree"),
]


def timed_run(project: Path, label: str) -> dict:
    """`-j 2`: the TFLM compile takes two job slots (with the default -j 1 it would run one compiler at a time)."""
    with timed(TIMINGS, f"tinypipe run {label}"):
        return run_json(project, "-j", "2")


def lock_entry(project: Path, stage: str) -> dict:
    (variant,) = json.loads((project / "tinypipe.lock").read_text())["variants"].values()
    return variant[stage]


def library_manifest(project: Path) -> dict:
    """tflm.json of the project's tflm_lib entry in the session's shared store."""
    key = lock_entry(project, "tflm_lib")["key"]
    return json.loads((Path(os.environ["TINYPIPE_CACHE"]) / "store" / key / "tflm.json").read_text())


def gesture_yaml(tflm_section: str, **replace: str) -> str:
    text = (GESTURE / "project.yaml").read_text()
    assert "\nengine: native\n" in text
    text = text.replace("\nengine: native\n", f"\nengine: tflm\ntflm: {tflm_section}\n")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


report_timings = timings_report(TIMINGS, "tflm pipeline timing")


@pytest.fixture(scope="session")
def gesture_tflm(tmp_path_factory):
    """kernel set -> (project dir, --json doc) of pipelines/gesture with `engine: tflm`; run on first use."""
    runs: dict[str, tuple[Path, dict]] = {}

    def get(kernels: str) -> tuple[Path, dict]:
        if kernels not in runs:
            project = tmp_path_factory.mktemp(f"gesture-tflm-{kernels}") / "gesture"
            project.mkdir()
            (project / "project.yaml").write_text(gesture_yaml(f"{{path: {TFLM_TREE}, kernels: {kernels}}}"))
            runs[kernels] = project, timed_run(project, f"gesture {kernels}")
        return runs[kernels]

    return get


@pytest.mark.parametrize("kernels", ["reference", "cmsis_nn"])
def test_gesture_on_tflm_is_bit_exact_with_the_host_interpreter(gesture_tflm, kernels):
    project, doc = gesture_tflm(kernels)
    stages = by_stage(doc)
    assert list(stages) == ["data", "train", "quantize", "reference", "tflm_ops", "tflm_lib", "codegen", "toolchain",
                            "crates", "firmware", "build", "run"]
    assert stages["train"] == stages["codegen"] == stages["run"] == "ran"
    (row,) = doc["results"]
    assert (row["variant"], row["board"], row["engine"]) == ("mps2-an386-tflm", "mps2-an386", "tflm")
    assert row["bit_exact"] is True
    assert row["accuracy_device"] == row["accuracy_host"] >= 0.9
    assert row["instructions_per_inference"] > 1000 and row["flash_bytes"] > row["arena_bytes"] > 0
    # the default library: TFLM's core and only the kernels of the model's five ops
    manifest = library_manifest(project)
    assert (manifest["kernels"], manifest["library"], manifest["ops"]) == (kernels, "model_ops", GESTURE_OPS)
    kernel_sources = [s for s in manifest["sources"] if s.startswith("tensorflow/lite/micro/kernels/")]
    assert {Path(s).stem for s in kernel_sources} == set(manifest["kernel_files"])
    assert {"conv", "pooling", "fully_connected", "reshape", "softmax"} <= set(manifest["kernel_files"])
    assert len(kernel_sources) < 20  # of 116 kernel files


def test_second_project_on_the_same_board_reuses_the_library(gesture_tflm, tmp_path):
    """Another model with the same ops, elsewhere on disk, naming the TFLM tree by a relative path: its tflm_lib
    key is the first project's, so the stage is `cached` and nothing of TFLM recompiles."""
    first, _ = gesture_tflm("cmsis_nn")
    project = tmp_path / "elsewhere" / "second"
    project.mkdir(parents=True)
    relative_tree = os.path.relpath(TFLM_TREE, project)
    (project / "project.yaml").write_text(gesture_yaml(
        f"{{path: {relative_tree}, kernels: cmsis_nn}}", **{"name: gesture\n": "name: second\n",
                                                            "filters: 16,": "filters: 12,"}))
    doc = timed_run(project, "second project, cmsis_nn")
    stages = by_stage(doc)
    assert stages["train"] == stages["tflm_ops"] == stages["codegen"] == stages["run"] == "ran"
    assert stages["tflm_lib"] == "cached"
    assert lock_entry(project, "tflm_lib")["key"] == lock_entry(first, "tflm_lib")["key"]
    assert lock_entry(project, "quantize")["output"] != lock_entry(first, "quantize")["output"]
    assert doc["results"][0]["bit_exact"] is True


@pytest.mark.parametrize("model,kernels", [(m, k) for m, (sets, _) in IMPORTS.items() for k in sets])
def test_imported_model_on_tflm_is_bit_exact_with_the_host_interpreter(model, kernels, tmp_path):
    project = tmp_path / f"{model}-{kernels}"
    project.mkdir()
    (project / "project.yaml").write_text(
        f"name: {model.replace('_', '-')}\n"
        f"model: {{path: {MODELS_DIR / f'{model}.tflite'}}}\n"
        f"data: {{samples_per_class: {IMPORTS[model][1]}}}\n"
        "target: {board: mps2-an386}\n"
        "engine: tflm\n"
        f"tflm: {{path: {TFLM_TREE}, kernels: {kernels}}}\n")
    doc = timed_run(project, f"import {model} {kernels}")
    # a fresh project: every stage of its own store runs (an imported .tflite's train only records the import);
    # tflm_lib and toolchain live in the shared store, where an earlier test may have built them
    stages = by_stage(doc)
    assert {s for s, status in stages.items() if status != "ran"} <= {"tflm_lib", "toolchain"}
    assert stages["train"] == "ran" and stages["run"] == "ran"
    (row,) = doc["results"]
    assert row["bit_exact"] is True, row
    # seeded random inputs (the model does not take the data's windows): no labels, no accuracy
    assert row["accuracy_host"] is None and row["accuracy_device"] is None
    assert row["instructions_per_inference"] > 0 and row["arena_bytes"] > 0
    assert library_manifest(project)["library"] == "model_ops"
