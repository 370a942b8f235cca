"""`tinypipe export DIR --crate OUT`: the model for the user's own firmware, as a `no_std` Rust crate per variant.

The pipeline runs up to the toolchain stage (the model, its generated `model.rs`, the target's sysroot), then each
native variant's crate is written to OUT/<variant>/ (OUT itself when there is one variant):

    Cargo.toml        package `<project name, sanitised>`, version `version:` (default 0.1.0), no crates.io deps
    README.md         the API and a usage example
    src/lib.rs        `Model::new(&mut arena)`, `invoke(&input) -> &output`, shapes, scales, `ARENA_BYTES`
    src/model.rs      the codegen stage's model.rs, unchanged
    kernels/          the `tinyml-kernels` crate it calls, as a path dependency
    c/                the C API (`capi.py`): its crate, the static library and the header
    export.json       what was exported: project, variant, board, target, I/O, arena, model hash, file names

Everything is written to a temporary directory beside OUT and renamed into place: an interrupted or failed export
leaves OUT as it was. An OUT that exists is replaced only when it holds a previous export (its `.tinypipe-export`
marker) or nothing at all. Variants on engine `tflm` are refused (exit 2): the TFLM binding is not exported yet.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template

from tinypipe.core.errors import UserError
from tinypipe.core.escape import comment_text, rust_string, toml_string
from tinypipe.core.fs import atomic_write_json, atomic_write_text, read_json
from tinypipe.core.paths import kernels_dir
from tinypipe.toolchain.flags import gcc_flags

MARKER = ".tinypipe-export"  # names a directory tinypipe wrote, which a later export may replace
DEFAULT_VERSION = "0.1.0"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
KERNELS_PACKAGE = "tinyml-kernels"
# names a package of ours may not take: the sysroot's crates and the kernels crate it depends on
RESERVED_NAMES = {"core", "std", "alloc", "test", "proc-macro", "compiler-builtins", KERNELS_PACKAGE}
NOT_SOURCE = ("target", "Cargo.lock", ".cargo", ".git", "__pycache__", "*.swp", "*~")


@dataclass(frozen=True)
class CrateSpec:
    """One variant's exported crate: its names, version, target and the codegen stage's `codegen.json`."""

    package: str  # the Cargo package name (`gesture`)
    version: str
    project: str
    variant: str
    board: str
    triple: str
    cpu: str
    info: dict  # codegen.json: arena_bytes, input/output shape, dtype, scale, zero point, model_sha256
    reference: dict | None = None  # reference.json: raw_input and features (the front end), classes

    @property
    def front_end(self) -> dict | None:
        """The raw-window front end the crate carries (`front_end.describe`), or None."""
        from tinypipe.release import front_end

        return front_end.describe(self.reference) if self.reference else None

    @property
    def classes(self) -> list[str] | None:
        """The class names, one per output value, when the model's outputs are the project's classes."""
        classes = (self.reference or {}).get("classes")
        return list(classes) if classes and len(classes) == int(self.info["output_len"]) else None

    @property
    def lib(self) -> str:
        """The crate's name in Rust code (`use speech_demo::Model`): the package name with `_` for `-`."""
        return self.package.replace("-", "_")

    def io(self, which: str) -> dict:
        return self.info[which]

    def int8(self, which: str) -> bool:
        return self.io(which)["dtype"] == "int8"


def crate_name(project_name: str) -> str:
    """The project's name as a Cargo package name: lower case, letters, digits, `-` and `_`, starting with a letter;
    never the name of a crate it would clash with (`core`, `tinyml-kernels`)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", project_name.lower()).strip("-_") or "model"
    if not name[0].isalpha():
        name = f"model-{name}"
    if name.replace("_", "-") in RESERVED_NAMES:
        name = f"{name}-model"
    return name[:64]


def crate_version(config: dict, config_path: Path | None = None) -> str:
    """`version:` from project.yaml (a Cargo version, MAJOR.MINOR.PATCH), or 0.1.0."""
    version = config.get("version")
    if version is None:
        return DEFAULT_VERSION
    if not isinstance(version, str) or not SEMVER.match(version):
        where = f"{config_path.name}: " if config_path else ""
        raise UserError(f"{where}version: {version!r} is not a Cargo version for the exported crate",
                        "write it as MAJOR.MINOR.PATCH, e.g. `version: \"1.2.0\"`")
    return version


def f32_literal(value: float) -> str:
    """The shortest decimal that reads back as the same float32 (a scale is a float32 in the .tflite), spelled so
    that both Rust and C read it as a floating-point literal (`1.0`, `0.0039215689`, `3.9e-05`)."""
    import struct

    exact = struct.unpack("<f", struct.pack("<f", value))[0]
    for digits in range(1, 10):
        text = f"{exact:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == exact:
            break
    return text if "." in text or "e" in text else f"{text}.0"


def _rust_array(values: list[int]) -> str:
    return f"[usize; {len(values)}] = [{', '.join(str(v) for v in values)}]"


# --- the crate's files ----------------------------------------------------------------------------------------

CARGO_TOML = Template("""\
# Generated by `tinypipe export` from project $project_comment, variant $variant_comment.
# The model as a no_std library: no crates.io dependencies, so it builds offline with a sysroot for the target.
[package]
name = $name
version = $version
edition = "2021"
# Debian 12 ships rustc 1.85 (rustc-web)
rust-version = "1.85"
description = $description
publish = false

[lib]
path = "src/lib.rs"
test = false
bench = false

[dependencies]
tinyml-kernels = { path = "kernels" }
""")


def render_cargo_toml(spec: CrateSpec) -> str:
    return CARGO_TOML.substitute(
        project_comment=comment_text(spec.project), variant_comment=comment_text(spec.variant),
        name=toml_string(spec.package), version=toml_string(spec.version),
        description=toml_string(f"The {spec.project} model ({spec.variant}), generated by tinypipe"))


LIB_RS = Template('''\
//! The model of tinypipe project `$project_doc` (variant `$variant_doc`) as a `no_std` library for your own
//! firmware: no allocation, no interpreter, no `unsafe` in this API. Generated for $triple
//! (`-C target-cpu=$cpu`); it builds for any target.
//!
//! ```ignore
//! let mut arena = [0i8; $lib::ARENA_BYTES];      // activation memory: a static, or on the stack
//! let mut model = $lib::Model::new(&mut arena);
//! let input = [$lib::Input::default(); $lib::INPUT_LEN]; // $input_dtype, shape $input_shape
//! let output = model.invoke(&input);               // &[$lib::Output; OUTPUT_LEN], shape $output_shape
//! ```
//!
//! Generated by `tinypipe export` (model sha256 $model_sha): regenerate it rather than edit it.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// The code tinypipe's native engine generated for the model, unchanged. Besides what this crate uses it holds a
/// static arena and an `invoke` that uses it, for tinypipe's own firmware; `Model` takes the caller's arena
/// instead, so that static (and the one `unsafe` block that reaches it) is never linked in.
#[allow(unsafe_code, reason = "model.rs's static arena, which this crate's API does not use")]
#[allow(dead_code, reason = "model.rs's API for tinypipe's own firmware (static arena, profiling)")]
mod model;

pub use model::{Input, Output, ARENA_BYTES, INPUT_LEN, OUTPUT_LEN};
$front_end_mods
$quantization/// The input tensor's shape (TFLite's order); `INPUT_LEN` values, row-major.
pub const INPUT_SHAPE: $input_shape_decl;
/// The output tensor's shape (TFLite's order); `OUTPUT_LEN` values, row-major.
pub const OUTPUT_SHAPE: $output_shape_decl;
$classes
/// The activation memory `Model` works in: `ARENA_BYTES` bytes, any alignment, its contents need not be kept
/// between calls.
pub type Arena = [i8; ARENA_BYTES];

/// `Model::from_slice` got fewer bytes than the model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaTooSmall {
    /// The length of the slice given.
    pub given: usize,
    /// `ARENA_BYTES`.
    pub needed: usize,
}

/// The model, running in an arena the caller lends it. Nothing here panics or allocates; one `invoke` at a time
/// per arena (the borrow checker sees to that).
pub struct Model<'arena> {
    arena: &'arena mut Arena,
    output: [Output; OUTPUT_LEN],
}

impl<'arena> Model<'arena> {
    /// The model working in `arena`.
    pub fn new(arena: &'arena mut Arena) -> Self {
        Self { arena, output: [Output::default(); OUTPUT_LEN] }
    }

    /// The model working in the first `ARENA_BYTES` bytes of `arena`, or `ArenaTooSmall`.
    pub fn from_slice(arena: &'arena mut [i8]) -> Result<Self, ArenaTooSmall> {
        let given = arena.len();
        match arena.get_mut(..ARENA_BYTES).and_then(|head| <&mut Arena>::try_from(head).ok()) {
            Some(arena) => Ok(Self::new(arena)),
            None => Err(ArenaTooSmall { given, needed: ARENA_BYTES }),
        }
    }

    /// Run the model on one input; the output stays valid until the next call. The result is bit for bit what
    /// TensorFlow Lite Micro computes for the same `.tflite`.
    pub fn invoke(&mut self, input: &[Input; INPUT_LEN]) -> &[Output; OUTPUT_LEN] {
        model::invoke_with_arena(self.arena, input, &mut self.output);
        &self.output
    }
}

/// A real value (a sensor reading, in the units the model was trained on) as an input element$input_from_real_doc
#[inline]
pub fn input_from_real(x: f32) -> Input {
    model::input_from_real(x)
}

/// An output element as a real value$output_to_real_doc
#[inline]
pub fn output_to_real(y: Output) -> f32 {
$output_to_real_body
}
''')


FRONT_END_MODS = {
    None: "",
    "spectral": ("#[allow(dead_code, reason = \"the firmware's tables, not all of which the front end reads\")]\n"
                 "mod features_config;\n"),
    "audio": ("#[allow(dead_code, reason = \"the firmware's tables, not all of which the front end reads\")]\n"
              "mod audio_config;\n"),
}


def _front_end_mods(spec: CrateSpec) -> str:
    """lib.rs's modules and re-exports of the raw-window front end (nothing without one)."""
    from tinypipe.release.front_end import AUDIO_KINDS

    shape = spec.front_end
    if shape is None:
        return ""
    kind = shape["features"] and ("audio" if shape["features"] in AUDIO_KINDS else "spectral")
    return ("\n/// The fixed-point step of each raw sample (or feature) to the model's int8 input, as tinypipe\n"
            "/// rendered it.\nmod raw_input;\n" + FRONT_END_MODS[kind] +
            "/// `FrontEnd`: raw int16 sensor windows to the model's input.\nmod front_end;\n\n"
            "pub use front_end::{FrontEnd, RAW_AXES, RAW_WINDOW, RAW_WINDOW_LEN};\n")


def render_lib_rs(spec: CrateSpec) -> str:
    inp, out = spec.io("input"), spec.io("output")
    classes = spec.classes
    classes_decl = ("/// The class each output value scores, in order (project.yaml's classes).\n"
                    f"pub const CLASSES: [&str; OUTPUT_LEN] = [{', '.join(rust_string(c) for c in classes)}];\n"
                    if classes else "")
    quantization = "".join(
        f"/// The {which} tensor's scale: real = {which.upper()}_SCALE * (q - {which.upper()}_ZERO_POINT).\n"
        f"pub const {which.upper()}_SCALE: f32 = model::{which.upper()}_SCALE;\n"
        f"/// The {which} tensor's zero point (the int8 value of real 0).\n"
        f"pub const {which.upper()}_ZERO_POINT: i32 = model::{which.upper()}_ZERO_POINT;\n"
        for which in ("input", "output") if spec.int8(which))
    if spec.int8("output"):
        to_real_doc = ": `OUTPUT_SCALE * (y - OUTPUT_ZERO_POINT)`."
        to_real_body = "    OUTPUT_SCALE * (i32::from(y) - OUTPUT_ZERO_POINT) as f32"
    else:
        to_real_doc = ": the model's output is float32 already."
        to_real_body = "    y"
    return LIB_RS.substitute(
        project_doc=comment_text(spec.project), variant_doc=comment_text(spec.variant), triple=spec.triple,
        cpu=spec.cpu, lib=spec.lib, input_dtype=inp["dtype"], input_shape=inp["shape"],
        output_shape=out["shape"], model_sha=spec.info.get("model_sha256", "?")[:16], quantization=quantization,
        input_shape_decl=_rust_array(inp["shape"]), output_shape_decl=_rust_array(out["shape"]),
        front_end_mods=_front_end_mods(spec), classes=classes_decl,
        input_from_real_doc=(", quantized as TFLite's QUANTIZE does." if spec.int8("input")
                             else ": the model takes float32 and quantizes it itself."),
        output_to_real_doc=to_real_doc, output_to_real_body=to_real_body)


README = Template("""\
# $package $version

The model of tinypipe project `$project` (variant `$variant`: board $board, `$triple`, `-C target-cpu=$cpu`) as a
`no_std` Rust crate for your own firmware, and the same as a C static library (`c/`). Generated by
`tinypipe export`; regenerate it rather than edit it.

| | |
|---|---|
| input | $input_dtype, shape $input_shape ($input_len values)$input_q |
| output | $output_dtype, shape $output_shape ($output_len values)$output_q |
| arena | $arena_bytes bytes (`ARENA_BYTES`), plus $scratch_bytes bytes of kernel scratch on the caller's stack |
| weights | $weight_bytes bytes in flash |

Outputs are bit for bit those of TensorFlow Lite Micro on the same `.tflite` (sha256 `$model_sha`).

## Rust

```toml
[dependencies]
$package = { path = "path/to/this/directory" }
```

```rust
use $lib::{Model, ARENA_BYTES, INPUT_LEN};

let mut arena = [0i8; ARENA_BYTES];          // or a `static`, or a slice: `Model::from_slice(&mut buf)?`
let mut model = Model::new(&mut arena);
let mut input = [$lib::Input::default(); INPUT_LEN];
// fill `input`: $fill_hint
let output = model.invoke(&input);            // &[$lib::Output; $lib::OUTPUT_LEN]
```
$front_end_section
No crates.io dependencies: `kernels/` is the `tinyml-kernels` crate it calls, by path. The crate builds for any
target; the kernels take their DSP path (SMLAD) on `thumbv7em-*` and on ARMv8-M Mainline cores with the extension,
and ARMv7-M assembly inner loops on `thumbv7m-*` (see `kernels/build.rs`). Build your firmware with `--release` (or `opt-level = 3`): the kernels are slow unoptimised.
`Model::invoke` never panics and uses no `unsafe`; an arena serves one model call at a time.

## C

`c/lib$lib.a` is this crate built as a static library for `$triple` (`-C target-cpu=$cpu`, hard/soft float as the
triple says: compile your C code with $gcc_flags), with `c/$lib.h`:

```c
#include "$lib.h"

static uint8_t arena[TP_ARENA_BYTES];
static tp_input_t input[TP_INPUT_LEN];
static tp_output_t output[TP_OUTPUT_LEN];

if (tp_model_init(arena, sizeof arena) != TP_OK) { /* arena too small */ }
/* fill `input` */
if (tp_model_invoke(input, output) != TP_OK) { /* not initialised, or a NULL pointer */ }
```
$c_front_end
Link it after your objects: `arm-none-eabi-gcc ... main.o c/lib$lib.a` (it needs `memcpy`/`memset` from the C
library and libgcc's arithmetic helpers, which the gcc driver links by default). The functions are not re-entrant:
call them from one thread of execution at a time. A panic cannot happen in these functions; should the Rust code
ever panic all the same, it stops in an endless loop. Only one exported model can be linked into a firmware (the
`tp_` names are shared).

To rebuild the library by hand: `cd c && cargo build --release --offline --target $triple` with a Rust sysroot
for the target (`RUSTFLAGS="--sysroot SYSROOT -C target-cpu=$cpu"`).
""")


FRONT_END_SECTION = Template("""
### From raw sensor samples

The model was trained on $what, made from raw int16 sensor windows. `FrontEnd` computes the same integers as
tinypipe's host pipeline and its own firmware, so the outputs stay bit for bit those of the host TFLM interpreter
on the host's $made:

```rust
let mut front = $lib::FrontEnd::new();                    // owns its working memory (`new` is const)
let raw: [i16; $lib::RAW_WINDOW_LEN] = read_window();      // RAW_WINDOW x RAW_AXES values, interleaved
let output = model.invoke(front.input(&raw));
```

A raw window is `RAW_WINDOW` ($window) samples of `RAW_AXES` ($axes) values, interleaved (sample `t`'s axes at
`t * RAW_AXES`), in the order of project.yaml's `sensor.axes`.$features_note
""")

C_FRONT_END = """
From raw sensor samples: `tp_input_from_raw(raw, input)` makes the model's input from `TP_RAW_WINDOW_LEN` int16
samples (the same integers as tinypipe's host pipeline), then `tp_model_invoke(input, output)`.
"""


def _front_end_section(spec: CrateSpec) -> tuple[str, str]:
    """The README's front-end paragraphs (Rust, C), empty without one."""
    shape = spec.front_end
    if shape is None:
        return "", ""
    kind = shape["features"]
    what = f"{kind} features" if kind else "scaled samples (project.yaml's `sensor.scale`/`offset`)"
    section = FRONT_END_SECTION.substitute(
        what=what, made=f"{kind} features" if kind else "scaled samples", lib=spec.lib, window=shape["window"],
        axes=shape["axes"], features_note=(" `front.features()` gives the int16 features of the last window."
                                           if kind else ""))
    return section, C_FRONT_END


def render_readme(spec: CrateSpec, gcc_flags: list[str]) -> str:
    inp, out = spec.io("input"), spec.io("output")
    front_end_section, c_front_end = _front_end_section(spec)

    def quantization(which: str) -> str:
        io = spec.io(which)
        prefix = which.upper()
        return (f"; real = {f32_literal(io['scale'])} × (q − {io['zero_point']}) (`{prefix}_SCALE`, "
                f"`{prefix}_ZERO_POINT`)" if spec.int8(which) else "")

    return README.substitute(
        package=spec.package, version=spec.version, project=spec.project, variant=spec.variant, board=spec.board,
        triple=spec.triple, cpu=spec.cpu, lib=spec.lib, input_dtype=inp["dtype"], input_shape=inp["shape"],
        input_len=spec.info["input_len"], output_dtype=out["dtype"], output_shape=out["shape"],
        output_len=spec.info["output_len"], input_q=quantization("input"), output_q=quantization("output"),
        arena_bytes=spec.info["arena_bytes"], scratch_bytes=spec.info.get("scratch_bytes", 0),
        weight_bytes=spec.info.get("weight_bytes", 0), model_sha=spec.info.get("model_sha256", "?"),
        fill_hint=(f"`{spec.lib}::input_from_real(sample)` quantizes a real value" if spec.int8("input")
                   else "float32 values, as the model was trained on"),
        gcc_flags=" ".join(f"`{flag}`" for flag in gcc_flags), front_end_section=front_end_section,
        c_front_end=c_front_end)


def write_rust_crate(dest: Path, spec: CrateSpec, codegen_entry: Path, gcc_flags: list[str]) -> None:
    """The crate's files into `dest` (a new directory): Cargo.toml, README, src/ and the kernels crate."""
    kernels = kernels_dir()
    if not (kernels / "Cargo.toml").is_file():
        raise UserError(f"kernel crate not found at {kernels}",
                        "reinstall tinypipe, or set TINYPIPE_KERNELS to the tinyml-kernels crate")
    atomic_write_text(dest / "Cargo.toml", render_cargo_toml(spec))
    atomic_write_text(dest / "README.md", render_readme(spec, gcc_flags))
    atomic_write_text(dest / "src" / "lib.rs", render_lib_rs(spec))
    shutil.copyfile(codegen_entry / "model.rs", dest / "src" / "model.rs")
    if spec.reference:
        from tinypipe.release import front_end

        for name, text in front_end.render(spec.reference).items():
            atomic_write_text(dest / "src" / name, text)
    shutil.copytree(kernels, dest / "kernels", ignore=shutil.ignore_patterns(*NOT_SOURCE))


# --- the command ------------------------------------------------------------------------------------------------

def _refuse_tflm(variants: list) -> None:
    """Only the native engine's model is exported yet: a tflm variant among those chosen is a UserError."""
    tflm = [v.name for v in variants if v.engine != "native"]
    if not tflm:
        return
    native = [v.name for v in variants if v.engine == "native"]
    hint = (f"export a native variant with --variant ({', '.join(native)})" if native
            else "export a native variant: `engine: native` in project.yaml, or --variant naming a native matrix cell")
    raise UserError(f"export --crate: engine tflm is not supported yet (variant{'s' if len(tflm) > 1 else ''} "
                    f"{', '.join(tflm)}): only the native engine's model is exported as a crate", hint)


def check_destination(out: Path) -> None:
    """OUT must be new, empty, or a previous export: anything else is the user's and is never replaced."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UserError(f"--crate {out}: exists and is not a directory", "choose a new directory for the export")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UserError(f"--crate {out}: the directory is not empty and holds no previous export (no {MARKER})",
                        "choose a new or empty directory; tinypipe replaces only a directory it exported before")


def replace_export(staging: Path, out: Path) -> None:
    """Put `staging` where `out` is, atomically enough: the old export is renamed aside, then deleted."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_variant_crate(dest: Path, pipeline, v, package: str, version: str, build_c: bool = True,
                        reporter=None) -> tuple[dict, dict]:
    """One variant's crate and C library into `dest` (a pipeline that has run up to codegen and toolchain);
    returns what export.json says and the C files (relative to `dest`)."""
    from tinypipe.release import capi

    nodes = pipeline.graph.by_variant[v.name]
    codegen, toolchain_entry = nodes["codegen"].entry_dir(), nodes["toolchain"].entry_dir()
    reference = read_json(nodes["reference"].entry_dir() / "reference.json") if "reference" in nodes else None
    toolchain = read_json(toolchain_entry / "toolchain.json")
    c_flags = gcc_flags(v)  # with -mfpu spelled out: what the user's C code must be compiled with
    spec = CrateSpec(package=package, version=version, project=pipeline.config["name"], variant=v.name,
                     board=v.board.name, triple=v.triple, cpu=v.cpu, info=read_json(codegen / "codegen.json"),
                     reference=reference)
    dest.mkdir(parents=True, exist_ok=True)
    write_rust_crate(dest, spec, codegen, c_flags)
    step = getattr(reporter, "step", None)
    building = step(f"{'export':<10} {v.name}", f"the C static library for {v.triple} (cargo, LTO)") \
        if step and build_c else contextlib.nullcontext()
    with building:
        files = capi.write_c_api(dest, spec, toolchain, toolchain_entry, c_flags, build=build_c)
    described = {"project": spec.project, "variant": v.name, "board": v.board.name, "triple": v.triple,
                 "cpu": v.cpu, "package": package, "version": version,
                 "arena_bytes": spec.info["arena_bytes"], "input": spec.io("input"),
                 "output": spec.io("output"), "model_sha256": spec.info.get("model_sha256"),
                 "raw_input": spec.front_end, "classes": spec.classes,
                 "gcc_flags": c_flags, "files": files}
    atomic_write_json(dest / "export.json", described)  # relative paths only: the same bytes anywhere
    return described, files


def export_crates(target: Path, out: Path, variant: str | None = None, reporter=None,
                  build_c: bool = True) -> list[dict]:
    """Run the pipeline up to the toolchain stage and export each (selected) native variant's crate to `out`.
    Returns one summary per crate (what `export --json` prints)."""
    from tinypipe.engine.pipeline import Pipeline

    out = Path(out).absolute()
    check_destination(out)
    pipeline = Pipeline(Path(target), until="toolchain", variant=variant)
    _refuse_tflm(pipeline.variants)
    version = crate_version(pipeline.config, pipeline.config_path)
    package = crate_name(pipeline.config["name"])
    chosen = pipeline.variants
    for record in pipeline.run(reporter).failed():
        raise record.error
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.export-{os.getpid()}"  # mkdir, not mkdtemp: the umask's mode, not 0o700
    shutil.rmtree(staging, ignore_errors=True)  # a killed export's, whose PID this one reuses
    staging.mkdir()
    try:
        summaries = []
        for v in chosen:
            dest = staging if len(chosen) == 1 else staging / v.name
            described, files = write_variant_crate(dest, pipeline, v, package, version, build_c, reporter)
            final = out if len(chosen) == 1 else out / v.name
            summaries.append({**described, "path": str(final),
                              "files": {kind: str(final / rel) for kind, rel in files.items()}})
        atomic_write_text(staging / MARKER, "written by `tinypipe export`; a later export may replace this "
                                            "directory\n")
        replace_export(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summaries
