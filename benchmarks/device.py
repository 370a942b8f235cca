"""Native-engine models on the emulator, through the firmware machinery (toolchain, firmware, build, run stages).

Used by `benchmarks/`:
- `toolchain_entry(board)`: the toolchain stage's output (Rust sysroot + link flags) for the board's target,
  built once into the user-level cache (the test session's when TINYPIPE_CACHE points there);
- `build_firmware(...)`: the standard firmware (the template's main) for one model and its test windows;
- `build_harness(...)`: a firmware whose `main.rs` we write, holding several generated models as
  `model::<name>` modules with their inputs, for per-layer timing (`profile_main` / `parse_profile`); the
  harness itself is `tinypipe/devtools/harness.py`, shared with the tests.

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
from tinypipe.devtools import harness
from tinypipe.engines.native.codegen import widen_for_mode
from tinypipe.engines.native.generate import generate
from tinypipe.stages import build, firmware, run, toolchain
from tinypipe.toolchain.rust import find_rust


def variant(board: str, engine: str = "native", optimize: str = "balanced", profile_layers: bool = False) -> Variant:
    project = Project(name="bench", model={"path": "model.tflite"}, native={"optimize": optimize},
                      target={"board": board, "profile_layers": profile_layers})
    return Variant(name=f"{board}-{engine}", project=project, board=BOARDS[board], engine=engine)


context = harness.context


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


write_reference = harness.write_reference


def _build(v: Variant, work: Path, codegen_dir: Path, reference: Path, main_rs: str | None) -> Path:
    fw = work / "firmware"
    firmware.run(context(v, fw, codegen=codegen_dir, reference=reference))
    if main_rs is not None:
        (fw / "project" / "src" / "main.rs").write_text(main_rs)
    return harness.build_stage(v, work / "build", fw, toolchain_entry(v.board.name))


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
                   main_rs: str | None = None, optimize: str = "balanced", profile_layers: bool = False) -> Built:
    """The template firmware for one native model in a `native.optimize` mode (with per-operator timing when
    `profile_layers`); `reference/` holds the inputs and the oracle's outputs."""
    v = variant(board, optimize=optimize, profile_layers=profile_layers)
    codegen_dir = work / "codegen"
    codegen_dir.mkdir(parents=True)
    generated = generate(model_bytes, f"{name}.tflite", optimize,
                         widen_weights=widen_for_mode(optimize, BOARDS[board], len(model_bytes)))
    (codegen_dir / "model.rs").write_text(generated.model_rs)
    (codegen_dir / "codegen.json").write_text(json.dumps(generated.info))  # the mode's opt_level, the footprint
    expected = np.stack([o[0] for o in oracle_outputs(model_bytes, inputs)])
    reference = write_reference(work / "reference", inputs, expected)
    return Built(board, _build(v, work, codegen_dir, reference, main_rs), reference, generated.info)


def run_firmware(built: Built, work: Path) -> dict:
    """The run stage on the built firmware: bit-exactness against the oracle, instructions per inference and,
    when the firmware profiles, `layers`."""
    return run.run(context(variant(built.board), work, build=built.build_dir, reference=built.reference))


# --- harness firmware: several models, main.rs of our own (tinypipe/devtools/harness.py) --------------------

def build_harness(models: dict[str, tuple[bytes, np.ndarray]], board: str, work: Path, main_rs: str) -> Path:
    """Firmware holding `model::<name>` for each (model bytes, inputs) driven by `main_rs`; its build directory."""
    return harness.build_harness(models, variant(board), toolchain_entry(board), work, main_rs)


def run_harness(build_dir: Path, board: str, timeout_s: float | None = None) -> str:
    return harness.run_harness(build_dir, BOARDS[board].qemu_machine, timeout_s)


profile_main, parse_profile = harness.profile_main, harness.parse_profile
