"""Helpers the test modules share (fixtures live in conftest.py): paths, the CLI, stage contexts and inputs for
the native engine's firmware, the host TFLM oracle's per-tensor trace, and a trace firmware for the emulator.

Test modules import from here, never from each other nor from `benchmarks/` (but for the pure table formatting of
`benchmarks/engine_tables.py`, tested on its own).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Hal, Project, Variant
from tinypipe.devtools import harness
from tinypipe.stages import build, firmware
from tinypipe.stages._ml import MicroModel

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPIPE_SHARED", REPO.parent / "shared"))
GESTURE = REPO / "pipelines" / "gesture"


# --- the CLI ----------------------------------------------------------------------------------------------------

def fresh_example(example: Path, parent: Path, name: str | None = None, extra: str = "") -> Path:
    """A new project directory `parent/name` (default: the example's name) holding the example's project.yaml,
    with `extra` appended: a fresh copy, as a user starts one, with no store and no lock."""
    project = Path(parent) / (name or Path(example).name)
    project.mkdir()
    (project / "project.yaml").write_text((Path(example) / "project.yaml").read_text() + extra)
    return project


def tinypipe_cmd() -> list[str]:
    return [sys.executable, "-m", "tinypipe"]


def tinypipe(*args: str, cwd: Path | None = None, env: dict | None = None,
             timeout: float = 1800) -> subprocess.CompletedProcess:
    """`tinypipe ARGS` in a subprocess (the environment plus `env`), output captured as text."""
    return subprocess.run(tinypipe_cmd() + list(args), capture_output=True, text=True, cwd=cwd or REPO,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def run_json(project: Path, *extra: str, env: dict | None = None) -> dict:
    """`tinypipe run PROJECT --json EXTRA`, which must succeed; its JSON document."""
    proc = tinypipe("run", str(project), "--json", *extra, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout)


def by_stage(doc: dict) -> dict[str, str]:
    """stage -> status of a one-variant `--json` document."""
    return {s["stage"]: s["status"] for s in doc["stages"]}


def run_data(variant: Variant, out: Path) -> tuple[dict, dict[str, np.ndarray], list[str]]:
    """The data stage run directly into `out` (created): its summary, the arrays of data.npz and its log lines."""
    from tinypipe.stages import data
    from tinypipe.stages.base import StageContext

    out.mkdir(parents=True)
    logs: list[str] = []
    ctx = StageContext(variant=variant, inputs={}, out=out, project_dir=variant.project_dir, _log=logs.append)
    summary = data.run(ctx)
    with np.load(out / "data.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return summary, arrays, logs


def store_entry(project: Path, variant: str, stage: str) -> Path:
    """The project-store entry the lock file names for (variant, stage)."""
    lock = json.loads((project / "tinypipe.lock").read_text())
    return project / ".tinypipe" / "store" / lock["variants"][variant][stage]["key"]


# --- timings: reported, never asserted ----------------------------------------------------------------------------

@contextmanager
def timed(timings: dict[str, float], name: str):
    """Record the block's wall-clock seconds in `timings[name]` (for print_timings)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - started


def timings_report(timings: dict[str, float], label: str):
    """A module-scoped autouse fixture printing `timings` after the module's tests (assign it in the module)."""
    import pytest

    @pytest.fixture(scope="module", autouse=True)
    def report(request):
        yield
        print_timings(request, timings, label)

    return report


def print_timings(request, timings: dict[str, float], label: str) -> None:
    """Print timings a module measured, after its tests (tests report timings; they never assert them)."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None or not timings:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for name, seconds in timings.items():
            reporter.write_line(f"{label}: {name:<52} {seconds:6.1f} s")


# --- the native engine's firmware stages, called directly ---------------------------------------------------------

def native_variant(board: str = "mps2-an386", hal: Hal | list[Hal] | None = None, **board_changes) -> Variant:
    """A native-engine variant for `board` (fields of the board replaced by `board_changes`)."""
    b = BOARDS[board]
    if board_changes:
        import dataclasses

        b = dataclasses.replace(b, **board_changes)
    return Variant(name=f"{b.name}-native", project=Project(name="t", model={"path": "x.tflite"}, hal=hal),
                   board=b, engine="native")


stage_context = harness.context  # a StageContext writing into a new directory
parse_trace = harness.parse_trace


write_reference = harness.write_reference


def standin_model_rs(input_len: int, output_len: int, body: str) -> str:
    """A hand-written `model.rs` for firmware tests: the engines' contract for int8 I/O (see
    firmware-template/README.md) with `INPUT_LEN`/`OUTPUT_LEN`, then `body` (which defines `invoke`)."""
    return ("pub type Input = i8;\npub type Output = i8;\n"
            "pub fn input_from_real(x: f32) -> Input {\n    x as i8\n}\n"
            "pub fn init() -> Result<(), &'static str> {\n    Ok(())\n}\n"
            f"pub const INPUT_LEN: usize = {input_len};\npub const OUTPUT_LEN: usize = {output_len};\n" + body)


def build_firmware(variant: Variant, codegen: Path, reference: Path, toolchain_entry: Path, work: Path) -> Path:
    """The firmware and build stages on a codegen output; returns the build directory (firmware.elf, size.json)."""
    fw = work / "firmware"
    firmware.run(stage_context(variant, fw, codegen=codegen, reference=reference))
    return harness.build_stage(variant, work / "build", fw, toolchain_entry)


def rustc_for(toolchain_entry: Path) -> tuple[str, list[str]]:
    """The rustc of a toolchain entry and the flags giving it the entry's sysroot (none if rustc has the target)."""
    meta = json.loads((toolchain_entry / "toolchain.json").read_text())
    sysroot = [] if meta["sysroot"] is None else ["--sysroot", str(toolchain_entry / meta["sysroot"])]
    return meta["rustc"], sysroot


# --- the host TFLM oracle, every tensor -------------------------------------------------------------------------

class TracingMicroModel(MicroModel):
    """MicroModel whose interpreter keeps every tensor (kPreserveAllTensors), for per-operator comparisons."""

    def __init__(self, model_bytes: bytes):
        from tflite_micro.python.tflite_micro import runtime

        super().__init__(model_bytes)
        self._interpreter = runtime.Interpreter.from_bytes(
            model_bytes, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)

    def trace(self, x: np.ndarray, tensors: list[int]) -> list[np.ndarray]:
        """Run one example; the listed tensors afterwards, flat copies."""
        self.invoke(x)
        return [np.asarray(self._interpreter.GetTensor(t, 0)["tensor_data"]).reshape(-1).copy() for t in tensors]


# --- a trace firmware: several native models, every operator's output printed ---------------------------------

def build_trace_firmware(cases: dict[str, tuple[bytes, np.ndarray]], variant: Variant, toolchain_entry: Path,
                         work: Path, optimize: dict[str, str] | None = None) -> Path:
    """The template firmware holding `model::<name>` for each (model bytes, inputs [n, ...] in the model's input
    dtype), with a `main.rs` that prints every operator's output (see `harness.parse_trace`); returns the ELF."""
    return harness.build_harness(cases, variant, toolchain_entry, work, harness.trace_main(list(cases)),
                                 optimize) / "firmware.elf"


# --- firmware a user wrote: an exported crate or C library inside it (tests/user_firmware/) ------------------------

USER_FIRMWARE = REPO / "tests" / "user_firmware"


def build_user_rust_firmware(crate: dict, inputs: bytes, toolchain_entry: Path, work: Path, raw: bool = False
                             ) -> Path:
    """tests/user_firmware/rust built in `work` against the exported crate (`crate`: one of `export --json`'s
    crates), replaying `inputs` (windows of the model's input elements, little-endian; with `raw`, raw int16 sensor
    windows through the crate's `FrontEnd`); its ELF. The build must print no warning: the exported crate builds
    clean in someone else's build."""
    firmware = work / "rust-firmware"
    shutil.copytree(USER_FIRMWARE / "rust", firmware)
    shutil.copyfile(USER_FIRMWARE / "link.x", firmware / "link.x")
    (firmware / "inputs.bin").write_bytes(inputs)
    (firmware / "Cargo.toml").write_text(
        '[package]\nname = "user-firmware"\nversion = "0.1.0"\nedition = "2021"\n\n'
        f'[dependencies]\nmodel = {{ package = "{crate["package"]}", path = "{crate["path"]}" }}\n\n'
        '[features]\nraw = []\n\n'
        '[profile.release]\nopt-level = 3\nlto = true\npanic = "abort"\n\n[profile.dev]\npanic = "abort"\n\n'
        '[workspace]\n')
    toolchain = json.loads((toolchain_entry / "toolchain.json").read_text())
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARGO", "RUST"))}
    env.update(PATH=f"/usr/bin{os.pathsep}{env.get('PATH', '')}", RUSTC=toolchain["rustc"],
               CARGO_HOME=str(work / "cargo-home"), CARGO_TARGET_DIR=str(work / "target"),
               CARGO_ENCODED_RUSTFLAGS="\x1f".join(build.build_rustflags(toolchain, toolchain_entry, firmware)))
    result = subprocess.run([toolchain["cargo"], "build", "--release", "--offline", "--target", toolchain["triple"],
                             *(["--features", "raw"] if raw else [])],
                            cwd=firmware, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "warning" not in result.stderr, result.stderr
    return work / "target" / toolchain["triple"] / "release" / "user-firmware"


def build_user_c_program(crate: dict, inputs: bytes, work: Path) -> Path:
    """tests/user_firmware/c compiled in `work` with the gcc flags the export names and linked against its static
    library, replaying `inputs`; its ELF."""
    program = work / "c-program"
    shutil.copytree(USER_FIRMWARE / "c", program)
    (program / "inputs.bin").write_bytes(inputs)
    header = Path(crate["files"]["c_header"])
    elf = program / "program.elf"
    command = ["arm-none-eabi-gcc", *crate["gcc_flags"], "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror",
               "-ffreestanding", "-nostartfiles", f"-I{header.parent}", f'-DMODEL_HEADER="{header.name}"',
               f"-T{USER_FIRMWARE / 'link.x'}", "-Wl,--gc-sections", "startup.c", "main.c", "inputs.S",
               crate["files"]["c_library"], "-o", str(elf)]
    result = subprocess.run(command, cwd=program, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return elf


def run_user_firmware(elf: Path, machine: str) -> tuple[str, list[bytes]]:
    """A user firmware's output on QEMU `machine`, which must end in `done`, and its `out <i> <hex>` lines' bytes."""
    import re

    from tinypipe.runners import qemu

    result = qemu.run_elf(elf, machine, timeout_s=300, icount=False)
    assert result.returncode == 0 and "done" in result.output, result.output[-3000:]
    return result.output, [bytes.fromhex(h) for h in re.findall(r"^out \d+ ([0-9a-f]*)$", result.output, re.M)]


# --- host vectors for the kernels crate ----------------------------------------------------------------------------

DEBIAN_CARGO = Path("/usr/bin/cargo")  # Debian's: rustup's, also on PATH here, is another toolchain


def rust_array(values, kind: str) -> str:
    """A Rust slice literal of integers, each with its type suffix (`&[1i16, -2i16]`)."""
    return f"&[{', '.join(f'{int(v)}{kind}' for v in np.asarray(values).ravel())}]"


def run_kernels_vector_test(tmp_path: Path, name: str, source: str) -> str:
    """`source` as the integration test `tests/<name>.rs` of a copy of the `tinyml-kernels` crate, run on the host
    with Debian's cargo (a debug build: overflow checks on); asserts it passed and returns its stdout."""
    crate = tmp_path / "kernels"
    shutil.copytree(REPO / "firmware-template" / "kernels", crate, ignore=shutil.ignore_patterns("target"))
    (crate / "tests").mkdir()
    (crate / "tests" / f"{name}.rs").write_text(source)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARGO", "RUST"))}
    env.update(PATH=f"/usr/bin{os.pathsep}{env.get('PATH', '')}", CARGO_HOME=str(tmp_path / "cargo-home"),
               CARGO_TARGET_DIR=str(tmp_path / "target"))
    result = subprocess.run([str(DEBIAN_CARGO), "test", "--offline", "--test", name, "--", "--nocapture"],
                            cwd=crate, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "test result: ok. 1 passed" in result.stdout, result.stdout
    return result.stdout
