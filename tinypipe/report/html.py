"""A self-contained HTML report: the results table, bar charts per variant, and where the time went.

No JavaScript and no external assets: the charts are inline SVG, so the file can be attached to a CI run or
mailed as is.
"""

from __future__ import annotations

import html
from typing import Any

from tinypipe.report.results import fmt_value

CHARTS = [
    ("instructions_per_inference", "Instructions per inference", ""),
    ("flash_bytes", "Flash", " B"),
    ("ram_bytes", "RAM", " B"),
    ("arena_bytes", "Tensor arena", " B"),
]


def _bar_chart(title: str, rows: list[dict[str, Any]], field: str, unit: str) -> str:
    values = [(r["variant"], r.get(field)) for r in rows if r.get(field) is not None]
    if not values:
        return ""
    top = max(v for _, v in values) or 1
    bar_h, gap, label_w, width = 22, 8, 220, 640
    height = len(values) * (bar_h + gap) + 10
    parts = [f'<svg role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">']
    for i, (name, value) in enumerate(values):
        y = 5 + i * (bar_h + gap)
        w = max(1, int((width - label_w - 120) * value / top))
        parts.append(f'<text x="0" y="{y + 15}">{html.escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="#3b7dd8"/>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 15}">{value:,}{unit}</text>')
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>\n" + "".join(parts)


def _layer_chart(row: dict[str, Any]) -> str:
    """One variant's per-operator cost, in model order."""
    layers = row["layers"]
    unit = "instructions" if "instructions" in layers[0] else "cycles"
    bars = [{"variant": f"{layer['op_index']} {layer['op']}", unit: layer[unit]} for layer in layers]
    return _bar_chart(f"{row['variant']}: {unit} per operator", bars, unit, "")


def _cell(value: Any, kind: str = "") -> str:
    """A table cell: the terminal table's formatting, escaped, with a failed check in red."""
    if value is False:
        return '<b class="bad">NO</b>'
    return html.escape(fmt_value(value, kind))


def render_html(project: str, rows: list[dict[str, Any]], stages: list[dict[str, Any]]) -> str:
    """`rows`: results in the `--json` shape; `stages`: {"variant", "stage", "seconds"} from the store."""
    head = ("<tr><th>variant</th><th>accuracy host</th><th>accuracy device</th><th>bit-exact</th>"
            "<th>instructions / inference</th><th>flash B</th><th>RAM B</th><th>arena B</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(r['variant'])}</td><td>{_cell(r.get('accuracy_host'), 'pct')}</td>"
        f"<td>{_cell(r.get('accuracy_device'), 'pct')}</td><td>{_cell(r.get('bit_exact'))}</td>"
        f"<td>{_cell(r.get('instructions_per_inference'))}</td><td>{_cell(r.get('flash_bytes'))}</td>"
        f"<td>{_cell(r.get('ram_bytes'))}</td><td>{_cell(r.get('arena_bytes'))}</td></tr>"
        for r in rows)
    charts = "\n".join(_bar_chart(title, rows, field, unit) for field, title, unit in CHARTS)
    layers = "\n".join(_layer_chart(r) for r in rows if r.get("layers"))
    if layers:
        layers = "<h2>Per operator (<code>target.profile_layers</code>)</h2>\n" + layers
    timing = "".join(f"<tr><td>{html.escape(s['variant'])}</td><td>{html.escape(s['stage'])}</td>"
                     f"<td>{s['seconds']:.2f}</td></tr>" for s in stages)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tinypipe report: {html.escape(project)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child, td:nth-child(2) {{ text-align: left; }}
.bad {{ color: #b00; }}
</style></head><body>
<h1>tinypipe report: {html.escape(project)}</h1>
<p>Instructions are counted by QEMU with <code>-icount shift=0</code> (not cycles). Bit-exact means every output
byte equals the host TensorFlow Lite Micro interpreter's.</p>
<h2>Results</h2>
<table>{head}{body}</table>
<h2>Per variant</h2>
{charts}
{layers}
<h2>Stage times (last build of each stage)</h2>
<table><tr><th>variant</th><th>stage</th><th>seconds</th></tr>{timing}</table>
</body></html>
"""
