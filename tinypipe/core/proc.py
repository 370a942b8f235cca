"""Subprocess helper: run a tool, capture its output, and turn a missing tool into a UserError with the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from tinypipe.core.errors import UserError

INSTALL_HINT = (
    "install the toolchain with `make setup` (or: apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi "
    "qemu-system-arm rustc-web cargo-web rust-web-src bindgen clang)"
)


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


def which(tool: str, hint: str = INSTALL_HINT) -> str:
    path = shutil.which(tool)
    if path is None:
        raise UserError(f"required tool `{tool}` not found on PATH", hint)
    return path


def run(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess:
    """Run argv with stdout and stderr merged into `.stdout`; raise ToolFailed on a non-zero exit when check."""
    argv = [str(a) for a in argv]
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise UserError(f"required tool `{argv[0]}` not found", INSTALL_HINT) from exc
    if _transcript is not None:
        _transcript.write(f"$ {' '.join(argv)}\n{proc.stdout}")
        if proc.returncode != 0:
            _transcript.write(f"(exit {proc.returncode})\n")
        _transcript.flush()
    if check and proc.returncode != 0:
        raise ToolFailed(argv, proc.returncode, proc.stdout)
    return proc
