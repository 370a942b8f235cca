"""Native-engine models on the emulator, through the firmware machinery (toolchain, firmware, build, run stages).

Shared by `benchmarks/` and `tests/test_native.py`:
- `toolchain_entry(board)`: the toolchain stage's output (Rust sysroot + link flags) for the board's target,
  built once into the user-level cache (the test session's when TINYPIPE_CACHE points there);
- `build_firmware(...)`: the standard firmware (the template's main) for one model and its test windows;
- `build_harness(...)`: a firmware whose `main.rs` we write, holding several generated models as
  `model::<name>` modules with their inputs: for per-operator traces and per-layer timing;
- `trace_main` / `profile_main`: those `main.rs` texts, `parse_trace` / `parse_profile`: their output.

Under `-icount shift=0` one SysTick tick at the boards' 25 MHz is 40 instructions.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant
from tinypipe.core.paths import user_cache_dir
from tinypipe.engines.native.generate import generate
from tinypipe.stages import build, firmware, run, toolchain
from tinypipe.stages.base import StageContext
from tinypipe.toolchain.rust import find_rust


def variant(board: str, engine: str = "native") -> Variant:
    return Variant(name=f"{board}-{engine}", project=Project(name="bench", model={"path": "model.tflite"}),
                   board=BOARDS[board], engine=engine)


def context(v: Variant, out: Path, **inputs: Path) -> StageContext:
    out.mkdir(parents=True, exist_ok=False)
    return StageContext(variant=v, inputs=inputs, out=out, project_dir=out.parent, _log=lambda m: None)


def instructions_per_tick(board: str) -> float:
    return 1e9 / (BOARDS[board].systick_hz * 2 ** run.ICOUNT_SHIFT)


def toolchain_entry(board: str) -> Path:
    """The toolchain stage's output for the board's (triple, cpu), cached per rustc release."""
    v = variant(board)
    release = find_rust(v.triple).release
    out = user_cache_dir() / "toolchain-test" / f"{v.triple}-{v.cpu}-{release}"
    if not (out / "toolchain.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        toolchain.run(context(v, out))
    return out


def oracle_outputs(model_bytes: bytes, inputs: np.ndarray, tensors: list[int] | None = None) -> list[list[np.ndarray]]:
    """Per input: the listed tensors (default: the model output) after a host TFLM run."""
    from tflite_micro.python.tflite_micro import runtime

    config = runtime.InterpreterConfig.kPreserveAllTensors if tensors else runtime.InterpreterConfig.kAllocationRecording
    it = runtime.Interpreter.from_bytes(model_bytes, intrepreter_config=config)
    out = []
    for x in inputs:
        it.set_input(x, 0)
        it.invoke()
        if tensors:
            out.append([np.asarray(it.GetTensor(t, 0)["tensor_data"]).reshape(-1).copy() for t in tensors])
        else:
            out.append([np.asarray(it.get_output(0)).reshape(-1).copy()])
    return out


def write_reference(root: Path, inputs: np.ndarray, outputs: np.ndarray) -> Path:
    """The reference stage's files for `inputs` and `outputs` (int8 or float32 arrays [n, ...])."""
    root.mkdir(parents=True)
    np.ascontiguousarray(inputs).tofile(root / "test_inputs.bin")
    np.ascontiguousarray(outputs).tofile(root / "test_outputs.bin")
    (root / "reference.json").write_text(json.dumps(
        {"n": len(inputs), "input_len": int(inputs[0].size), "output_len": int(outputs[0].size),
         "input_dtype": inputs.dtype.name, "output_dtype": outputs.dtype.name}))
    return root


def _build(v: Variant, work: Path, codegen_dir: Path, reference: Path, main_rs: str | None) -> Path:
    fw = work / "firmware"
    firmware.run(context(v, fw, codegen=codegen_dir, reference=reference))
    if main_rs is not None:
        (fw / "project" / "src" / "main.rs").write_text(main_rs)
    out = work / "build"
    build.run(context(v, out, firmware=fw, toolchain=toolchain_entry(v.board.name)))
    return out


@dataclasses.dataclass(frozen=True)
class Built:
    board: str
    build_dir: Path
    reference: Path
    info: dict  # codegen.json of the model

    @property
    def elf(self) -> Path:
        return self.build_dir / "firmware.elf"

    @property
    def sizes(self) -> dict:
        return json.loads((self.build_dir / "size.json").read_text())


def build_firmware(model_bytes: bytes, name: str, inputs: np.ndarray, board: str, work: Path,
                   main_rs: str | None = None) -> Built:
    """The template firmware for one native model; `reference/` holds the inputs and the oracle's outputs."""
    v = variant(board)
    codegen_dir = work / "codegen"
    codegen_dir.mkdir(parents=True)
    generated = generate(model_bytes, f"{name}.tflite")
    (codegen_dir / "model.rs").write_text(generated.model_rs)
    expected = np.stack([o[0] for o in oracle_outputs(model_bytes, inputs)])
    reference = write_reference(work / "reference", inputs, expected)
    return Built(board, _build(v, work, codegen_dir, reference, main_rs), reference, generated.info)


def run_firmware(built: Built, work: Path) -> dict:
    """The run stage on the built firmware: bit-exactness against the oracle and instructions per inference."""
    return run.run(context(variant(built.board), work, build=built.build_dir, reference=built.reference))


# --- harness firmware: several models, main.rs of our own ---------------------------------------------------

def build_harness(models: dict[str, tuple[bytes, np.ndarray]], board: str, work: Path, main_rs: str) -> Path:
    """Firmware holding `model::<name>` for each (model bytes, inputs [n, ...] of the model's input dtype);
    `main_rs` drives them.

    Each module exposes the generated API plus `inputs() -> &[Input]` (its windows, back to back). Returns
    the build directory (firmware.elf, size.json).
    """
    v = variant(board)
    codegen_dir = work / "codegen"
    (codegen_dir / "model").mkdir(parents=True)
    mods = []
    for name, (model_bytes, inputs) in models.items():
        generated = generate(model_bytes, f"{name}.tflite")
        (codegen_dir / "model" / f"{name}.rs").write_text(generated.model_rs + _INPUTS_RS.replace("@NAME@", name))
        np.ascontiguousarray(inputs).tofile(codegen_dir / "model" / f"{name}.bin")
        mods.append(f"pub mod {name};\n")
    (codegen_dir / "model.rs").write_text("".join(mods))
    dummy = np.zeros((1, 1), dtype=np.int8)
    reference = write_reference(work / "reference", dummy, dummy)
    return _build(v, work, codegen_dir, reference, main_rs)


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

_MAIN_HEAD = """\
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


def trace_main(names: list[str]) -> str:
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
    return (_MAIN_HEAD + arenas + "\n#[no_mangle]\nextern \"C\" fn app_main() -> ! {\n    systick::start();"
            + "".join(body) + '\n    let mut line = Line::new();\n    line.push_str("done");\n    line.finish();\n'
            "    semihosting::exit(semihosting::EXIT_SUCCESS)\n}\n")


def profile_main(name: str) -> str:
    """main.rs printing `layer <op index> <ticks>` for every computing operator, summed over the windows
    (`model::profile`), then `done`."""
    return _MAIN_HEAD + f"""
const MAX_OPS: usize = 256;

#[no_mangle]
extern "C" fn app_main() -> ! {{
    use model::{name} as md;
    systick::start();
    let mut output = [0 as md::Output; md::OUTPUT_LEN];
    let mut ticks = [0u64; MAX_OPS];
    for input in md::inputs().chunks_exact(md::INPUT_LEN) {{
        md::profile(input, &mut output, systick::now, &mut |op, _, t| {{
            if op < MAX_OPS {{
                ticks[op] += t;
            }}
        }});
    }}
    for (op, t) in ticks.iter().enumerate() {{
        if *t > 0 {{
            let mut line = Line::new();
            let _ = write!(line, "layer {{}} {{}}", op, t);
            line.finish();
        }}
    }}
    let mut line = Line::new();
    line.push_str("done");
    line.finish();
    semihosting::exit(semihosting::EXIT_SUCCESS)
}}
"""


def run_harness(build_dir: Path, board: str, timeout_s: float | None = None) -> str:
    from tinypipe.runners import qemu

    result = qemu.run_elf(build_dir / "firmware.elf", BOARDS[board].qemu_machine, timeout_s)
    if result.returncode != 0 or "\ndone" not in result.output:
        tail = "\n".join(result.output.strip().splitlines()[-8:])
        raise RuntimeError(f"harness firmware failed on {board} (exit {result.returncode}):\n{tail}")
    return result.output


def parse_trace(text: str) -> tuple[dict[tuple[int, int, int], bytes], dict[tuple[int, int], dict[int, bytes]],
                                     dict[tuple[int, int], int]]:
    """(outputs[(m, i, 0)], ops[(m, i)][op index], ticks[(m, i)]) from `trace_main`'s output."""
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


def parse_profile(text: str) -> dict[int, int]:
    """op index -> ticks summed over the windows."""
    return {int(w[1]): int(w[2]) for w in (line.split() for line in text.splitlines())
            if len(w) == 3 and w[0] == "layer"}
