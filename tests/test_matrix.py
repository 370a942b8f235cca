"""The board matrix end to end on the real tools: pipelines/gesture-matrix with `-j 2`.

Every emulated cell (M3, M4F, M7, M33, M55, netduinoplus2) and the STM32F4 Discovery cell — built for the
real board, run unchanged on QEMU's netduinoplus2 — must match the host TFLM oracle byte for byte; data,
training, quantization and the oracle run once; the deliberately oversized micro:bit cell fails before cargo
with the bytes it needs and has, and the other cells go on.
"""

import json

import pytest

from tests.helpers import REPO, fresh_example, store_entry, tinypipe

pytestmark = pytest.mark.slow

MATRIX = REPO / "pipelines" / "gesture-matrix"
EMULATED = ["mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547", "netduinoplus2"]
FIT_ERROR = ("error in firmware (microbit-native): the model does not fit board microbit: RAM needs 19,456 B "
             "(arena 15,360 + stack 4,096) but the board has 16,384 B")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    project = fresh_example(MATRIX, tmp_path_factory.mktemp("matrix"))
    proc = tinypipe("run", str(project), "--json", "-j", "2")
    return project, proc, json.loads(proc.stdout)


def test_every_cell_but_the_oversized_one_is_bit_exact(matrix):
    _, proc, doc = matrix
    rows = {r["variant"]: r for r in doc["results"]}
    assert list(rows) == [f"{b}-native" for b in EMULATED + ["stm32f4-discovery", "microbit"]]
    for board in EMULATED + ["stm32f4-discovery"]:
        row = rows[f"{board}-native"]
        assert row["bit_exact"] is True, (board, [line for line in proc.stderr.splitlines() if "error" in line])
        assert row["accuracy_device"] == row["accuracy_host"] and row["instructions_per_inference"] > 100_000
        assert row["flash_bytes"] > row["arena_bytes"] == 15_360
    assert rows["microbit-native"]["bit_exact"] is None and rows["microbit-native"]["flash_bytes"] is None


def test_the_oversized_cell_fails_before_cargo_with_a_fit_error(matrix):
    _, proc, doc = matrix
    assert proc.returncode == 2
    assert FIT_ERROR in proc.stderr
    status = {(s["stage"], s["variant"]): s["status"] for s in doc["stages"]}
    assert status[("firmware", "microbit-native")] == "failed"
    assert status[("build", "microbit-native")] == status[("run", "microbit-native")] == "skipped"


def test_upstream_stages_run_once_for_all_cells(matrix):
    _, _, doc = matrix
    for stage in ("data", "train", "quantize", "reference"):
        (entry,) = [s for s in doc["stages"] if s["stage"] == stage]
        assert entry["status"] == "ran" and len(entry["variants"]) == 8
    # one sysroot per (triple, cpu): M4F, netduinoplus2 and the Discovery share theirs
    toolchains = [s for s in doc["stages"] if s["stage"] == "toolchain"]
    assert len(toolchains) == 6
    assert sorted(len(t["variants"]) for t in toolchains) == [1, 1, 1, 1, 1, 3]


def test_discovery_elf_runs_unchanged_on_netduinoplus2(matrix):
    from elftools.elf.elffile import ELFFile

    from tinypipe.runners import qemu

    project, _, _ = matrix

    def entry(board: str, stage: str):  # from the lock: the entries this run wrote
        return store_entry(project, f"{board}-native", stage)

    elf = entry("stm32f4-discovery", "build") / "firmware.elf"
    run = json.loads((entry("stm32f4-discovery", "run") / "run.json").read_text())
    assert run["machine"] == "netduinoplus2" and run["bit_exact"] is True
    # built for the Discovery: its board support (LIS3DSH, LEDs, DWT) is in, so it is not netduinoplus2's ELF
    assert elf.read_bytes() != (entry("netduinoplus2", "build") / "firmware.elf").read_bytes()
    rendered = entry("stm32f4-discovery", "firmware") / "project"
    assert 'default = ["board-stm32f4-discovery", "realtime"]' in (rendered / "Cargo.toml").read_text()
    assert "pub const WINDOW: usize = 128;" in (rendered / "src" / "app_config.rs").read_text()
    # its real-time loop is paced for the machine the run stage measures it on: netduinoplus2's 168 MHz SysTick
    assert "SysTick ticks at 168,000,000 Hz" in (rendered / "src" / "realtime_config.rs").read_text()
    with open(elf, "rb") as f:
        vectors = ELFFile(f).get_section_by_name(".vector_table")
        assert vectors["sh_addr"] == 0x0800_0000  # linked for the STM32F407's flash
    # the very file from the store, on the emulator: replays the test set, finds no LIS3DSH, exits 0
    result = qemu.run_elf(elf, "netduinoplus2", timeout_s=120)
    assert result.returncode == 0 and result.output.splitlines()[-1] == "done"
    assert result.output.count("\nout ") + result.output.startswith("out ") == run["n"]
