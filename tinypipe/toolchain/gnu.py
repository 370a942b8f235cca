"""The GNU Arm Embedded tools the firmware links with: ld, libgcc (arithmetic helpers), newlib's libc (mem*)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tinypipe.core.errors import UserError
from tinypipe.toolchain.cache import cached_output, first_line

GCC = "arm-none-eabi-gcc"
LD = "arm-none-eabi-ld"
OBJCOPY = "arm-none-eabi-objcopy"
APT_HINT = "apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi"


def find(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise UserError(f"required tool `{tool}` not found on PATH", APT_HINT)
    return path


def version(tool: str) -> str:
    """First line of `tool --version`, or `missing` (stage keys must be computable without the tool)."""
    path = shutil.which(tool)
    return first_line(cached_output(path, ["--version"])) if path else "missing"


def cpu_flags(cpu: str, triple: str) -> list[str]:
    """gcc flags selecting the multilib that matches rustc's (triple, target-cpu): same ISA, same float ABI."""
    return [f"-mcpu={cpu}", "-mthumb", "-mfloat-abi=hard" if triple.endswith("eabihf") else "-mfloat-abi=soft"]


def library(name: str, cpu: str, triple: str) -> Path:
    """A library of the multilib for (cpu, triple): `libgcc.a` or newlib's `libc.a`."""
    gcc = find(GCC)
    flags = cpu_flags(cpu, triple)
    query = "-print-libgcc-file-name" if name == "libgcc.a" else f"-print-file-name={name}"
    path = Path(cached_output(gcc, [*flags, query]))
    if not path.is_absolute() or not path.is_file():
        hint = APT_HINT if name == "libgcc.a" else "apt-get install -y libnewlib-arm-none-eabi"
        raise UserError(f"{GCC} has no {name} for {' '.join(flags)} (it answered {str(path)!r})", hint)
    return path.resolve()
