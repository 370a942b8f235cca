"""Harness firmware for tests and benchmarks: several native models in one template firmware, with a `main.rs`
of our own that prints every operator's output (`trace_main`) or per-operator time (`profile_main`).

Not part of a pipeline: `tests/` and `benchmarks/` share it, so it sits above the stages and engines it drives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tinypipe.engines.native.generate import generate, widens_weights
from tinypipe.stages import build, firmware
from tinypipe.stages.base import StageContext

if TYPE_CHECKING:
    from tinypipe.config.variant import Variant


def context(variant: "Variant", out: Path, **inputs: Path) -> StageContext:
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



def build_harness(models: dict[str, tuple[bytes, np.ndarray]], variant: "Variant", toolchain_entry: Path,
                  work: Path, main_rs: str, optimize: dict[str, str] | None = None) -> Path:
    """The template firmware holding `model::<name>` for each (model bytes, inputs [n, ...] in the model's input
    dtype), driven by `main_rs`; returns the build directory (firmware.elf, size.json). `optimize`: name -> the
    code generator's mode for that model (default "balanced").

    Each module exposes the generated API plus `inputs() -> &[Input]` (its windows, back to back)."""
    codegen_dir = work / "codegen"
    (codegen_dir / "model").mkdir(parents=True)
    board = variant.board
    for name, (model_bytes, inputs) in models.items():
        # as the codegen stage generates for this board
        widen = widens_weights(board.features, board.flash.size, len(model_bytes))
        generated = generate(model_bytes, f"{name}.tflite", (optimize or {}).get(name, "balanced"), widen_weights=widen)
        (codegen_dir / "model" / f"{name}.rs").write_text(generated.model_rs + INPUTS_RS.replace("@NAME@", name))
        np.ascontiguousarray(inputs).tofile(codegen_dir / "model" / f"{name}.bin")
    (codegen_dir / "model.rs").write_text("".join(f"pub mod {name};\n" for name in models))
    dummy = np.zeros((1, 1), dtype=np.int8)
    reference = write_reference(work / "reference", dummy, dummy)
    fw = work / "firmware"
    firmware.run(context(variant, fw, codegen=codegen_dir, reference=reference))
    (fw / "project" / "src" / "main.rs").write_text(main_rs)
    out = work / "build"
    build.run(context(variant, out, firmware=fw, toolchain=toolchain_entry))
    return out


INPUTS_RS = """
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static INPUTS: &Aligned<[u8]> = &Aligned(*include_bytes!("@NAME@.bin"));

/// The test windows, back to back.
pub fn inputs() -> &'static [Input] {
    // Safety: aligned for `Input` (i8 or f32), any bit pattern is a valid value, whole elements only.
    unsafe { core::slice::from_raw_parts(INPUTS.0.as_ptr() as *const Input, INPUTS.0.len() / size_of::<Input>()) }
}
"""

MAIN_HEAD = """\
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
    return (MAIN_HEAD + arenas + "\n#[no_mangle]\nextern \"C\" fn app_main() -> ! {\n    systick::start();"
            + "".join(body) + '\n    let mut line = Line::new();\n    line.push_str("done");\n    line.finish();\n'
            "    semihosting::exit(semihosting::EXIT_SUCCESS)\n}\n")


def profile_main(name: str) -> str:
    """main.rs printing `layer <op index> <ticks>` for every computing operator, summed over the windows
    (`model::profile`), then `done`."""
    return MAIN_HEAD + f"""
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


def run_harness(build_dir: Path, machine: str, timeout_s: float | None = None) -> str:
    """Run the harness ELF on QEMU `machine`; its output, which must end in `done`."""
    from tinypipe.runners import qemu

    result = qemu.run_elf(build_dir / "firmware.elf", machine, timeout_s)
    if result.returncode != 0 or "\ndone" not in result.output:
        tail = "\n".join(result.output.strip().splitlines()[-8:])
        raise RuntimeError(f"harness firmware failed on {machine} (exit {result.returncode}):\n{tail}")
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
