"""The firmware template and the kernel crate as the stages see them: where they are, their content hash, and a
copy laid out as the rendered cargo project (`kernels/` inside the template). Shared by the `crates` and
`firmware` stages, which must compose the project identically for cargo to reuse the one's artifacts in the other.

Not a stage (no STAGE).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from tinypipe.core import proc
from tinypipe.core.errors import UserError
from tinypipe.core.fs import read_json
from tinypipe.core.hashing import sha256_json, sha256_tree, tree_hash
from tinypipe.core.paths import kernels_dir, template_dir

REMAPPED_ROOT = "/tinypipe/firmware"  # what the build directory is called inside the ELF
BINARY = "firmware"  # the [[bin]] name in firmware-template/Cargo.toml
BUILD_TIMEOUT_S = 3600
SYSROOT_LINK = ".sysroot"  # in a project being built: a link to the toolchain entry's sysroot
# build products and editor droppings that may sit in a template checkout but are not part of it
IGNORED = ("target", "Cargo.lock", ".cargo", ".git", "__pycache__", "*.swp", "*~")


def template_hash() -> str:
    """Content hash of the template and the kernel crate (cheap: file contents are re-read only after edits)."""
    return sha256_json({"template": tree_hash(template_dir(), IGNORED, skip_top=("kernels",)),
                        "kernels": tree_hash(kernels_dir(), IGNORED)})


def find_template() -> Path:
    """The template directory, after checking that it and the kernel crate are there."""
    template, kernels = template_dir(), kernels_dir()
    if not (template / "Cargo.toml").is_file():
        raise UserError(f"firmware template not found at {template}",
                        "reinstall tinypipe, or set TINYPIPE_FIRMWARE_TEMPLATE to a firmware-template directory")
    if not (kernels / "Cargo.toml").is_file():
        raise UserError(f"kernel crate not found at {kernels}",
                        "reinstall tinypipe, or set TINYPIPE_KERNELS to the tinyml-kernels crate")
    return template


def copy_template(project: Path, without: tuple[str, ...] = ()) -> None:
    """The template at `project` (which must not exist) with the kernel crate at `project/kernels`, leaving out
    `without` (file names or patterns) from the template's own files."""
    shutil.copytree(find_template(), project, ignore=shutil.ignore_patterns(*IGNORED, "kernels", *without))
    shutil.copytree(kernels_dir(), project / "kernels", ignore=shutil.ignore_patterns(*IGNORED))


# --- the project's files as cargo sees them: dated before any compilation --------------------------------------
# The `crates` stage compiles the kernel crate; a cell's build then starts from that target directory. Cargo
# judges a dependency fresh when its sources are older than its last compilation, so both stages date the
# project's files at one fixed moment before any compilation could have happened.

KERNELS_FILE = "crates.json"  # in the crates stage's entry: {"kernels": the hash of the crate it compiled}
PROJECT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the oldest time a zip or tar tool writes


def age_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        os.utime(path, (PROJECT_EPOCH, PROJECT_EPOCH), follow_symlinks=False)


def kernels_tree_hash(project: Path) -> str:
    """The content of the kernel crate inside a rendered project."""
    return sha256_tree(project / "kernels")


# --- compiling a project -----------------------------------------------------------------------------------

def engine_link_args(project: Path) -> list[str]:
    """The engine's archives and toolchain libraries (its link.json), as one group so their order is free."""
    manifest_path = project / "link.json"
    if not manifest_path.is_file():
        return []
    manifest = read_json(manifest_path)
    return ["--start-group", *manifest["static_libs"], *(f"-L{d}" for d in manifest["search_dirs"]),
            *(f"-l{lib}" for lib in manifest["libs"]), "--end-group"]


def crate_rustflags(toolchain: dict) -> list[str]:
    """The flags every crate of a build compiles with, naming no path of this machine: the same for every cell
    of a toolchain wherever it is built, so the `crates` stage's compiled kernels are fresh in any cell's build
    (and a flag's path cannot reach the ELF through cargo's metadata hash). The sysroot is the project's
    `.sysroot` link (`link_sysroot`); the working directory is remapped, so the rlibs do not name it either."""
    flags = list(toolchain["rustflags"])
    if toolchain.get("sysroot"):
        flags += ["--sysroot", SYSROOT_LINK]
    return flags + [f"-Zremap-cwd-prefix={REMAPPED_ROOT}"]


def link_sysroot(toolchain: dict, toolchain_entry: Path, project: Path) -> None:
    if toolchain.get("sysroot"):
        (project / SYSROOT_LINK).symlink_to(toolchain_entry / toolchain["sysroot"], target_is_directory=True)


def link_rustflags(toolchain: dict, build_dir: Path) -> list[str]:
    """The flags of the firmware crate alone (`cargo rustc -- ...`): the link and the build path's remapping."""
    # Relative paths (link.x, link/*.a) work because rustc runs the linker in the package directory. Link
    # arguments follow the Rust objects: the engine's group first, then libc and libgcc for what is left.
    flags = []
    for arg in ["-Tlink.x", *engine_link_args(build_dir), *toolchain["link_libs"]]:
        flags += ["-C", f"link-arg={arg}"]
    return flags + ["--remap-path-prefix", f"{build_dir}={REMAPPED_ROOT}"]


def build_rustflags(toolchain: dict, toolchain_entry: Path, build_dir: Path) -> list[str]:
    """Every flag as one list, for a plain `cargo build` of a project by hand (`.cargo/config.toml`, tests):
    the sysroot by its path, no unstable flag. The firmware behaves the same; its symbol hashes may differ."""
    flags = list(toolchain["rustflags"])
    if toolchain.get("sysroot"):
        flags += ["--sysroot", str(toolchain_entry / toolchain["sysroot"])]
    return flags + link_rustflags(toolchain, build_dir)


def cargo_firmware(toolchain: dict, toolchain_entry: Path, build_dir: Path, target_dir: Path) -> tuple[Path, list[str]]:
    """`cargo rustc --release` of the firmware in `build_dir` into `target_dir`: the ELF's path, and the crates
    cargo compiled (the others it found fresh)."""
    triple = toolchain["triple"]
    flags = crate_rustflags(toolchain)
    link_sysroot(toolchain, toolchain_entry, build_dir)
    env = {
        # -Zremap-cwd-prefix is unstable: the same switch the sysroot's own build uses (toolchain/rust.py)
        "RUSTC_BOOTSTRAP": "1", "RUSTC": toolchain["rustc"], "CARGO_ENCODED_RUSTFLAGS": "\x1f".join(flags),
        "CARGO_TARGET_DIR": str(target_dir), "CARGO_HOME": str(target_dir.parent / "cargo-home"),
        "CARGO_BUILD_TARGET": triple, "RUSTC_WRAPPER": "", "CARGO_BUILD_RUSTC_WRAPPER": "",
        "CARGO_INCREMENTAL": "0", "CARGO_TERM_COLOR": "never",
    }
    done = proc.run([toolchain["cargo"], "rustc", "--release", "--offline", "--target", triple, "--bin", BINARY,
                     "--", *link_rustflags(toolchain, build_dir)], cwd=build_dir, env=env, timeout=BUILD_TIMEOUT_S)
    compiled = re.findall(r"^\s*Compiling (\S+) v", done.stdout, re.M)
    return target_dir / triple / "release" / BINARY, compiled


def cargo_config(triple: str, rustflags: list[str]) -> str:
    def toml_string(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ("# Written by tinypipe: build for the board with the toolchain entry's sysroot and GNU ld.\n"
            f"[build]\ntarget = {toml_string(triple)}\n"
            f"rustflags = [{', '.join(toml_string(flag) for flag in rustflags)}]\n")
