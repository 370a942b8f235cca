"""Subprocess helper: run a tool, capture its output, and turn a missing tool into a UserError with the fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from tinypipe.core import jobserver
from tinypipe.core.errors import UserError

# The Debian packages each external tool comes from: the one place the install command is spelled out.
_GNU = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi")  # the GNU tools link against newlib's libc
_RUST = ("rustc-web", "cargo-web", "rust-web-src")  # rust-web-src: the library source a sysroot is built from
DEBIAN_PACKAGES: dict[str, tuple[str, ...]] = {
    "arm-none-eabi-gcc": _GNU, "arm-none-eabi-g++": _GNU, "arm-none-eabi-ld": _GNU, "arm-none-eabi-ar": _GNU,
    "arm-none-eabi-objcopy": _GNU, "newlib": ("libnewlib-arm-none-eabi",),
    "qemu-system-arm": ("qemu-system-arm",),
    "rustc": _RUST, "cargo": _RUST, "rust-src": ("rust-web-src",),
    "bindgen": ("bindgen", "clang"),  # bindgen loads libclang
    "clang": ("clang",),
}


def apt_hint(*tools: str) -> str:
    """`apt-get install -y PACKAGES` for the named tools (every tool when none is named)."""
    packages = dict.fromkeys(p for tool in (tools or DEBIAN_PACKAGES) for p in DEBIAN_PACKAGES[tool])
    return "apt-get install -y " + " ".join(packages)


INSTALL_HINT = f"install the toolchain with `make setup` (or: {apt_hint()})"


_transcript = None  # where a stage's tool output is copied (the stage log, in a worker process)


def set_transcript(stream) -> None:
    """Copy every tool's command line and output to `stream` (a worker points it at the stage's log)."""
    global _transcript
    _transcript = stream


class ToolFailed(Exception):
    """A tool ran and failed; carries its command line and output tail for the report."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str):
        tail = "\n".join(output.strip().splitlines()[-40:])
        super().__init__(f"`{' '.join(map(str, argv))}` exited with {returncode}:\n{tail}")
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output


def run(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run argv with stdout and stderr merged into `.stdout`; raise ToolFailed on a non-zero exit when check.
    The tool inherits the jobserver this process runs under (cargo, rustc and make take their job slots from it)."""
    argv = [str(a) for a in argv]
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", timeout=timeout, pass_fds=jobserver.inherited_fds(),
        )
    except FileNotFoundError as exc:
        tool = os.path.basename(argv[0])
        raise UserError(f"required tool `{argv[0]}` not found",
                        apt_hint(tool) if tool in DEBIAN_PACKAGES else INSTALL_HINT) from exc
    if _transcript is not None:
        _transcript.write(f"$ {' '.join(argv)}\n{proc.stdout}")
        if proc.returncode != 0:
            _transcript.write(f"(exit {proc.returncode})\n")
        _transcript.flush()
    if check and proc.returncode != 0:
        raise ToolFailed(argv, proc.returncode, proc.stdout)
    return proc
