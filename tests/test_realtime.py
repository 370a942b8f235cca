"""The real-time loop's figures, budgets, table and settings (pure functions). The loop itself runs end to end in
tests/test_pipeline_e2e.py: the gesture example keeps up at its rate and misses at an absurd one."""

from __future__ import annotations

import re

import pytest

from tinypipe.core.errors import UserError
from tinypipe.report.results import realtime_failures, render_realtime
from tinypipe.stages import firmware
from tinypipe.stages.run import parse_output, realtime_figures

# `realtime <ticks per sample> <hop> <due> <done> <misses> <worst> <preprocessing> <inference> <mismatches>`
LINE = "out 0 01\nticks 0 5\nrealtime 25 64 90 90 88 1607 111 1496 0\nstack 1304\ndone\n"


def _figures(line: str = LINE, rate: float = 1_000_000) -> dict:
    return realtime_figures(parse_output(line).realtime, rate, 40.0, "instructions")


def test_the_realtime_line_becomes_instructions_per_window():
    figures = _figures()
    assert figures == {"period_instructions": 64_000, "worst_window_instructions": 64_280,
                       "features_instructions": 4_440, "inference_instructions": 59_840, "deadline_misses": 88,
                       "windows": 90, "margin": pytest.approx(1 - 64_280 / 64_000), "sample_rate_hz": 1_000_000,
                       "hop": 64, "unit": "instructions"}


def test_a_firmware_without_the_loop_has_no_realtime_figures():
    assert parse_output("out 0 01\nticks 0 5\nstack 8\ndone\n").realtime is None
    assert realtime_figures(None, 50, 40.0, "instructions") is None
    assert parse_output("realtime 25 64\n").realtime is None  # a truncated line is not a result


def test_on_a_chip_the_figures_are_cycles_and_microseconds():
    figures = realtime_figures(parse_output(LINE).realtime, 1_000, 1.0, "cycles", clock_hz=16_000_000)
    assert figures["period_cycles"] == 1_600 and figures["period_us"] == pytest.approx(100.0)
    assert figures["worst_window_us"] == pytest.approx(1_607 / 16)
    assert "period_instructions" not in figures


ROW = {"variant": "mps2-an386-native", "realtime": None}


def test_realtime_budgets_name_the_key_and_the_measured_figures():
    row = {**ROW, "realtime": _figures()}
    assert realtime_failures(row, {"deadline_misses_max": 0, "realtime_margin_min": 0.2}) == [
        "mps2-an386-native: the real-time loop missed 88 of 90 window deadlines, over the budget 0 "
        "(budgets.deadline_misses_max): the slowest window took 64,280 instructions (features 4,440 + inference "
        "59,840) of a period of 64,000 (64 samples at 1,000,000 Hz)",
        "mps2-an386-native: the real-time loop leaves -0.4% of the period to spare, below the minimum 20.0% "
        "(budgets.realtime_margin_min): the slowest window took 64,280 instructions (features 4,440 + inference "
        "59,840) of a period of 64,000 (64 samples at 1,000,000 Hz)"]
    assert realtime_failures(row, {"deadline_misses_max": 88, "realtime_margin_min": None}) == []
    assert realtime_failures(ROW, {"deadline_misses_max": 0}) == []  # not measured: not checked


def test_the_realtime_table_fits_80_columns_and_says_instructions_are_not_cycles():
    from rich.console import Console

    console = Console(width=80, record=True, color_system=None)
    render_realtime(console, [{**ROW, "realtime": _figures()}, ROW])
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert re.search(r"mps2-an386-native +1,000,000/64 +64,000 +64,280 +4,440 +59,840 +100\.4 +88/90", text)
    assert "instructions counted by QEMU (-icount), not cycles" in " ".join(text.split())


def test_a_slow_rate_spreads_a_sample_over_several_systick_periods():
    # 168 MHz / 10 Hz = 16.8 M ticks: more than the 24-bit counter holds
    settings = firmware.realtime_settings({"window": 64, "axes": ["x"], "sample_rate_hz": 10}, {"hop": 32},
                                          168_000_000, "netduinoplus2")
    assert settings["interrupts_per_sample"] == 2 and settings["ticks_per_interrupt"] == 8_400_000
    assert settings["hop"] == 32


def test_a_rate_faster_than_the_sampling_interrupt_is_refused():
    with pytest.raises(UserError) as err:
        firmware.realtime_settings({"window": 64, "axes": ["x"], "sample_rate_hz": 1e7}, {}, 25_000_000,
                                   "mps2-an386")
    assert err.value.message == ("sensor.sample_rate_hz: 1e+07 Hz is too fast for the real-time loop on mps2-an386: "
                              "its SysTick runs at 25,000,000 Hz, 2 ticks per sample, and the sampling interrupt "
                              "needs at least 8")
    assert err.value.hint == "lower sensor.sample_rate_hz to at most 3,125,000 Hz"
