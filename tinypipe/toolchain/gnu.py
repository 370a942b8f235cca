"""The GNU Arm Embedded libraries the firmware links with: libgcc (arithmetic helpers), newlib's libc (mem*)."""

from __future__ import annotations

from pathlib import Path

from tinypipe.core import proc
from tinypipe.core.errors import UserError
from tinypipe.toolchain.cache import cached_output
from tinypipe.toolchain.flags import Target, gcc_flags
from tinypipe.toolchain.tools import GCC, find


def library(name: str, target: Target) -> Path:
    """A library of the target's multilib: `libgcc.a`, or any other the toolchain ships (`libc.a`, `libnosys.a`)."""
    gcc = find(GCC)
    flags = gcc_flags(target, explicit_fpu=False)
    query = "-print-libgcc-file-name" if name == "libgcc.a" else f"-print-file-name={name}"
    path = Path(cached_output(gcc, [*flags, query]))
    if not path.is_absolute() or not path.is_file():
        hint = proc.apt_hint(GCC if name == "libgcc.a" else "newlib")
        raise UserError(f"{GCC} has no {name} for {' '.join(flags)} (it answered {str(path)!r})", hint)
    return path.resolve()
