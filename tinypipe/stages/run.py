"""Stage `run`: run the firmware on its board's QEMU machine — or, for a real board QEMU does not model, on a
debug probe through pyocd — and compare every output with the oracle.

A real board whose chip QEMU models (`Board.emulated_by`, e.g. the STM32F4 Discovery on `netduinoplus2`) runs
its own ELF, unchanged, on that machine.

The firmware prints `out <idx> <hex>` and `ticks <idx> <n>` per test window, then `stack <bytes>` and `done`
(see firmware-template/src/main.rs). Under `-icount shift=0` a SysTick tick at `systick_hz` is exactly
1e9 / systick_hz instructions, so the tick counts become instruction counts.

Outputs are compared as bytes: a float32 output (`quantization.io: float32`) must match to the bit too.

Outputs: `device_outputs.bin` (N x OUTPUT_LEN values of the output dtype, like the reference's
`test_outputs.bin`), `qemu.log` and
`run.json`: `n`, `bit_exact`, `mismatches` ({count, first}: window indices), `accuracy_device` (argmax of the
device outputs against `labels.bin`; null without labels), `confusion` (`{classes, matrix}`: `matrix[true][predicted]`
counts the windows of the device's argmax; null without labels or when the outputs are not one per class),
`instructions_per_inference` (mean),
`instructions_min`, `instructions_max`, `stack_bytes`, `stack_overflow`, `machine`; on a probe
`cycles_per_inference`, `cycles_min`, `cycles_max`, `probe` instead of the instruction counts
and the machine (`probe.log` instead of `qemu.log`); `layers` (with `target.profile_layers`: per operator
`{op_index, op, instructions (or cycles), share}`, means over the windows from `layer` lines; else null);
`realtime` (`realtime_figures`: the real-time loop's `realtime` line; null when the firmware has no loop).
The wall-clock time of the run (`qemu_seconds` or `probe_seconds`) is in the stage summary only, never in
run.json: the entry's output hash, and so the lock and a release, must not depend on how busy the machine was.
With a declared input scaling (reference.json `raw_input`) the firmware made its int8 inputs from raw windows and
printed them (`in` lines): `inputs_bit_exact` and `input_mismatches` compare them with the host's
`test_inputs.bin`, and `bit_exact` holds only when they match too. With features (reference.json `features`) the
firmware also printed the features it computed from each raw window (`feat` lines, int16): `features_bit_exact`
and `feature_mismatches` compare them with the host's `test_features.bin`, and `bit_exact` needs them too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinypipe.core.errors import CheckFailed
from tinypipe.core.fs import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from tinypipe.runners import qemu
from tinypipe.stages.base import Stage, StageContext, StageResult

ICOUNT_SHIFT = 0  # 2^0 ns of virtual time per instruction
FIRST_MISMATCHES = 10
WALL_CLOCK = ("qemu_seconds", "probe_seconds")  # in the summary, not in run.json (see above)


def _config(variant) -> dict:
    emulator = variant.emulator
    if emulator is None:  # a real board: run on a debug probe
        board = variant.board
        return {"runner": "probe", "pyocd_target": board.pyocd_target, "clock_hz": board.clock_hz}
    return {"machine": emulator.qemu_machine, "systick_hz": emulator.systick_hz, "icount_shift": ICOUNT_SHIFT}


def _tools(variant) -> dict:
    if variant.emulator is None:
        from tinypipe.runners import probe

        return {"pyocd": probe.pyocd_version()}
    return {"qemu": qemu.qemu_version()}


STAGE = Stage(name="run", version="3", needs=("build", "reference"), config=_config, tools=_tools,
              description="run on the emulator, compare with the oracle, count instructions")


class FirmwareFailed(CheckFailed):
    """The firmware panicked, faulted or stopped without finishing its test windows."""


# the numbers of the firmware's `realtime` line, in order
REALTIME_FIELDS = ("sample_period_ticks", "hop", "windows_due", "windows_done", "deadline_misses", "worst_ticks",
                   "features_ticks", "inference_ticks", "input_mismatches")


@dataclass
class DeviceReport:
    outputs: dict[int, bytes] = field(default_factory=dict)
    inputs: dict[int, bytes] = field(default_factory=dict)  # `in` lines: model inputs made from raw windows
    features: dict[int, bytes] = field(default_factory=dict)  # `feat` lines: features computed from raw windows
    ticks: dict[int, int] = field(default_factory=dict)
    cycles: dict[int, int] = field(default_factory=dict)  # DWT CYCCNT, from boards whose support has it
    layers: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)  # (window, op) -> (name, ticks)
    realtime: tuple[int, ...] | None = None  # the `realtime` line's numbers (firmware-template/src/realtime.rs)
    stack_bytes: int | None = None
    stack_overflow: bool = False
    done: bool = False
    failure: str | None = None  # the first `panic:` / `hardfault` / `unexpected exception` line


def parse_output(text: str) -> DeviceReport:
    report = DeviceReport()
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "out" and len(words) in (2, 3):
                report.outputs[int(words[1])] = bytes.fromhex(words[2] if len(words) == 3 else "")
            elif words[0] == "in" and len(words) == 3:
                report.inputs[int(words[1])] = bytes.fromhex(words[2])
            elif words[0] == "feat" and len(words) == 3:
                report.features[int(words[1])] = bytes.fromhex(words[2])
            elif words[0] == "ticks" and len(words) == 3:
                report.ticks[int(words[1])] = int(words[2])
            elif words[0] == "layer" and len(words) == 5:
                report.layers[(int(words[1]), int(words[2]))] = (words[3], int(words[4]))
            elif words[0] == "cycles" and len(words) == 3:
                report.cycles[int(words[1])] = int(words[2])
            elif words[0] == "realtime" and len(words) == 1 + len(REALTIME_FIELDS):
                report.realtime = tuple(int(word) for word in words[1:])
            elif words[0] == "stack" and len(words) == 2:
                report.stack_bytes = int(words[1])
            elif words[0] == "stack_overflow":
                report.stack_overflow = True
            elif words[0] == "done":
                report.done = True
            elif words[0] in ("panic:", "hardfault", "unexpected") and report.failure is None:
                report.failure = line.strip()
        except ValueError:
            continue  # a line that merely looks like ours (e.g. from a panic message) is not a result
    return report


def _differing(device: dict[int, bytes], host: bytes, n: int) -> list[int]:
    """The windows whose printed bytes differ from the host's (`n` equal records back to back)."""
    size = len(host) // n
    return [i for i in range(n) if device.get(i) != host[i * size:(i + 1) * size]]


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def compare(device, oracle, labels) -> dict:
    """Bit-exactness (byte for byte) and device accuracy from [n, output_len] arrays of the output dtype and
    [n] labels (or None)."""
    import numpy as np

    differs = np.any(device.view(np.uint8) != oracle.view(np.uint8), axis=1)
    mismatched = np.flatnonzero(differs)
    accuracy = None
    if labels is not None and len(labels) == len(device):
        accuracy = float(np.mean(np.argmax(device, axis=1) == labels))
    return {"bit_exact": not bool(differs.any()),
            "mismatches": {"count": int(len(mismatched)), "first": [int(i) for i in mismatched[:FIRST_MISMATCHES]]},
            "accuracy_device": accuracy}


def confusion(device, labels, classes: list[str]) -> dict | None:
    """Windows per (true class, device argmax) as `{classes, matrix}`, rows the true class; None without labels
    or when the model does not output one score per class."""
    import numpy as np

    if labels is None or len(labels) != len(device) or device.shape[1] != len(classes) or \
            (len(labels) and int(labels.max()) >= len(classes)):
        return None
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), np.argmax(device, axis=1)), 1)
    return {"classes": list(classes), "matrix": matrix.tolist()}


def layer_profile(layers: dict[tuple[int, int], tuple[str, int]], n: int, per_tick: float,
                  unit: str) -> list[dict] | None:
    """Per operator (in model order): its mean `instructions` (or `cycles` on a probe) over the windows and its
    share of their sum; None when the firmware printed no `layer` lines (`target.profile_layers` off)."""
    if not layers:
        return None
    ticks: dict[int, int] = {}
    names: dict[int, str] = {}
    for (_, op), (name, t) in layers.items():
        ticks[op] = ticks.get(op, 0) + t
        names[op] = name
    total = sum(ticks.values()) or 1
    return [{"op_index": op, "op": names[op], unit: round(ticks[op] * per_tick / n), "share": ticks[op] / total}
            for op in sorted(ticks)]


def realtime_figures(numbers: tuple[int, ...] | None, sample_rate_hz: float, per_tick: float,
                     unit: str, clock_hz: int | None = None) -> dict | None:
    """The real-time loop's figures in `unit` (`instructions` on the emulator, `cycles` on a chip, where
    `clock_hz` also gives microseconds): the period between two windows (hop x sample period), the worst
    window's time and its split into preprocessing (`features_`) and inference, the deadline misses, and the
    share of the period the worst window leaves (`margin`)."""
    if numbers is None:
        return None
    got = dict(zip(REALTIME_FIELDS, numbers))
    period = got["sample_period_ticks"] * got["hop"] * per_tick
    figures = {f"period_{unit}": round(period), f"worst_window_{unit}": round(got["worst_ticks"] * per_tick),
               f"features_{unit}": round(got["features_ticks"] * per_tick),
               f"inference_{unit}": round(got["inference_ticks"] * per_tick)}
    if clock_hz:
        figures.update({key.replace(unit, "us"): value * 1e6 / clock_hz for key, value in list(figures.items())})
    return {**figures, "deadline_misses": got["deadline_misses"], "windows": got["windows_due"],
            "margin": 1 - got["worst_ticks"] * per_tick / period if period else None,
            "sample_rate_hz": sample_rate_hz, "hop": got["hop"], "unit": unit}


def run(ctx: StageContext) -> StageResult:
    import numpy as np

    board = ctx.variant.board
    emulator = ctx.variant.emulator
    reference = ctx.inputs["reference"]
    meta = read_json(reference / "reference.json")
    n, output_len = int(meta["n"]), int(meta["output_len"])
    dtype = np.dtype(meta.get("output_dtype", "int8"))
    oracle = np.fromfile(reference / "test_outputs.bin", dtype=dtype)
    if oracle.size != n * output_len:
        raise ValueError(f"test_outputs.bin has {oracle.size} values, reference.json says {n} x {output_len}")
    output_bytes = output_len * dtype.itemsize
    labels_path = reference / "labels.bin"
    labels = np.fromfile(labels_path, dtype=np.uint8) if labels_path.is_file() else None

    elf = ctx.inputs["build"] / "firmware.elf"
    if emulator is None:
        from tinypipe.runners import probe

        ctx.log(f"pyocd: flash and run {elf.name} on {board.pyocd_target}")
        result = probe.run_elf(elf, board)
        where, log_name = f"{board.name} (probe {result.probe})", "probe.log"
    else:
        ctx.log(f"qemu-system-arm -machine {emulator.qemu_machine} -icount shift={ICOUNT_SHIFT},sleep=off {elf.name}")
        result = qemu.run_elf(elf, emulator.qemu_machine)
        where, log_name = emulator.qemu_machine, "qemu.log"
    atomic_write_text(ctx.out / log_name, result.output)
    report = parse_output(result.output)
    if result.returncode != 0 or not report.done:
        what = report.failure or f"{'the probe run' if emulator is None else 'QEMU'} exited with " \
                                 f"{result.returncode} before `done`"
        raise FirmwareFailed(f"the firmware failed on {where}: {what}\n{_tail(result.output)}")
    missing = [i for i in range(n) if i not in report.outputs or i not in report.ticks]
    if missing or len(report.outputs) != n:
        raise FirmwareFailed(f"the firmware reported {len(report.outputs)} outputs, the oracle has {n} "
                             f"(first missing window: {missing[0] if missing else '-'})\n{_tail(result.output)}")
    wrong_len = [i for i in range(n) if len(report.outputs[i]) != output_bytes]
    if wrong_len:
        raise FirmwareFailed(f"window {wrong_len[0]}: the firmware output has {len(report.outputs[wrong_len[0]])} "
                             f"bytes, the oracle {output_bytes} ({output_len} x {dtype.name})")

    device_bytes = b"".join(report.outputs[i] for i in range(n))
    atomic_write_bytes(ctx.out / "device_outputs.bin", device_bytes)
    device = np.frombuffer(device_bytes, dtype=dtype).reshape(n, output_len)
    summary = {"n": n, **compare(device, oracle.reshape(n, output_len), labels),
               "confusion": confusion(device, labels, meta.get("classes") or [])}
    if meta.get("raw_input"):  # the device made its int8 inputs from raw windows: they must be the host's bytes
        differs = _differing(report.inputs, (reference / "test_inputs.bin").read_bytes(), n)
        summary["inputs_bit_exact"] = not differs
        summary["input_mismatches"] = {"count": len(differs), "first": differs[:FIRST_MISMATCHES]}
        summary["bit_exact"] = summary["bit_exact"] and not differs
    if meta.get("features"):  # ... from the features it computed, which must be the host's values
        differs = _differing(report.features, (reference / "test_features.bin").read_bytes(), n)
        summary["features_bit_exact"] = not differs
        summary["feature_mismatches"] = {"count": len(differs), "first": differs[:FIRST_MISMATCHES]}
        summary["bit_exact"] = summary["bit_exact"] and not differs
    if emulator is None:
        # on the chip SysTick runs on the core clock: ticks are cycles (DWT CYCCNT where the firmware has it)
        cycles = [report.cycles.get(i, report.ticks[i]) for i in range(n)]
        summary.update({"cycles_per_inference": round(sum(cycles) / n), "cycles_min": min(cycles),
                        "cycles_max": max(cycles), "instructions_per_inference": None,
                        "probe": result.probe, "probe_seconds": result.seconds})
    else:
        instructions_per_tick = 1e9 / (emulator.systick_hz * 2 ** ICOUNT_SHIFT)
        instructions = [report.ticks[i] * instructions_per_tick for i in range(n)]
        summary.update({"instructions_per_inference": round(sum(instructions) / n),
                        "instructions_min": round(min(instructions)),
                        "instructions_max": round(max(instructions)),
                        "machine": emulator.qemu_machine, "qemu_seconds": result.seconds})
    summary["layers"] = layer_profile(report.layers, n, 1.0 if emulator is None else instructions_per_tick,
                                      "cycles" if emulator is None else "instructions")
    if report.realtime is not None and report.realtime[REALTIME_FIELDS.index("input_mismatches")]:
        raise RuntimeError(f"the real-time loop's sensor path changed the model input of {report.realtime[-1]} "
                           f"windows (the emulated sensor must give back each test window exactly): a bug in "
                           f"tinypipe's firmware template")
    sample_rate_hz = ctx.variant.config["sensor"]["sample_rate_hz"]
    summary["realtime"] = (realtime_figures(report.realtime, sample_rate_hz, 1.0, "cycles", board.clock_hz)
                           if emulator is None else
                           realtime_figures(report.realtime, sample_rate_hz, instructions_per_tick, "instructions"))
    summary.update({"stack_bytes": report.stack_bytes, "stack_overflow": report.stack_overflow})
    atomic_write_json(ctx.out / "run.json", {k: v for k, v in summary.items() if k not in WALL_CLOCK})
    return summary
