"""The final table, the `--json` document, and budget checks."""

from __future__ import annotations

from typing import Any

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
    if row.get("bit_exact") is False:
        out.append(f"{row['variant']}: device outputs differ from the host TFLM oracle (bit_exact: false)")
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


def render_table(console, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="tinypipe results", title_style="bold")
    for column, justify in [("variant", "left"), ("acc host", "right"), ("acc device", "right"),
                            ("bit-exact", "center"), ("instr/inference", "right"), ("flash B", "right"),
                            ("RAM B", "right"), ("arena B", "right")]:
        table.add_column(column, justify=justify)
    for r in rows:
        exact = r.get("bit_exact")
        exact_text = "—" if exact is None else ("[green]yes[/green]" if exact else "[red]NO[/red]")
        table.add_row(r["variant"], fmt_value(r.get("accuracy_host"), "pct"),
                      fmt_value(r.get("accuracy_device"), "pct"), exact_text,
                      fmt_value(r.get("instructions_per_inference")), fmt_value(r.get("flash_bytes")),
                      fmt_value(r.get("ram_bytes")), fmt_value(r.get("arena_bytes")))
    console.print(table)


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
