"""Stage `toolchain`: the Rust toolchain and sysroot that build firmware for one (triple, cpu).

Shared between projects (it lives in the user-level cache). When the chosen rustc has no `core` for the target
(Debian's rustc, a rustup toolchain without the target), `core` and `compiler_builtins` are compiled from the
Rust library source into `sysroot/`.

Outputs: `sysroot/` (absent when the rustc already has the target) and `toolchain.json`:
`rustc`, `cargo` (absolute paths), `rustc_version`, `cargo_version`, `triple`, `cpu`, `sysroot` ("sysroot",
relative to this entry, or null), `libgcc`, `libc`, `gcc_flags`, `rustflags` — the compiler and linker flags
every firmware build needs apart from `--sysroot` (an entry does not know its final path) and the linker
script — and `link_libs`, the archives to link after everything else (newlib's libc for memcpy/memset, which
LLVM lowers copies to, and libgcc for the arithmetic helpers).
"""

from __future__ import annotations

import time

from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_json
from tinypipe.core.snapshot import per_snapshot
from tinypipe.stages.base import Stage, StageContext, StageResult
from tinypipe.toolchain import gnu, tools
from tinypipe.toolchain.flags import gcc_flags, rustc_flags
from tinypipe.toolchain.rust import build_sysroot, core_cpu, find_rust


def _config(variant) -> dict:
    config = {"triple": variant.triple, "cpu": variant.cpu}
    if core_cpu(variant.cpu) != variant.cpu:
        config["core_cpu"] = core_cpu(variant.cpu)  # only where it differs: other boards keep their keys
    return config


def _tools(variant) -> dict:
    return _tool_versions(variant.triple)


@per_snapshot
def _tool_versions(triple: str) -> dict:
    gnu_tools = {tools.GCC: tools.version(tools.GCC), tools.LD: tools.version(tools.LD)}
    try:
        tc = find_rust(triple)
    except UserError:
        return {"rustc": tools.MISSING, "cargo": tools.MISSING, **gnu_tools}  # `run` raises the error with its fix
    return {"rustc": tc.version, "cargo": tc.cargo_version(), **gnu_tools}


STAGE = Stage(name="toolchain", version="2", needs=(), config=_config, tools=_tools, shared=True,
              description="Rust sysroot for the target (shared user-level cache)")


def run(ctx: StageContext) -> StageResult:
    variant = ctx.variant
    triple, cpu = variant.triple, variant.cpu
    tools.find(tools.LD)
    tc = find_rust(triple)
    libc, libgcc = gnu.library("libc.a", variant), gnu.library("libgcc.a", variant)
    sysroot_seconds = 0.0
    if not tc.has_target:
        started = time.monotonic()
        build_sysroot(tc, triple, cpu, ctx.out / "sysroot", log=ctx.log)
        sysroot_seconds = round(time.monotonic() - started, 2)
    atomic_write_json(ctx.out / "toolchain.json", {
        "rustc": str(tc.rustc), "cargo": str(tc.cargo), "rustc_version": tc.version,
        "cargo_version": tc.cargo_version(), "triple": triple, "cpu": cpu,
        "sysroot": None if tc.has_target else "sysroot",
        "libgcc": str(libgcc), "libc": str(libc), "gcc_flags": gcc_flags(variant, explicit_fpu=False),
        "rustflags": rustc_flags(variant), "link_libs": [str(libc), str(libgcc)],
    })
    return {"rustc": str(tc.rustc), "sysroot_built": not tc.has_target, "sysroot_seconds": sysroot_seconds}
