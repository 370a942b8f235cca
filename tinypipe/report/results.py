"""Results: the rows of the `--json` document (one per matrix cell), the document itself, budget checks, and
the table people read (fits 80 columns, says its units, one-line legend)."""

from __future__ import annotations

from typing import Any


def result_rows(pipeline) -> list[dict[str, Any]]:
    """One row per variant in the `--json` shape of DESIGN.md; a value is None where its stage did not run."""
    rows = []
    for v in pipeline.variants:
        quant = pipeline.summary(v.name, "quantize") or {}
        codegen = pipeline.summary(v.name, "codegen") or {}
        build = pipeline.summary(v.name, "build") or {}
        run = pipeline.summary(v.name, "run") or {}
        flash = build.get("flash_bytes")
        rows.append({
            "variant": v.name,
            "board": v.board.name,
            "engine": v.engine,
            "instructions_per_inference": run.get("instructions_per_inference"),
            "flash_bytes": flash,
            "ram_bytes": build.get("ram_bytes"),
            "arena_bytes": codegen.get("arena_bytes"),
            "accuracy_host": quant.get("accuracy_host"),
            "accuracy_device": run.get("accuracy_device"),
            "bit_exact": run.get("bit_exact"),
            "layers": run.get("layers"),
            "realtime": run.get("realtime"),
            # with `features:` the device's features against the host's (part of bit_exact); null for raw
            "features_bit_exact": run.get("features_bit_exact"),
            # flash without the test windows the emulator replays: what the application takes on a board
            "app_flash_bytes": build.get("app_flash_bytes", flash),
            "test_data_bytes": build.get("test_data_bytes"),
            "flash_capacity_bytes": v.board.flash.size,
            "ram_capacity_bytes": v.board.ram.size,
            "sweep": dict(v.sweep),  # this cell's values of the matrix's sweeps, by key path ({} without sweeps)
            # the native engine's `native.optimize` mode (None for another engine)
            "optimize": (v.config.get("native") or {}).get("optimize", "balanced") if v.engine == "native" else None,
        })
    return rows


def run_document(pipeline, outcome) -> dict[str, Any]:
    """The `tinypipe run --json` document; `checks` lists the budgets and checks that failed."""
    rows = result_rows(pipeline)
    checks = [failure for row in rows for failure in budget_failures(row, pipeline.config["budgets"])]
    stages = [{"stage": r.stage, "variant": r.variants[0] if len(r.variants) == 1 else "+".join(r.variants),
               "variants": r.variants, "status": r.status, "seconds": round(r.seconds, 3)}
              for r in outcome.records]
    return {"stages": stages, "results": rows, "checks": checks}

def budget_failures(row: dict[str, Any], budgets: dict[str, Any]) -> list[str]:
    """Budgets (the validated `budgets:` section) the variant's results break; a missing measurement is not."""
    out = []
    checks = [
        ("flash_bytes", budgets.get("flash_bytes"), "flash", lambda got, lim: got > lim, "B"),
        ("ram_bytes", budgets.get("ram_bytes"), "RAM", lambda got, lim: got > lim, "B"),
        ("instructions_per_inference", budgets.get("instructions_per_inference"), "instructions per inference",
         lambda got, lim: got > lim, ""),
        ("accuracy_device", budgets.get("accuracy_device_min"), "device accuracy", lambda got, lim: got < lim, ""),
    ]
    for field, limit, label, broken, unit in checks:
        got = row.get(field)
        if limit is not None and got is not None and broken(got, limit):
            relation = "below the minimum" if field == "accuracy_device" else "over the budget"
            out.append(f"{row['variant']}: {label} {got:,}{unit} is {relation} {limit:,}{unit} (budgets.{_budget_key(field)})")
    out += realtime_failures(row, budgets)
    if row.get("features_bit_exact") is False:
        out.append(f"{row['variant']}: the features the device computed differ from the host's "
                   "(features_bit_exact: false; run.json's feature_mismatches names the windows)")
    elif row.get("bit_exact") is False:
        out.append(f"{row['variant']}: device outputs differ from the host TFLM oracle (bit_exact: false)")
    return out


def realtime_failures(row: dict[str, Any], budgets: dict[str, Any]) -> list[str]:
    """The real-time budgets the variant's loop breaks, each with the measured figures."""
    realtime = row.get("realtime")
    if not realtime:
        return []
    unit = realtime.get("unit", "instructions")
    most_misses, least_margin = budgets.get("deadline_misses_max"), budgets.get("realtime_margin_min")
    figures = (f"the slowest window took {realtime[f'worst_window_{unit}']:,} {unit} (features "
               f"{realtime[f'features_{unit}']:,} + inference {realtime[f'inference_{unit}']:,}) of a period of "
               f"{realtime[f'period_{unit}']:,} ({realtime['hop']} samples at {hertz(realtime['sample_rate_hz'])} Hz)")
    out = []
    if most_misses is not None and realtime["deadline_misses"] > most_misses:
        out.append(f"{row['variant']}: the real-time loop missed {realtime['deadline_misses']} of "
                   f"{realtime['windows']} window deadlines, over the budget {most_misses} "
                   f"(budgets.deadline_misses_max): {figures}")
    margin = realtime.get("margin")
    if least_margin is not None and margin is not None and margin < least_margin:
        out.append(f"{row['variant']}: the real-time loop leaves {margin * 100:.1f}% of the period to spare, "
                   f"below the minimum {least_margin * 100:.1f}% (budgets.realtime_margin_min): {figures}")
    return out


def _budget_key(field: str) -> str:
    return "accuracy_device_min" if field == "accuracy_device" else field


def fmt_value(value: Any, kind: str = "") -> str:
    """A result as the reports show it: — for missing, percentages, yes/NO, thousands separators."""
    if value is None:
        return "—"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, (int, float)):
        return f"{value:,.0f}"
    return str(value)


def _kib(value: int | None) -> str:
    return "—" if value is None else f"{value / 1024:.1f}"


def _capacity(used: int | None, capacity: int | None) -> str:
    """`18.9/4096` (KiB): the figure a user compares with the board's memory, beside the board's memory."""
    if used is None:
        return "—"
    return f"{_kib(used)}/{capacity // 1024}" if capacity else _kib(used)


def _count(value: int | None) -> str:
    if value is None:
        return "—"
    if value >= 1_000_000_000:
        return f"{value / 1e9:.2f} G"
    if value >= 10_000_000:
        return f"{value / 1e6:.2f} M"
    return f"{value:,}"


def hertz(rate: float) -> str:
    """A sample rate as people write it: 50, 16,000, 12.5."""
    return f"{rate:,.0f}" if float(rate).is_integer() else f"{rate:,g}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}"


LEGEND = ("bit-exact: every output byte equals the host TFLM interpreter's. instr/inference: instructions "
          "counted by QEMU (-icount), not cycles. flash: the application, without the {test} of test data the "
          "emulator replays. RAM includes the stack reservation. KiB used/board.")


def render_results(console, rows: list[dict[str, Any]]) -> None:
    render_table(console, rows)
    render_realtime(console, rows)
    render_layers(console, rows)


def _print_table(console, title: str, columns: list[tuple[str, str]], rows: list[list[tuple[str, str | None]]]) -> None:
    """Laid out by `columns.render` (fast at any row count); rich's Table only where the terminal is too narrow
    even for that layout. `columns` are (header, justify); each cell is (text, rich style or None)."""
    from tinypipe.report.columns import Cell, Column, render

    text = render(title, [Column(h, j) for h, j in columns], [[Cell(*cell) for cell in row] for row in rows],
                  console.width)
    if text is not None:
        console.print(text)
        return
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True,
                  show_edge=False, pad_edge=False)
    for i, (header, justify) in enumerate(columns):
        table.add_column(header, justify=justify, overflow="fold", no_wrap=i > 0)
    for row in rows:
        table.add_row(*[f"[{style}]{text}[/{style}]" if style else text for text, style in row])
    console.print(table)


def render_table(console, rows: list[dict[str, Any]]) -> None:
    """Fits 80 columns: the variant column wraps (never truncates) when names are long."""
    columns = [("variant", "left"), ("accuracy %\nhost/dev", "right"), ("bit-\nexact", "center"),
               ("instr/\ninference", "right"), ("flash KiB\nused/board", "right"),
               ("RAM KiB\nused/board", "right"), ("arena\nKiB", "right")]
    cells = []
    for r in rows:
        exact = r.get("bit_exact")
        exact_cell = ("—", None) if exact is None else (("yes", "green") if exact else ("NO", "red"))
        accuracy = f"{_percent(r.get('accuracy_host'))}/{_percent(r.get('accuracy_device'))}"
        cells.append([(r["variant"], None), (accuracy, None), exact_cell,
                      (_count(r.get("instructions_per_inference")), None),
                      (_capacity(r.get("app_flash_bytes", r.get("flash_bytes")), r.get("flash_capacity_bytes")), None),
                      (_capacity(r.get("ram_bytes"), r.get("ram_capacity_bytes")), None),
                      (_kib(r.get("arena_bytes")), None)])
    _print_table(console, "tinypipe results", columns, cells)
    test_data = {r.get("test_data_bytes") for r in rows if r.get("test_data_bytes")}
    amount = f"{_kib(test_data.pop())} KiB" if len(test_data) == 1 else "KiBs"
    console.print(LEGEND.format(test=amount), style="dim", highlight=False)


REALTIME_LEGEND = ("real-time loop: the sensor sampled at its rate by a timer interrupt, a window classified every "
                   "hop samples. period: the time between two windows; slowest: the slowest window, preprocessing "
                   "+ inference, interrupts included; missed: windows not done before the next was due. "
                   "{units}")


def render_realtime(console, rows: list[dict[str, Any]]) -> None:
    """The real-time loop per variant: the slowest window against the period, and the deadline misses."""
    measured = [r for r in rows if r.get("realtime")]
    if not measured:
        return
    columns = [("variant", "left")] + [(h, "right") for h in ("Hz/hop", "period", "slowest", "pre-\nproc.",
                                                                "infer-\nence", "used\n%", "missed")]
    cells = []
    for r in measured:
        rt = r["realtime"]
        unit = rt.get("unit", "instructions")
        period, worst = rt[f"period_{unit}"], rt[f"worst_window_{unit}"]
        missed = f"{rt['deadline_misses']}/{rt['windows']}"
        cells.append([(r["variant"], None), (f"{hertz(rt['sample_rate_hz'])}/{rt['hop']}", None),
                      (_count(period), None), (_count(worst), None), (_count(rt[f"features_{unit}"]), None),
                      (_count(rt[f"inference_{unit}"]), None),
                      (f"{worst / period * 100:.1f}" if period else "—", None),
                      (missed, "red" if rt["deadline_misses"] else None)])
    _print_table(console, "real-time loop", columns, cells)
    units = {r["realtime"].get("unit", "instructions") for r in measured}
    says = []
    if "instructions" in units:
        says.append("On the emulator times are instructions counted by QEMU (-icount), not cycles.")
    if "cycles" in units:
        says.append("On a board times are core cycles.")
    console.print(REALTIME_LEGEND.format(units=" ".join(says)), style="dim", highlight=False)


def render_layers(console, rows: list[dict[str, Any]], top: int = 12) -> None:
    """Per-operator tables (per inference, the costliest first) for the variants profiled with
    `target.profile_layers`."""
    from rich.table import Table

    for r in rows:
        layers = r.get("layers")
        if not layers:
            continue
        unit = "instructions" if "instructions" in layers[0] else "cycles"
        table = Table(title=f"{r['variant']}: {unit} per operator", title_style="bold")
        for column, justify in [("op", "right"), ("operator", "left"), (unit, "right"), ("share", "right")]:
            table.add_column(column, justify=justify)
        ranked = sorted(layers, key=lambda layer: -layer[unit])
        for layer in ranked[:top]:
            table.add_row(str(layer["op_index"]), layer["op"], fmt_value(layer[unit]),
                          fmt_value(layer["share"], "pct"))
        if len(ranked) > top:
            rest = ranked[top:]
            table.add_row("", f"{len(rest)} more", fmt_value(sum(x[unit] for x in rest)),
                          fmt_value(sum(x["share"] for x in rest), "pct"))
        console.print(table)
