"""A self-contained HTML report: what each variant uses of its board, how well the device classifies, how the
model trained, where the instructions go, what changed since the previous run, and where the build time went.

No JavaScript and no external assets: the charts are inline SVG with axes and units, so the file can be
attached to a CI run or mailed as is. `render_html` is a pure function of plain data; `html_rows` and
`stage_times` gather that data from a pipeline's store.
"""

from __future__ import annotations

import html
import json
import math
import time
from typing import Any, Callable

from tinypipe.report.results import fmt_value

BLUE, LIGHT_BLUE, ORANGE, LIGHT_ORANGE = "#3b7dd8", "#9dbdea", "#d8843b", "#f1c79c"
GREEN, RED, GREY, FREE = "#2a9d55", "#c8463d", "#8a8f98", "#eef1f5"
LEVEL_COLOURS = (GREEN, "#7b4fb3", "#b8860b", "#555555")  # dashed reference lines, at most four
FONT = 'font-family="system-ui, sans-serif" font-size="12"'
PLOT_W = 520  # width of a chart's plotting area, px
LINE_W = 400  # of a line chart's, so two fit side by side


# --- numbers as people read them ------------------------------------------------------------------------

def _bytes(n: float) -> str:
    """1,234 B, 20.8 KiB, 4 MiB."""
    if abs(n) < 1024:
        return f"{n:,.0f} B"
    value, unit = (n / 1024, "KiB") if abs(n) < 1024 ** 2 else (n / 1024 ** 2, "MiB")
    text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text.rstrip('0').rstrip('.')} {unit}"


def _count(n: float) -> str:
    """12,480 up to 100 k; then 1.23 M."""
    if abs(n) >= 1e6:
        return f"{n / 1e6:.2f} M"
    if abs(n) >= 1e5:
        return f"{n / 1e3:.0f} k"
    return f"{n:,.0f}"


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}%"


def _byte_ticks(top: float, count: int = 5) -> list[float]:
    """Axis ticks for bytes: round numbers of KiB or MiB rather than of 1000."""
    unit = 1024 ** 2 if top >= 4 * 1024 ** 2 else 1024 if top >= 4 * 1024 else 1
    return [t * unit for t in _ticks(top / unit, count)]


def _ticks(top: float, count: int = 5) -> list[float]:
    """Round axis ticks from 0 to at least `top` (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _e(text: Any) -> str:
    return html.escape(str(text))


# --- SVG primitives -------------------------------------------------------------------------------------

def _text_w(text: str) -> int:
    """A generous width estimate of 12 px sans-serif text: SVG text does not wrap, so labels get room."""
    return int(7.4 * len(text)) + 12


def _fit(text: str, width: int) -> str:
    """`text` cut with an ellipsis to about `width` px (the bar's tooltip keeps it whole)."""
    if _text_w(text) <= width:
        return text
    return text[:max(3, int((width - 12) / 7.4) - 1)] + "…"


def _figure(title: str, width: float, height: float, body: list[str], caption: str = "") -> str:
    svg = (f'<svg role="img" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
           f'xmlns="http://www.w3.org/2000/svg" {FONT}><title>{_e(title)}</title>{"".join(body)}</svg>')
    cap = f'<figcaption style="max-width: {max(width, 360):.0f}px">{caption}</figcaption>' if caption else ""
    return f'<figure><h3>{_e(title)}</h3>{svg}{cap}</figure>'


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str = "", extra: str = "") -> str:
    title = f"<title>{_e(tip)}</title>" if tip else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" fill="{fill}" {extra}>'
            f'{title}</rect>')


def _label(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{_e(text)}</text>'


def _x_axis(x0: float, y: float, width: float, ticks: list[float], fmt: Callable[[float], str], title: str,
            grid_top: float) -> list[str]:
    """Gridlines from `grid_top` down to the axis at `y`, tick labels under it, and the axis title."""
    top = ticks[-1] or 1
    out = [f'<line x1="{x0}" y1="{y}" x2="{x0 + width}" y2="{y}" stroke="#555"/>']
    for t in ticks:
        x = x0 + width * t / top
        out.append(f'<line x1="{x:.1f}" y1="{grid_top}" x2="{x:.1f}" y2="{y}" stroke="#ddd"/>')
        out.append(_label(x, y + 15, fmt(t), "middle", 'fill="#444"'))
    out.append(_label(x0 + width / 2, y + 33, title, "middle", 'font-weight="bold"'))
    return out


def _legend(x: float, y: float, items: list[tuple[str, str]], wrap_at: float = 10_000) -> tuple[list[str], int]:
    """Colour swatches in a row, a new row of 16 px past `wrap_at`; a colour starting with `dash:` draws a
    dashed line instead. Returns the elements and how many rows they took."""
    out, start, rows = [], x, 1
    for name, colour in items:
        if x > start and x + 19 + _text_w(name) > wrap_at:
            x, y, rows = start, y + 16, rows + 1
        if colour.startswith("dash:"):
            out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 14}" y2="{y - 4}" stroke="{colour[5:]}" '
                       f'stroke-width="2" stroke-dasharray="4 3"/>')
        else:
            out.append(_rect(x, y - 10, 14, 12, colour, extra='stroke="#999" stroke-width="0.5"'))
        out.append(_label(x + 19, y, name))
        x += 19 + _text_w(name) + 10
    return out, rows


def _hbar_chart(title: str, items: list[tuple[str, float, str]], axis_title: str, fmt: Callable[[float], str],
                colour: str | list[str] = BLUE, ranges: list[tuple[float, float] | None] | None = None,
                caption: str = "", tick_values: Callable[[float], list[float]] = _ticks) -> str:
    """Horizontal bars from zero: `items` are (label, value, text printed after the bar); `colour` one for all
    or one per bar; `ranges` optional (min, max) whiskers per bar."""
    label_w = min(360, max(_text_w(label) for label, _, _ in items))
    text_w = max(_text_w(text) for _, _, text in items)
    top_value = max([v for _, v, _ in items] + [r[1] for r in (ranges or []) if r])
    ticks = tick_values(top_value)
    bar_h, gap, top = 18, 8, 8
    y_axis = top + len(items) * (bar_h + gap)
    width, height = label_w + PLOT_W + text_w + 10, y_axis + 42
    body = _x_axis(label_w, y_axis, PLOT_W, ticks, fmt, axis_title, top - 4)
    for i, (label, value, text) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = PLOT_W * value / ticks[-1]
        body.append(_label(label_w - 6, y + 13, _fit(label, label_w), "end"))
        fill = colour[i] if isinstance(colour, list) else colour
        body.append(_rect(label_w, y, max(w, 1), bar_h, fill, f"{label}: {text}"))
        end = w
        spread = ranges[i] if ranges else None
        if spread:
            lo, hi = (PLOT_W * v / ticks[-1] for v in spread)
            mid = y + bar_h / 2
            body.append(f'<path d="M{label_w + lo:.1f} {mid - 5}v10M{label_w + lo:.1f} {mid}H{label_w + hi:.1f}'
                        f'M{label_w + hi:.1f} {mid - 5}v10" stroke="#222" fill="none"/>')
            end = max(end, hi)
        body.append(_label(label_w + end + 6, y + 13, text))
    return _figure(title, width, height, body, caption)


def _line_chart(title: str, series: list[tuple[str, list[float], str]], y_title: str,
                y_fmt: Callable[[float], str], levels: list[tuple[str, float, str]] = (), y_max: float | None = None,
                caption: str = "") -> str:
    """Values per epoch (x from 1), one polyline per series (name, values, colour); `levels` are dashed
    horizontal reference lines (name, value, colour)."""
    left, top, w, h = 64, 30, LINE_W, 220
    epochs = max(len(values) for _, values, _ in series)
    top_value = y_max if y_max is not None else max(max(v) for _, v, _ in series if v)
    y_ticks = _ticks(top_value, 4)
    x_ticks = [t for t in _ticks(epochs, 6) if t >= 1] or [1]
    x_span = max(epochs - 1, 1)

    def px(epoch: float) -> float:
        return left + w * (epoch - 1) / x_span

    def py(value: float) -> float:
        return top + h - h * value / y_ticks[-1]

    body, rows = _legend(left, 16, [(name, colour) for name, _, colour in series] +
                         [(name, f"dash:{colour}") for name, _, colour in levels], wrap_at=left + w + 60)
    top += 16 * (rows - 1)
    for t in y_ticks:
        body.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{left + w}" y2="{py(t):.1f}" stroke="#ddd"/>')
        body.append(_label(left - 6, py(t) + 4, y_fmt(t), "end", 'fill="#444"'))
    body.append(f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#555"/>')
    body.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#555"/>')
    for t in x_ticks:
        if t <= epochs:
            body.append(_label(px(t), top + h + 15, f"{t:g}", "middle", 'fill="#444"'))
    body.append(_label(left + w / 2, top + h + 33, "epoch", "middle", 'font-weight="bold"'))
    body.append(f'<text transform="translate(14 {top + h / 2}) rotate(-90)" text-anchor="middle" '
                f'font-weight="bold">{_e(y_title)}</text>')
    for name, value, colour in levels:
        body.append(f'<line x1="{left}" y1="{py(value):.1f}" x2="{left + w}" y2="{py(value):.1f}" stroke="{colour}" '
                    f'stroke-width="1.5" stroke-dasharray="5 4"><title>{_e(name)}: {_e(y_fmt(value))}</title></line>')
    ends = []
    for name, values, colour in series:
        if not values:
            continue
        points = " ".join(f"{px(i + 1):.1f},{py(v):.1f}" for i, v in enumerate(values))
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2">'
                    f'<title>{_e(name)}</title></polyline>')
        x, y = px(len(values)), py(values[-1])
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
        ends.append([y + 4, x + 6, y_fmt(values[-1]), colour])
    ends.sort()
    for above, below in zip(ends, ends[1:]):  # the last values' labels must not overlap
        below[0] = max(below[0], above[0] + 13)
    body += [_label(x, y, text, extra=f'fill="{colour}"') for y, x, text, colour in ends]
    return _figure(title, left + w + 60, top + h + 50, body, caption)


# --- sections -------------------------------------------------------------------------------------------

def _cell(value: Any, kind: str = "") -> str:
    """A table cell: the terminal table's formatting, escaped, with a failed check in red."""
    if value is False:
        return '<b class="bad">NO</b>'
    return html.escape(fmt_value(value, kind))


def _results_table(rows: list[dict[str, Any]]) -> str:
    head = ("<tr><th>variant</th><th>board</th><th>accuracy host</th><th>accuracy device</th><th>bit-exact</th>"
            "<th>instructions / inference</th><th>flash B (application)</th><th>test windows B</th><th>RAM B</th>"
            "<th>arena B</th></tr>")
    body = "".join(
        f"<tr><td>{_e(r['variant'])}</td><td>{_e(r.get('board') or '—')}</td>"
        f"<td>{_cell(r.get('accuracy_host'), 'pct')}</td>"
        f"<td>{_cell(r.get('accuracy_device'), 'pct')}</td><td>{_cell(r.get('bit_exact'))}</td>"
        f"<td>{_cell(r.get('instructions_per_inference'))}</td><td>{_cell(_app_flash(r))}</td>"
        f"<td>{_cell(r.get('test_data_bytes'))}</td>"
        f"<td>{_cell(r.get('ram_bytes'))}</td><td>{_cell(r.get('arena_bytes'))}</td></tr>"
        for r in rows)
    return f'<table class="results">{head}{body}</table>'


def _tiles(row: dict[str, Any]) -> str:
    """The headline numbers of a one-variant report."""
    tiles = [("instructions / inference", fmt_value(row.get("instructions_per_inference")), "counted by QEMU"),
             ("device accuracy", _pct(row.get("accuracy_device")), f"host TFLM: {_pct(row.get('accuracy_host'))}"),
             ("bit-exact", fmt_value(row.get("bit_exact")), "against host TFLM")]
    app = _app_flash(row)
    for name, used, cap in [("flash (application)", app, row.get("flash_capacity_bytes")),
                            ("RAM", row.get("ram_bytes"), row.get("ram_capacity_bytes"))]:
        if used is not None:
            tiles.append((name, _bytes(used), f"{_pct(used / cap)} of {_bytes(cap)}" if cap else ""))
    cells = "".join(f'<div class="tile"><div class="k">{_e(k)}</div><div class="v{" bad" if v == "NO" else ""}">'
                    f'{_e(v)}</div><div class="s">{_e(s)}</div></div>' for k, v, s in tiles)
    return f'<div class="tiles">{cells}</div>'


def _app_flash(row: dict[str, Any]) -> int | None:
    """Flash without the test windows; all of it for entries built before the build stage told them apart."""
    app = row.get("app_flash_bytes")
    return row.get("flash_bytes") if app is None else app


def _memory_segments(row: dict[str, Any]) -> dict[str, list[tuple[str, float, str]]] | None:
    """Per memory, the used parts (name, bytes, colour) of a variant; None without a build."""
    m = row.get("memory") or {}
    flash, ram, app = row.get("flash_bytes"), row.get("ram_bytes"), _app_flash(row)
    if flash is None or ram is None:
        return None
    flash_parts = [("firmware (code, model, runtime)", app, BLUE), ("test windows (emulator only)", flash - app,
                                                                    LIGHT_BLUE)]
    stack = m.get("stack")
    if stack is None:
        ram_parts = [("static (.data + .bss)", ram, ORANGE)]
    else:
        used = row.get("stack_used")
        ram_parts = [("static (.data + .bss)", ram - stack, ORANGE)]
        if used is not None and 0 <= used <= stack:
            ram_parts += [("stack used (high-water mark)", used, "#b4641f"),
                          ("stack reserved, unused", stack - used, LIGHT_ORANGE)]
        else:
            ram_parts.append(("stack reservation", stack, LIGHT_ORANGE))
    return {"flash": flash_parts, "RAM": ram_parts}


def _capacity_chart(rows: list[dict[str, Any]]) -> str:
    """Stacked bars: each variant's flash and RAM as a share of its board's, with the capacity at the end."""
    entries = [(r, parts) for r in rows if (parts := _memory_segments(r)) and r.get("flash_capacity_bytes")
               and r.get("ram_capacity_bytes")]
    if not entries:
        return ""
    label_w = 60  # "flash" and "RAM"; the variant names head their groups
    text_w = 340
    bar_h, top = 18, 42
    group_h = 20 + 2 * (bar_h + 6) + 8
    y_axis = top + len(entries) * group_h
    legend = [(name, colour) for name, _, colour in entries[0][1]["flash"]] + [("free", FREE)]
    legend2 = []
    for _, parts in entries:
        for name, _, colour in parts["RAM"]:
            if (name, colour) not in legend2:
                legend2.append((name, colour))
    body = _legend(0, 14, legend)[0] + _legend(0, 32, legend2)[0]
    body += _x_axis(label_w, y_axis, PLOT_W, [0, 25, 50, 75, 100], lambda t: f"{t:.0f}%",
                    "share of the board's memory (%)", top - 2)
    for i, (row, parts) in enumerate(entries):
        y = top + i * group_h
        body.append(_label(0, y + 13, f"{row['variant']} ({row.get('board', '')})", extra='font-weight="bold"'))
        for j, (kind, capacity) in enumerate([("flash", row["flash_capacity_bytes"]),
                                                      ("RAM", row["ram_capacity_bytes"])]):
            by = y + 20 + j * (bar_h + 6)
            used = sum(b for _, b, _ in parts[kind])
            body.append(_label(label_w - 6, by + 13, kind, "end"))
            body.append(_rect(label_w, by, PLOT_W, bar_h, FREE, f"{kind}: {_bytes(capacity - used)} free",
                              'stroke="#aab" stroke-width="0.5"'))
            x = label_w
            for name, size, colour in parts[kind]:
                if size <= 0:
                    continue
                w = min(max(PLOT_W * size / capacity, 1.5), label_w + PLOT_W - x)  # a sliver stays visible
                body.append(_rect(x, by, w, bar_h, colour, f"{kind}, {name}: {size:,} B ({_pct(size / capacity, 2)})"))
                x += w
            over = ' fill="#c8463d" font-weight="bold"' if used > capacity else ""
            test = used - parts[kind][0][1] if kind == "flash" else 0
            own = used - test  # the application's share is what a device needs
            text = f"{_bytes(own)} of {_bytes(capacity)} · {_pct(own / capacity)}"
            body.append(f'<text x="{label_w + PLOT_W + 8}" y="{by + 13}"{over}>{_e(text)}'
                        + (f'<tspan fill="#666"> + {_e(_bytes(test))} test windows</tspan>' if test else "")
                        + "</text>")
    width = max(label_w + PLOT_W + text_w, max(_text_w(f"{r['variant']} ({r.get('board', '')})") for r, _ in entries))
    return _figure("Flash and RAM against the board's capacity", width, y_axis + 42, body,
                   "Bars are to scale of each board's flash and RAM (board registry). The test windows are the "
                   "data the emulator replays; firmware for the device leaves them out.")


def _sections_chart(rows: list[dict[str, Any]]) -> str:
    """Where the bytes go, to an absolute scale: flash and RAM by ELF section."""
    entries = []
    for r in rows:
        m = r.get("memory") or {}
        if not all(k in m for k in ("text", "rodata", "data", "bss", "stack")):
            continue
        test = r.get("test_data_bytes") or 0
        flash = [(".text (code)", m["text"], BLUE), (".rodata (weights, constants)", max(m["rodata"] - test, 0),
                                                     "#6a9be0"),
                 ("test windows", min(test, m["rodata"]), LIGHT_BLUE), (".data initialisers", m["data"], "#2c5aa0")]
        ram = [(".data", m["data"], "#2c5aa0"), (".bss (arena, state)", m["bss"], ORANGE),
               ("stack reservation", m["stack"], LIGHT_ORANGE)]
        entries.append((r, flash, ram))
    if not entries:
        return ""
    label_w = 60  # "flash" and "RAM"; the variant names head their groups
    top_value = max(max(sum(b for _, b, _ in f), sum(b for _, b, _ in m)) for _, f, m in entries)
    ticks = _byte_ticks(top_value)
    bar_h, top = 18, 42
    group_h = 20 + 2 * (bar_h + 6) + 8
    y_axis = top + len(entries) * group_h
    body = _legend(0, 14, [(n, c) for n, _, c in entries[0][1]])[0] + _legend(0, 32, [(n, c) for n, _, c in
                                                                                      entries[0][2][1:]])[0]
    body += _x_axis(label_w, y_axis, PLOT_W, ticks, _bytes, "bytes", top - 2)
    for i, (row, flash, ram) in enumerate(entries):
        y = top + i * group_h
        body.append(_label(0, y + 13, row["variant"], extra='font-weight="bold"'))
        for j, (kind, parts) in enumerate([("flash", flash), ("RAM", ram)]):
            by = y + 20 + j * (bar_h + 6)
            body.append(_label(label_w - 6, by + 13, kind, "end"))
            x = label_w
            for name, size, colour in parts:
                if size <= 0:
                    continue
                w = PLOT_W * size / ticks[-1]
                body.append(_rect(x, by, w, bar_h, colour, f"{kind}, {name}: {size:,} B"))
                x += w
            body.append(_label(x + 6, by + 13, f"{sum(b for _, b, _ in parts):,} B"))
    width = max(label_w + PLOT_W + 120, max(_text_w(r["variant"]) for r, _, _ in entries))
    return _figure("Flash and RAM by section", width, y_axis + 42, body,
                   "From the ELF's section headers (build stage). .data is stored in flash and copied to RAM at "
                   "reset, so it appears in both.")


def _compare_charts(rows: list[dict[str, Any]]) -> str:
    """Bars across variants for the results that differ between them; a sentence for those that do not (a
    chart of equal bars says less than the number)."""
    charts, same = [], []
    timed = [r for r in rows if r.get("instructions_per_inference") is not None]
    if len({r["instructions_per_inference"] for r in timed}) >= 2:
        ranges = [(r["instructions_min"], r["instructions_max"]) if r.get("instructions_min") is not None else None
                  for r in timed]
        charts.append(_hbar_chart("Instructions per inference", [
            (r["variant"], r["instructions_per_inference"], f"{r['instructions_per_inference']:,}") for r in timed],
            "instructions per inference (QEMU -icount, mean over the test windows)", _count, BLUE, ranges,
            "Whiskers: the fastest and the slowest test window."))
    elif timed:
        same.append(f"{timed[0]['instructions_per_inference']:,} instructions per inference")
    measured = [r for r in rows if r.get("accuracy_device") is not None]
    if len({r["accuracy_device"] for r in measured}) >= 2:
        charts.append(_hbar_chart("Device accuracy", [
            (r["variant"], r["accuracy_device"] * 100, _pct(r["accuracy_device"])) for r in measured],
            "accuracy on the test windows (%)", lambda t: f"{t:g}%", GREEN))
    elif measured:
        same.append(f"device accuracy {_pct(measured[0]['accuracy_device'])}")
    arenas = [r for r in rows if r.get("arena_bytes") is not None]
    if len({r["arena_bytes"] for r in arenas}) >= 2:
        charts.append(_hbar_chart("Tensor arena", [(r["variant"], r["arena_bytes"], f"{r['arena_bytes']:,} B")
                                                   for r in arenas], "arena bytes", _bytes, ORANGE,
                                  tick_values=_byte_ticks))
    elif arenas:
        same.append(f"a tensor arena of {arenas[0]['arena_bytes']:,} B")
    note = f"<p>Every variant has {_e(', '.join(same))}.</p>" if same else ""
    return note + "\n".join(charts)


def _metrics(matrix: list[list[int]]) -> list[tuple[int, float | None, float | None, float | None]]:
    """Per class: (windows, precision, recall, F1); None where a denominator is zero."""
    k = len(matrix)
    out = []
    for c in range(k):
        support = sum(matrix[c])
        predicted = sum(matrix[r][c] for r in range(k))
        precision = matrix[c][c] / predicted if predicted else None
        recall = matrix[c][c] / support if support else None
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall else None)
        out.append((support, precision, recall, f1))
    return out


def _shade(share: float) -> str:
    """White to dark blue by share (0..1)."""
    lo, hi = (255, 255, 255), (31, 84, 170)
    return "#" + "".join(f"{round(a + (b - a) * share):02x}" for a, b in zip(lo, hi))


def _confusion_svg(title: str, classes: list[str], matrix: list[list[int]]) -> str:
    k = len(classes)
    cell = max(22, min(64, 560 // max(k, 1)))
    label_w = min(200, max(_text_w(c) for c in classes)) + 30
    head_h = min(140, max(_text_w(c) for c in classes)) + 34 if cell < 60 else 52
    body = [f'<text transform="translate(12 {head_h + k * cell / 2}) rotate(-90)" text-anchor="middle" '
            f'font-weight="bold">true class</text>',
            _label(label_w + k * cell / 2, 14, "predicted by the device", "middle", 'font-weight="bold"')]
    for i, name in enumerate(classes):
        cx = label_w + i * cell + cell / 2
        if cell >= 60:
            body.append(_label(cx, head_h - 8, name, "middle"))
        else:
            body.append(f'<text transform="translate({cx + 4:.1f} {head_h - 6}) rotate(-60)">{_e(name)}</text>')
        body.append(_label(label_w - 6, head_h + i * cell + cell / 2 + 4, name, "end"))
    for r in range(k):
        total = sum(matrix[r]) or 1
        for c in range(k):
            count, share = matrix[r][c], matrix[r][c] / total
            x, y = label_w + c * cell, head_h + r * cell
            outline = 'stroke="#222" stroke-width="1.5"' if r == c else 'stroke="#ccc" stroke-width="0.5"'
            body.append(_rect(x, y, cell, cell, _shade(share),
                              f"true {classes[r]}, predicted {classes[c]}: {count} windows ({_pct(share)} of "
                              f"{classes[r]})", outline))
            colour = "#fff" if share > 0.55 else "#222"
            body.append(_label(x + cell / 2, y + cell / 2 + (0 if cell >= 44 else 4), str(count), "middle",
                               f'fill="{colour}" font-weight="bold"'))
            if cell >= 44:
                body.append(_label(x + cell / 2, y + cell / 2 + 14, _pct(share, 0), "middle",
                                   f'fill="{colour}" font-size="10"'))
    return _figure(title, label_w + k * cell + 20, head_h + k * cell + 10, body,
                   "Windows of the test set per true class (rows) and the device's argmax (columns); the shade "
                   "is the share of the row, so the diagonal reads as recall.")


def _classification(rows: list[dict[str, Any]]) -> str:
    """Confusion matrix heat map and per-class precision/recall, once per distinct matrix."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("confusion"):
            groups.setdefault(json.dumps(r["confusion"], sort_keys=True), []).append(r)
    out = []
    for members in groups.values():
        conf = members[0]["confusion"]
        classes, matrix = conf["classes"], conf["matrix"]
        names = _variants_text([r["variant"] for r in members], len(rows))
        out.append(f'<div class="pair">{_confusion_svg(f"Confusion matrix on the device: {names}", classes, matrix)}')
        metrics = _metrics(matrix)
        out.append(_hbar_grouped(f"Precision and recall per class: {names}", classes,
                                 [("precision", [m[1] for m in metrics], BLUE), ("recall", [m[2] for m in metrics],
                                                                                  ORANGE)]))
        out.append("</div>")
        table = "".join(f"<tr><td>{_e(c)}</td><td>{s:,}</td><td>{_pct(p)}</td><td>{_pct(rc)}</td><td>{_pct(f)}</td>"
                        "</tr>" for c, (s, p, rc, f) in zip(classes, metrics))
        out.append(f'<table class="metrics"><tr><th>class</th><th>test windows</th><th>precision</th>'
                   f'<th>recall</th><th>F1</th></tr>{table}</table>')
    return "\n".join(out)


def _hbar_grouped(title: str, labels: list[str], series: list[tuple[str, list[float | None], str]]) -> str:
    """Per label, one bar per series on a 0–100% axis."""
    label_w = min(200, max(_text_w(label) for label in labels))
    bar_h, gap, top = 14, 10, 26
    group_h = len(series) * (bar_h + 2) + gap
    y_axis = top + len(labels) * group_h
    width = label_w + PLOT_W * 0.6
    body = _legend(label_w, 14, [(name, colour) for name, _, colour in series])[0]
    body += _x_axis(label_w, y_axis, width - label_w, [0, 25, 50, 75, 100], lambda t: f"{t:.0f}%",
                    "precision, recall (%)", top - 4)
    for i, label in enumerate(labels):
        y = top + i * group_h
        body.append(_label(label_w - 6, y + group_h / 2, label, "end"))
        for j, (name, values, colour) in enumerate(series):
            value = values[i]
            by = y + j * (bar_h + 2)
            if value is None:
                body.append(_label(label_w + 4, by + 11, f"{name}: no windows", extra='fill="#888"'))
                continue
            body.append(_rect(label_w, by, (width - label_w) * value, bar_h, colour, f"{label} {name}: {_pct(value)}"))
            body.append(_label(label_w + (width - label_w) * value - 4, by + 11, _pct(value), "end",
                               'fill="#fff" font-size="10"' if value > 0.15 else 'font-size="10"'))
    return _figure(title, width + 20, y_axis + 42, body)


def _training(rows: list[dict[str, Any]]) -> str:
    """Loss and accuracy per epoch, once per distinct training run."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if (r.get("training") or {}).get("history"):
            groups.setdefault(json.dumps(r["training"]["history"], sort_keys=True), []).append(r)
    out = []
    for members in groups.values():
        training = members[0]["training"]
        hist = training["history"]
        names = _variants_text([r["variant"] for r in members], len(rows))
        facts = []
        if training.get("params") is not None:
            facts.append(f"{training['params']:,} parameters")
        if training.get("test_accuracy_float") is not None:
            facts.append(f"float test accuracy {_pct(training['test_accuracy_float'])}")
        epochs = len(hist.get("loss", []))
        facts.append(f"{epochs} epochs")
        out.append(f"<p>Trained once for {_e(names)}: {_e(', '.join(facts))}.</p><div class=\"pair\">")
        loss = [(n, hist[k], c) for n, k, c in [("training", "loss", BLUE), ("validation", "val_loss", ORANGE)]
                if hist.get(k)]
        if loss:
            out.append(_line_chart("Loss per epoch", loss, "cross-entropy loss", lambda v: f"{v:.2g}"))
        acc = [(n, [v * 100 for v in hist[k]], c) for n, k, c in
               [("training", "accuracy", BLUE), ("validation", "val_accuracy", ORANGE)] if hist.get(k)]
        on_device: dict[float, list[str]] = {}  # e.g. int8 and int16 cells of one training differ
        for r in members:
            if r.get("accuracy_device") is not None:
                on_device.setdefault(r["accuracy_device"], []).append(r["variant"])
        levels = [(f"quantized, on the device (test): {_pct(accuracy)}" if len(on_device) == 1
                   else f"device: {', '.join(v)}: {_pct(accuracy)}", accuracy * 100, colour)
                  for (accuracy, v), colour in zip(sorted(on_device.items(), reverse=True), LEVEL_COLOURS)]
        if acc:
            out.append(_line_chart("Accuracy per epoch", acc, "accuracy (%)", lambda v: f"{v:.0f}%", levels,
                                   y_max=100))
        out.append("</div>")
    return "\n".join(out)


AXIS_COLOURS = (BLUE, ORANGE, GREEN, RED, "#7b4fb3", "#b8860b")
TRACE_W, TRACE_H = 300, 120  # one class's plotting area, px


def _trace_figures(traces: dict[str, list], axes: list[str]) -> list[str]:
    """One small plot per class: its example windows (raw values per sample, one colour per axis, later examples
    fainter), every plot on the same value range so classes compare at a glance."""
    values = [v for windows in traces.values() for window in windows for sample in window for v in sample]
    if not values:
        return []
    low, high = min(values), max(values)
    high = high if high > low else low + 1
    left, top = 64, 30
    figures = []
    for name, windows in traces.items():
        length = max((len(w) for w in windows), default=1)

        def px(i: float) -> float:
            return left + TRACE_W * i / max(length - 1, 1)

        def py(v: float) -> float:
            return top + TRACE_H - TRACE_H * (v - low) / (high - low)

        body, _ = _legend(left, 16, [(a, AXIS_COLOURS[i % len(AXIS_COLOURS)]) for i, a in enumerate(axes)],
                          wrap_at=left + TRACE_W)
        for v in (low, (low + high) / 2, high):
            body.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + TRACE_W}" y2="{py(v):.1f}" stroke="#ddd"/>')
            body.append(_label(left - 6, py(v) + 4, f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}", "end",
                               'fill="#444"'))
        body.append(f'<line x1="{left}" y1="{top + TRACE_H}" x2="{left + TRACE_W}" y2="{top + TRACE_H}" '
                    'stroke="#555"/>')
        body.append(_label(left, top + TRACE_H + 15, "0", "middle", 'fill="#444"'))
        body.append(_label(left + TRACE_W, top + TRACE_H + 15, f"{length - 1}", "middle", 'fill="#444"'))
        body.append(_label(left + TRACE_W / 2, top + TRACE_H + 30, "sample", "middle", 'font-weight="bold"'))
        for number, window in enumerate(windows):
            for axis, axis_name in enumerate(axes):
                points = " ".join(f"{px(i):.1f},{py(sample[axis]):.1f}" for i, sample in enumerate(window))
                body.append(f'<polyline points="{points}" fill="none" stroke="{AXIS_COLOURS[axis % 6]}" '
                            f'stroke-width="1.5" opacity="{1 - 0.3 * number:.1f}">'
                            f'<title>{_e(name)}, example {number + 1}, {_e(axis_name)}</title></polyline>')
        figures.append(_figure(f"{name}: {len(windows)} example window{'s' if len(windows) != 1 else ''}",
                               left + TRACE_W + 20, top + TRACE_H + 40, body))
    return figures


def _data(rows: list[dict[str, Any]]) -> str:
    """Per data stage entry (a matrix shares one): windows per class and split, recordings and their lengths,
    the declared input scaling, and example traces per class."""
    parts, seen = [], set()
    for row in rows:
        data = row.get("data")
        if not data or data["entry"] in seen:
            continue
        seen.add(data["entry"])
        classes, windows, recordings = data["classes"], data.get("windows") or {}, data.get("recordings")
        where = f" <code>{_e(data['path'])}</code>" if data.get("path") else ""
        shared = [r["variant"] for r in rows if (r.get("data") or {}).get("entry") == data["entry"]]
        parts.append(f'<p class="note">{_e(data["source"])}{where}: windows of {_e(data["window"])} samples x '
                     f'{len(data.get("axes") or [])} axes ({_e(", ".join(data.get("axes") or []))})'
                     + ("" if len(rows) == 1 else f"; variants {_e(', '.join(shared))}") + ".</p>")
        head = "".join(f"<th>{_e(c)}</th>" for c in classes) + "<th>total</th>"
        if recordings is not None:
            head += "<th>recordings</th><th>samples min / median / max</th>"
        body = []
        for split in ("train", "val", "test"):
            counts = windows.get(split, {})
            cells = "".join(f"<td>{counts.get(c, 0):,}</td>" for c in classes) + f"<td>{sum(counts.values()):,}</td>"
            if recordings is not None:
                lengths = sorted(r["samples"] for r in recordings.get(split, {}).values() if r["samples"] is not None)
                spread = f"{lengths[0]:,} / {lengths[len(lengths) // 2]:,} / {lengths[-1]:,}" if lengths else "—"
                cells += f"<td>{len(recordings.get(split, {}))}</td><td>{spread}</td>"
            body.append(f"<tr><td>{split}</td>{cells}</tr>")
        parts.append(f'<table class="data"><tr><th>windows</th>{head}</tr>{"".join(body)}</table>')
        scaling = data.get("scaling")
        if scaling:
            fitted = " (fitted on the training split)" if scaling["how"] == "standard" else ""
            parts.append(f'<p class="note">Input scaling{fitted}: model input = (raw - offset) x scale per axis; '
                         f'offset {_e(", ".join(f"{v:.6g}" for v in scaling["offset"]))}, '
                         f'scale {_e(", ".join(f"{v:.6g}" for v in scaling["scale"]))}. The firmware makes the int8 '
                         "input from raw int16 samples with the same integer step as the host.</p>")
        figures = _trace_figures(data.get("traces") or {}, data.get("axes") or [])
        if figures:
            parts.append('<div class="traces"><h3>Example training windows per class (raw values)</h3>'
                         + "".join(figures) + "</div>")
    return "\n".join(parts)


def _layers(rows: list[dict[str, Any]]) -> str:
    out = []
    for row in rows:
        layers = row.get("layers")
        if not layers:
            continue
        unit = "instructions" if "instructions" in layers[0] else "cycles"
        items = [(f"#{layer['op_index']} {layer['op']}", layer[unit],
                  f"{_count(layer[unit])} ({_pct(layer['share'])})") for layer in layers]
        out.append(_hbar_chart(f"{row['variant']}: {unit} per operator", items,
                               f"{unit} per inference (mean over the test windows)", _count, BLUE,
                               caption="In model order. The profiled build reads the timer after every "
                                       "operator, so the sum is close to, not equal to, the plain build's count."))
    return "\n".join(out)


CHANGES = [("instructions_per_inference", "instructions / inference", -1, lambda v: f"{v:,}"),
           ("flash_bytes", "flash B", -1, lambda v: f"{v:,}"), ("ram_bytes", "RAM B", -1, lambda v: f"{v:,}"),
           ("accuracy_device", "device accuracy", +1, _pct)]


def _changes(rows: list[dict[str, Any]], previous: dict[str, Any] | None) -> str:
    if previous is None:
        return ("<p>No earlier result set recorded for this project (<code>.tinypipe/report-history.json</code>): "
                "the comparison appears once a <code>tinypipe run</code> changes a result.</p>")
    before = previous["results"]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(previous["time"])) if previous.get("time") else "?"
    lines, bars = [], []
    for r in rows:
        old = before.get(r["variant"])
        if old is None:
            lines.append(f"<tr><td>{_e(r['variant'])}</td><td colspan=\"{len(CHANGES)}\">new since then</td></tr>")
            continue
        cells = []
        for field, name, better, fmt in CHANGES:
            was, now = old.get(field), r.get(field)
            if was is None or now is None:
                cells.append(f"<td>{_e(fmt(now) if now is not None else '—')}</td>")
                continue
            if field == "accuracy_device":
                delta_text = f"{(now - was) * 100:+.1f} pp"
                relative = None
            else:
                relative = (now - was) / was if was else None
                delta_text = f"{relative * 100:+.1f}%" if relative is not None else f"{now - was:+,}"
            verdict = "same" if now == was else ("good" if (now - was) * better > 0 else "bad")
            cells.append(f'<td>{_e(fmt(was))} → {_e(fmt(now))} <span class="{verdict}">'
                         f'{_e(delta_text) if verdict != "same" else "unchanged"}</span></td>')
            if relative is not None and verdict != "same":
                bars.append((f"{r['variant']} · {name}", relative * 100, verdict))
        lines.append(f"<tr><td>{_e(r['variant'])}</td>{''.join(cells)}</tr>")
    head = "".join(f"<th>{_e(name)}</th>" for _, name, _, _ in CHANGES)
    table = f'<table class="changes"><tr><th>variant</th>{head}</tr>{"".join(lines)}</table>'
    note = f"<p>Compared with the results recorded {_e(when)}, the latest that differ from these.</p>"
    return note + table + (_delta_chart(bars) if bars else "")


def _delta_chart(bars: list[tuple[str, float, str]]) -> str:
    """Diverging bars of the relative change, green where it is better, red where worse."""
    label_w = min(360, max(_text_w(label) for label, _, _ in bars))
    span = max(max(abs(v) for _, v, _ in bars), 1.0)
    ticks = _ticks(span, 3)
    limit = ticks[-1]
    bar_h, gap, top = 16, 6, 8
    y_axis = top + len(bars) * (bar_h + gap)
    zero = label_w + PLOT_W / 2
    half = PLOT_W / 2
    body = [f'<line x1="{label_w}" y1="{y_axis}" x2="{label_w + PLOT_W}" y2="{y_axis}" stroke="#555"/>']
    for t in [-t for t in reversed(ticks[1:])] + ticks:
        x = zero + half * t / limit
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{y_axis}" '
                    f'stroke="{"#555" if t == 0 else "#ddd"}"/>')
        body.append(_label(x, y_axis + 15, f"{t:+g}%" if t else "0", "middle", 'fill="#444"'))
    body.append(_label(zero, y_axis + 33, "change against the previous run (%)", "middle", 'font-weight="bold"'))
    colours = {"good": GREEN, "bad": RED, "same": GREY}
    for i, (label, value, verdict) in enumerate(bars):
        y = top + i * (bar_h + gap)
        w = half * abs(value) / limit
        x = zero if value >= 0 else zero - w
        body.append(_label(label_w - 6, y + 12, _fit(label, label_w), "end"))
        body.append(_rect(x, y, max(w, 1), bar_h, colours[verdict], f"{label}: {value:+.2f}%"))
        tx, anchor = (zero + w + 4, "start") if value >= 0 else (zero - w - 4, "end")
        body.append(_label(tx, y + 12, f"{value:+.1f}%", anchor))
    return _figure("Relative change of what changed", label_w + PLOT_W + 60, y_axis + 42, body,
                   "Green: better (fewer instructions or bytes), red: worse.")


def _variants_text(names: list[str], total: int) -> str:
    if len(names) == total and total > 1:
        return f"all {total} variants"
    return ", ".join(names)


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def _stage_section(stages: list[dict[str, Any]], total_variants: int, generated: float) -> str:
    """A table of every stage entry: how long it took when it was built, when, and whether the latest run
    built it or reused it; then the same build times as bars."""
    if not stages:
        return "<p>No stage has been built yet.</p>"
    known = any(s.get("last_run") for s in stages)  # a run recorded what it did (report-history.json)
    lines = []
    for s in stages:
        created = s.get("created")
        when = (f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(created))} ({_ago(max(generated - created, 0))}"
                " before this report)") if created else "—"
        latest = {"ran": "ran (built then)", "cached": "cached: took no time"}.get(s.get("last_run"), "—")
        lines.append(f"<tr><td>{_e(s['stage'])}</td><td>{_e(_variants_text(s['variants'], total_variants))}</td>"
                     f"<td>built in {s['seconds']:.1f} s</td><td>{_e(when)}</td>"
                     + (f"<td>{_e(latest)}</td>" if known else "") + "</tr>")
    table = ('<table class="stages"><tr><th>stage</th><th>variants</th><th>time it took to build</th>'
             '<th>built</th>' + ("<th>in the latest run</th>" if known else "") + f'</tr>{"".join(lines)}</table>')
    items = [(s["stage"] if total_variants == 1 else f"{s['stage']} ({_variants_text(s['variants'], total_variants)})",
              s["seconds"],
              f"{s['seconds']:.1f} s{', cached' if s.get('last_run') == 'cached' else ''}") for s in stages]
    colours = [GREY if s.get("last_run") == "cached" else BLUE for s in stages]
    chart = _hbar_chart("Time each stage took when it was built", items, "seconds (when the entry was built)",
                        lambda t: f"{t:g} s", colours,
                        caption="Grey: the latest run reused the entry and spent no time on it; the bar is the "
                                "time it took once, when it was built." if known else
                                "The time each entry took once, when it was built; a run that finds an entry in the "
                                "store reuses it and spends no time on it.")
    return table + chart


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; padding: 0 1em; color: #222; }
h2 { border-bottom: 2px solid #e3e6ea; padding-bottom: 4px; margin-top: 2em; }
h3 { font-size: 1em; margin: 1.2em 0 0.3em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f4f6f8; }
td:first-child, th:first-child { text-align: left; }
table.results td:nth-child(2), table.results th:nth-child(2), table.stages td:nth-child(n+2),
table.stages th:nth-child(n+2) { text-align: left; }
td { white-space: nowrap; }
figure { margin: 0.5em 1.5em 1em 0; display: inline-block; vertical-align: top; }
figcaption { color: #555; font-size: 0.85em; max-width: 720px; }
.pair { display: flex; flex-wrap: wrap; align-items: flex-start; }
.bad { color: #b00; } .good { color: #1d7a40; } .same { color: #777; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 1em 0; }
.tile { border: 1px solid #d5d9de; border-radius: 6px; padding: 10px 16px; min-width: 150px; background: #fafbfc; }
.tile .k { color: #555; font-size: 0.85em; } .tile .v { font-size: 1.6em; font-weight: 600; }
.tile .s { color: #666; font-size: 0.8em; }
.note { color: #555; }
"""


def render_html(project: str, rows: list[dict[str, Any]], stages: list[dict[str, Any]],
                previous: dict[str, Any] | None = None, generated: float | None = None,
                release: str | None = None) -> str:
    """The report page.

    `rows`: results in the `--json` shape (`results.result_rows`), each optionally with the report's extra fields
    (see `html_rows`): `memory` (the build's section sizes: text, rodata, data, bss, stack), `stack_used` (the
    measured high-water mark), `instructions_min`, `instructions_max`, `confusion` ({classes, matrix}),
    `training` ({history, params, test_accuracy_float}) and `data` (`stages.data.describe`: windows per class and
    split, recordings, scaling, example traces).
    `stages`: {stage, variants, seconds (when built), created, last_run: "ran" | "cached" | None}, see
    `stage_times`. `previous`: `history.previous(...)`, or None.
    `release`: the page of a release bundle (`<name>-<version>`): only what the release's artifacts determine, so
    the same release gives the same bytes — no generation time, no comparison with this machine's previous run,
    no stage build times (`stages` and `previous` are ignored)."""
    generated = time.time() if generated is None else generated
    single = len(rows) == 1
    made = (f"Release {_e(release)}" if release is not None else
            f"Generated {_e(time.strftime('%Y-%m-%d %H:%M', time.localtime(generated)))}")
    parts = [f"<h1>tinypipe report: {_e(project)}</h1>",
             f'<p class="note">{made}. '
             "Instructions are counted by QEMU with <code>-icount shift=0</code> (not cycles). Bit-exact means every "
             "output byte equals the host TensorFlow Lite Micro interpreter's.</p>"]
    if single:
        parts.append(_tiles(rows[0]))
    parts += ["<h2>Results</h2>", _results_table(rows)]
    data = _data(rows)
    if data:
        parts += ["<h2>Data</h2>", data]
    comparisons = "" if single else _compare_charts(rows)
    if comparisons:
        parts += ["<h2>Across variants</h2>", comparisons]
    memory = _capacity_chart(rows) + _sections_chart(rows)
    if memory:
        parts += ["<h2>Memory</h2>", memory]
    classification = _classification(rows)
    if classification:
        parts += ["<h2>Classification on the device</h2>", classification]
    training = _training(rows)
    if training:
        parts += ["<h2>Training</h2>", training]
    layers = _layers(rows)
    if layers:
        parts += ["<h2>Per operator (<code>target.profile_layers</code>)</h2>", layers]
    if release is None:
        parts += ["<h2>Change since the previous run</h2>", _changes(rows, previous)]
        parts += ["<h2>Stages</h2>", _stage_section(stages, len(rows), generated)]
    body = "\n".join(parts)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>tinypipe report: {_e(project)}</title>\n<style>{STYLE}</style></head><body>\n{body}\n"
            "</body></html>\n")


# --- gathering the data from a pipeline's store ---------------------------------------------------------

def html_rows(pipeline, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` (`results.result_rows`) with the report's extra fields from the store's stage summaries and the
    board registry."""
    out = []
    by_name = {v.name: v for v in pipeline.variants}
    for row in rows:
        variant = by_name[row["variant"]]
        build = pipeline.summary(variant.name, "build") or {}
        run = pipeline.summary(variant.name, "run") or {}
        train = pipeline.summary(variant.name, "train") or {}
        memory = {k: build[k] for k in ("text", "rodata", "data", "bss", "stack") if build.get(k) is not None}
        out.append({"flash_capacity_bytes": variant.board.flash.size, "ram_capacity_bytes": variant.board.ram.size,
                    **row, "memory": memory, "stack_used": run.get("stack_bytes"),
                    "instructions_min": run.get("instructions_min"), "instructions_max": run.get("instructions_max"),
                    "confusion": run.get("confusion"),
                    "training": {k: train.get(k) for k in ("history", "params", "test_accuracy_float")}
                    if train.get("history") else None, "data": _data_of(pipeline, variant)})
    return out


def _data_of(pipeline, variant) -> dict[str, Any] | None:
    """The variant's data stage entry as `stages.data.describe` gives it; None when it is not built."""
    node = pipeline.graph.by_variant.get(variant.name, {}).get("data")
    meta = node.meta() if node is not None else None
    if meta is None:
        return None
    from tinypipe.stages.data import describe  # numpy: only when a report is made

    return describe(node.entry_dir(), variant, meta.get("summary") or {})


def stage_times(pipeline, last_run: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every built stage entry of the pipeline (shared ones once) with the time it took when it was built, and
    what the latest recorded run (`history.last_run`) did with it: an entry created after that run is not
    what the run saw, so it gets no status."""
    statuses = {}
    if last_run:
        statuses = {(s["stage"], tuple(s["variants"])): s["status"] for s in last_run.get("stages", [])}
    out = []
    for node in pipeline.graph.nodes:
        meta = node.meta()
        if meta is None:
            continue
        created = meta.get("created")
        status = statuses.get((node.name, tuple(node.variants)))
        if last_run and created and created > last_run.get("time", 0):
            status = None
        out.append({"stage": node.name, "variants": list(node.variants), "seconds": meta.get("seconds", 0.0),
                    "created": created, "last_run": status})
    return out
