"""The board registry, its SysTick calibration on QEMU, and the probe runner's errors (real hardware tests are
marked `hardware` and skipped without a probe).

The calibration builds a stand-in model whose second window spins a 2-instruction loop one million times: under
`-icount shift=0` the tick difference times 1e9 / systick_hz must be 2,000,000 instructions — the measurement
that set each board's `systick_hz`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import GESTURE, build_firmware, native_variant, run_json, stage_context, standin_model_rs
from tests.helpers import write_reference as write_reference_files
from tinypipe.config.boards import BOARDS
from tinypipe.core.errors import UserError
from tinypipe.runners import probe
from tinypipe.stages import firmware, run

LOOP_ITERATIONS = 1_000_000
LOOP_MODEL_RS = standin_model_rs(4, 1, """\
pub fn invoke(input: &[i8], output: &mut [i8]) {
    if input[0] == 1 {
        unsafe { core::arch::asm!("1:", "subs {0}, #1", "bne 1b", inout(reg) 1_000_000u32 => _,
                                  options(nomem, nostack)) }
    }
    output[0] = input[1];
}
""")


# --- the registry ---------------------------------------------------------------------------------------------

def test_real_boards_run_on_an_emulator_with_their_own_core_or_say_how_to_flash():
    for board in BOARDS.values():
        assert board.flash.size > 0 and board.ram.size > board.stack_bytes, board.name
        if board.emulated_by:
            emulator = BOARDS[board.emulated_by]
            assert emulator.qemu_machine and not emulator.emulated_by
            assert (emulator.cpu, emulator.triple) == (board.cpu, board.triple)
            # the ELF linked for the board must sit inside the emulator's memory
            for mine, theirs in ((board.flash, emulator.flash), (board.ram, emulator.ram)):
                assert theirs.origin <= mine.origin and mine.origin + mine.size <= theirs.origin + theirs.size
        if board.pyocd_pack:
            assert any(f"pyocd pack install {board.pyocd_target}" in note for note in board.notes)
        if not board.qemu_machine:
            assert board.pyocd_target, board.name


def test_discovery_wiring_is_in_the_registry():
    disco = BOARDS["stm32f4-discovery"]
    assert disco.emulator is BOARDS["netduinoplus2"] and disco.support == "stm32f4_discovery"
    assert [(led.port, led.pin) for led in disco.leds] == [("D", 12), ("D", 13), ("D", 14), ("D", 15)]
    assert disco.sensor.part == "LIS3DSH" and disco.sensor.bus == "SPI1"
    assert dict(disco.sensor.pins) == {"SCK": "PA5", "MISO": "PA6", "MOSI": "PA7", "CS": "PE3"}


def test_unbuildable_board_fails_in_firmware_with_the_reason(tmp_path):
    codegen = tmp_path / "codegen"
    codegen.mkdir()
    (codegen / "model.rs").write_text(LOOP_MODEL_RS)
    reference = write_reference(tmp_path / "reference")
    with pytest.raises(UserError) as err:
        firmware.run(stage_context(native_variant("pico"), tmp_path / "fw", codegen=codegen, reference=reference))
    assert err.value.message.startswith("tinypipe cannot build firmware for board pico yet: the RP2040 boots")


def test_fit_error_names_bytes_needed_and_available(tmp_path):
    codegen = tmp_path / "codegen"
    codegen.mkdir()
    (codegen / "model.rs").write_text(LOOP_MODEL_RS)
    (codegen / "codegen.json").write_text(json.dumps({"arena_bytes": 300_000, "weight_bytes": 600_000,
                                                      "scratch_bytes": 64}))
    reference = write_reference(tmp_path / "reference")
    with pytest.raises(UserError) as err:
        firmware.run(stage_context(native_variant("mps3-an547"), tmp_path / "fw", codegen=codegen, reference=reference))
    assert err.value.message == (
        "the model does not fit board mps3-an547: flash needs at least 600,008 B (weights 600,000 + test windows 8) "
        "but the board has 524,288 B")
    assert "tinypipe boards" in err.value.hint


# --- SysTick calibration on QEMU --------------------------------------------------------------------------------

def write_reference(root: Path) -> Path:
    """Two windows: the second (input[0] == 1) spins the loop; the output is input[1]."""
    return write_reference_files(root, np.array([[0, 5, 0, 0], [1, 7, 0, 0]], dtype=np.int8),
                                 np.array([[5], [7]], dtype=np.int8))


@pytest.mark.slow
@pytest.mark.parametrize("board", ["mps2-an505", "mps3-an547", "microbit", "netduinoplus2"])
def test_systick_calibration(board, tmp_path, rust_toolchain):
    variant = native_variant(board)
    codegen = tmp_path / "codegen"
    codegen.mkdir()
    (codegen / "model.rs").write_text(LOOP_MODEL_RS)
    reference = write_reference(tmp_path / "reference")
    built = build_firmware(variant, codegen, reference, rust_toolchain(board), tmp_path)
    result = run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert result["bit_exact"] is True and result["machine"] == BOARDS[board].emulator.qemu_machine
    loop = result["instructions_max"] - result["instructions_min"]
    assert abs(loop - 2 * LOOP_ITERATIONS) <= 50, loop  # within a few ticks


# --- probes -----------------------------------------------------------------------------------------------------

def attached_probes() -> list:
    try:
        return probe.list_probes()
    except Exception:  # noqa: BLE001 - no pyocd or no USB: no probe
        return []


@pytest.mark.skipif(bool(attached_probes()), reason="a debug probe is attached")
def test_no_probe_is_a_user_error_with_the_fix(tmp_path):
    with pytest.raises(UserError) as err:
        probe.run_elf(tmp_path / "firmware.elf", BOARDS["nrf52840-dk"])
    assert err.value.message == ("no debug probe attached: connect Nordic nRF52840-DK (nRF52840, Cortex-M4F) over "
                                 "USB (its ST-LINK, J-Link or CMSIS-DAP)")
    assert "tinypipe doctor" in err.value.hint


def test_emulated_only_board_cannot_be_flashed(tmp_path):
    with pytest.raises(UserError) as err:
        probe.flash_elf(tmp_path / "firmware.elf", BOARDS["mps2-an386"])
    assert err.value.message == "board mps2-an386 has no pyocd target, so tinypipe cannot flash it"


HARDWARE_BOARD = os.environ.get("TINYPIPE_HARDWARE_BOARD", "stm32f4-discovery")


@pytest.mark.hardware
@pytest.mark.skipif(not attached_probes(), reason="no debug probe attached (pyocd sees none)")
def test_gesture_on_the_real_board_is_bit_exact(tmp_path):
    """With a probe and TINYPIPE_HARDWARE_BOARD (default stm32f4-discovery) attached: flash, run, compare."""
    project = tmp_path / "gesture"
    project.mkdir()
    text = (GESTURE / "project.yaml").read_text().replace(
        "board: mps2-an386", f"board: {HARDWARE_BOARD}\n  runner: probe")
    (project / "project.yaml").write_text(text)
    (row,) = run_json(project)["results"]
    assert row["bit_exact"] is True
