"""`tinypipe export DIR --crate OUT`: the model as a no_std crate and a C static library, used by firmware that
tinypipe did not generate (tests/user_firmware/: a Rust crate and a C program with their own start-up) and run on
QEMU's mps2-an386, every output byte compared with the host TFLM interpreter's. The fast tests pin the names,
constants and refusals.

The model is MicroSpeech's (a reference model imported with `model.path:`): nothing is trained.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import (SHARED, build_user_c_program, build_user_rust_firmware, run_user_firmware, store_entry,
                           tinypipe)
from tinypipe.core.errors import UserError
from tinypipe.release import capi
from tinypipe.release.crate import (MARKER, CrateSpec, check_destination, crate_name, crate_version, f32_literal,
                                    render_lib_rs, replace_export)

MODEL = "micro_speech_quantized.tflite"
BOARD = "mps2-an386"
CARGO, RUSTC = Path("/usr/bin/cargo"), Path("/usr/bin/rustc")


def _project(parent: Path, extra: str = "") -> Path:
    project = parent / "speech"
    project.mkdir()
    shutil.copyfile(SHARED / "models" / MODEL, project / "model.tflite")
    (project / "project.yaml").write_text(f"name: speech.demo\nmodel: {{path: model.tflite}}\n{extra}")
    return project


# --- names, constants and refusals (no build) -------------------------------------------------------------------

@pytest.mark.parametrize("project, package", [("gesture", "gesture"), ("Speech.Demo", "speech-demo"),
                                              ("7seg", "model-7seg"), ("core", "core-model"),
                                              ("tinyml_kernels", "tinyml_kernels-model"), ("...", "model")])
def test_the_package_name_is_the_project_name_sanitised(project, package):
    assert crate_name(project) == package


def test_the_version_is_the_projects_or_0_1_0_and_must_be_a_cargo_version():
    assert crate_version({}) == "0.1.0"
    assert crate_version({"version": "1.2.3-rc.1"}) == "1.2.3-rc.1"
    with pytest.raises(UserError) as err:
        crate_version({"version": "1.2"}, Path("/p/project.yaml"))
    assert err.value.message == "project.yaml: version: '1.2' is not a Cargo version for the exported crate"
    assert err.value.hint == 'write it as MAJOR.MINOR.PATCH, e.g. `version: "1.2.0"`'


@pytest.mark.parametrize("value", [1.0, 0.00390625, 0.10171568393707275, 3.9e-05, 1e-12, 12345.678])
def test_float_literals_read_back_as_the_same_float32(value):
    text = f32_literal(value)
    assert re.fullmatch(r"-?\d+(\.\d+)?(e[-+]\d+)?", text) and ("." in text or "e" in text)
    assert np.float32(float(text)) == np.float32(value)


def _spec(input_dtype: str = "int8", output_dtype: str = "int8") -> CrateSpec:
    def io(dtype, shape, scale, zero_point):
        return {"dtype": dtype, "shape": shape, "scale": scale if dtype == "int8" else None,
                "zero_point": zero_point if dtype == "int8" else 0}

    return CrateSpec(package="speech-demo", version="0.1.0", project="speech.demo", variant="mps2-an386-native",
                     board=BOARD, triple="thumbv7em-none-eabihf", cpu="cortex-m4",
                     info={"arena_bytes": 5960, "input_len": 1960, "output_len": 4, "scratch_bytes": 480,
                           "model_sha256": "ab" * 32, "input": io(input_dtype, [1, 1960], 0.1017, -128),
                           "output": io(output_dtype, [1, 4], 0.00390625, -128)})


def test_the_header_and_the_crate_carry_shapes_quantization_and_arena():
    spec = _spec()
    header = capi.render_header(spec, ["-mcpu=cortex-m4", "-mthumb"])
    for line in ("typedef int8_t tp_input_t;", "#define TP_INPUT_LEN 1960", "#define TP_OUTPUT_SHAPE { 1, 4 }",
                 "#define TP_INPUT_SCALE 0.1017f", "#define TP_INPUT_ZERO_POINT (-128)",
                 "#define TP_OUTPUT_SCALE 0.00390625f", "#define TP_ARENA_BYTES 5960",
                 "int32_t tp_model_init(void *arena, size_t arena_len);",
                 "int32_t tp_model_invoke(const tp_input_t *input, tp_output_t *output);"):
        assert line in header
    lib = render_lib_rs(spec)
    assert "pub const INPUT_SCALE: f32 = model::INPUT_SCALE;" in lib
    assert "pub const OUTPUT_ZERO_POINT: i32 = model::OUTPUT_ZERO_POINT;" in lib
    assert "pub const INPUT_SHAPE: [usize; 2] = [1, 1960];" in lib


def test_float_io_has_float_elements_and_no_quantization_constants():
    spec = _spec("float32", "float32")
    header = capi.render_header(spec, [])
    assert "typedef float tp_input_t;" in header and "typedef float tp_output_t;" in header
    assert "SCALE" not in header and "ZERO_POINT" not in header
    lib = render_lib_rs(spec)
    assert "SCALE" not in lib and "pub fn output_to_real(y: Output) -> f32 {\n    y\n}" in lib


@pytest.mark.parametrize("extra, hint", [
    ("engine: tflm\n", "export a native variant: `engine: native` in project.yaml, or --variant naming a native "
                       "matrix cell"),
    ("matrix: {engine: [native, tflm]}\n", "export a native variant with --variant (mps2-an386-native)"),
], ids=["tflm", "matrix-with-a-tflm-cell"])
def test_a_tflm_variant_is_refused_with_exit_2_before_anything_runs(tmp_path, shared_dir, extra, hint):
    project = _project(tmp_path, extra)
    result = tinypipe("export", str(project), "--crate", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert ("error: export --crate: engine tflm is not supported yet (variant mps2-an386-tflm): only the native "
            f"engine's model is exported as a crate\n  hint: {hint}\n") in result.stderr
    assert not (tmp_path / "out").exists() and not (project / ".tinypipe" / "store").exists()


def test_an_unknown_variant_is_refused_naming_the_variants(tmp_path, shared_dir):
    project = _project(tmp_path)
    result = tinypipe("export", str(project), "--crate", str(tmp_path / "out"), "--variant", "mps2-an386-nativ")
    assert result.returncode == 2, result.stderr
    assert ("error: --variant mps2-an386-nativ: no such variant (did you mean 'mps2-an386-native'?)\n"
            "  hint: the project's variants: mps2-an386-native") in result.stderr


def test_a_directory_that_is_not_an_export_is_never_replaced(tmp_path, shared_dir):
    project = _project(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = tinypipe("export", str(project), "--crate", str(mine))
    assert result.returncode == 2, result.stderr
    assert (f"error: --crate {mine}: the directory is not empty and holds no previous export (no .tinypipe-export)"
            in result.stderr)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_previous_export_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path):
    out, staging = tmp_path / "crate", tmp_path / ".crate.export-1"
    out.mkdir()
    (out / MARKER).write_text("")
    (out / "stale.rs").write_text("")
    staging.mkdir()
    (staging / "lib.rs").write_text("new")
    check_destination(out)
    replace_export(staging, out)
    assert sorted(p.name for p in out.iterdir()) == ["lib.rs"]
    assert [p.name for p in tmp_path.iterdir()] == ["crate"]


# --- the exported crate and C library in the user's own firmware, on QEMU ---------------------------------------

needs_tools = pytest.mark.skipif(
    not (CARGO.exists() and RUSTC.exists() and shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="needs Debian's rustc and cargo, gcc-arm-none-eabi and qemu-system-arm")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_dir) -> dict:
    """`tinypipe export --json` of the MicroSpeech project; a second export elsewhere must be the same to the byte."""
    root = tmp_path_factory.mktemp("export")
    project = _project(root)
    crates = []
    for out in (root / "crate", root / "elsewhere" / "deeper"):
        result = tinypipe("export", str(project), "--crate", str(out), "--json")
        assert result.returncode == 0, result.stderr[-6000:]
        crates.append(json.loads(result.stdout)["crates"][0])
    first, second = (Path(crate["path"]) for crate in crates)
    assert _tree(first) == _tree(second), "the export depends on where it was written"
    return crates[0]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def windows(exported, host_tflm) -> tuple[np.ndarray, list[bytes]]:
    """Test windows (seeded random int8, and the extremes) and the host TFLM oracle's output bytes for each."""
    length = int(np.prod(exported["input"]["shape"]))
    rng = np.random.default_rng(14)
    inputs = np.concatenate([rng.integers(-128, 128, (4, length)), np.full((1, length), -128),
                             np.full((1, length), 127)]).astype(np.int8)
    oracle = host_tflm((SHARED / "models" / MODEL).read_bytes())
    return inputs, [oracle.invoke(x).astype(np.int8).tobytes() for x in inputs]


@pytest.mark.slow
def test_the_export_is_a_crate_with_a_c_library(exported):
    root = Path(exported["path"])
    assert exported["package"] == "speech-demo" and exported["version"] == "0.1.0"
    for name in ("Cargo.toml", "README.md", "src/lib.rs", "src/model.rs", "kernels/Cargo.toml", "c/Cargo.toml",
                 "c/speech_demo.h", "c/libspeech_demo.a", "export.json", ".tinypipe-export"):
        assert (root / name).is_file(), name
    assert exported["files"] == {"c_header": str(root / "c/speech_demo.h"),
                                 "c_library": str(root / "c/libspeech_demo.a")}
    lib = (root / "src/lib.rs").read_text()
    assert lib.startswith("//! The model of tinypipe project `speech.demo`") and "#![deny(unsafe_code)]" in lib
    assert "[dependencies]\ntinyml-kernels = { path = \"kernels\" }\n" in (root / "Cargo.toml").read_text()
    assert not list(root.parent.glob(".crate*")), "staging or old directories left beside the export"


@pytest.mark.slow
@needs_tools
def test_a_hand_written_rust_firmware_runs_the_exported_crate_bit_exact(exported, windows, rust_toolchain, tmp_path):
    inputs, expected = windows
    elf = build_user_rust_firmware(exported, inputs.tobytes(), rust_toolchain(BOARD), tmp_path)
    output, outputs = run_user_firmware(elf, BOARD)
    assert f"too_small 8 {exported['arena_bytes']}" in output
    assert outputs == expected


@pytest.mark.slow
@needs_tools
def test_a_c_program_linked_with_the_static_library_runs_bit_exact(exported, windows, tmp_path):
    inputs, expected = windows
    output, outputs = run_user_firmware(build_user_c_program(exported, inputs.tobytes(), tmp_path), BOARD)
    statuses = dict(re.findall(r"^status (\w+) (-?\d+)$", output, re.M))
    assert statuses == {"invoke_before_init": "-3", "init_too_small": "-2", "init_null": "-1", "init": "0"}
    assert outputs == expected


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/cargo-clippy").exists(), reason="needs Debian's clippy (rust-web-clippy)")
def test_the_exported_crate_and_its_c_api_pass_clippy(exported, rust_toolchain, tmp_path):
    _clippy(exported, rust_toolchain(BOARD), tmp_path, ("", "c"))


def _clippy(exported: dict, entry: Path, tmp_path: Path, members: tuple[str, ...]) -> None:
    """`cargo clippy -D warnings` in a copy of the export: in each of `members` ("": the crate, "c": its C API)."""
    crate = tmp_path / "crate"
    shutil.copytree(exported["path"], crate)  # clippy writes Cargo.lock files: not into the fixture's export
    toolchain = json.loads((entry / "toolchain.json").read_text())
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARGO", "RUST"))}
    env.update(PATH=f"/usr/bin{os.pathsep}{env.get('PATH', '')}", RUSTC=toolchain["rustc"],
               CARGO_HOME=str(tmp_path / "cargo-home"), CARGO_TARGET_DIR=str(tmp_path / "target"),
               RUSTFLAGS=" ".join([f"-C target-cpu={toolchain['cpu']}",
                                   *([f"--sysroot {entry / toolchain['sysroot']}"] if toolchain["sysroot"] else [])]))
    for member in members:  # clippy lints a workspace's members: the crate, then the C API's
        result = subprocess.run([toolchain["cargo"], "clippy", "--release", "--offline", "--target",
                                 toolchain["triple"], "--", "-D", "warnings"], cwd=crate / member, env=env,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]


# --- models that take raw sensor windows: the front end goes with the crate ------------------------------------------

def _keywords_project(parent: Path) -> Path:
    from tests.test_keywords import KEYWORDS, make_data

    project = parent / "keywords"
    shutil.copytree(KEYWORDS, project, ignore=shutil.ignore_patterns("data", ".tinypipe", "tinypipe.lock"))
    make_data(project / "data", "--per-class", "4", "--seconds", "0.45")
    text = (project / "project.yaml").read_text()
    (project / "project.yaml").write_text(text.replace("epochs: 30", "epochs: 2"))  # the numbers matter, not skill
    return project


def _spectral_project(parent: Path) -> Path:
    from tests.helpers import REPO, fresh_example

    project = fresh_example(REPO / "pipelines" / "gesture-features", parent)
    text = (project / "project.yaml").read_text()
    assert "matrix:\n  features.kind: [raw, spectral]\n" in text
    (project / "project.yaml").write_text(text.replace("samples_per_class: 200", "samples_per_class: 30")
                                          .replace("epochs: 30", "epochs: 2")
                                          .replace("matrix:\n  features.kind: [raw, spectral]\n", ""))
    return project


def _scaled_project(parent: Path) -> Path:
    import yaml

    from tests.test_input_scaling import scaled_doc, write_raw_recordings

    project = parent / "scaled"
    project.mkdir()
    write_raw_recordings(project)
    doc = scaled_doc(sensor={"scale": [0.0002, 0.0003, 0.0002], "offset": [0, 0, 16384]}, model={"epochs": 2})
    del doc["data"]["normalize"]  # the sensor's declared scaling instead
    (project / "project.yaml").write_text(yaml.safe_dump(doc))
    return project


@pytest.fixture(scope="module")
def raw_exports(tmp_path_factory, rust_toolchain) -> dict[str, tuple[dict, bytes, list[bytes]]]:
    """Crates of three models that take raw int16 windows — each sample scaled (`sensor.scale`/`offset` over raw
    CSV counts), spectral features (gesture-features), MFCCs (the keywords example) — by the front end's kind: the crate
    (`export --json`), the reference stage's raw test windows and the host TFLM oracle's output bytes for each (on
    the host's own features)."""
    rust_toolchain(BOARD)  # the session's sysroot, shared through the user cache
    root = tmp_path_factory.mktemp("raw-export")
    found = {}
    for project in (_scaled_project(root), _spectral_project(root), _keywords_project(root)):
        result = tinypipe("export", str(project), "--crate", str(root / f"{project.name}-crates"), "--json")
        assert result.returncode == 0, result.stderr[-6000:]
        for crate in json.loads(result.stdout)["crates"]:
            entry = store_entry(project, crate["variant"], "reference")
            outputs = (entry / "test_outputs.bin").read_bytes()
            size = int(np.prod(crate["output"]["shape"]))
            found[crate["raw_input"]["features"] or "scaled"] = (
                crate, (entry / "test_raw.bin").read_bytes(),
                [outputs[i:i + size] for i in range(0, len(outputs), size)])
    assert sorted(found) == ["mfcc", "scaled", "spectral"]
    return found


@pytest.mark.slow
def test_a_raw_window_model_exports_its_front_end_and_class_names(raw_exports):
    crate, raw, expected = raw_exports["mfcc"]
    assert crate["raw_input"] == {"window": 1024, "axes": 1, "window_len": 1024, "features": "mfcc"}
    assert crate["classes"] == ["chirp", "high", "low", "noise"]
    assert len(raw) == 2 * 1024 * len(expected)
    root = Path(crate["path"])
    for name in ("raw_input.rs", "audio_config.rs", "front_end.rs"):
        assert (root / "src" / name).is_file(), name
    lib = (root / "src" / "lib.rs").read_text()
    assert "pub use front_end::{FrontEnd, RAW_AXES, RAW_WINDOW, RAW_WINDOW_LEN};" in lib
    assert 'pub const CLASSES: [&str; OUTPUT_LEN] = ["chirp", "high", "low", "noise"];' in lib
    header = Path(crate["files"]["c_header"]).read_text()
    assert "#define TP_RAW_WINDOW_LEN 1024" in header and "int32_t tp_input_from_raw(" in header
    assert '#define TP_CLASSES { "chirp", "high", "low", "noise" }' in header
    scaled, _, _ = raw_exports["scaled"]
    assert scaled["raw_input"] == {"window": 24, "axes": 3, "window_len": 72, "features": None}
    assert not (Path(scaled["path"]) / "src" / "features_config.rs").exists()


@pytest.mark.slow
@needs_tools
@pytest.mark.parametrize("kind", ["spectral", "mfcc"])
def test_a_rust_firmware_feeds_raw_windows_through_the_front_end_bit_exact(raw_exports, rust_toolchain, tmp_path,
                                                                           kind):
    crate, raw, expected = raw_exports[kind]
    elf = build_user_rust_firmware(crate, raw, rust_toolchain(BOARD), tmp_path, raw=True)
    _, outputs = run_user_firmware(elf, BOARD)
    assert outputs == expected  # device front end + exported model == host features + host TFLM, every byte


@pytest.mark.slow
@needs_tools
@pytest.mark.parametrize("kind", ["scaled", "spectral", "mfcc"])
def test_a_c_program_feeds_raw_windows_through_tp_input_from_raw_bit_exact(raw_exports, tmp_path, kind):
    crate, raw, expected = raw_exports[kind]
    output, outputs = run_user_firmware(build_user_c_program(crate, raw, tmp_path), BOARD)
    statuses = dict(re.findall(r"^status (\w+) (-?\d+)$", output, re.M))
    assert statuses["raw_null"] == "-1" and statuses["init"] == "0"
    assert outputs == expected


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/cargo-clippy").exists(), reason="needs Debian's clippy (rust-web-clippy)")
def test_a_crate_with_a_front_end_passes_clippy(raw_exports, rust_toolchain, tmp_path):
    _clippy(raw_exports["mfcc"][0], rust_toolchain(BOARD), tmp_path, ("", "c"))  # its front end and tp_input_from_raw
