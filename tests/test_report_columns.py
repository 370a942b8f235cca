"""The one-pass table layout (tinypipe/report/columns.py) against rich's Table, which it replaces for speed:
the same text at every width where the layout applies (rich given the names as the layout folds them, at
separators), and the fallback where it does not; the fold itself on its own."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich import box
from rich.console import Console
from rich.table import Table

from tinypipe.report.columns import SEPARATORS, Cell, Column, _fold, render
from tinypipe.report.results import render_table

COLUMNS = [("variant", "left"), ("accuracy %\nhost/dev", "right"), ("bit-\nexact", "center"),
           ("instr/\ninference", "right"), ("flash KiB\nused/board", "right"), ("arena\nKiB", "right")]
NAME_PARTS = ["mps2-an386", "native", "tflm", "epochs10", "layers0.filters16", "x"]


def _console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None, highlight=False)


def _rich(rows: list[list[str]], width: int) -> str:
    console = _console(width)
    table = Table(title="tinypipe results", title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1),
                  collapse_padding=True, show_edge=False, pad_edge=False)
    for i, (header, justify) in enumerate(COLUMNS):
        table.add_column(header, justify=justify, overflow="fold", no_wrap=i > 0)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return console.file.getvalue()


def _ours(rows: list[list[str]], width: int) -> str | None:
    text = render("tinypipe results", [Column(h, j) for h, j in COLUMNS], [[Cell(x) for x in r] for r in rows],
                  width)
    if text is None:
        return None
    console = _console(width)
    console.print(text)
    return console.file.getvalue()


rows_strategy = st.lists(
    st.tuples(st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=6).map("-".join),
              st.sampled_from(["97.8/97.8", "—/—", "100.0/100.0"]), st.sampled_from(["yes", "NO", "—"]),
              st.sampled_from(["56,823", "—", "1.28 G", "12.89 M"]), st.sampled_from(["20.8/4096", "—", "1.2/16"]),
              st.sampled_from(["0.7", "—", "123.4"])).map(list),
    min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(rows=rows_strategy, width=st.integers(40, 180))
def test_the_layout_is_richs_wherever_it_applies(rows, width):
    if width % 7 == 0:  # a name with a space is left to rich
        rows = [[f"{rows[0][0]} x", *rows[0][1:]], *rows[1:]]
        assert _ours(rows, width) is None
        return
    ours = _ours(rows, width)
    fixed = sum(max([len(line) for line in h.split("\n")] + [len(r[i]) for r in rows])
                for i, (h, _) in enumerate(COLUMNS) if i > 0) + 2 * (len(COLUMNS) - 1)
    if fixed + 1 > width:  # not even one character left for the names: rich's Table cuts columns instead
        assert ours is None
        return
    room = width - fixed  # what the names may take
    if max(len(r[0]) for r in rows) > room:
        rows = [["\n".join(_fold(r[0], room)), *r[1:]] for r in rows]
    assert ours == _rich(rows, width)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="ab1-_./", min_size=0, max_size=60), width=st.integers(1, 30))
def test_a_name_folds_after_its_separators_and_loses_nothing(text, width):
    lines = _fold(text, width)
    assert "".join(lines) == text
    assert all(0 < len(line) <= width for line in lines) or lines == [""]
    for line, after in zip(lines, lines[1:]):
        if any(ch in SEPARATORS for ch in line):
            assert line[-1] in SEPARATORS  # cut just after a separator where the line has one ...
            # ... the last one that fits: the next line's part that would still fit has none
            assert not any(ch in SEPARATORS for ch in after[:width - len(line)])
        else:
            assert len(line) == width  # no separator: cut at the width


def test_a_long_sweep_folds_its_names_at_80_columns_and_colours_the_verdict():
    rows = [{"variant": f"mps2-an386-native-epochs{e}-layers0.filters{f}", "bit_exact": e % 2 == 0,
             "accuracy_host": 0.9, "accuracy_device": 0.9, "instructions_per_inference": 56_823,
             "app_flash_bytes": 21_300, "flash_capacity_bytes": 4 << 20, "ram_bytes": 35_000,
             "ram_capacity_bytes": 4 << 20, "arena_bytes": 700} for e in (1, 2) for f in (8, 16)]
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system="standard")
    render_table(console, rows)
    out = console.file.getvalue()
    plain = Console(file=io.StringIO(), width=80, color_system=None)
    render_table(plain, rows)
    lines = plain.file.getvalue().splitlines()
    assert max(len(line) for line in lines[:16]) <= 80
    names = [line.split()[0] for line in lines[4:16]]
    assert names == [part for e in (1, 2) for f in (8, 16)  # folded at separators, nothing cut
                     for part in ("mps2-an386-native-", f"epochs{e}-layers0.", f"filters{f}")]
    assert "\x1b[32myes" in out and "\x1b[31mNO" in out
