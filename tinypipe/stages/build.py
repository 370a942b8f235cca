"""Stage `build`: `cargo build --release --offline` of the rendered firmware project; ELF, bin, hex and sizes.

The project is copied to a temporary directory outside the store and built there with the toolchain entry's
rustc and sysroot. The flags go into `.cargo/config.toml` (so the copy can be rebuilt by hand) and, with the
same content, into `CARGO_ENCODED_RUSTFLAGS`, which outranks any RUSTFLAGS the user has set. The build path is
remapped (`--remap-path-prefix`), so the ELF is byte-identical wherever and however often it is built.

Outputs: `firmware.elf`, `firmware.bin` (flash image from the ELF's load addresses, starting at the lowest),
`firmware.hex` (the same bytes as Intel HEX, each record at its absolute address, for flashing tools) and `size.json`:
`text`, `rodata`, `data`, `bss`, `stack` (the linker script's reservation), `flash_bytes` (text + rodata +
.data initialisers), `test_data_bytes` (the test windows the emulator replays, symbol `TINYPIPE_TEST_INPUTS`),
`app_flash_bytes` (flash without them: what the model, kernels and runtime take on a board) and `ram_bytes`
(data + bss + stack).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

from tinypipe.core import proc
from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_json, atomic_write_text, read_json
from tinypipe.stages.base import Stage, StageContext, StageResult
from tinypipe.toolchain import tools

REMAPPED_ROOT = "/tinypipe/firmware"  # what the build directory is called inside the ELF
BINARY = "firmware"  # the [[bin]] name in firmware-template/Cargo.toml
BUILD_TIMEOUT_S = 3600
TEST_DATA_SYMBOL = "TINYPIPE_TEST_INPUTS"  # firmware-template/src/main.rs


def _config(variant) -> dict:
    return {"triple": variant.triple, "profile": "release"}


def _tools(variant) -> dict:
    return {tools.OBJCOPY: tools.version(tools.OBJCOPY)}  # rustc, cargo, ld: in the toolchain entry


STAGE = Stage(name="build", version="3", needs=("firmware", "toolchain"), config=_config, tools=_tools,
              description="cargo build --release --offline; sizes")


def engine_link_args(project: Path) -> list[str]:
    """The engine's archives and toolchain libraries (its link.json), as one group so their order is free."""
    manifest_path = project / "link.json"
    if not manifest_path.is_file():
        return []
    manifest = read_json(manifest_path)
    return ["--start-group", *manifest["static_libs"], *(f"-L{d}" for d in manifest["search_dirs"]),
            *(f"-l{lib}" for lib in manifest["libs"]), "--end-group"]


def build_rustflags(toolchain: dict, toolchain_entry: Path, build_dir: Path) -> list[str]:
    flags = list(toolchain["rustflags"])
    if toolchain.get("sysroot"):
        flags += ["--sysroot", str(toolchain_entry / toolchain["sysroot"])]
    # Relative paths (link.x, link/*.a) work because rustc runs the linker in the package directory. Link
    # arguments follow the Rust objects: the engine's group first, then libc and libgcc for what is left.
    link_args = ["-Tlink.x", *engine_link_args(build_dir), *toolchain["link_libs"]]
    for arg in link_args:
        flags += ["-C", f"link-arg={arg}"]
    return flags + ["--remap-path-prefix", f"{build_dir}={REMAPPED_ROOT}"]


def cargo_config(triple: str, rustflags: list[str]) -> str:
    def toml_string(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ("# Written by tinypipe: build for the board with the toolchain entry's sysroot and GNU ld.\n"
            f"[build]\ntarget = {toml_string(triple)}\n"
            f"rustflags = [{', '.join(toml_string(flag) for flag in rustflags)}]\n")


def section_sizes(elf_path: Path) -> dict[str, int]:
    """Sizes by kind from the ELF section headers (allocated sections only) and the stack reservation."""
    from elftools.elf.constants import SH_FLAGS
    from elftools.elf.elffile import ELFFile

    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0, "stack": 0, "test_data_bytes": 0}
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        for section in elf.iter_sections():
            flags = section["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC:
                continue
            if section["sh_type"] == "SHT_NOBITS":
                kind = "bss"
            elif flags & SH_FLAGS.SHF_EXECINSTR:
                kind = "text"
            elif flags & SH_FLAGS.SHF_WRITE:
                kind = "data"
            else:
                kind = "rodata"  # includes the vector table
            sizes[kind] += section["sh_size"]
        symtab = elf.get_section_by_name(".symtab")
        stack = symtab.get_symbol_by_name("_stack_size") if symtab else None
        test_data = symtab.get_symbol_by_name(TEST_DATA_SYMBOL) if symtab else None
        if test_data:
            sizes["test_data_bytes"] = test_data[0]["st_size"]
        if stack:
            sizes["stack"] = stack[0]["st_value"]
    sizes["flash_bytes"] = sizes["text"] + sizes["rodata"] + sizes["data"]
    sizes["app_flash_bytes"] = sizes["flash_bytes"] - sizes["test_data_bytes"]
    sizes["ram_bytes"] = sizes["data"] + sizes["bss"] + sizes["stack"]
    return sizes


def _explain_link_failure(error: proc.ToolFailed, board: str) -> None:
    """Turn a firmware that does not fit the board into a UserError; anything else stays a tool failure."""
    ours = re.search(r"ERROR\(tinypipe\): ([^\n]*)", error.output)
    region = re.search(r"region `(\w+)' overflowed by (\d+) bytes", error.output)
    if ours:
        raise UserError(f"the firmware does not fit board {board}: {ours.group(1)}",
                        "shrink the model or choose a board with more memory") from error
    if region:
        raise UserError(f"the firmware does not fit board {board}: {region.group(1)} overflowed by "
                        f"{region.group(2)} bytes", "shrink the model or choose a board with more memory") from error


def run(ctx: StageContext) -> StageResult:
    toolchain_entry = ctx.inputs["toolchain"]
    toolchain = read_json(toolchain_entry / "toolchain.json")
    triple = toolchain["triple"]
    objcopy = tools.find(tools.OBJCOPY)
    with tempfile.TemporaryDirectory(prefix="tinypipe-build-") as tmp:
        build_dir = Path(tmp) / "project"
        shutil.copytree(ctx.inputs["firmware"] / "project", build_dir)
        flags = build_rustflags(toolchain, toolchain_entry, build_dir)
        atomic_write_text(build_dir / ".cargo" / "config.toml", cargo_config(triple, flags))
        env = {
            "RUSTC": toolchain["rustc"], "CARGO_ENCODED_RUSTFLAGS": "\x1f".join(flags),
            "CARGO_TARGET_DIR": str(Path(tmp) / "target"), "CARGO_HOME": str(Path(tmp) / "cargo-home"),
            "CARGO_BUILD_TARGET": triple, "RUSTC_WRAPPER": "", "CARGO_BUILD_RUSTC_WRAPPER": "",
            "CARGO_INCREMENTAL": "0", "CARGO_TERM_COLOR": "never",
        }
        started = time.monotonic()
        ctx.log(f"cargo build --release --offline --target {triple}")
        try:
            proc.run([toolchain["cargo"], "build", "--release", "--offline", "--target", triple],
                     cwd=build_dir, env=env, timeout=BUILD_TIMEOUT_S)
        except proc.ToolFailed as error:
            _explain_link_failure(error, ctx.variant.board.name)
            raise
        seconds = round(time.monotonic() - started, 2)
        elf = Path(tmp) / "target" / triple / "release" / BINARY
        shutil.copyfile(elf, ctx.out / "firmware.elf")
    proc.run([objcopy, "-O", "binary", ctx.out / "firmware.elf", ctx.out / "firmware.bin"])
    proc.run([objcopy, "-O", "ihex", ctx.out / "firmware.elf", ctx.out / "firmware.hex"])
    sizes = section_sizes(ctx.out / "firmware.elf")
    atomic_write_json(ctx.out / "size.json", sizes)
    return {**sizes, "build_seconds": seconds}
