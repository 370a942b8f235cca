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


def _fmt(value: Any, kind: str = "") -> str:
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
        table.add_row(r["variant"], _fmt(r.get("accuracy_host"), "pct"), _fmt(r.get("accuracy_device"), "pct"),
                      exact_text, _fmt(r.get("instructions_per_inference")), _fmt(r.get("flash_bytes")),
                      _fmt(r.get("ram_bytes")), _fmt(r.get("arena_bytes")))
    console.print(table)
