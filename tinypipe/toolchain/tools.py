"""The external tools (GNU Arm, QEMU, bindgen): which binary to call, and its version for stage keys.

Every stage key holds the versions of the tools it runs, so every `tinypipe run` asks for them: the answers come
from the on-disk cache of `cache.py` (keyed by the binary's path, mtime and size), so a no-op run spawns nothing.
A tool that is not installed has the version `missing`: keys, `status` and `plan` work without it, and the stage
that runs it raises the UserError with the install command (`find`). Rust has its own discovery (`rust.py`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tinypipe.core import proc
from tinypipe.core.errors import UserError
from tinypipe.core.snapshot import per_snapshot
from tinypipe.toolchain.cache import cached_output, first_line

GCC = "arm-none-eabi-gcc"
GXX = "arm-none-eabi-g++"
LD = "arm-none-eabi-ld"
AR = "arm-none-eabi-ar"
OBJCOPY = "arm-none-eabi-objcopy"
QEMU = "qemu-system-arm"
BINDGEN = "bindgen"
CLANG = "clang"
MISSING = "missing"

# environment variables naming the binary to call instead of the one on PATH
OVERRIDES = {QEMU: "TINYPIPE_QEMU"}


def locate(tool: str) -> str | None:
    """The binary for `tool`: its override variable's value, else the one on PATH; None when there is none."""
    override = os.environ.get(OVERRIDES.get(tool, ""))
    if override:
        return override if Path(override).is_file() else None
    return shutil.which(tool)


def find(tool: str) -> str:
    """The binary for `tool`, or a UserError saying how to install it."""
    path = locate(tool)
    if path is None:
        override = os.environ.get(OVERRIDES.get(tool, ""))
        where = f" ({OVERRIDES[tool]}={override})" if override else " on PATH"
        raise UserError(f"`{tool}` not found{where}", proc.apt_hint(tool))
    return path


@per_snapshot
def version(tool: str) -> str:
    """First line of `tool --version`, asked once per binary (see the module doc), or `missing`."""
    path = locate(tool)
    if path is None:
        return MISSING
    try:
        return first_line(cached_output(path, ["--version"])) or tool
    except proc.ToolFailed as exc:  # the stage that runs it reports the failure; a key only has to differ
        return f"unusable (`{tool} --version` exited with {exc.returncode})"
