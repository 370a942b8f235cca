"""Run a firmware ELF on a QEMU Cortex-M machine and collect its semihosting output.

`-icount shift=0` makes the virtual clock advance exactly 1 ns per instruction, so the firmware's SysTick
readings count instructions (never cycles); `sleep=off` lets the clock jump to the next timer deadline while the
core sleeps (WFI), so the real-time loop's idle time between samples costs no wall time. `-semihosting-config enable=on,target=native` gives the firmware
console output and an exit status (0 for ADP_Stopped_ApplicationExit, 1 otherwise); `-monitor none
-serial none` keep QEMU's own console and the UART off stdout.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tinypipe.core.errors import UserError
from tinypipe.toolchain import tools

DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class QemuResult:
    output: str  # semihosting console output (and any QEMU diagnostics)
    returncode: int
    seconds: float = 0.0


class QemuTimeout(UserError):
    """The firmware did not exit in time; QEMU was killed."""

    def __init__(self, elf: Path, machine: str, timeout_s: float, output: str):
        tail = "\n".join(output.strip().splitlines()[-10:])
        super().__init__(
            f"{elf} did not finish on QEMU {machine} within {timeout_s:g} s (QEMU was stopped); last output:\n"
            f"{tail or '(none)'}",
            "the firmware hangs or the model is too slow to emulate: raise the limit with TINYPIPE_QEMU_TIMEOUT "
            "(seconds)")
        self.output = output


def qemu_version() -> str:
    """`qemu-system-arm --version` first line ($TINYPIPE_QEMU's when set), or `missing`."""
    return tools.version(tools.QEMU)


def default_timeout() -> float:
    value = os.environ.get("TINYPIPE_QEMU_TIMEOUT")
    try:
        return float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise UserError(f"TINYPIPE_QEMU_TIMEOUT={value!r} is not a number of seconds") from None


def command(elf: Path, machine: str, icount: bool = True) -> list[str]:
    """The QEMU command line running `elf` (see the module doc); `icount=False` lets QEMU run as fast as it can
    where nothing is timed."""
    return [tools.find(tools.QEMU), "-machine", machine, "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", *(["-icount", "shift=0,sleep=off"] if icount else []),
            "-kernel", str(elf)]


def run_elf(elf: Path, machine: str, timeout_s: float | None = None, icount: bool = True) -> QemuResult:
    """Run `elf` on `machine` until it exits through semihosting; QemuTimeout after `timeout_s` seconds."""
    timeout_s = default_timeout() if timeout_s is None else timeout_s
    argv = command(Path(elf), machine, icount)
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout_s)  # on timeout, subprocess.run kills QEMU and reaps it
        # (not core.proc.run: QEMU must not inherit a terminal on stdin, which -nographic would switch to raw)
    except subprocess.TimeoutExpired as exc:
        partial = exc.output or b""
        raise QemuTimeout(Path(elf), machine, timeout_s, partial.decode(errors="replace")) from None
    return QemuResult(output=proc.stdout.decode(errors="replace"), returncode=proc.returncode,
                      seconds=round(time.monotonic() - started, 3))
