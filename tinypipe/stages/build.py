"""Stage `build`: `cargo rustc --release --offline` of the rendered firmware project; ELF, bin, hex and sizes.

The project is copied to a temporary directory outside the store and built there with the toolchain entry's
rustc and sysroot, starting from the `crates` stage's target directory (the kernel crate compiled ahead, while
the model trains). The flags every crate shares go into `CARGO_ENCODED_RUSTFLAGS`, which outranks any RUSTFLAGS
the user has set; the link flags go to the firmware crate alone (`cargo rustc -- ...`), so they do not make the
kernel crate stale. `.cargo/config.toml` holds all of them (the sysroot by its path, no unstable flag), so the copy
can be rebuilt by hand with `cargo build`: a firmware that behaves the same, though its symbol hashes may differ.
The build path is remapped (`--remap-path-prefix`), so the ELF is byte-identical wherever and
however often it is built; the stage checks that the path is not in it.

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
from tinypipe.stages._template import (BINARY, KERNELS_FILE, age_tree, build_rustflags, cargo_config,  # noqa: F401
                                       cargo_firmware, kernels_tree_hash)
from tinypipe.stages.base import Stage, StageContext, StageResult
from tinypipe.toolchain import tools

TEST_DATA_SYMBOL = "TINYPIPE_TEST_INPUTS"  # firmware-template/src/main.rs


def _config(variant) -> dict:
    return {"triple": variant.triple, "profile": "release"}


def _tools(variant) -> dict:
    return {tools.OBJCOPY: tools.version(tools.OBJCOPY)}  # rustc, cargo, ld: in the toolchain entry


STAGE = Stage(name="build", version="4", needs=("firmware", "toolchain"), helped_by=("crates",), config=_config,
              tools=_tools, description="cargo rustc --release --offline (reusing the compiled crates); sizes")


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
        build_dir, target_dir = Path(tmp) / "project", Path(tmp) / "target"
        shutil.copytree(ctx.inputs["firmware"] / "project", build_dir)
        atomic_write_text(build_dir / ".cargo" / "config.toml",
                          cargo_config(triple, build_rustflags(toolchain, toolchain_entry, build_dir)))
        reused = _reuse_crates(ctx, build_dir, target_dir)
        started = time.monotonic()
        ctx.log(f"cargo rustc --release --offline --target {triple}"
                + (" (dependencies compiled by the crates stage)" if reused else ""))
        try:
            elf, compiled = cargo_firmware(toolchain, toolchain_entry, build_dir, target_dir)
        except proc.ToolFailed as error:
            _explain_link_failure(error, ctx.variant.board.name)
            raise
        seconds = round(time.monotonic() - started, 2)
        if str(Path(tmp)).encode() in elf.read_bytes():  # the remapping's promise; a release depends on it
            raise RuntimeError(f"the build directory {tmp} is named inside the ELF: it would not be reproducible")
        shutil.copyfile(elf, ctx.out / "firmware.elf")
    proc.run([objcopy, "-O", "binary", ctx.out / "firmware.elf", ctx.out / "firmware.bin"])
    proc.run([objcopy, "-O", "ihex", ctx.out / "firmware.elf", ctx.out / "firmware.hex"])
    sizes = section_sizes(ctx.out / "firmware.elf")
    atomic_write_json(ctx.out / "size.json", sizes)
    return {**sizes, "build_seconds": seconds, "reused_crates": reused, "compiled_crates": compiled}


def _reuse_crates(ctx: StageContext, build_dir: Path, target_dir: Path) -> bool:
    """Start from the `crates` stage's target directory when it compiled exactly this project's kernel crate.
    Cargo still judges freshness: the project's files are dated before that compilation, and a dependency
    whose flags, profile or sources differ is compiled again. The firmware crate always is (never in there)."""
    entry = ctx.inputs.get("crates")
    if entry is None:
        return False
    if read_json(entry / KERNELS_FILE)["kernels"] != kernels_tree_hash(build_dir):
        ctx.log("the kernel crate differs from the one the crates stage compiled: compiling it here")
        return False
    shutil.copytree(entry / "target", target_dir, symlinks=True)
    age_tree(build_dir)
    return True
