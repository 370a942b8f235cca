"""Which rustc and cargo build the firmware, and the sysroot (`core` + `compiler_builtins`) they need.

Discovery, in order:
1. `$TINYPIPE_RUSTC` (and `$TINYPIPE_CARGO`, else the cargo next to it): the user's choice, used as is;
2. a rustc on PATH whose sysroot already has `core` for the target (e.g. after `rustup target add`);
3. `/usr/bin/rustc` (Debian's `rustc-web`), then any other rustc on PATH, whose library source is installed:
   these need a sysroot built by `build_sysroot` with that same rustc (rustc rejects a `core` built by
   another version).
A rustup proxy is resolved to the real toolchain binaries under its sysroot, so builds never depend on
rustup's default changing underneath them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from tinypipe.core import proc
from tinypipe.core.errors import UserError
from tinypipe.toolchain.cache import cached_output, first_line

DEBIAN_RUSTC = Path("/usr/bin/rustc")
DEBIAN_CARGO = Path("/usr/bin/cargo")
APT_HINT = "apt-get install -y rustc-web cargo-web rust-web-src"

# The whole compiler_builtins crate: the attributes tell rustc this is the builtins crate (linked last, never
# itself lowered to builtin calls). The helpers themselves come from libgcc and newlib at link time.
COMPILER_BUILTINS_SOURCE = """\
#![feature(compiler_builtins)]
#![compiler_builtins]
#![no_builtins]
#![no_std]
#![allow(internal_features)]
"""


@dataclass(frozen=True)
class RustToolchain:
    rustc: Path  # the real compiler binary (never a rustup proxy)
    cargo: Path
    version: str  # `rustc -vV`
    sysroot: Path  # `rustc --print sysroot`
    has_target: bool  # the sysroot already holds `core` for the triple: no sysroot to build

    @property
    def release(self) -> str:
        match = re.search(r"^release: (\S+)", self.version, re.M)
        return match.group(1) if match else ""

    def cargo_version(self) -> str:
        return first_line(cached_output(self.cargo, ["-V"]))


def _rustc_on_path() -> list[Path]:
    found: list[Path] = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(entry or ".") / "rustc"
        if candidate.is_file() and os.access(candidate, os.X_OK) and candidate.resolve() not in {
                f.resolve() for f in found}:
            found.append(candidate)
    return found


def _has_core(sysroot: Path, triple: str) -> bool:
    return any((sysroot / "lib" / "rustlib" / triple / "lib").glob("libcore*.rlib"))


def _describe(rustc: Path, triple: str, cargo: Path | None = None) -> RustToolchain:
    # cwd "/": no rust-toolchain file of whatever directory we were started in picks the toolchain
    version = cached_output(rustc, ["-vV"], cwd=Path("/"))
    sysroot = Path(cached_output(rustc, ["--print", "sysroot"], cwd=Path("/")))
    real_rustc = sysroot / "bin" / "rustc"
    if not real_rustc.is_file():
        real_rustc = rustc
    if cargo is None:
        sibling = sysroot / "bin" / "cargo"
        on_path = shutil.which("cargo")
        if sibling.is_file():
            cargo = sibling
        elif on_path:
            cargo = Path(on_path)
        else:
            raise UserError(f"found {rustc} but no cargo next to it or on PATH", APT_HINT)
    return RustToolchain(rustc=real_rustc, cargo=cargo, version=version, sysroot=sysroot,
                         has_target=_has_core(sysroot, triple))


def find_rust(triple: str) -> RustToolchain:
    """The toolchain that builds firmware for `triple` (see the module doc for the order)."""
    return _find_rust(triple, os.environ.get("TINYPIPE_RUSTC"), os.environ.get("TINYPIPE_CARGO"),
                      os.environ.get("PATH", ""))


@lru_cache(maxsize=None)
def _find_rust(triple: str, rustc_override: str | None, cargo_override: str | None, _path: str) -> RustToolchain:
    if rustc_override:
        rustc = Path(rustc_override)
        if not rustc.is_file():
            raise UserError(f"TINYPIPE_RUSTC={rustc_override} does not exist",
                            f"point it at a rustc binary, or unset it to use {DEBIAN_RUSTC} ({APT_HINT})")
        cargo = Path(cargo_override) if cargo_override else None
        if cargo is None and (rustc.parent / "cargo").is_file():
            cargo = rustc.parent / "cargo"
        if cargo is not None and not cargo.is_file():
            raise UserError(f"TINYPIPE_CARGO={cargo_override} does not exist", "point it at a cargo binary")
        return _describe(rustc, triple, cargo)

    candidates = _rustc_on_path()
    described: list[RustToolchain] = []
    for rustc in candidates:
        try:
            described.append(_describe(rustc, triple))
        except (UserError, proc.ToolFailed):
            continue  # a broken rustc on PATH (e.g. a proxy without a default toolchain) is not ours to fix
    for tc in described:
        if tc.has_target:
            return tc
    fallback = ([_describe(DEBIAN_RUSTC, triple, DEBIAN_CARGO)]
                if DEBIAN_RUSTC.is_file() and DEBIAN_CARGO.is_file() else [])
    for tc in fallback + described:
        if rust_library_source(tc) is not None:
            return tc
    if not candidates and not fallback:
        raise UserError(f"no Rust compiler found (rustc is not on PATH and {DEBIAN_RUSTC} does not exist)", APT_HINT)
    raise UserError(
        f"no Rust compiler here can build for {triple}: none has the target installed and none has its library "
        "source to build a sysroot from",
        f"{APT_HINT}   (or, with rustup and a network: rustup target add {triple})")


def rust_library_source(tc: RustToolchain) -> Path | None:
    """The `library/` directory of the Rust source matching tc's version, or None."""
    candidates = [tc.sysroot / "lib" / "rustlib" / "src" / "rust" / "library"]
    if tc.release:
        candidates.append(Path(f"/usr/src/rustc-{tc.release}/library"))
    for library in candidates:
        if (library / "core" / "src" / "lib.rs").is_file():
            return library.resolve()
    if shutil.which("dpkg"):
        # Debian's rust-web-src / rust-src, wherever the package put it
        for package in ("rust-web-src", "rust-src"):
            listing = proc.run(["dpkg", "-L", package], check=False).stdout
            for line in listing.splitlines():
                if line.endswith("/library/core/src/lib.rs") and f"rustc-{tc.release}/" in line:
                    return Path(line).parents[2]
    return None


# CPUs whose `core` LLVM cannot compile: rustc 1.96's LLVM aborts on core for cortex-m55 ("Do not know how to
# promote this operator!", with or without MVE). `core` is built for the named CPU of the same ISA instead; the
# firmware itself is still compiled for the real CPU, and fat LTO keeps each function's own target features.
CORE_CPU_FALLBACK = {"cortex-m55": "cortex-m33"}


def core_cpu(cpu: str) -> str:
    """The -C target-cpu `core` is compiled with for a firmware built for `cpu`."""
    return CORE_CPU_FALLBACK.get(cpu, cpu)


def _crate_edition(cargo_toml: Path) -> str:
    match = re.search(r'^edition\s*=\s*"(\d+)"', cargo_toml.read_text(), re.M) if cargo_toml.is_file() else None
    return match.group(1) if match else "2021"


def build_sysroot(tc: RustToolchain, triple: str, cpu: str, dest: Path,
                  log: Callable[[str], None] = lambda message: None) -> Path:
    """Compile `core` and a `compiler_builtins` for (triple, cpu) into `dest` (a sysroot for `--sysroot`).

    Returns the directory holding the rlibs. Takes ~15 s; the toolchain stage caches the result.
    """
    library = rust_library_source(tc)
    if library is None:
        raise UserError(f"the Rust library source for {tc.rustc} ({first_line(tc.version)}) is not installed",
                        f"{APT_HINT}   (or with rustup: rustup component add rust-src)")
    out = Path(dest) / "lib" / "rustlib" / triple / "lib"
    out.mkdir(parents=True, exist_ok=True)
    flags = ["--target", triple, "-C", "opt-level=3", "-C", "panic=abort", "-C", f"target-cpu={core_cpu(cpu)}",
             "-C", "debuginfo=0", "-C", "embed-bitcode=yes",  # bitcode: the firmware is built with LTO
             "--remap-path-prefix", f"{library}=/rustc/library"]  # no machine-specific path in panic messages
    env = {"RUSTC_BOOTSTRAP": "1"}  # core uses unstable features; this is how the Rust build itself compiles it
    started = time.monotonic()
    log(f"building core for {triple} ({core_cpu(cpu)}) with {first_line(tc.version)}")
    proc.run([tc.rustc, "--edition", _crate_edition(library / "core" / "Cargo.toml"), "--crate-type", "rlib",
              "--crate-name", "core", *flags, "--out-dir", out, library / "core" / "src" / "lib.rs"],
             env=env, cwd=Path("/"))
    with tempfile.TemporaryDirectory(prefix="tinypipe-builtins-") as tmp:
        source = Path(tmp) / "compiler_builtins.rs"
        source.write_text(COMPILER_BUILTINS_SOURCE)
        proc.run([tc.rustc, "--edition", "2021", "--crate-type", "rlib", "--crate-name", "compiler_builtins",
                  *flags, "--sysroot", dest, "--remap-path-prefix", f"{tmp}=/tinypipe",
                  "--out-dir", out, source], env=env, cwd=Path("/"))
    log(f"sysroot for {triple} built in {time.monotonic() - started:.1f} s")
    return out
