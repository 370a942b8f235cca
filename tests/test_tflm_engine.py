"""Engine tflm end to end on real tools: libtflm.a, the generated shim and model.rs, a no_std Rust harness linked
the way link.json says, run on QEMU mps2-an386 and compared byte for byte with the host TFLM interpreter.

The library is compiled once per kernel set for the session, as the default `tflm.library: model_ops` does: TFLM's
core plus only the kernels of the test models' ops (TEST_OPS); a full build takes minutes per kernel set, which the
suite cannot afford.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.helpers import rustc_for, timed, timings_report

from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant
from tinypipe.core.errors import UserError
from tinypipe.core.hashing import sha256_tree
from tinypipe.engines.native.generate import KERNELS_DIR
from tinypipe.engines.tflm import codegen as codegen_tflm
from tinypipe.engines.tflm import lib as tflm_lib
from tinypipe.engines.tflm import ops as tflm_ops
from tinypipe.engines.tflm import source as _tflm
from tinypipe.runners import qemu
from tinypipe.stages.base import StageContext
from tinypipe.toolchain import objects

HARNESS = Path(__file__).with_name("tflm_harness")
BOARD = BOARDS["mps2-an386"]
TEST_OPS = ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX")  # every op of the MODELS below
MODELS = {"hello_world_int8": 16, "ad01_int8": 6, "micro_speech_quantized": 4}  # model -> random inputs
TIMINGS: dict[str, float] = {}

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("arm-none-eabi-g++", "arm-none-eabi-ld", "qemu-system-arm", "bindgen")),
    reason="needs arm-none-eabi-gcc, qemu-system-arm and bindgen (`make setup`)")


def variant(root: Path | None, kernels: str = "cmsis_nn", arena_bytes: int | None = None,
            project_dir: Path | None = None) -> Variant:
    project = Project.model_validate({
        "name": "tflm-test", "model": {"path": "model.tflite"}, "engine": "tflm",
        "tflm": {"path": None if root is None else str(root), "kernels": kernels, "arena_bytes": arena_bytes},
    })
    return Variant(name=f"{BOARD.name}-tflm", project=project, board=BOARD, engine="tflm", project_dir=project_dir)


report_timings = timings_report(TIMINGS, "tflm timing")


# --- session fixtures: the TFLM tree, one library per kernel set ----------------------------------------------

@pytest.fixture(scope="session")
def tflm_root(shared_dir) -> Path:
    root = shared_dir / "third_party" / "tflm"
    if not (root / _tflm.MICRO / "micro_interpreter.h").is_file():
        pytest.skip(f"no TFLM tree at {root}")
    return root


@pytest.fixture(scope="session")
def tflm_libs(tflm_root, tmp_path_factory):
    """kernel set -> (tflm_lib output directory, build summary); built on first use."""
    built: dict[str, tuple[Path, dict]] = {}

    def get(kernels: str) -> tuple[Path, dict]:
        if kernels not in built:
            out = tmp_path_factory.mktemp(f"tflm-lib-{kernels}")
            with timed(TIMINGS, f"libtflm.a {kernels}"):
                summary = tflm_lib.build_library(variant(tflm_root, kernels), tflm_root, out, ops=TEST_OPS)
            built[kernels] = (out, summary)
        return built[kernels]

    return get


@pytest.fixture(scope="session")
def toolchain_entry(rust_toolchain) -> Path:
    """The Rust toolchain (rustc and sysroot) for the board, as the firmware build uses it."""
    with timed(TIMINGS, f"rust toolchain entry for {BOARD.name}"):
        return rust_toolchain(BOARD.name)


# --- helpers: codegen, the harness, QEMU ----------------------------------------------------------------------

def run_codegen(root: Path, lib_dir: Path, model: Path, out: Path, kernels: str,
                arena_bytes: int | None = None) -> dict:
    quantize = out.parent / f"{out.name}-quantize"
    quantize.mkdir(parents=True)
    shutil.copyfile(model, quantize / "model.tflite")
    out.mkdir(parents=True)
    ctx = StageContext(variant=variant(root, kernels, arena_bytes), inputs={"quantize": quantize, "tflm_lib": lib_dir},
                       out=out, project_dir=out.parent)
    return codegen_tflm.run(ctx)


def build_harness(codegen: Path, inputs: np.ndarray, toolchain_entry: Path, work: Path) -> Path:
    """Link the harness exactly as link.json says, with the ld flavor the firmware build uses."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HARNESS / "main.rs", work / "main.rs")
    for name in ("model.rs", "model.tflite"):
        shutil.copyfile(codegen / name, work / name)
    flat = ", ".join(str(int(v)) for v in inputs.reshape(-1))
    (work / "cases.rs").write_text(f"pub static INPUTS: [i8; {inputs.size}] = [{flat}];\n")
    script = (codegen_tflm.SUPPORT / "probe" / "link.ld.in").read_text()
    for key, value in (("FLASH_ORIGIN", BOARD.flash.origin), ("FLASH_LENGTH", BOARD.flash.size),
                       ("RAM_ORIGIN", BOARD.ram.origin), ("RAM_LENGTH", BOARD.ram.size)):
        script = script.replace(f"@{key}@", hex(value))
    (work / "link.ld").write_text(script)
    link = json.loads((codegen / "link.json").read_text())
    ld_args = [f"-T{work / 'link.ld'}", "--gc-sections", *[f"-L{d}" for d in link["search_dirs"]],
               "--start-group", *[str(codegen / lib) for lib in link["static_libs"]],
               *[f"-l{lib}" for lib in link["libs"]], "--end-group"]
    elf = work / "harness.elf"
    rustc, sysroot = rustc_for(toolchain_entry)
    target = ["--target", BOARD.triple, *sysroot, "-C", "opt-level=2", "-C", "panic=abort",
              "-C", f"target-cpu={BOARD.cpu}"]
    # model.rs calls the kernels crate for `input_from_real`, as in the firmware
    kernels = subprocess.run([rustc, "--edition", "2021", "--crate-type", "rlib", "--crate-name", "tinyml_kernels",
                              *target, str(KERNELS_DIR / "src" / "lib.rs"), "--out-dir", str(work)],
                             capture_output=True, text=True)
    assert kernels.returncode == 0, kernels.stderr[-4000:]
    argv = [rustc, "--edition", "2024", "--crate-type", "bin", "--crate-name", "harness", *target,
            "--extern", f"tinyml_kernels={work / 'libtinyml_kernels.rlib'}",
            "-C", "linker=arm-none-eabi-ld", "-C", "linker-flavor=ld",
            *[f"-Clink-arg={a}" for a in ld_args], "-D", "warnings", "main.rs", "-o", str(elf)]
    result = subprocess.run(argv, cwd=work, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return elf


def run_qemu(elf: Path) -> subprocess.CompletedProcess:
    """Run on QEMU; `.stdout` has everything (QEMU 7.2 writes semihosting output to stderr)."""
    return subprocess.run(qemu.command(elf, BOARD.qemu_machine), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)


def random_inputs(codegen_summary: dict, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(count, codegen_summary["input_len"]), dtype=np.int8)


# --- the library stage -------------------------------------------------------------------------------------------

def test_library_sources_follow_provenance(tflm_root):
    reference = _tflm.library_sources(tflm_root, "reference")
    cmsis = _tflm.library_sources(tflm_root, "cmsis_nn")
    assert len(reference) == 156  # PROVENANCE.md: 156 files with reference kernels
    assert len(cmsis) == 156 + 113  # … and 156 + 113 C files with CMSIS-NN
    assert f"{_tflm.MICRO}/cortex_m_generic/debug_log.cc" in reference
    assert f"{_tflm.MICRO}/debug_log.cc" not in reference
    assert f"{_tflm.KERNELS_DIR}/conv.cc" in reference and f"{_tflm.CMSIS_KERNELS_DIR}/conv.cc" not in reference
    assert f"{_tflm.CMSIS_KERNELS_DIR}/conv.cc" in cmsis and f"{_tflm.KERNELS_DIR}/conv.cc" not in cmsis


def test_missing_source_is_a_user_error(monkeypatch):
    monkeypatch.delenv(_tflm.ENV_PATH, raising=False)
    with pytest.raises(UserError) as err:
        _tflm.require_source(variant(None))
    assert str(err.value) == (
        "engine tflm needs the TensorFlow Lite Micro source tree, and none is configured\n"
        "  hint: set `tflm: {path: DIR}` in project.yaml or the environment variable TINYPIPE_TFLM_PATH to a TFLM "
        "source tree in create_tflm_tree.py layout (tensorflow/, third_party/flatbuffers, …)")


def test_source_from_environment(monkeypatch, tflm_root):
    monkeypatch.setenv(_tflm.ENV_PATH, str(tflm_root))
    assert _tflm.require_source(variant(None)) == tflm_root.resolve()


def test_relative_source_path_starts_at_the_project(tflm_root, tmp_path):
    relative = os.path.relpath(tflm_root, tmp_path)
    v = variant(Path(relative), project_dir=tmp_path)
    assert _tflm.require_source(v) == tflm_root.resolve()
    assert tflm_lib.STAGE.config(v)["source"] == _tflm.source_identity(tflm_root)


def test_a_directory_that_is_not_tflm_is_named(tmp_path):
    with pytest.raises(UserError, match=f"^{tmp_path} is not a TFLM source tree \\(no tensorflow/lite/micro/"):
        _tflm.require_source(variant(tmp_path))


def test_stage_key_is_cheap_and_tracks_the_kernel_set(monkeypatch, tflm_root):
    monkeypatch.setenv(_tflm.ENV_PATH, str(tflm_root))
    with timed(TIMINGS, "tflm_lib config (source fingerprint)"):
        ref = tflm_lib.STAGE.config(variant(None, "reference"))
    cmsis = tflm_lib.STAGE.config(variant(None, "cmsis_nn"))
    assert ref["source"] == cmsis["source"] and ref["source"] is not None
    assert ref != cmsis and "-DCMSIS_NN" in cmsis["flags"]["c++"] and "-DCMSIS_NN" not in ref["flags"]["c++"]
    assert "-mfpu=fpv4-sp-d16" in ref["flags"]["c"]


def test_object_cache_recompiles_nothing_the_second_time(tflm_root, tflm_libs, tmp_path):
    first_dir, first = tflm_libs("reference")
    again = tflm_lib.build_library(variant(tflm_root, "reference"), tflm_root, tmp_path, ops=TEST_OPS)
    assert again["compiled"] == 0 and again["reused"] == first["sources"]
    # a deterministic archive: the same objects give the same bytes
    assert (tmp_path / "libtflm.a").read_bytes() == (first_dir / "libtflm.a").read_bytes()


@pytest.mark.slow  # copies the whole TFLM tree
def test_object_cache_recompiles_only_what_changed(tflm_root, tmp_path):
    tree = tmp_path / "tflm"
    shutil.copytree(tflm_root, tree)
    sources = [f"{_tflm.MICRO}/memory_helpers.cc", f"{_tflm.MICRO}/micro_utils.cc"]
    flags = _tflm.compile_flags(variant(tree, "reference"), "reference")

    def build():  # a fresh cache view per build, as each stage run has
        _, stats = objects.compile_sources(tree, sources, flags, cache=objects.ObjectCache(tree, tmp_path / "objects"))
        return stats.compiled, stats.reused

    assert build() == (2, 0)
    assert build() == (0, 2)
    with open(tree / sources[1], "a") as f:
        f.write("\n// edited\n")
    assert build() == (1, 1)
    with open(tree / f"{_tflm.MICRO}/micro_utils.h", "a") as f:  # only micro_utils.cc includes it
        f.write("\n// edited\n")
    assert build() == (1, 1)
    with open(tree / f"{_tflm.MICRO}/memory_helpers.h", "a") as f:  # both include it
        f.write("\n// edited\n")
    assert build() == (2, 0)
    assert build() == (0, 2)


def test_stage_run_compiles_through_the_cache(tflm_root, tflm_libs, tmp_path):
    """The stage entry point on the test models' ops: every object comes from the session's cache."""
    _, first = tflm_libs("cmsis_nn")
    ops_dir = tmp_path / "tflm_ops"
    ops_dir.mkdir()
    (ops_dir / "ops.json").write_text(json.dumps({"library": "model_ops", "ops": list(TEST_OPS)}))
    steps, logs = [], []
    ctx = StageContext(variant=variant(tflm_root, "cmsis_nn"), inputs={"tflm_ops": ops_dir}, out=tmp_path / "out",
                       project_dir=tmp_path, _log=logs.append,
                       _progress=lambda done, total, msg="": steps.append((done, total)))
    ctx.out.mkdir()
    summary = tflm_lib.run(ctx)
    assert (summary["compiled"], summary["reused"]) == (0, first["sources"])
    # progress starts at what the cache already holds: here everything, so the bar is full from the start
    assert steps[0] == steps[-1] == (first["sources"], first["sources"])
    assert logs == [f"libtflm.a (cmsis_nn; DEPTHWISE_CONV_2D, FULLY_CONNECTED, RESHAPE, SOFTMAX): "
                    f"{first['sources']} sources, 0 compiled, {first['sources']} from the object cache"]
    manifest = json.loads((ctx.out / "tflm.json").read_text())
    assert manifest["kernels"] == "cmsis_nn" and "-DCMSIS_NN" in manifest["flags"]["c"]
    assert manifest["library"] == "model_ops" and manifest["ops"] == list(TEST_OPS)


# --- the op selection: tflm_ops and the kernel files of a model_ops library ----------------------------------

def test_kernel_files_come_from_the_tree(tflm_root):
    files = _tflm.kernel_files_for_ops(tflm_root, "reference", ["DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
    # depthwise_conv.h includes conv.h: conv_common.cc implements it; TFLM's core (micro_context.cc) includes
    # decompress.h; kernel_util.h is everyone's
    assert files == ["conv_common", "decompress", "decompress_common", "depthwise_conv", "depthwise_conv_common",
                     "fully_connected", "fully_connected_common", "kernel_util"]
    # AVERAGE_POOL_2D and MAX_POOL_2D live in one file; CMSIS-NN's add.cc needs no add_common.cc
    assert "pooling" in _tflm.kernel_files_for_ops(tflm_root, "cmsis_nn", ["MAX_POOL_2D"])
    assert "add_common" not in _tflm.kernel_files_for_ops(tflm_root, "cmsis_nn", ["ADD"])
    assert "add_common" in _tflm.kernel_files_for_ops(tflm_root, "reference", ["ADD"])
    sources = _tflm.library_sources(tflm_root, "cmsis_nn", files)
    assert f"{_tflm.CMSIS_KERNELS_DIR}/depthwise_conv.cc" in sources and len(sources) == 40 + len(files) + 113
    with pytest.raises(UserError, match="^model.tflite uses STABLEHLO_COMPOSITE, which this TFLM cannot run"):
        _tflm.kernel_files_for_ops(tflm_root, "reference", ["STABLEHLO_COMPOSITE"])


def test_op_selection_depends_on_the_ops_only(shared_dir, tmp_path):
    """hello_world and ad01 are different models with the same single op: the same tflm_ops output, so the same
    shared tflm_lib key; `library: full` is one selection for every model."""
    outputs = {}
    for name in ("hello_world_int8", "ad01_int8"):
        for library in ("model_ops", "full"):
            quantize = tmp_path / f"{name}-quantize"
            quantize.mkdir(exist_ok=True)
            shutil.copyfile(shared_dir / "models" / f"{name}.tflite", quantize / "model.tflite")
            v = variant(None)
            v.config["tflm"]["library"] = library
            assert tflm_ops.STAGE.config(v) == {"library": library}
            out = tmp_path / f"{name}-{library}"
            out.mkdir()
            tflm_ops.run(StageContext(variant=v, inputs={"quantize": quantize}, out=out, project_dir=tmp_path))
            outputs[name, library] = sha256_tree(out)
    assert json.loads((tmp_path / "ad01_int8-model_ops" / "ops.json").read_text()) == {
        "library": "model_ops", "ops": ["FULLY_CONNECTED"]}
    assert outputs["hello_world_int8", "model_ops"] == outputs["ad01_int8", "model_ops"]
    assert outputs["hello_world_int8", "full"] == outputs["ad01_int8", "full"] != outputs["ad01_int8", "model_ops"]


# --- codegen ---------------------------------------------------------------------------------------------------

def test_codegen_key_is_cheap(tflm_root):
    v = variant(tflm_root, "cmsis_nn")
    assert codegen_tflm.STAGE.needs == ("quantize", "tflm_lib")
    assert codegen_tflm.STAGE.config(v) == {"arena_bytes": None, "arena_headroom": 16, "probe_machine": "mps2-an386",
                                            "triple": "thumbv7em-none-eabihf", "support": codegen_tflm.support_hash()}
    assert set(codegen_tflm.STAGE.tools(v)) == {"arm-none-eabi-g++", "bindgen", "qemu-system-arm"}


def test_arena_probe_runs_on_a_machine_with_room_for_it():
    """The probe keeps half the machine's RAM for the arena and 16 KiB for heap and stack: a micro:bit (16 KiB)
    cannot hold it, so its Cortex-M0 objects are measured on the Cortex-M3 machine, which runs ARMv6-M code; of
    the machines with the board's core, the one with the most RAM measures."""
    def probe_for(board: str) -> str | None:
        b = BOARDS[board]
        return codegen_tflm._probe_machine(SimpleNamespace(board=b, cpu=b.cpu, triple=b.triple))

    assert probe_for("microbit") == "mps2-an385"
    assert probe_for("mps3-an547") == "mps3-an547" and probe_for("mps2-an386") == "mps2-an386"
    assert probe_for("stm32f4-discovery") == "mps2-an386"  # no machine of its own: the same core's
    # a machine of its own with too little RAM to measure a large arena (half of 128 KiB: person_detect needs
    # 82 KB): the same core's with the most RAM
    assert probe_for("netduinoplus2") == "mps2-an386"
    # a core no machine emulates (measure_arena turns it into a user error with the fix)
    m85 = SimpleNamespace(board=BOARDS["pico"], cpu="cortex-m85", triple="thumbv8m.main-none-eabihf")
    assert codegen_tflm._probe_machine(m85) is None


def test_model_io_must_be_one_int8_or_float32_tensor_each():
    def model(dtype, outputs=(1,)):
        tensors = [SimpleNamespace(dtype="int8", nbytes=4), SimpleNamespace(dtype=dtype, nbytes=8)]
        return SimpleNamespace(main=SimpleNamespace(inputs=(0,), outputs=outputs, tensors=tensors))

    assert [t.nbytes for t in codegen_tflm.io_tensors(model("int8"))] == [4, 8]
    assert codegen_tflm.io_tensors(model("float32"))[1].dtype == "float32"
    with pytest.raises(UserError) as err:
        codegen_tflm.io_tensors(model("int16"))
    assert str(err.value) == ("model.tflite: the output tensor is int16; the firmware feeds and reads int8 or float32\n"
                              "  hint: set `quantization: {io: int8}` (the default) or `{io: float32}`")
    with pytest.raises(UserError, match="has 1 inputs and 2 outputs; engine tflm handles one of each"):
        codegen_tflm.io_tensors(model("int8", outputs=(1, 0)))


def test_codegen_output_is_reproducible(tflm_root, tflm_libs, shared_dir, tmp_path):
    """Same inputs, same bytes: the store's output hash (and the lock file) stay stable across rebuilds."""
    model = shared_dir / "models" / "hello_world_int8.tflite"
    lib_dir, _ = tflm_libs("reference")
    run_codegen(tflm_root, lib_dir, model, tmp_path / "a", "reference")
    run_codegen(tflm_root, lib_dir, model, tmp_path / "b", "reference")
    assert sha256_tree(tmp_path / "a") == sha256_tree(tmp_path / "b")
    assert sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file()) == [
        "codegen.json", "lib/libtflm_model.a", "link.json", "model.rs", "model.tflite", "shim/tflm_shim.cc",
        "shim/tflm_shim.h"]


def test_unsupported_op_is_a_user_error(tflm_root):
    methods = _tflm.resolver_methods(tflm_root)
    assert methods["FULLY_CONNECTED"] == "AddFullyConnected" and methods["CIRCULAR_BUFFER"] == "AddCircularBuffer"
    assert "SignalRfft" not in methods  # the signal library is not built
    with pytest.raises(UserError) as err:
        _tflm.check_supported(["FULLY_CONNECTED", "STABLEHLO_COMPOSITE"], methods)
    assert str(err.value) == (
        "model.tflite uses STABLEHLO_COMPOSITE, which this TFLM cannot run (its op resolver has no Add method "
        "for it)\n  hint: use engine native, or change the model to use ops TFLM supports")


@pytest.mark.parametrize("kernels", ["reference", "cmsis_nn"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_firmware_output_equals_host_oracle(model_name, kernels, tflm_root, tflm_libs, toolchain_entry, host_tflm,
                                            shared_dir, tmp_path):
    model = shared_dir / "models" / f"{model_name}.tflite"
    lib_dir, _ = tflm_libs(kernels)
    with timed(TIMINGS, f"codegen {model_name} {kernels}"):
        summary = run_codegen(tflm_root, lib_dir, model, tmp_path / "codegen", kernels)
    assert summary["arena_source"] == "measured"
    assert summary["arena_bytes"] >= summary["arena_min_bytes"] > summary["arena_used_bytes"] > 0
    inputs = random_inputs(summary, MODELS[model_name], seed=7)
    with timed(TIMINGS, f"harness build+run {model_name} {kernels}"):
        elf = build_harness(tmp_path / "codegen", inputs, toolchain_entry, tmp_path / "harness")
        result = run_qemu(elf)
    assert result.returncode == 0, result.stdout
    got = [bytes.fromhex(line[4:]) for line in result.stdout.splitlines() if line.startswith("out ")]
    oracle = host_tflm(model.read_bytes())
    assert got == [oracle.invoke(x).astype(np.int8).tobytes() for x in inputs]
    used = re.search(r"arena (\d+) of (\d+)", result.stdout)
    assert used and int(used.group(1)) == summary["arena_used_bytes"] and int(used.group(2)) == summary["arena_bytes"]


def test_too_small_arena_fails_loudly(tflm_root, tflm_libs, toolchain_entry, shared_dir, tmp_path):
    model = shared_dir / "models" / "hello_world_int8.tflite"
    lib_dir, _ = tflm_libs("reference")
    summary = run_codegen(tflm_root, lib_dir, model, tmp_path / "codegen", "reference", arena_bytes=256)
    assert (summary["arena_bytes"], summary["arena_source"]) == (256, "tflm.arena_bytes")
    elf = build_harness(tmp_path / "codegen", random_inputs(summary, 1, seed=1), toolchain_entry,
                        tmp_path / "harness")
    result = run_qemu(elf)
    assert result.returncode != 0
    assert ("TFLM init failed: AllocateTensors failed with a tensor arena of 256 bytes: too small "
            "(raise tflm.arena_bytes) or the model is not supported (TFLM: ") in result.stdout
    assert "Failed to" in result.stdout  # TFLM's own words about the allocation
