"""Flash and run a firmware ELF on a real board through a debug probe, with pyocd's Python API.

`run_elf` flashes the ELF, resets the core, and serves its ARM semihosting requests (pyocd's SemihostAgent;
SYS_EXIT, which pyocd leaves to the caller, ends the run) until the firmware exits or prints `done`. The
output has the same lines as under QEMU, so the run stage parses both alike. On the chip SysTick runs on the
core clock, so the firmware's `ticks` are cycles; boards with DWT also print `cycles` (CYCCNT).

`flash_elf` only programs and resets (`tinypipe flash`). Errors the user can fix — pyocd missing, no probe,
several probes, a target pyocd does not know (a CMSIS pack to install), the wrong chip on the probe — are
UserErrors with the fix. `TINYPIPE_PROBE` selects a probe by unique id.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tinypipe.core.errors import UserError

DEFAULT_TIMEOUT_S = 300.0
SYS_WRITE0, SYS_WRITEC, SYS_EXIT = 0x04, 0x03, 0x18
ADP_STOPPED_APPLICATION_EXIT = 0x20026
PIP_HINT = "pip install pyocd   (in tinypipe's virtualenv)"

# What the chip says it is, read over the probe before flashing: (address, mask, expected value, what it is).
CHIP_IDS = {
    "stm32f407vg": (0xE004_2000, 0xFFF, 0x413, "STM32F405/407 (DBGMCU_IDCODE.DEV_ID 0x413)"),
    "stm32f411re": (0xE004_2000, 0xFFF, 0x431, "STM32F411 (DBGMCU_IDCODE.DEV_ID 0x431)"),
    "nrf52840": (0x1000_0100, 0xFFFF_FFFF, 0x52840, "nRF52840 (FICR.INFO.PART 0x52840)"),
}


@dataclass(frozen=True)
class ProbeResult:
    output: str
    returncode: int  # 0: the firmware exited with ApplicationExit or printed `done`
    probe: str  # the probe's unique id
    seconds: float = 0.0


def available() -> bool:
    return importlib.util.find_spec("pyocd") is not None


def pyocd_version() -> str:
    if not available():
        return "missing"
    from importlib.metadata import version

    return version("pyocd")


def list_probes() -> list[tuple[str, str]]:
    """(unique id, description) of every attached debug probe."""
    if not available():
        raise UserError("pyocd is not installed, so tinypipe cannot talk to debug probes", PIP_HINT)
    from pyocd.core.helpers import ConnectHelper

    probes = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    return [(p.unique_id, p.description) for p in probes]


def _check_board(board) -> None:
    if board.pyocd_target is None:
        raise UserError(f"board {board.name} has no pyocd target, so tinypipe cannot flash it",
                        "pick a board from `tinypipe boards` that names a probe target")
    if not board.buildable:
        raise UserError(f"board {board.name} cannot be flashed: {board.notes[0]}")


def _session(board):
    """An open pyocd session on the one attached probe (or $TINYPIPE_PROBE), for the board's target."""
    probes = list_probes()
    wanted = os.environ.get("TINYPIPE_PROBE")
    if wanted:
        probes = [p for p in probes if p[0] == wanted]
        if not probes:
            raise UserError(f"no debug probe with unique id {wanted} (TINYPIPE_PROBE) is attached",
                            "`tinypipe doctor` lists the attached probes")
    if not probes:
        raise UserError(f"no debug probe attached: connect {board.description} over USB (its ST-LINK, J-Link "
                        "or CMSIS-DAP)", "`tinypipe doctor` lists the probes pyocd sees; on Linux, install the "
                        "probe's udev rules so it is readable without root")
    if len(probes) > 1:
        raise UserError(f"{len(probes)} debug probes are attached: {', '.join(p[0] for p in probes)}",
                        "choose one with TINYPIPE_PROBE=<unique id>")
    from pyocd.core.exceptions import TargetSupportError
    from pyocd.core.helpers import ConnectHelper

    try:
        session = ConnectHelper.session_with_chosen_probe(
            unique_id=probes[0][0], target_override=board.pyocd_target, blocking=False,
            options={"frequency": 4_000_000, "connect_mode": "under-reset", "enable_semihosting": True})
    except TargetSupportError as exc:
        raise UserError(f"pyocd does not know target {board.pyocd_target}: {exc}",
                        f"pyocd pack install {board.pyocd_target}   (needs the internet once)") from exc
    if session is None:
        raise UserError(f"could not open the debug probe {probes[0][0]}", "unplug and replug it, then retry")
    return session


def _check_chip(session, board) -> None:
    expected = CHIP_IDS.get(board.pyocd_target)
    if expected is None:
        return
    address, mask, value, what = expected
    found = session.target.read32(address) & mask
    if found != value:
        raise UserError(f"the chip on the probe is not a {what}: read 0x{found:X} at 0x{address:08X}",
                        f"attach {board.description}, or build for the board you have (`tinypipe boards`)")


def flash_elf(elf: Path, board) -> str:
    """Program `elf` into the board on the attached probe and let it run; returns the probe's unique id."""
    _check_board(board)
    from pyocd.flash.file_programmer import FileProgrammer

    with _session(board) as session:
        _check_chip(session, board)
        FileProgrammer(session).program(str(elf), file_format="elf")
        session.target.reset()
        return session.probe.unique_id


class _Console:
    """A semihosting console that keeps what the firmware writes."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.agent = None

    def write(self, fd: int, ptr: int, length: int) -> int:
        self.chunks.append(bytes(self.agent.get_data(ptr, length)))
        return 0

    def read(self, fd, ptr, length):
        return length  # nothing to read: "0 bytes transferred" is length-not-read

    def readc(self):
        return -1

    def cleanup(self):
        pass

    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")


def run_elf(elf: Path, board, timeout_s: float = DEFAULT_TIMEOUT_S) -> ProbeResult:
    """Flash `elf`, reset, and serve semihosting until the firmware exits, prints `done`, or `timeout_s`."""
    _check_board(board)
    from pyocd.core.target import Target
    from pyocd.debug.semihost import SemihostAgent
    from pyocd.flash.file_programmer import FileProgrammer

    started = time.monotonic()
    with _session(board) as session:
        _check_chip(session, board)
        FileProgrammer(session).program(str(elf), file_format="elf")
        target = session.target
        context = target.get_target_context()
        console = _Console()
        agent = SemihostAgent(context, console=console)
        target.reset_and_halt()
        target.resume()
        returncode = None
        deadline = started + timeout_s
        while returncode is None:
            if time.monotonic() > deadline:
                target.halt()
                raise UserError(f"{elf} did not finish on {board.name} within {timeout_s:g} s; last output:\n"
                                + "\n".join(console.text().strip().splitlines()[-10:]),
                                "the firmware hangs, or the board was reset or unplugged")
            if target.get_state() != Target.State.HALTED:
                if console.text().rstrip().endswith("done"):
                    returncode = 0  # the firmware has moved on to its application; leave it running
                time.sleep(0.002)
                continue
            op = context.read_core_register("r0")
            if op == SYS_EXIT and context.read16(context.read_core_register("pc")) == 0xBEAB:
                reason = context.read_core_register("r1")
                returncode = 0 if reason == ADP_STOPPED_APPLICATION_EXIT else 1
            elif agent.check_and_handle_semihost_request():
                target.resume()
            else:
                pc = context.read_core_register("pc")
                console.chunks.append(f"\nhardfault pc=0x{pc:08x} (the core halted outside semihosting)\n".encode())
                returncode = 1
        agent.cleanup()
        return ProbeResult(output=console.text(), returncode=returncode, probe=session.probe.unique_id,
                           seconds=round(time.monotonic() - started, 3))
