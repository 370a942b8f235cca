"""Helpers the test modules share (fixtures live in conftest.py): paths, the CLI, stage contexts and inputs for
the native engine's firmware, the host TFLM oracle's per-tensor trace, and a trace firmware for the emulator.

Test modules import from here, never from each other nor from `benchmarks/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Hal, Project, Variant
from tinypipe.engines.native.generate import generate
from tinypipe.stages import build, firmware
from tinypipe.stages._ml import MicroModel
from tinypipe.stages.base import StageContext

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYPIPE_SHARED", REPO.parent / "shared"))
GESTURE = REPO / "pipelines" / "gesture"


# --- the CLI ----------------------------------------------------------------------------------------------------

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


def stage_context(variant: Variant, out: Path, **inputs: Path) -> StageContext:
    """A StageContext writing into `out` (created, must not exist), as the engine hands one to a stage."""
    out.mkdir(parents=True, exist_ok=False)
    return StageContext(variant=variant, inputs=inputs, out=out, project_dir=out.parent, _log=lambda m: None)


def write_reference(root: Path, inputs: np.ndarray, outputs: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """The reference stage's files for `inputs` and `outputs` (int8 or float32 arrays [n, ...]) and labels."""
    root.mkdir(parents=True)
    np.ascontiguousarray(inputs).tofile(root / "test_inputs.bin")
    np.ascontiguousarray(outputs).tofile(root / "test_outputs.bin")
    if labels is not None:
        labels.astype(np.uint8).tofile(root / "labels.bin")
    (root / "reference.json").write_text(json.dumps(
        {"n": len(inputs), "input_len": int(inputs[0].size), "output_len": int(outputs[0].size),
         "input_dtype": inputs.dtype.name, "output_dtype": outputs.dtype.name}))
    return root


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
    out = work / "build"
    build.run(stage_context(variant, out, firmware=fw, toolchain=toolchain_entry))
    return out


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

_INPUTS_RS = """
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static INPUTS: &Aligned<[u8]> = &Aligned(*include_bytes!("@NAME@.bin"));

/// The test windows, back to back.
pub fn inputs() -> &'static [Input] {
    // Safety: aligned for `Input` (i8 or f32), any bit pattern is a valid value, whole elements only.
    unsafe { core::slice::from_raw_parts(INPUTS.0.as_ptr() as *const Input, INPUTS.0.len() / size_of::<Input>()) }
}
"""

_TRACE_MAIN_HEAD = """\
#![no_std]
#![no_main]

mod model;
mod rt;
mod semihosting;
mod stack;
mod systick;

use core::fmt::Write;
use core::panic::PanicInfo;

use semihosting::Line;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let mut line = Line::new();
    let _ = write!(line, "panic: {}", info);
    line.finish();
    semihosting::exit(semihosting::EXIT_RUNTIME_ERROR)
}

/// `values` (i8, f32: plain data) as their bytes, little-endian on these targets.
fn bytes_of<T: Copy>(values: &[T]) -> &[u8] {
    // Safety: plain data seen as bytes, for printing.
    unsafe { core::slice::from_raw_parts(values.as_ptr() as *const u8, size_of_val(values)) }
}

fn hex_line<T: Copy>(tag: &str, idx: [usize; 3], values: &[T]) {
    let mut line = Line::new();
    let _ = write!(line, "{} {} {} {} ", tag, idx[0], idx[1], idx[2]);
    for &b in bytes_of(values) {
        line.push_hex_u8(b);
    }
    line.finish();
}
"""


def _trace_main(names: list[str]) -> str:
    """main.rs printing, per model m (by position) and input i: `op m i <op index> <hex>` after every computing
    operator, `out m i 0 <hex>` for the model output and `ticks m i <n>` for a plain `invoke`, then `done`."""
    body = []
    for m, name in enumerate(names):
        body.append(f"""
    {{
        use model::{name} as md;
        let mut output = [0 as md::Output; md::OUTPUT_LEN];
        for (i, input) in md::inputs().chunks_exact(md::INPUT_LEN).enumerate() {{
            let begin = systick::now();
            md::invoke(input, &mut output);
            let ticks = systick::now() - begin;
            let mut line = Line::new();
            let _ = write!(line, "ticks {m} {{}} {{}}", i, ticks);
            line.finish();
            let arena = unsafe {{ &mut *core::ptr::addr_of_mut!(ARENA_{m}) }};
            md::invoke_with_hook(arena, input, &mut output, &mut |op, y| hex_line("op", [{m}, i, op], y));
            hex_line("out", [{m}, i, 0], &output);
        }}
    }}""")
    arenas = "".join(f"static mut ARENA_{m}: [i8; model::{name}::ARENA_BYTES] = [0; model::{name}::ARENA_BYTES];\n"
                     for m, name in enumerate(names))
    return (_TRACE_MAIN_HEAD + arenas + "\n#[no_mangle]\nextern \"C\" fn app_main() -> ! {\n    systick::start();"
            + "".join(body) + '\n    let mut line = Line::new();\n    line.push_str("done");\n    line.finish();\n'
            "    semihosting::exit(semihosting::EXIT_SUCCESS)\n}\n")


def build_trace_firmware(cases: dict[str, tuple[bytes, np.ndarray]], variant: Variant, toolchain_entry: Path,
                         work: Path) -> Path:
    """The template firmware holding `model::<name>` for each (model bytes, inputs [n, ...] in the model's input
    dtype), with a `main.rs` that prints every operator's output (see `parse_trace`); returns the ELF."""
    codegen_dir = work / "codegen"
    (codegen_dir / "model").mkdir(parents=True)
    for name, (model_bytes, inputs) in cases.items():
        generated = generate(model_bytes, f"{name}.tflite")
        (codegen_dir / "model" / f"{name}.rs").write_text(generated.model_rs + _INPUTS_RS.replace("@NAME@", name))
        np.ascontiguousarray(inputs).tofile(codegen_dir / "model" / f"{name}.bin")
    (codegen_dir / "model.rs").write_text("".join(f"pub mod {name};\n" for name in cases))
    dummy = np.zeros((1, 1), dtype=np.int8)
    reference = write_reference(work / "reference", dummy, dummy)
    fw = work / "firmware"
    firmware.run(stage_context(variant, fw, codegen=codegen_dir, reference=reference))
    (fw / "project" / "src" / "main.rs").write_text(_trace_main(list(cases)))
    build.run(stage_context(variant, work / "build", firmware=fw, toolchain=toolchain_entry))
    return work / "build" / "firmware.elf"


def parse_trace(text: str) -> tuple[dict[tuple[int, int, int], bytes], dict[tuple[int, int], dict[int, bytes]],
                                     dict[tuple[int, int], int]]:
    """(outputs[(m, i, 0)], ops[(m, i)][op index], ticks[(m, i)]) from the trace firmware's output."""
    outputs: dict = {}
    ops: dict = {}
    ticks: dict = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) >= 4 and w[0] in ("op", "out"):
            key = (int(w[1]), int(w[2]))
            data = bytes.fromhex(w[4] if len(w) > 4 else "")
            if w[0] == "op":
                ops.setdefault(key, {})[int(w[3])] = data
            else:
                outputs[(*key, 0)] = data
        elif len(w) == 4 and w[0] == "ticks":
            ticks[(int(w[1]), int(w[2]))] = int(w[3])
    return outputs, ops, ticks
