"""The board registry: one entry per board, as data. Config defaults (triple, cpu), the firmware's memory map,
clock, board support and emulator, and the probe target come from here.

Emulated boards name their QEMU 7.2 machine (`qemu_machine`). A real board whose chip QEMU models names the
emulated board that runs its ELF unchanged (`emulated_by`): the run stage then replays the test set there, so
the firmware that will be flashed is the one checked against the oracle. `systick_hz` is the SysTick clock
(CLKSOURCE=1) under QEMU, measured with a loop of known length (tests/test_boards.py): with `-icount shift=0`
one tick is 1e9 / systick_hz instructions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Memory:
    origin: int
    size: int


@dataclass(frozen=True)
class Led:
    name: str  # what the board's silkscreen calls it
    port: str  # GPIO port: "D" on an STM32, "P0" on an nRF52
    pin: int
    colour: str
    active_low: bool = False


@dataclass(frozen=True)
class SensorWiring:
    part: str  # e.g. "LIS3DSH"
    kind: str  # matches `sensor.kind` in project.yaml
    bus: str  # e.g. "SPI1"
    pins: tuple[tuple[str, str], ...]  # (signal, pin), e.g. ("SCK", "PA5")


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
    systick_hz: int  # SysTick clock under QEMU (see the module doc); for a real board: of its `emulated_by`
    clock_hz: int = 0  # core clock the firmware runs at on the chip (0: the emulator's, for QEMU-only boards)
    fpu: str | None = None  # e.g. "fpv4-sp-d16"; None: soft float
    qemu_machine: str | None = None
    emulated_by: str | None = None  # the registry name of an emulated board that runs this board's ELF
    pyocd_target: str | None = None
    pyocd_pack: bool = False  # the pyocd target comes from a CMSIS pack (`pyocd pack install`, needs the internet)
    support: str | None = None  # board support in firmware-template/src/board/<support>.rs (None: replay only)
    leds: tuple[Led, ...] = ()
    sensor: SensorWiring | None = None
    buildable: bool = True  # False: tinypipe cannot yet build working firmware for it offline (see notes)
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

    @property
    def emulator(self) -> "Board | None":
        """The board whose QEMU machine runs this board's ELF: itself, its `emulated_by`, or None."""
        if self.qemu_machine:
            return self
        return BOARDS[self.emulated_by] if self.emulated_by else None


_MPS2_FLASH = Memory(0x0000_0000, 4 * 1024 * 1024)  # ZBT SSRAM1, loaded by `-kernel`
_MPS2_RAM = Memory(0x2000_0000, 4 * 1024 * 1024)
_STM32F4_NOTE = ("pyocd has no built-in target for this part: run `pyocd pack install {part}` once "
                 "(needs the internet)")

BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        # --- emulated (QEMU 7.2) ---------------------------------------------------------------------------
        Board(
            name="mps2-an385", description="Arm MPS2 with AN385 (Cortex-M3), QEMU", core="cortex-m3",
            cpu="cortex-m3", triple="thumbv7m-none-eabi", features=(), flash=_MPS2_FLASH, ram=_MPS2_RAM,
            systick_hz=25_000_000, clock_hz=25_000_000, qemu_machine="mps2-an385",
        ),
        Board(
            name="mps2-an386", description="Arm MPS2 with AN386 (Cortex-M4F), QEMU", core="cortex-m4f",
            cpu="cortex-m4", triple="thumbv7em-none-eabihf", features=("dsp", "fpu"), flash=_MPS2_FLASH,
            ram=_MPS2_RAM, systick_hz=25_000_000, clock_hz=25_000_000, fpu="fpv4-sp-d16",
            qemu_machine="mps2-an386",
        ),
        Board(
            name="mps2-an500", description="Arm MPS2 with AN500 (Cortex-M7), QEMU", core="cortex-m7",
            cpu="cortex-m7", triple="thumbv7em-none-eabihf", features=("dsp", "fpu"), flash=_MPS2_FLASH,
            ram=_MPS2_RAM, systick_hz=25_000_000, clock_hz=25_000_000, fpu="fpv5-d16", qemu_machine="mps2-an500",
        ),
        Board(
            name="mps2-an505", description="Arm MPS2+ with AN505 (Cortex-M33, TrustZone), QEMU", core="cortex-m33",
            cpu="cortex-m33", triple="thumbv8m.main-none-eabihf", features=("dsp", "fpu"),
            # The core resets in the secure state with VTOR_S = 0x10000000: code runs from the secure alias of
            # SSRAM1 (4 MB), data from the secure alias of SSRAM2+3 (2 x 2 MB, contiguous).
            flash=Memory(0x1000_0000, 4 * 1024 * 1024), ram=Memory(0x3800_0000, 4 * 1024 * 1024),
            systick_hz=20_000_000, clock_hz=20_000_000, fpu="fpv5-sp-d16", qemu_machine="mps2-an505",
            notes=("runs in the secure state; no TrustZone partitioning",),
        ),
        Board(
            name="mps3-an547", description="Arm MPS3 with AN547 (Cortex-M55, Helium), QEMU", core="cortex-m55",
            cpu="cortex-m55", triple="thumbv8m.main-none-eabihf", features=("dsp", "fpu", "mve"),
            # secure aliases of the SSE-300's ITCM (code) and DTCM (data), 512 KB each
            flash=Memory(0x1000_0000, 512 * 1024), ram=Memory(0x3000_0000, 512 * 1024),
            systick_hz=32_000_000, clock_hz=32_000_000, fpu="fpv5-d16", qemu_machine="mps3-an547",
            notes=("runs in the secure state; code in ITCM, data in DTCM (512 KB each)",),
        ),
        Board(
            name="microbit", description="BBC micro:bit v1 (nRF51822, Cortex-M0), QEMU", core="cortex-m0",
            cpu="cortex-m0", triple="thumbv6m-none-eabi", features=(),
            flash=Memory(0x0000_0000, 256 * 1024), ram=Memory(0x2000_0000, 16 * 1024),
            systick_hz=16_000_000, clock_hz=16_000_000, qemu_machine="microbit", pyocd_target="nrf51",
            stack_bytes=4 * 1024,
            notes=("16 KB of RAM: weights stay in flash, but the arena, .data/.bss and a 4 KB stack must fit",
                   "ARMv6-M: no hardware divide, no DSP or saturating instructions; the kernels use portable code"),
        ),
        Board(
            name="netduinoplus2", description="Netduino Plus 2 (STM32F405RG, Cortex-M4F), QEMU", core="cortex-m4f",
            cpu="cortex-m4", triple="thumbv7em-none-eabihf", features=("dsp", "fpu"),
            flash=Memory(0x0800_0000, 1024 * 1024), ram=Memory(0x2000_0000, 128 * 1024),
            systick_hz=168_000_000, clock_hz=168_000_000, fpu="fpv4-sp-d16", qemu_machine="netduinoplus2",
            notes=("QEMU models the STM32F405 core, flash and SRAM, not its clock tree: SysTick runs at 168 MHz",),
        ),
        # --- real boards ------------------------------------------------------------------------------------
        Board(
            name="stm32f4-discovery", description="STM32F4 Discovery (STM32F407VG, Cortex-M4F, LIS3DSH)",
            core="cortex-m4f", cpu="cortex-m4", triple="thumbv7em-none-eabihf", features=("dsp", "fpu"),
            flash=Memory(0x0800_0000, 1024 * 1024), ram=Memory(0x2000_0000, 128 * 1024),
            systick_hz=168_000_000, clock_hz=16_000_000, fpu="fpv4-sp-d16", emulated_by="netduinoplus2",
            pyocd_target="stm32f407vg", pyocd_pack=True, support="stm32f4_discovery",
            leds=(Led("LD4", "D", 12, "green"), Led("LD3", "D", 13, "orange"), Led("LD5", "D", 14, "red"),
                  Led("LD6", "D", 15, "blue")),
            sensor=SensorWiring(part="LIS3DSH", kind="accelerometer", bus="SPI1",
                                pins=(("SCK", "PA5"), ("MISO", "PA6"), ("MOSI", "PA7"), ("CS", "PE3"))),
            notes=(_STM32F4_NOTE.format(part="stm32f407vg"),
                   "runs on the 16 MHz HSI (SysTick and DWT count core cycles); the same ELF runs on QEMU "
                   "netduinoplus2, which replays the test set and exits because it has no LIS3DSH"),
        ),
        Board(
            name="nucleo-f411re", description="ST Nucleo-F411RE (STM32F411RE, Cortex-M4F)", core="cortex-m4f",
            cpu="cortex-m4", triple="thumbv7em-none-eabihf", features=("dsp", "fpu"),
            flash=Memory(0x0800_0000, 512 * 1024), ram=Memory(0x2000_0000, 128 * 1024),
            systick_hz=168_000_000, clock_hz=16_000_000, fpu="fpv4-sp-d16", emulated_by="netduinoplus2",
            pyocd_target="stm32f411re", pyocd_pack=True,
            leds=(Led("LD2", "A", 5, "green"),),
            notes=(_STM32F4_NOTE.format(part="stm32f411re"),
                   "no sensor on the board: the firmware replays the test set"),
        ),
        Board(
            name="nrf52840-dk", description="Nordic nRF52840-DK (nRF52840, Cortex-M4F)", core="cortex-m4f",
            cpu="cortex-m4", triple="thumbv7em-none-eabihf", features=("dsp", "fpu"),
            flash=Memory(0x0000_0000, 1024 * 1024), ram=Memory(0x2000_0000, 256 * 1024),
            systick_hz=64_000_000, clock_hz=64_000_000, fpu="fpv4-sp-d16", pyocd_target="nrf52840",
            leds=tuple(Led(f"LED{i + 1}", "P0", 13 + i, "green", active_low=True) for i in range(4)),
            notes=("pyocd's nrf52840 target is built in",
                   "no sensor on the board: the firmware replays the test set",
                   "QEMU has no nRF52 machine: run it with `tinypipe flash` on a probe"),
        ),
        Board(
            name="pico", description="Raspberry Pi Pico (RP2040, Cortex-M0+)", core="cortex-m0+",
            cpu="cortex-m0plus", triple="thumbv6m-none-eabi", features=(),
            flash=Memory(0x1000_0000, 2 * 1024 * 1024), ram=Memory(0x2000_0000, 264 * 1024),
            systick_hz=125_000_000, clock_hz=125_000_000, pyocd_target="rp2040", buildable=False,
            leds=(Led("LED", "GPIO", 25, "green"),),
            notes=("the RP2040 boots from external QSPI flash through a 256-byte second-stage "
                   "bootloader (boot2) with a CRC32 that tinypipe does not generate, so an image would not boot",
                   "pyocd's rp2040 target is built in"),
        ),
    )
}

DEFAULT_BOARD = "mps2-an386"


def get_board(name: str) -> Board:
    return BOARDS[name]
