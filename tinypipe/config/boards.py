"""The board registry: one entry per board, as data. Config defaults (triple, cpu) and the firmware's memory
map, clock and emulator come from here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Memory:
    origin: int
    size: int


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    core: str  # e.g. "cortex-m4f"
    cpu: str  # rustc -C target-cpu and gcc -mcpu
    triple: str
    features: tuple[str, ...]  # CPU features the engine may use: "dsp", "fpu", "mve"
    flash: Memory
    ram: Memory
    systick_hz: int  # SysTick clock with CLKSOURCE=1; under `-icount shift=0` one tick is 1e9/systick_hz instructions
    qemu_machine: str | None = None
    pyocd_target: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # stack reservation at the top of RAM: the linker script checks .data + .bss + this fit, and the firmware
    # paints it to measure its high-water mark
    stack_bytes: int = 32 * 1024

    @property
    def emulated(self) -> bool:
        return self.qemu_machine is not None

    @property
    def hard_float(self) -> bool:
        return self.triple.endswith("eabihf")


_MPS2_FLASH = Memory(0x0000_0000, 4 * 1024 * 1024)  # ZBT SSRAM1, loaded by `-kernel`
_MPS2_RAM = Memory(0x2000_0000, 4 * 1024 * 1024)

BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board(
            name="mps2-an385", description="Arm MPS2 with AN385 (Cortex-M3), QEMU", core="cortex-m3",
            cpu="cortex-m3", triple="thumbv7m-none-eabi", features=(), flash=_MPS2_FLASH, ram=_MPS2_RAM,
            systick_hz=25_000_000, qemu_machine="mps2-an385",
        ),
        Board(
            name="mps2-an386", description="Arm MPS2 with AN386 (Cortex-M4F), QEMU", core="cortex-m4f",
            cpu="cortex-m4", triple="thumbv7em-none-eabihf", features=("dsp", "fpu"), flash=_MPS2_FLASH,
            ram=_MPS2_RAM, systick_hz=25_000_000, qemu_machine="mps2-an386",
        ),
        Board(
            name="mps2-an500", description="Arm MPS2 with AN500 (Cortex-M7), QEMU", core="cortex-m7",
            cpu="cortex-m7", triple="thumbv7em-none-eabihf", features=("dsp", "fpu"), flash=_MPS2_FLASH,
            ram=_MPS2_RAM, systick_hz=25_000_000, qemu_machine="mps2-an500",
        ),
    )
}

DEFAULT_BOARD = "mps2-an386"


def get_board(name: str) -> Board:
    return BOARDS[name]
