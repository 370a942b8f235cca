"""A plain table laid out in one pass: the result tables of `run` and `report`.

A rich `Table` renders every cell through the console, which costs about a millisecond per row: the table of a
1,000-stage sweep (143 cells) took longer than the no-op run it reports. These tables are simple — one line per
row except for the first column, which folds when the terminal is narrow (after a `-`, `_`, `.` or `/` where the
name has one, so `mps2-an386-native-optimize_size` folds into its parts, not mid-word) — so they are laid out
here with string operations and printed as one `rich.text.Text`. The look is rich's `box.SIMPLE_HEAD` with
`padding=(0, 1)`, `collapse_padding`, no outer edge: columns two spaces apart, headers bottom-aligned above a
rule, the title centred over the table. tests/test_report_columns.py checks the output against rich's own rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from rich.text import Text

GAP = 2  # one space of padding on each side of a column boundary
RULE = "─"


@dataclass(frozen=True)
class Column:
    header: str  # may hold "\n": a header over several lines
    justify: Literal["left", "right", "center"] = "right"


@dataclass(frozen=True)
class Cell:
    text: str
    style: str | None = None  # a rich style for the cell's text ("green"), or None


def _fit(text: str, width: int, justify: str) -> str:
    pad = width - len(text)
    if pad <= 0:
        return text
    if justify == "left":
        return text + " " * pad
    if justify == "right":
        return " " * pad + text
    left = pad // 2
    return " " * left + text + " " * (pad - left)


SEPARATORS = "-_./"


def _fold(text: str, width: int) -> list[str]:
    """`text` (no spaces) in lines of at most `width` characters, each line but the last ending just after the
    last separator that fits in it (a line with none is cut at `width`)."""
    lines, start = [], 0
    while len(text) - start > width:
        cut = max(text.rfind(sep, start, start + width) for sep in SEPARATORS) + 1
        end = cut if cut > start else start + width
        lines.append(text[start:end])
        start = end
    lines.append(text[start:])
    return lines


def render(title: str, columns: list[Column], rows: list[list[Cell]], max_width: int) -> "Text | None":
    """The table as rich Text, the first column folded to keep it within `max_width`; None when even a
    one-character first column would not fit, or a name holds a space (the caller then uses rich's Table)."""
    from rich.text import Text

    if any(any(ch.isspace() for ch in row[0].text) for row in rows):
        return None  # rich breaks lines at spaces its own way: leave such names to it
    headers = [c.header.split("\n") for c in columns]
    widths = [max([len(h) for h in header] + [len(row[i].text) for row in rows])
              for i, header in enumerate(headers)]
    total = sum(widths) + GAP * (len(widths) - 1)
    folded = [[row[0].text] for row in rows]
    if total > max_width:
        widths[0] -= total - max_width
        if widths[0] < 1:
            return None
        folded = [_fold(row[0].text, widths[0]) for row in rows]
        # the column as wide as its longest line once folded (folding at separators may leave it narrower)
        narrower = max([len(h) for h in headers[0]] + [len(line) for lines in folded for line in lines])
        widths[0] = min(widths[0], narrower)
        total = sum(widths) + GAP * (len(widths) - 1)

    out = Text(no_wrap=True, overflow="ignore", end="\n")
    out.append(_fit(title, total, "center"), style="bold")
    out.append("\n")
    header_cells = [[line for h in header for line in (_fold(h, widths[0]) if i == 0 else [h])]
                    for i, header in enumerate(headers)]
    height = max(len(h) for h in header_cells)
    for line in range(height):
        parts = []
        for i, cell_lines in enumerate(header_cells):
            at = line - (height - len(cell_lines))  # headers sit on the rule
            parts.append(_fit(cell_lines[at] if at >= 0 else "", widths[i], columns[i].justify))
        out.append((" " * GAP).join(parts))
        out.append("\n")
    out.append(RULE * total)
    for row in rows:
        first = _fold(row[0].text, widths[0])
        for line, name in enumerate(first):
            out.append("\n")
            _append(out, name, widths[0], columns[0].justify, row[0].style)
            for i in range(1, len(columns)):
                out.append(" " * GAP)
                if line == 0:
                    _append(out, row[i].text, widths[i], columns[i].justify, row[i].style)
                else:
                    out.append(" " * widths[i])
    return out


def _append(out: "Text", text: str, width: int, justify: str, style: str | None) -> None:
    """`text` justified in `width`, the style on the text only (as rich styles a cell's markup, not its padding)."""
    padded = _fit(text, width, justify)
    left = padded.index(text) if text else 0
    out.append(padded[:left])
    out.append(text, style=style)
    out.append(padded[left + len(text):])
