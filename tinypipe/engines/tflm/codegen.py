"""Stage `codegen` for engine tflm: the model wrapped for the firmware through TFLM's interpreter and a C shim.

From the quantized `.tflite` and the variant's `libtflm.a` it writes (the firmware contract shared with the
native engine: `model.rs` exposes the element types `Input` and `Output` (`i8`, or `f32` for a float32 tensor),
`INPUT_LEN`, `OUTPUT_LEN`, `invoke(&[Input], &mut [Output])` and `input_from_real(f32) -> Input`):

- `model.rs`: bindgen's declarations of the shim (inlined, `no_std`), the model embedded 16-byte aligned with
  `include_bytes!("model.tflite")`, a 16-byte-aligned static tensor arena, and `invoke`. A failure inside TFLM
  (arena too small, bad model) panics with TFLM's own message, so the firmware's panic handler reports it and
  exits non-zero instead of hanging.
- `model.tflite`; `shim/` (the generated C++ shim and its header, for inspection);
- `lib/libtflm_model.a`: the shim plus every object of `libtflm.a`, one archive to link;
- `link.json`: what the firmware link needs besides its own objects (see `LINK_DOC`);
- `codegen.json`: `{"engine", "ops", "arena_bytes", "arena_used_bytes", "arena_source", "input_len", ...}`.

The arena is `tflm.arena_bytes` when set; otherwise it is measured: a small C probe linked against the same
library finds on QEMU the smallest arena in which the model initialises (more than TFLM's `arena_used_bytes()`,
since AllocateTensors needs temporary room while it plans), runs the model once in it, and the arena gets that
plus one alignment step of headroom. The host interpreter is no substitute: 64-bit pointers, other kernels.
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
from pathlib import Path

from tinypipe.core import proc
from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_json, atomic_write_text, read_json
from tinypipe.core.hashing import sha256_file, sha256_json
from tinypipe.engines.tflm import source as _tflm
from tinypipe.runners import qemu
from tinypipe.stages.base import Stage, StageContext, StageResult
from tinypipe.toolchain import gnu, tools
from tinypipe.toolchain.flags import gcc_flags

SUPPORT = Path(__file__).with_name("support")
SHIM_LIBRARY = "lib/libtflm_model.a"
ARENA_ALIGN = 16  # TFLM's MicroArenaBufferAlignment(); also the arena's own alignment in model.rs
ARENA_HEADROOM = 16  # the smallest working arena plus one alignment step
PROBE_TIMEOUT_S = 300
# newlib-nano's C library, libm, libgcc's helpers, libnosys's syscall stubs, and libstdc++ for the C++ runtime
# bits TFLM uses (`__cxa_pure_virtual`, `operator delete`)
LINK_LIBS = ("stdc++_nano", "m", "c_nano", "gcc", "nosys")

LINK_DOC = (
    "static_libs: archives relative to this directory, to link after the firmware's objects; search_dirs + libs: "
    "the toolchain libraries for a `ld`-flavored link (`-L DIR ... -l NAME ...` inside --start-group/--end-group); "
    "gcc_link_args: the driver flags for a link by arm-none-eabi-gcc instead (followed by the static libs and the "
    "-l libs). Start-up must enable the FPU, copy .data, zero .bss, call __libc_init_array and define "
    "__dso_handle, _init, _fini and `end` (for _sbrk).")


@functools.lru_cache(maxsize=None)
def support_hash() -> str:
    """The shim template and probe sources feed the key, so editing them rebuilds without a version bump."""
    return sha256_json({p.relative_to(SUPPORT).as_posix(): sha256_file(p)
                        for p in sorted(SUPPORT.rglob("*")) if p.is_file()})


def profiled(variant) -> bool:
    """`target.profile_layers`: the shim is compiled with TFLM's per-operator profiler (TINYPIPE_TFLM_PROFILE)
    and `model.rs` gets `profile`; otherwise neither exists, so unprofiled builds carry none of it."""
    return bool(variant.config["target"].get("profile_layers"))


def _config(variant) -> dict:
    s = _tflm.settings(variant)
    config = {"arena_bytes": s.arena_bytes, "arena_headroom": ARENA_HEADROOM,
              "probe_machine": _probe_machine(variant), "triple": variant.triple, "support": support_hash()}
    if profiled(variant):
        config["profile_layers"] = True
    return config


def _tools(variant) -> dict:
    return {tool: tools.version(tool) for tool in (tools.GXX, tools.BINDGEN, tools.QEMU)}


STAGE = Stage(name="codegen", version="2", needs=("quantize", "tflm_lib"), config=_config, tools=_tools,
              description="TFLM engine: C++ shim, bindgen bindings and model.rs for the firmware")


# --- the model: ops and I/O ------------------------------------------------------------------------------------

def io_tensors(model) -> tuple:
    """The model's input and output tensors, each int8 or float32 (what the firmware feeds and reads)."""
    from tinypipe.tflite.io import IO_DTYPES  # here, not at the top: no-op runs import this module

    main = model.main
    if len(main.inputs) != 1 or len(main.outputs) != 1:
        raise UserError(f"model.tflite has {len(main.inputs)} inputs and {len(main.outputs)} outputs; engine tflm "
                        "handles one of each", "export the model with a single input and a single output")
    tensors = []
    for kind, index in (("input", main.inputs[0]), ("output", main.outputs[0])):
        tensor = main.tensors[index]
        if tensor.dtype not in IO_DTYPES:
            raise UserError(f"model.tflite: the {kind} tensor is {tensor.dtype}; the firmware feeds and reads int8 "
                            "or float32", "set `quantization: {io: int8}` (the default) or `{io: float32}`")
        tensors.append(tensor)
    return tensors[0], tensors[1]


def input_from_real_rs(tensor) -> str:
    """`input_from_real` for model.rs: TFLite's QUANTIZE arithmetic for an int8 input, the value itself for float32."""
    if tensor.dtype == "float32":
        return ("/// The model takes float32 and quantizes it itself.\n#[inline]\n"
                "pub fn input_from_real(x: f32) -> Input {\n    x\n}\n")
    q = tensor.quantization
    if q is None or not q.scale:
        raise UserError(f"model.tflite: the int8 input tensor {tensor.name!r} has no quantization parameters",
                        "re-export the model with full-integer quantization")
    from tinypipe.tflite.io import f32_bits

    scale_bits = f32_bits(q.scale[0])
    zero_point = q.zero_point[0] if q.zero_point else 0
    return ("/// Quantized as TFLite's QUANTIZE does, with the input tensor's scale and zero point.\n#[inline]\n"
            "pub fn input_from_real(x: f32) -> Input {\n"
            f"    tinyml_kernels::quantize_f32(x, f32::from_bits(0x{scale_bits:08x}), {zero_point})\n}}\n")


# --- the shim, its library and its bindings ---------------------------------------------------------------------

def render_shim(ops: list[str], methods: dict[str, str]) -> str:
    lines = []
    for op in ops:
        lines.append(f"  if (resolver->{methods[op]}() != kTfLiteOk) {{\n"
                     f"    Recordf(\"cannot register op {op}\");\n    return 2;\n  }}")
    template = (SUPPORT / "tflm_shim.cc.in").read_text()
    return (template.replace("@OP_LIST@", ", ".join(ops)).replace("@OP_COUNT@", str(max(len(ops), 1)))
            .replace("@REGISTER_OPS@", "\n".join(lines)))


def build_shim_library(variant, root: Path, kernels: str, shim_dir: Path, libtflm: Path, out_lib: Path,
                       work: Path) -> None:
    """Compile the shim with the library's flags (plus the profiler with `target.profile_layers`) and add it
    to a copy of libtflm.a."""
    flags = _tflm.compile_flags(variant, kernels, root=str(root))["c++"]
    if profiled(variant):
        flags = [*flags, "-DTINYPIPE_TFLM_PROFILE"]
    obj = work / "tinypipe_tflm_shim.o"
    for name in ("tflm_shim.cc", "tflm_shim.h"):
        shutil.copyfile(shim_dir / name, work / name)
    # compiled in `work` from relative paths, the tree's prefix mapped away: the object does not depend on
    # where the store entry or the tree lives
    proc.run([tools.find(tools.GXX), *flags, f"-ffile-prefix-map={root}/=", "-I.", "-c", "tflm_shim.cc",
              "-o", obj.name], cwd=work)
    out_lib.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(libtflm, out_lib)
    proc.run([tools.find(tools.AR), "rsD", out_lib.resolve(), obj.name], cwd=work)


def bindgen(header: Path, triple: str) -> str:
    """Rust declarations of the shim for `no_std` (core types only)."""
    out = proc.run([tools.find(tools.BINDGEN), header, "--use-core", "--ctypes-prefix", "core::ffi",
                    "--size_t-is-usize", "--allowlist-function", "tflm_.*", "--no-layout-tests", "--no-doc-comments",
                    "--", f"--target={triple}", "-ffreestanding"]).stdout
    # bindgen 0.60 writes `extern "C" {`; edition 2024 requires `unsafe extern`, accepted since Rust 1.82
    return out.replace('extern "C" {', 'unsafe extern "C" {')


# --- measuring the arena on the emulator ------------------------------------------------------------------------

# The probe links a static arena of half the machine's RAM and keeps 16 KiB for heap and stack (probe/link.ld.in)
PROBE_MIN_RAM = 64 * 1024
# Code for the key's ISA runs unchanged on the value's (ARMv6-M's instructions are a subset of ARMv7-M's), so a
# Cortex-M0 board too small for the probe is measured on a Cortex-M3 machine: the same objects, the same arena.
PROBE_HOST_TRIPLES = {"thumbv6m-none-eabi": ("thumbv7m-none-eabi",)}


def _probe_machine(variant) -> str | None:
    """A QEMU machine that runs the variant's code with RAM enough for the probe: of the boards with the same core
    the one with the most RAM (the arena TFLM needs depends on the model and the code, not on the board, and half
    of a small board's RAM may be too little to measure it: person_detect needs 82 KB, half of netduinoplus2's
    is 64 KB; whether the arena then fits the board is the firmware stage's fit check, exit 2), else one whose ISA
    contains the variant's."""
    from tinypipe.config.boards import BOARDS

    def runs(board, triples) -> bool:
        return bool(board.qemu_machine) and board.ram.size >= PROBE_MIN_RAM and board.triple in triples

    own = [variant.board] if runs(variant.board, (variant.triple,)) and variant.board.cpu == variant.cpu else []
    same_core = [b for b in BOARDS.values() if runs(b, (variant.triple,)) and b.cpu == variant.cpu]
    same_core = sorted([*own, *same_core], key=lambda b: -b.ram.size)  # stable: the own board wins a tie
    hosts = [b for b in BOARDS.values() if runs(b, PROBE_HOST_TRIPLES.get(variant.triple, ()))]
    return next((b.qemu_machine for b in [*same_core, *hosts]), None)


def gcc_link_args(variant) -> list[str]:
    return [*gcc_flags(variant), "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
            "-Wl,--gc-sections"]


def toolchain_search_dirs(variant) -> list[str]:
    """The multilib directories holding LINK_LIBS for the variant's CPU and float ABI."""
    dirs = []
    for lib in LINK_LIBS:
        parent = str(gnu.library(f"lib{lib}.a", variant).parent)
        if parent not in dirs:
            dirs.append(parent)
    return dirs


def measure_arena(variant, model_file: Path, library: Path, shim_dir: Path, input_len: int, output_len: int,
                  work: Path) -> tuple[int, int]:
    """(TFLM's arena_used_bytes(), the smallest arena that works), measured on QEMU."""
    from tinypipe.config.boards import BOARDS

    machine = _probe_machine(variant)
    if machine is None:
        raise UserError(f"cannot measure the TFLM arena for cpu {variant.cpu}: no QEMU machine runs its code with "
                        f"the {PROBE_MIN_RAM // 1024} KiB of RAM the measurement needs",
                        "set `tflm: {arena_bytes: N}` in project.yaml")
    board = next(b for b in BOARDS.values() if b.qemu_machine == machine)
    probe_arena = board.ram.size // 2
    support = SUPPORT / "probe"
    linker_script = work / "probe.ld"
    linker_script.write_text((support / "link.ld.in").read_text()
                             .replace("@FLASH_ORIGIN@", hex(board.flash.origin))
                             .replace("@FLASH_LENGTH@", hex(board.flash.size))
                             .replace("@RAM_ORIGIN@", hex(board.ram.origin))
                             .replace("@RAM_LENGTH@", hex(board.ram.size)))
    shutil.copyfile(model_file, work / "model.tflite")
    cflags = [*gcc_flags(variant), "-O2", "-ffunction-sections", "-fdata-sections", f"-I{support}",
              f"-I{shim_dir}", f"-I{work}", f"-DPROBE_ARENA_BYTES={probe_arena}", f"-DINPUT_LEN={input_len}",
              f"-DOUTPUT_LEN={output_len}"]
    objects = []
    gcc = tools.find(tools.GCC)
    for source in ("startup.c", "main.c", "model_blob.S"):
        obj = work / (source.rsplit(".", 1)[0] + ".o")
        proc.run([gcc, *cflags, "-c", support / source, "-o", obj])
        objects.append(obj)
    elf = work / "probe.elf"
    proc.run([gcc, *gcc_link_args(variant), "-T", linker_script, *objects, library,
              *[f"-l{lib}" for lib in LINK_LIBS], "-o", elf])
    # nothing is timed here: QEMU runs without -icount, as fast as it can
    result = qemu.run_elf(elf, machine, timeout_s=PROBE_TIMEOUT_S, icount=False)
    used = re.search(r"tinypipe-arena-used (\d+)", result.output)
    minimum = re.search(r"tinypipe-arena-min (\d+)", result.output)
    if result.returncode != 0 or used is None or minimum is None:
        error = re.search(r"tinypipe-error (.*)", result.output)
        detail = error.group(1) if error else result.output.strip()[-400:]
        raise UserError(f"TFLM could not run the model on {machine} while measuring its arena: {detail}",
                        "check that the model's ops and types are supported by TFLM's kernels")
    return int(used.group(1)), int(minimum.group(1))


def arena_for(minimum: int) -> int:
    return -(-minimum // ARENA_ALIGN) * ARENA_ALIGN + ARENA_HEADROOM


# --- model.rs ---------------------------------------------------------------------------------------------------

PROFILE_RS = """\
/// The clock `profile` hands TFLM's profiler, as the C function the shim calls.
static mut CLOCK: fn() -> u64 = no_clock;

fn no_clock() -> u64 {
    0
}

extern "C" fn clock_ticks() -> u32 {
    // SAFETY: single-threaded firmware; CLOCK is set before the profiled run that calls this.
    unsafe { CLOCK() as u32 }
}

/// Run the model once with TFLM's per-operator profiling: `report(op_index, op, ticks)` for each operator it
/// ran, ticks of `clock`. Re-initialises the interpreter with the profiler for this run and without it before
/// returning, so plain `invoke` calls are timed as they are without profiling.
pub fn profile<F: FnMut(usize, &'static str, u64)>(
    input: &[Input],
    output: &mut [Output],
    clock: fn() -> u64,
    report: &mut F,
) {
    // SAFETY: single-threaded firmware; MODEL and ARENA as in `init`.
    unsafe {
        CLOCK = clock;
        READY = false;
        let arena = addr_of_mut!(ARENA.0) as *mut u8;
        let clock_fn: unsafe extern "C" fn() -> u32 = clock_ticks;
        if ffi::tflm_init_profiled(MODEL.0.as_ptr(), arena, ARENA_BYTES, Some(clock_fn)) != 0 {
            panic!("TFLM init (profiled) failed: {}", last_error());
        }
        READY = true;
    }
    invoke(input, output);
    // SAFETY: the shim's event names are TFLM's static operator names.
    unsafe {
        for index in 0..ffi::tflm_profile_count() {
            let mut ticks = 0u32;
            let tag = ffi::tflm_profile_event(index, &mut ticks);
            let name = if tag.is_null() { "?" } else { core::ffi::CStr::from_ptr(tag).to_str().unwrap_or("?") };
            report(index, name, ticks as u64);
        }
        READY = false;
    }
    // back to the interpreter without the profiler now, so the next `invoke` does not pay for it
    if let Err(message) = init() {
        panic!("TFLM init failed: {}", message);
    }
}

"""


def render_model_rs(*, ops: list[str], input_t, output_t, arena_bytes: int, model_len: int, kernels: str,
                    bindings: str, profile: bool = False) -> str:
    from tinypipe.tflite.io import IO_DTYPES

    indented = "\n".join(("    " + line) if line.strip() else "" for line in bindings.strip().splitlines())
    return f"""\
//! The model, run by TensorFlow Lite Micro ({kernels} kernels) through tinypipe's C shim.
//! Generated by tinypipe (engine tflm); ops: {", ".join(ops)}.

use core::ptr::addr_of_mut;

/// The element type of input tensor 0 ({input_t.dtype}).
pub type Input = {IO_DTYPES[input_t.dtype]};
/// The element type of output tensor 0 ({output_t.dtype}).
pub type Output = {IO_DTYPES[output_t.dtype]};
/// Values of input tensor 0: shape {list(input_t.shape)}.
pub const INPUT_LEN: usize = {input_t.size};
/// Values of output tensor 0: shape {list(output_t.shape)}.
pub const OUTPUT_LEN: usize = {output_t.size};
/// Size of the static tensor arena handed to TFLM.
pub const ARENA_BYTES: usize = {arena_bytes};
/// The ops registered with TFLM's op resolver.
#[allow(dead_code, reason = "part of the generated model's API; the firmware does not use it")]
pub const OPS: &[&str] = &[{", ".join(f'"{op}"' for op in ops)}];

/// The shim's C interface (bindgen output).
mod ffi {{
    #![allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code, reason = "bindgen's output")]
{indented}
}}

#[repr(C, align(16))]
struct Aligned<T>(T);

/// TFLM reads the flatbuffer in place; it needs 16-byte alignment.
static MODEL: Aligned<[u8; {model_len}]> = Aligned(*include_bytes!("model.tflite"));
static mut ARENA: Aligned<[u8; ARENA_BYTES]> = Aligned([0; ARENA_BYTES]);
static mut READY: bool = false;

fn last_error() -> &'static str {{
    // SAFETY: the shim returns a pointer to its own NUL-terminated static buffer.
    let text = unsafe {{ core::ffi::CStr::from_ptr(ffi::tflm_last_error()) }};
    text.to_str().unwrap_or("(TFLM error text is not UTF-8)")
}}

/// Set up the interpreter (done by the first `invoke` otherwise); Err carries TFLM's message.
pub fn init() -> Result<(), &'static str> {{
    // SAFETY: single-threaded firmware; MODEL and ARENA are 16-byte aligned and live forever.
    unsafe {{
        if READY {{
            return Ok(());
        }}
        let arena = addr_of_mut!(ARENA.0) as *mut u8;
        if ffi::tflm_init(MODEL.0.as_ptr(), arena, ARENA_BYTES) != 0 {{
            return Err(last_error());
        }}
        READY = true;
    }}
    Ok(())
}}

/// A real-valued sample (a sensor reading, in the units the model was trained on) as an input element.
{input_from_real_rs(input_t)}
/// Run the model on `input` (INPUT_LEN values) into `output` (OUTPUT_LEN values). A TFLM failure (an arena too
/// small, a length mismatch) panics with TFLM's message: the firmware's panic handler reports it and exits.
pub fn invoke(input: &[Input], output: &mut [Output]) {{
    if let Err(message) = init() {{
        panic!("TFLM init failed: {{}}", message);
    }}
    // SAFETY: the slices are valid for their lengths; the shim checks them against the tensors.
    unsafe {{
        if ffi::tflm_set_input(input.as_ptr() as *const i8, core::mem::size_of_val(input)) != 0
            || ffi::tflm_invoke() != 0
            || ffi::tflm_get_output(output.as_mut_ptr() as *mut i8, core::mem::size_of_val(output)) != 0
        {{
            panic!("TFLM invoke failed: {{}}", last_error());
        }}
    }}
}}

{PROFILE_RS if profile else ''}/// Arena bytes TFLM actually uses (0 before `init`).
#[allow(dead_code, reason = "part of the generated model's API; the firmware does not call it")]
pub fn arena_used_bytes() -> usize {{
    // SAFETY: a plain query of the shim's state.
    unsafe {{ ffi::tflm_arena_used_bytes() }}
}}
"""


# --- the stage --------------------------------------------------------------------------------------------------

def run(ctx: StageContext) -> StageResult:
    from tinypipe.tflite.reader import parse_model

    variant = ctx.variant
    root = _tflm.require_source(variant, ctx.project_dir)
    settings = _tflm.settings(variant)
    lib_manifest = read_json(ctx.input("tflm_lib", "tflm.json"))
    kernels = lib_manifest["kernels"]

    model_bytes = ctx.input("quantize", "model.tflite").read_bytes()
    model = parse_model(model_bytes, "model.tflite")
    input_t, output_t = io_tensors(model)
    input_len, output_len = input_t.nbytes, output_t.nbytes
    ops = _tflm.model_ops(model)
    methods = _tflm.resolver_methods(root)
    _tflm.check_supported(ops, methods)

    out = ctx.out
    (out / "model.tflite").write_bytes(model_bytes)
    shim_dir = out / "shim"
    shim_dir.mkdir()
    shutil.copyfile(SUPPORT / "tflm_shim.h", shim_dir / "tflm_shim.h")
    atomic_write_text(shim_dir / "tflm_shim.cc", render_shim(ops, methods))
    library = out / SHIM_LIBRARY
    with tempfile.TemporaryDirectory(prefix="tinypipe-tflm-") as tmp:
        work = Path(tmp)
        ctx.progress(0, 3, "compiling the shim")
        build_shim_library(variant, root, kernels, shim_dir, ctx.input("tflm_lib", "libtflm.a"), library, work)
        ctx.progress(1, 3, "bindgen")
        bindings = bindgen(shim_dir / "tflm_shim.h", variant.triple)
        arena_used = arena_min = None
        if settings.arena_bytes is not None:
            arena_bytes, arena_source = settings.arena_bytes, "tflm.arena_bytes"
        else:
            ctx.progress(2, 3, "measuring the arena on QEMU")
            probe = work / "probe"
            probe.mkdir()
            arena_used, arena_min = measure_arena(variant, out / "model.tflite", library, shim_dir, input_len,
                                                  output_len, probe)
            arena_bytes, arena_source = arena_for(arena_min), "measured"
        ctx.progress(3, 3)

    atomic_write_text(out / "model.rs", render_model_rs(
        ops=ops, input_t=input_t, output_t=output_t, arena_bytes=arena_bytes, profile=profiled(variant),
        model_len=len(model_bytes), kernels=kernels, bindings=bindings))
    atomic_write_json(out / "link.json", {
        "static_libs": [SHIM_LIBRARY],
        "search_dirs": toolchain_search_dirs(variant),
        "libs": list(LINK_LIBS),
        "gcc_link_args": gcc_link_args(variant),
        "doc": LINK_DOC,
    })
    summary = {"engine": "tflm", "kernels": kernels, "ops": ops, "input_len": input_t.size,
               "output_len": output_t.size, "input_dtype": input_t.dtype, "output_dtype": output_t.dtype,
               "arena_bytes": arena_bytes, "arena_used_bytes": arena_used, "arena_min_bytes": arena_min,
               "arena_source": arena_source}
    atomic_write_json(out / "codegen.json", summary)
    ctx.log(f"TFLM model: {len(ops)} ops ({', '.join(ops)}), arena {arena_bytes} B ({arena_source})")
    return summary
