"""Stage `firmware`: render the no_std cargo project for one board from `firmware-template/`.

The rendered `project/` is the template (runtime, main loop, board support, Cargo.toml) plus the kernel crate
(`firmware-template/kernels/`), the engine's output, the test windows in `data/test_inputs.bin` (raw int16
windows and `src/raw_input.rs`, with the `raw-input` feature, when an input scaling is declared), and
`link.x`, the linker script for the board's memory map. An engine's codegen.json may name the release profile's
`opt_level` (the native engine's `size` mode does): it replaces the template's in the rendered Cargo.toml. The template's stand-ins for these generated files
(`STANDINS`, which let it build and lint on its own) are left out. The board's support module is chosen by a
cargo feature (`board-<support>`) that Cargo.toml turns on by default, with `layers` when layers are profiled.

From the codegen entry: `model.rs` becomes `src/model.rs`; its `model/` directory (submodules) and every file it
names in `include_bytes!`/`include_str!` go next to it in `src/`. An engine with native parts (TFLM) also writes
`link.json` (`static_libs` relative to its entry, `search_dirs`, `libs`): the archives are copied to `link/`
and the project's own `link.json` names them relative to the project, for the build stage's link line.

With `hal:` in project.yaml the project also holds `Cargo.hal.toml`, the same manifest with those crates (a HAL,
cortex-m-rt, …) as registry dependencies for users who have crates.io; the offline `Cargo.toml` is the one
tinypipe builds.

`TINYPIPE_FIRMWARE_TEMPLATE` and `TINYPIPE_KERNELS` point at another template or kernel crate (development
and tests); their content hash is part of the key either way.
"""

from __future__ import annotations

import json
import re
import shutil
import string
from pathlib import Path

from tinypipe.core.errors import UserError
from tinypipe.core.escape import CRATE_NAME, rust_string, toml_string
from tinypipe.core.fs import atomic_write_text, read_json
from tinypipe.core.hashing import sha256_tree
from tinypipe.core.paths import template_dir
from tinypipe.stages._fit import Footprint, check_fit
from tinypipe.stages._template import copy_template, find_template, template_hash
from tinypipe.stages.base import Stage, StageContext, StageResult

LINKER_TEMPLATE = "link.x.in"
BOARD_SUPPORT_DIR = "src/board"  # <support>.rs per board with an application, selected by a cargo feature
# what the template holds in place of generated files, so that it builds and lints on its own
STANDINS = ("model.rs", "app_config.rs", "raw_input.rs", "realtime_config.rs", "features_config.rs", "audio_config.rs",
            "test_inputs.bin", "link.x")
AUDIO_KINDS = ("mfcc", "log_mel")  # computed by src/features_audio.rs with the rendered src/audio_config.rs
SYSTICK_MAX_TICKS = 1 << 24  # the 24-bit SysTick counter's longest period
MIN_TICKS_PER_SAMPLE = 8  # below this the sampling exception alone would keep the core busy
OPT_LEVELS = ("0", "1", "2", "3", "s", "z")  # cargo's `opt-level` values
INCLUDED_FILE = re.compile(r'include_(?:bytes|str)!\(\s*"([^"]+)"\s*\)')


def profiles_layers(variant) -> bool:
    """`target.profile_layers`: per-operator timing (native: `invoke_traced`; tflm: TFLM's profiler)."""
    return bool(variant.config["target"].get("profile_layers"))


def board_feature(support: str) -> str:
    """The cargo feature selecting `src/board/<support>.rs` (firmware-template/Cargo.toml)."""
    return "board-" + support.replace("_", "-")


def cell_features(variant, realtime: bool) -> list[str]:
    """The template's cargo features one cell needs: its board support, per-operator timing, the real-time
    loop."""
    features = [board_feature(variant.board.support)] if variant.board.support else []
    return features + (["layers"] if profiles_layers(variant) else []) + (["realtime"] if realtime else [])


def sample_clock_hz(variant) -> int:
    """The SysTick clock the run stage measures the firmware with: the emulator's, or the chip's on a probe."""
    emulator = variant.emulator
    return emulator.systick_hz if emulator is not None else variant.board.clock_hz


def realtime_settings(sensor: dict, data: dict, clock: int, board_name: str) -> dict:
    """What the real-time loop is rendered from (the `sensor:` and `data:` sections, the SysTick clock): the
    window, axes and hop, and the sample period in SysTick ticks, split into exceptions of at most 2^24 ticks."""
    window = int(sensor["window"])
    hop = int(data.get("hop") or window)
    rate = float(sensor["sample_rate_hz"])
    ticks = round(clock / rate)
    if ticks < MIN_TICKS_PER_SAMPLE:
        raise UserError(f"sensor.sample_rate_hz: {rate:,g} Hz is too fast for the real-time loop on "
                        f"{board_name}: its SysTick runs at {clock:,} Hz, {ticks} ticks per sample, and "
                        f"the sampling interrupt needs at least {MIN_TICKS_PER_SAMPLE}",
                        f"lower sensor.sample_rate_hz to at most {clock // MIN_TICKS_PER_SAMPLE:,} Hz")
    interrupts = -(-ticks // SYSTICK_MAX_TICKS)
    return {"window": window, "axes": len(sensor["axes"]), "hop": hop, "clock_hz": clock,
            "ticks_per_interrupt": round(ticks / interrupts), "interrupts_per_sample": interrupts}


def render_realtime_config(settings: dict, reference: dict) -> str:
    """src/realtime_config.rs: the real-time loop's window, hop and sample clock (`realtime_settings`), and the
    test windows' quantization, with which the emulated sensor turns them back into real values."""
    scale, zero_point = float(reference.get("input_scale") or 0.0), int(reference.get("input_zero_point") or 0)
    return (
        "// Rendered by tinypipe from project.yaml (`sensor:`, `data.hop`), the board's SysTick clock and the\n"
        "// reference stage (the input quantization) for the real-time loop (src/realtime.rs).\n\n"
        f"pub const WINDOW: usize = {settings['window']};\n"
        f"pub const AXES: usize = {settings['axes']};\n"
        f"pub const HOP: usize = {settings['hop']};\n"
        "/// One sample every TICKS_PER_INTERRUPT x INTERRUPTS_PER_SAMPLE SysTick ticks at "
        f"{settings['clock_hz']:,} Hz.\n"
        f"pub const TICKS_PER_INTERRUPT: u32 = {settings['ticks_per_interrupt']};\n"
        f"pub const INTERRUPTS_PER_SAMPLE: u32 = {settings['interrupts_per_sample']};\n"
        "/// The test windows' input quantization: the emulated sensor's way back to real values (a `raw-input`\n"
        "/// sensor delivers the raw readings instead).\n"
        "#[cfg_attr(feature = \"raw-input\", allow(dead_code))]\n"
        f"pub const INPUT_SCALE: f32 = {scale!r};\n"
        "#[cfg_attr(feature = \"raw-input\", allow(dead_code))]\n"
        f"pub const INPUT_ZERO_POINT: i32 = {zero_point};\n"
    )


def has_realtime_loop(variant, reference: dict) -> bool:
    """The loop needs a model whose input is one sensor window (`[window, axes]`) or its features; a model
    imported for other inputs is only replayed."""
    sensor = variant.config["sensor"]
    return (int(reference.get("input_len", -1)) == int(sensor["window"]) * len(sensor["axes"])
            or "features" in reference)


def render_features_config(features: dict) -> str:
    """src/features_config.rs: the features the firmware computes from each raw window (reference.json
    `features`, the features stage's spec)."""
    if features["kind"] != "spectral":
        raise ValueError(f"the firmware template cannot compute {features['kind']!r} features")
    table = features["twiddles"]
    rows = [", ".join(str(v) for v in table[i:i + 16]) for i in range(0, len(table), 16)]
    twiddles = "[\n    " + ",\n    ".join(rows) + ",\n]" if len(table) > 16 else "[" + ", ".join(map(str, table)) + "]"
    filt = features.get("filter")
    described = f"{filt['type']} at {filt['cutoff_hz']:g} Hz (Q28 biquad)" if filt else "none"
    coefficients = f"Some([{', '.join(map(str, filt['coefficients']))}])" if filt else "None"
    return (
        "// Rendered by tinypipe from the features stage (reference.json `features`): the spectral features\n"
        "// the firmware computes from each raw window (src/features.rs).\n"
        f"// filter: {described}\n\n"
        f"pub const WINDOW: usize = {features['window']};\n"
        f"pub const AXES: usize = {features['axes']};\n"
        f"pub const FFT_LENGTH: usize = {features['fft_length']};\n"
        f"pub const PEAKS: usize = {features['peaks']};\n"
        f"pub const TWIDDLES: [i16; FFT_LENGTH] = {twiddles};\n"
        f"pub const FILTER: Option<[i32; 5]> = {coefficients};\n"
    )


def render_audio_config(features: dict) -> str:
    """src/audio_config.rs: the audio front end's lengths and tables (`features.kind: mfcc | log_mel`), from the
    features stage's spec (reference.json `features`)."""
    from tinypipe.stages._features import mfcc

    return ("// Rendered by tinypipe from the features stage (reference.json `features`): the audio front end the\n"
            "// firmware runs on each raw window (src/features_audio.rs), its tables computed at build time.\n"
            + mfcc.rust_config(mfcc.front_end(features), int(features["window"])))


def enable_features(cargo_toml: str, features: list[str]) -> str:
    """Cargo.toml with `features` on by default; unchanged for none."""
    if not features:
        return cargo_toml
    if "\n[features]\n" not in cargo_toml:
        raise ValueError("the firmware template's Cargo.toml has no [features] table")
    for feature in features:
        if not re.search(rf"^{re.escape(feature)} = ", cargo_toml, re.M):
            raise ValueError(f"the firmware template's Cargo.toml has no feature {feature!r}")
    default = ", ".join(json.dumps(feature) for feature in features)
    return cargo_toml.replace("\n[features]\n", f"\n[features]\ndefault = [{default}]\n", 1)


def set_opt_level(cargo_toml: str, opt_level: str | None) -> str:
    """Cargo.toml with the release profile's `opt-level` replaced (an engine's `opt_level` in codegen.json,
    e.g. the native engine's `size` mode); unchanged for None."""
    if opt_level is None:
        return cargo_toml
    if opt_level not in OPT_LEVELS:
        raise ValueError(f"codegen.json asks for opt-level {opt_level!r}; cargo knows {', '.join(OPT_LEVELS)}")
    profile = re.search(r"^\[profile\.release\]\n(?:[^\[\n].*\n|\n)*", cargo_toml, re.M)
    line = re.compile(r"^opt-level = .*$", re.M)
    if profile is None or not line.search(profile.group(0)):
        raise ValueError("the firmware template's Cargo.toml has no opt-level in [profile.release]")
    value = opt_level if opt_level.isdigit() else json.dumps(opt_level)
    section = line.sub(f"opt-level = {value}", profile.group(0), count=1)
    return cargo_toml[:profile.start()] + section + cargo_toml[profile.end():]


def _config(variant) -> dict:
    board = variant.board
    hal = variant.config.get("hal")
    config = {
        "board": board.name,
        "memory": {"flash": [board.flash.origin, board.flash.size], "ram": [board.ram.origin, board.ram.size],
                   "stack_bytes": board.stack_bytes},
        "engine": variant.engine,
        "hal": hal,
        "template": template_hash(),
    }
    if profiles_layers(variant):
        config["profile_layers"] = True
    if board.support:  # the application reads the sensor: its window and rate are compiled in
        config["support"] = board.support
        config["sensor"] = {k: variant.config["sensor"][k] for k in ("window", "sample_rate_hz")}
    sensor = variant.config["sensor"]
    config["realtime"] = {"window": sensor["window"], "axes": len(sensor["axes"]),
                          "hop": variant.config["data"].get("hop"), "sample_rate_hz": sensor["sample_rate_hz"],
                          "clock_hz": sample_clock_hz(variant)}
    return config


STAGE = Stage(name="firmware", version="4", needs=("codegen", "reference"), config=_config,
              description="render the no_std cargo project from firmware-template/")


def render_linker_script(board) -> str:
    text = (template_dir() / LINKER_TEMPLATE).read_text()
    return string.Template(text).substitute(
        board=board.name, flash_origin=f"0x{board.flash.origin:08X}", flash_length=f"0x{board.flash.size:X}",
        ram_origin=f"0x{board.ram.origin:08X}", ram_length=f"0x{board.ram.size:X}", stack_bytes=board.stack_bytes)


def render_app_config(reference: dict, sensor: dict) -> str:
    """src/app_config.rs: what a board's application must know about its sensor window and the classes (the
    model's input conversion is `model::input_from_real`, the declared scaling's step or the features)."""
    window, axes = int(sensor["window"]), len(sensor["axes"])
    rate = max(1, round(float(sensor["sample_rate_hz"])))
    classes = ", ".join(rust_string(str(c)) for c in reference.get("classes") or [])
    return (
        "// Rendered by tinypipe from project.yaml (`sensor:`) and the reference stage (the class names) for the\n"
        "// board's application: the `app_config` module of its src/board/<support>.rs.\n\n"
        f"pub const WINDOW: usize = {window};\n"
        f"pub const SAMPLE_RATE_HZ: u32 = {rate};\n"
        f"pub const CLASSES: &[&str] = &[{classes}];\n\n"
        "// the window the application keeps: the model input, or with features the raw samples behind them\n"
        f"const _: () = assert!(crate::TEST_WINDOW_LEN == WINDOW * {axes}, "
        f"\"a window must be WINDOW samples of {axes} axes\");\n"
    )


def render_raw_input(raw_input: dict) -> str:
    """src/raw_input.rs: the declared input scaling's fixed-point step per axis (reference.json `raw_input`)."""
    axes = int(raw_input["axes"])

    def array(values) -> str:
        return "[" + ", ".join(str(int(v)) for v in values) + "]"

    scaling = raw_input["scaling"]
    return (
        "// Rendered by tinypipe from the reference stage (`raw_input`): per axis, raw int16 sample -> int8 model\n"
        "// input, folding the declared scaling, (raw - offset) * scale, and the input quantization into\n"
        "// `tinyml_kernels::quantize_raw_i16`'s multiplier, bias and shift.\n"
        f"// scaling ({scaling['how']}): offset {', '.join(f'{v:.6g}' for v in scaling['offset'])}\n"
        f"//   scale {', '.join(f'{v:.6g}' for v in scaling['scale'])}\n\n"
        f"pub const AXES: usize = {axes};\n"
        f"pub const MULTIPLIER: [i32; AXES] = {array(raw_input['multiplier'])};\n"
        f"pub const BIAS: [i64; AXES] = {array(raw_input['bias'])};\n"
        f"pub const SHIFT: [u32; AXES] = {array(raw_input['shift'])};\n"
    )


def render_hal_manifest(cargo_toml: str, crates) -> str:
    """Cargo.toml with the `hal:` crates added to [dependencies], for builds that can reach crates.io."""
    lines = []
    for crate in crates:
        if not CRATE_NAME.fullmatch(crate.crate):  # the schema refuses these; a key is never escaped, so check
            raise UserError(f"hal: {crate.crate!r} is not a crate name", "crates.io names are letters, digits, "
                            "`-` and `_`, starting with a letter")
        inline = f"version = {toml_string(crate.version)}"
        if crate.features:
            inline += f", features = [{', '.join(toml_string(f) for f in crate.features)}]"
        lines.append(f"{crate.crate} = {{ {inline} }}")
    if "\n[dependencies]\n" not in cargo_toml:
        raise ValueError("the firmware template's Cargo.toml has no [dependencies] table")
    header = ("# Cargo.toml plus the crates.io crates from `hal:`, rendered by tinypipe.\n"
              "# tinypipe builds the offline Cargo.toml next to this file; to use these crates, copy this file over\n"
              "# it and build with network access. src/rt.rs provides the vector table and reset handler: with\n"
              "# cortex-m-rt (or a HAL's `rt` feature) drop `mod rt;` and mark `main` with `#[cortex_m_rt::entry]`.\n")
    deps = "".join(f"{line}\n" for line in lines)
    return header + cargo_toml.replace("\n[dependencies]\n", f"\n[dependencies]\n{deps}", 1)


def _inside(root: Path, relative: str, what: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise ValueError(f"{what} {relative!r} is not a file inside the codegen entry {root}")
    return path


def copy_engine_output(codegen: Path, project: Path) -> None:
    """model.rs, the files it pulls in, and the engine's link manifest with its archives (see the module doc)."""
    src = project / "src"
    model_rs = (codegen / "model.rs").read_text()
    shutil.copyfile(codegen / "model.rs", src / "model.rs")
    if (codegen / "model").is_dir():
        shutil.copytree(codegen / "model", src / "model")
    for relative in sorted(set(INCLUDED_FILE.findall(model_rs))):
        source = _inside(codegen, relative, "model.rs includes")
        target = src / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    if (codegen / "link.json").is_file():
        manifest = read_json(codegen / "link.json")
        (project / "link").mkdir()
        static_libs = []
        for relative in manifest.get("static_libs", []):
            name = Path(relative).name
            shutil.copyfile(_inside(codegen, relative, "link.json names the archive"), project / "link" / name)
            static_libs.append(f"link/{name}")
        atomic_write_text(project / "link.json", json.dumps(
            {"static_libs": static_libs, "search_dirs": manifest.get("search_dirs", []),
             "libs": manifest.get("libs", [])}, indent=2, sort_keys=True) + "\n")


def footprint(codegen: Path, test_inputs: Path, board) -> Footprint:
    """The model's memory needs from the engine's codegen.json (native: weight_bytes; otherwise the files
    model.rs includes, e.g. TFLM's flatbuffer)."""
    info = read_json(codegen / "codegen.json") if (codegen / "codegen.json").is_file() else {}
    weights = info.get("weight_bytes")
    if weights is None:
        model_rs = (codegen / "model.rs").read_text()
        weights = sum((codegen / rel).stat().st_size for rel in set(INCLUDED_FILE.findall(model_rs))
                      if (codegen / rel).is_file())
    return Footprint(arena_bytes=int(info.get("arena_bytes") or 0), scratch_bytes=int(info.get("scratch_bytes") or 0),
                     weight_bytes=int(weights), test_input_bytes=test_inputs.stat().st_size,
                     stack_bytes=board.stack_bytes)


def refuse_audio_features_without_microphone(features: dict | None, board) -> None:
    """A board's own application computes the features from its sensor: sound features need a microphone."""
    if not (features and features["kind"] in AUDIO_KINDS and board.support):
        return
    if board.sensor is not None and board.sensor.kind == "microphone":
        return
    sensor = f"its {board.sensor.part} {board.sensor.kind}" if board.sensor else "no sensor"
    raise UserError(f"features.kind: {features['kind']} computes features of sound, but {board.name}'s own "
                    f"application reads {sensor}",
                    "run the sound pipeline on an emulated board (`tinypipe boards`), or give this board a "
                    "motion project (`features.kind: spectral` or `raw`)")


def _check_test_inputs(ctx: StageContext, test_inputs: Path, raw: bool, window_len: int | None) -> None:
    size = test_inputs.stat().st_size
    meta_path = ctx.inputs["reference"] / "reference.json"
    if size == 0:
        raise UserError(f"{test_inputs} is empty: the firmware needs at least one test window",
                        "give the test split more samples (data.samples_per_class, data.split.test)")
    if meta_path.is_file():
        meta = read_json(meta_path)
        from tinypipe.tflite.reader import DTYPE_SIZES

        itemsize = 2 if raw else DTYPE_SIZES.get(meta.get("input_dtype", "int8"), 1)
        values = window_len or meta.get("input_len", 0)  # with features: one raw window's samples
        expected = meta.get("n", 0) * values * itemsize
        if expected and size != expected:
            raise ValueError(f"{test_inputs} has {size} bytes, reference.json says {meta['n']} x "
                             f"{values} x {itemsize} = {expected}")


def run(ctx: StageContext) -> StageResult:
    template = find_template()
    model_rs = ctx.inputs["codegen"] / "model.rs"
    reference = read_json(ctx.inputs["reference"] / "reference.json")
    raw_input = reference.get("raw_input")  # a declared input scaling: the firmware replays raw windows
    # the reference stage's raw int16 windows (its RAW_INPUTS) with a scaling, else the model's inputs
    test_inputs = ctx.inputs["reference"] / ("test_raw.bin" if raw_input else "test_inputs.bin")
    for required in (model_rs, test_inputs):
        if not required.is_file():
            raise FileNotFoundError(f"upstream output missing: {required}")
    features = reference.get("features")  # computed features: the firmware computes them from raw windows
    _check_test_inputs(ctx, test_inputs, bool(raw_input), features and features["window"] * features["axes"])

    check_fit(ctx.variant.board, footprint(ctx.inputs["codegen"], test_inputs, ctx.variant.board))

    board = ctx.variant.board
    if not board.buildable:
        raise UserError(f"tinypipe cannot build firmware for board {board.name} yet: {board.notes[0]}",
                        "pick another board (`tinypipe boards`)")
    refuse_audio_features_without_microphone(features, board)
    if board.support and not (template / BOARD_SUPPORT_DIR / f"{board.support}.rs").is_file():
        raise FileNotFoundError(f"board support {BOARD_SUPPORT_DIR}/{board.support}.rs is missing from the "
                                f"firmware template {template}")

    project = ctx.out / "project"
    copy_template(project, without=(LINKER_TEMPLATE, *STANDINS))
    reference = read_json(ctx.inputs["reference"] / "reference.json")
    if board.support:
        atomic_write_text(project / "src" / "app_config.rs",
                          render_app_config(reference, ctx.variant.config["sensor"]))
    if raw_input:
        atomic_write_text(project / "src" / "raw_input.rs", render_raw_input(raw_input))
    if features:
        audio = features["kind"] in AUDIO_KINDS
        atomic_write_text(project / "src" / ("audio_config.rs" if audio else "features_config.rs"),
                          render_audio_config(features) if audio else render_features_config(features))
    realtime = has_realtime_loop(ctx.variant, reference)
    if realtime:
        settings = realtime_settings(ctx.variant.config["sensor"], ctx.variant.config["data"],
                                     sample_clock_hz(ctx.variant), board.name)
        atomic_write_text(project / "src" / "realtime_config.rs", render_realtime_config(settings, reference))
    copy_engine_output(ctx.inputs["codegen"], project)
    (project / "data").mkdir(exist_ok=True)
    shutil.copyfile(test_inputs, project / "data" / "test_inputs.bin")
    atomic_write_text(project / "link.x", render_linker_script(board))
    codegen_json = ctx.inputs["codegen"] / "codegen.json"
    opt_level = read_json(codegen_json).get("opt_level") if codegen_json.is_file() else None
    atomic_write_text(project / "Cargo.toml", set_opt_level(
        enable_features((project / "Cargo.toml").read_text(),
                        cell_features(ctx.variant, realtime) + (["raw-input"] if raw_input else [])
                        + (["features"] if features else [])
                        + (["audio-features"] if features and features["kind"] in AUDIO_KINDS else [])), opt_level))
    hal = ctx.variant.project.hal
    if hal:
        atomic_write_text(project / "Cargo.hal.toml", render_hal_manifest((project / "Cargo.toml").read_text(), hal))
    return {"board": ctx.variant.board.name, "project_hash": sha256_tree(project),
            "hal": [crate.crate for crate in hal] if hal else None, "realtime": realtime}
