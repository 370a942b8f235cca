"""The tables `benchmarks/engines.py` prints, as pure functions of its measurements (tested on their own in
tests/test_engine_tables.py): native per `native.optimize` mode against TFLM + CMSIS-NN per model, the
per-operator comparison, and native against TFLM + CMSIS-NN per core. Each returns its lines.

A measurement is a dict (`instructions`, `macs`, `arena`, `app_flash`, `bit_exact`; for TFLM `arena_used`) or
`{"error": text}` when that cell could not be measured: it prints as an error, never as a number.

Targets (issue 15): in mode `speed` at most 0.45x the instructions of TFLM + CMSIS-NN on every model and at
most 1.2 instructions per MAC on the conv-heavy ones; in mode `ram` an arena at most 0.5x TFLM's
`arena_used_bytes` on person_detect and the MobileNet-shaped model; in mode `size` application flash at most
0.6x TFLM + CMSIS-NN's. Per core: native at most 0.7x on the M0, M3 and M55, at most 1.0x elsewhere.
"""

from __future__ import annotations

MODES = ("speed", "balanced", "ram", "size")
TARGET_SPEED = 0.45
TARGET_PER_MAC = 1.2
CONV_HEAVY = ("kws_ref_model", "person_detect", "resnet8", "mobilenet_v1_025_96")
TARGET_RAM = 0.5
RAM_MODELS = ("person_detect", "mobilenet_v1_025_96")
TARGET_SIZE = 0.6
CORE_TARGETS = {"cortex-m0": 0.7, "cortex-m3": 0.7, "cortex-m55": 0.7}  # else 1.0: never slower than TFLM
ERROR_WIDTH = 60


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def _failed(r: dict | None) -> str | None:
    if r is None:
        return "not measured"
    return r.get("error")


def _error_line(label: str, error: str) -> str:
    text = " ".join(error.split())
    return f"{label}  error: {text[:ERROR_WIDTH]}{'…' if len(text) > ERROR_WIDTH else ''}"


def models_table(native: dict[str, dict[str, dict]], tflm: dict[str, dict]) -> list[str]:
    """model -> mode -> measurement, model -> TFLM + CMSIS-NN measurement: one row per (model, engine), the
    ratios to TFLM + CMSIS-NN and each mode's verdict against its target."""
    head = (f"{'model':<20} {'engine':<16} {'instr/inf':>11} {'/MAC':>5} {'arena B':>8} {'app flash B':>11} "
            f"{'instr':>6} {'arena':>6} {'flash':>6} {'exact':>5}  target")
    lines = [head, "-" * len(head)]
    for model, modes in native.items():
        ref = tflm.get(model)
        ref_failed = _failed(ref)
        for mode in [m for m in MODES if m in modes] + ["tflm"]:
            r = ref if mode == "tflm" else modes[mode]
            label = f"{model:<20} {'TFLM + CMSIS-NN' if mode == 'tflm' else 'native ' + mode:<16}"
            if _failed(r):
                lines.append(_error_line(label, _failed(r)))
                continue
            macs = r.get("macs") or max((m.get("macs") or 0 for m in modes.values()), default=0)  # TFLM: the model's
            per_mac = r["instructions"] / macs if macs else None
            if mode == "tflm" or ref_failed:
                ratios = f"{'-':>6} {'-':>6} {'-':>6}"
            else:
                ratios = (f"{r['instructions'] / ref['instructions']:>6.2f} {r['arena'] / ref['arena_used']:>6.2f} "
                          f"{r['app_flash'] / ref['app_flash']:>6.2f}")
            arena = r["arena_used"] if mode == "tflm" else r["arena"]
            same = f" (= {r['same_as']})" if r.get("same_as") else ""
            lines.append(f"{label} {r['instructions']:>11,} {f'{per_mac:.2f}' if per_mac else '-':>5} "
                         f"{arena:>8,} {r['app_flash']:>11,} {ratios} {'yes' if r['bit_exact'] else 'NO':>5}  "
                         f"{'' if ref_failed or mode == 'tflm' else mode_targets(model, mode, r, ref)}{same}")
    return lines


def mode_targets(model: str, mode: str, r: dict, ref: dict) -> str:
    """The verdicts of one native mode's row: the targets that mode is measured against, as text."""
    out = []
    if mode == "speed":
        ratio = r["instructions"] / ref["instructions"]
        out.append(f"instr <= {TARGET_SPEED}x {verdict(ratio, TARGET_SPEED)}")
        if model in CONV_HEAVY and r.get("macs"):
            out.append(f"/MAC <= {TARGET_PER_MAC} {verdict(r['instructions'] / r['macs'], TARGET_PER_MAC)}")
    elif mode == "ram" and model in RAM_MODELS:
        out.append(f"arena <= {TARGET_RAM}x {verdict(r['arena'] / ref['arena_used'], TARGET_RAM)}")
    elif mode == "size":
        out.append(f"flash <= {TARGET_SIZE}x {verdict(r['app_flash'] / ref['app_flash'], TARGET_SIZE)}")
    return ", ".join(out)


def layers_table(model: str, ops: list[dict], native_layers: list[dict] | None,
                 tflm_layers: list[dict] | None) -> list[str]:
    """Per operator: native's and TFLM + CMSIS-NN's instructions side by side, per MAC, their ratio and which
    engine wins. `ops`: codegen.json's ops (index, op, output_shape, macs); a layer list: run.json `layers`
    (`op_index`, `instructions`). An operator native turns into an alias (RESHAPE) costs it nothing."""
    if native_layers is None or tflm_layers is None:
        return [f"{model}: no per-operator profile ({'native' if native_layers is None else 'TFLM'} did not "
                "report one)"]
    native = {layer["op_index"]: layer["instructions"] for layer in native_layers}
    tflm = {layer["op_index"]: layer["instructions"] for layer in tflm_layers}
    head = (f"{'op':>3} {'operator':<18} {'output':<12} {'MACs':>10} {'native':>11} {'/MAC':>6} "
            f"{'TFLM+CMSIS':>11} {'/MAC':>6} {'ratio':>6}  faster")
    lines = [f"{model}: instructions per operator, native (speed) vs TFLM + CMSIS-NN", head, "-" * len(head)]
    for op in ops:
        i = op["index"]
        n, t = native.get(i, 0 if op.get("kernel") == "alias" else None), tflm.get(i)
        macs = op.get("macs") or 0

        def count(v):
            return f"{v:>11,}" if v is not None else f"{'-':>11}"

        def per(v):
            return f"{v / macs:>6.2f}" if v is not None and macs else f"{'-':>6}"

        ratio = f"{n / t:>6.2f}" if n is not None and t else f"{'-':>6}"
        faster = "" if n is None or t is None or n == t else ("native" if n < t else "TFLM")
        shape = "x".join(str(d) for d in op.get("output_shape", []))
        lines.append(f"{i:>3} {op['op']:<18} {shape:<12} {macs:>10,} {count(n)} {per(n)} {count(t)} {per(t)} "
                     f"{ratio}  {faster}")
    n_total, t_total = sum(native.values()), sum(tflm.values())
    lines.append(f"{'':>3} {'total':<18} {'':<12} {sum(o.get('macs') or 0 for o in ops):>10,} {n_total:>11,} "
                 f"{'':>6} {t_total:>11,} {'':>6} {n_total / t_total if t_total else 0:>6.2f}")
    return lines


def cores_header(model: str) -> list[str]:
    head = (f"{'core':<11} {'board':<12} {'native':>11} {'TFLM+CMSIS':>11} {'ratio':>6} {'target':>6} "
            f"{'verdict':>7}  exact")
    return [f"{model} on every emulated core: native (speed) vs TFLM + CMSIS-NN", head, "-" * len(head)]


def core_row(core: str, board: str, native: dict, tflm: dict, model: str | None = None) -> str:
    """One core's instructions side by side, the ratio and its verdict against the core's target; `model`: the
    row measures that model instead of the table's (named after the verdict)."""
    label = f"{core:<11} {board:<12}"
    note = f"  ({model})" if model else ""
    target = CORE_TARGETS.get(core, 1.0)
    failed = [(who, _failed(r)) for who, r in (("native", native), ("TFLM", tflm)) if _failed(r)]
    n = f"{native['instructions']:>11,}" if not _failed(native) else f"{'-':>11}"
    t = f"{tflm['instructions']:>11,}" if not _failed(tflm) else f"{'-':>11}"
    if failed:
        return (f"{label} {n} {t} {'-':>6} {target:>5.1f}x {'-':>7}  "
                + "; ".join(_error_line(who, error).strip() for who, error in failed) + note)
    ratio = native["instructions"] / tflm["instructions"]
    exact = "yes" if native["bit_exact"] and tflm["bit_exact"] else "NO"
    return f"{label} {n} {t} {ratio:>6.2f} {target:>5.1f}x {verdict(ratio, target):>7}  {exact}{note}"


def cores_table(model: str, rows: dict[str, tuple[str, dict, dict]]) -> list[str]:
    """core -> (board, native measurement, TFLM + CMSIS-NN measurement)."""
    return cores_header(model) + [core_row(core, *row) for core, row in rows.items()]
