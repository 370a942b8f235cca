"""Stage `crates`: the firmware's dependency crates (the kernel crate) compiled for one toolchain, ahead of any
model, so that it runs while the model trains and every cell of the toolchain links against it.

The kernel crate is about half of a firmware build. It depends only on the toolchain and the template, so this
stage needs nothing but the toolchain: in a matrix, each toolchain's kernels compile side by side with the
training, once, and each cell's `build` starts from this stage's cargo target directory and compiles only the
firmware crate. The build stage is `helped_by` this stage rather than `needs` it: the output does not feed its
key (the ELF is the same bytes with or without it), and cargo, not tinypipe, decides what is fresh, so a
mismatch costs time, never correctness.

The template is compiled exactly as a cell's build compiles its rendered project (same workspace layout,
profile and crate flags; the sysroot through a `.sysroot` link and the working directory remapped, so no flag
names a path on this machine), except that its firmware crate is a `compile_error!`: cargo compiles the kernel
crate, then stops where the firmware crate would start (compiling and linking it here would be wasted: a matrix
cell often has a toolchain of its own).

Outputs: `target/` (cargo's target directory without the firmware crate's artifacts and without what names
the directory it was built in: dep-info `.d` files, `.rustc_info.json`, locks; `root-output` pointed at a fixed
path; cargo's binary dep-info in a canonical order: the same bytes wherever it is built) and `crates.json`:
`kernels`, the hash of the kernel crate compiled.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from pathlib import Path

from tinypipe.core import proc
from tinypipe.core.fs import atomic_write_json, read_json
from tinypipe.stages._template import (KERNELS_FILE, age_tree, cargo_firmware, copy_template, kernels_tree_hash,
                                       template_hash)
from tinypipe.stages.base import Stage, StageContext, StageResult

KERNEL_CRATE = "tinyml_kernels"  # firmware-template/kernels: the artifacts (lib, build script) kept
FIRMWARE_CRATES = ("tinypipe-firmware", "tinypipe_firmware", "firmware")  # the template's own: dropped
DROPPED = (".rustc_info.json", ".cargo-lock", ".cargo-build-lock", ".cargo-artifact-lock")
ROOT_OUTPUT = "root-output"
STOP_MESSAGE = "tinypipe crates stage: the dependencies are compiled"
STOP_MAIN_RS = f'compile_error!("{STOP_MESSAGE}");\n'  # the firmware crate, as the crates stage builds it
PLACEHOLDER_TARGET = "/tinypipe/target"


def _config(variant) -> dict:
    return {"template": template_hash()}


STAGE = Stage(name="crates", version="1", needs=("toolchain",), config=_config,
              description="compile the kernel crate for the toolchain, while the model trains")


def run(ctx: StageContext) -> StageResult:
    toolchain_entry = ctx.inputs["toolchain"]
    toolchain = read_json(toolchain_entry / "toolchain.json")
    with tempfile.TemporaryDirectory(prefix="tinypipe-crates-") as tmp:
        project, target = Path(tmp) / "project", Path(tmp) / "target"
        copy_template(project)
        # the firmware crate itself is not wanted here: it stops at once, after cargo compiled what it depends on
        (project / "src" / "main.rs").write_text(STOP_MAIN_RS)
        age_tree(project)
        ctx.log(f"cargo rustc --release --offline --target {toolchain['triple']} (the template's dependencies)")
        try:
            cargo_firmware(toolchain, toolchain_entry, project, target)
        except proc.ToolFailed as error:
            if STOP_MESSAGE not in error.output or not _kernels_compiled(target, toolchain["triple"]):
                raise
        else:
            raise RuntimeError("the stand-in firmware crate compiled although it stops with compile_error!")
        kernels = kernels_tree_hash(project)
        files = _keep(target, ctx.out / "target")
    atomic_write_json(ctx.out / KERNELS_FILE, {"kernels": kernels})
    return {"files": files, "triple": toolchain["triple"]}


def _kernels_compiled(target: Path, triple: str) -> bool:
    return any((target / triple / "release" / "deps").glob(f"lib{KERNEL_CRATE}-*.rlib"))


def _is_firmware(name: str) -> bool:
    return any(name == crate or name.startswith(f"{crate}-") or name.startswith(f"lib{crate}-")
               or name.startswith(f"{crate}.") for crate in FIRMWARE_CRATES)


def _keep(source: Path, dest: Path) -> int:
    """Copy what a later build reuses, in a form that does not depend on where it was built."""
    count = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(_is_firmware(part) for part in relative.parts) or path.name in DROPPED \
                or path.suffix == ".d" or "incremental" in relative.parts or "examples" in relative.parts:
            continue
        out = dest / relative
        if path.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.name == ROOT_OUTPUT:  # cargo rewrites this prefix in the build script's output when it moves
            out.write_text(path.read_text().replace(str(source), PLACEHOLDER_TARGET))
        elif path.parent.parent.name == ".fingerprint" and path.name.startswith("dep-"):
            out.write_bytes(canonical_dep_info(path.read_bytes()))
        else:
            shutil.copy2(path, out)
        count += 1
    return count


def canonical_dep_info(data: bytes) -> bytes:
    """Cargo's binary dep-info with its files in sorted order (cargo writes them in hash-map order), or `data`
    unchanged when it is not in the layout this reads: `<6-byte header> <u32 n> n x (<u8 kind> <u32 len>
    <path> <u8 0: no checksum>) <rest: the environment>`."""
    try:
        header, (count,) = data[:6], struct.unpack_from("<I", data, 6)
        at, entries = 10, []
        for _ in range(count):
            kind, length = struct.unpack_from("<BI", data, at)
            end = at + 5 + length
            if data[end] != 0:  # a checksum follows: a layout this does not know
                return data
            entries.append(data[at:end + 1])
            at = end + 1
        if at > len(data):
            return data
    except (struct.error, IndexError):
        return data
    return header + struct.pack("<I", count) + b"".join(sorted(entries)) + data[at:]
