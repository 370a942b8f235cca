"""The HTML report: its sections and numbers from realistic rows (measured on the gesture example, one board and
four), the report history it compares against, the run stage's confusion matrix, and the page as headless
Chromium renders it."""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import types
import zlib

import numpy as np
import pytest

from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant
from tinypipe.report import history
from tinypipe.report.html import html_rows, render_html, stage_times
from tinypipe.stages import data
from tinypipe.stages.base import StageContext
from tinypipe.stages.run import confusion

GENERATED = 1_796_173_200.0  # the report's clock, fixed: "built ... before this report" is then exact

# measured: `tinypipe run pipelines/gesture` with target.profile_layers, then the report's rows
HISTORY = {
    "accuracy": [0.3357, 0.5381, 0.6143, 0.669, 0.8286, 0.8405, 0.8667, 0.9071, 0.9167, 0.9262, 0.9405, 0.9548,
                 0.9595, 0.969, 0.9738, 0.9762, 0.9833, 0.9905, 0.9976, 0.9976, 0.9976, 0.9976, 0.9976, 0.9976,
                 0.9976, 0.9976, 0.9976, 0.9976, 0.9976, 0.9976],
    "loss": [1.0665, 0.9632, 0.8066, 0.6303, 0.4986, 0.412, 0.3493, 0.2916, 0.2384, 0.1967, 0.1676, 0.1443, 0.1268,
             0.1093, 0.0939, 0.0805, 0.068, 0.0574, 0.0482, 0.0414, 0.0349, 0.0305, 0.0265, 0.0238, 0.0215, 0.0194,
             0.0175, 0.0158, 0.0144, 0.0131],
    "val_accuracy": [0.3667, 0.6, 0.6, 0.7222, 0.7667, 0.8222, 0.9, 0.8889, 0.8778, 0.9222, 0.9222, 0.9333, 0.9333,
                     0.9444, 0.9444, 0.9667, 0.9778, 0.9778, 0.9778, 0.9778, 0.9889, 0.9778, 0.9778, 0.9778, 0.9778,
                     0.9778, 0.9778, 0.9778, 0.9889, 0.9889],
    "val_loss": [1.0319, 0.9324, 0.7856, 0.6365, 0.5387, 0.4611, 0.3825, 0.3132, 0.2571, 0.2268, 0.1908, 0.1778,
                 0.1512, 0.1343, 0.1214, 0.105, 0.096, 0.0849, 0.0789, 0.0706, 0.0667, 0.0618, 0.0601, 0.0587,
                 0.0569, 0.0545, 0.0523, 0.0508, 0.0495, 0.0476],
}
LAYERS = [{"op_index": 1, "op": "CONV_2D", "instructions": 30973, "share": 0.545041451587674},
          {"op_index": 2, "op": "MAX_POOL_2D", "instructions": 7953, "share": 0.13994994525262006},
          {"op_index": 3, "op": "CONV_2D", "instructions": 12740, "share": 0.22419834193649305},
          {"op_index": 4, "op": "MAX_POOL_2D", "instructions": 3440, "share": 0.060542781166901295},
          {"op_index": 6, "op": "FULLY_CONNECTED", "instructions": 660, "share": 0.011622086657281401},
          {"op_index": 7, "op": "SOFTMAX", "instructions": 1060, "share": 0.01864539339903019}]
CONFUSION = {"classes": ["wave", "tap", "none"], "matrix": [[29, 0, 1], [1, 29, 0], [0, 0, 30]]}
ACCURACY = 88 / 90


def row(variant: str, board: str, instructions: int, spread: tuple[int, int], text: int, layers=None) -> dict:
    """A gesture result row as `html_rows` gives it (build sizes of the native engine's firmware)."""
    flash = text + 19720
    return {
        "variant": variant, "board": board, "engine": "native", "instructions_per_inference": instructions,
        "flash_bytes": flash, "ram_bytes": 33448, "arena_bytes": 672, "accuracy_host": ACCURACY,
        "accuracy_device": ACCURACY, "bit_exact": True, "layers": layers, "realtime": None,
        "app_flash_bytes": flash - 17280, "test_data_bytes": 17280,
        "flash_capacity_bytes": BOARDS[board].flash.size, "ram_capacity_bytes": BOARDS[board].ram.size,
        "memory": {"text": text, "rodata": 19720, "data": 0, "bss": 680, "stack": 32768}, "stack_used": 1100,
        "instructions_min": spread[0], "instructions_max": spread[1], "confusion": CONFUSION,
        "training": {"history": HISTORY, "params": 819, "test_accuracy_float": ACCURACY},
    }


TRACES = {name: [[[round(np.sin(i / 3 + k + c), 3), round(0.5 * np.cos(i / 5 + c), 3), 1.0] for i in range(64)]
                 for k in range(3)] for c, name in enumerate(CONFUSION["classes"])}
DATA = {"entry": "/store/data-entry", "source": "csv", "path": "recordings", "window": 64, "axes": ["x", "y", "z"],
        "classes": CONFUSION["classes"], "dropped": 0, "scaling": None, "traces": TRACES,
        "windows": {"train": {"wave": 140, "tap": 140, "none": 140}, "val": {"wave": 30, "tap": 30, "none": 30},
                    "test": {"wave": 30, "tap": 30, "none": 30}},
        "recordings": {"train": {"wave/r1.csv": {"windows": 140, "samples": 9000}},
                       "val": {"wave/r2.csv": {"windows": 30, "samples": 1930}}, "test": {}}}

ONE = [row("mps2-an386-native", "mps2-an386", 56526, (56080, 56760), 16592, LAYERS)]
FOUR = [row("mps2-an385-native", "mps2-an385", 106182, (105720, 106440), 17292),
        row("mps2-an386-native", "mps2-an386", 56613, (56120, 56880), 16948, LAYERS),
        row("mps3-an547-native", "mps3-an547", 52855, (52406, 53094), 16768),
        row("netduinoplus2-native", "netduinoplus2", 56611, (56155, 56863), 16948)]
ALL4 = [r["variant"] for r in FOUR]


def stage(name: str, variants: list[str], seconds: float, minutes_ago: float, last_run: str | None) -> dict:
    return {"stage": name, "variants": variants, "seconds": seconds, "created": GENERATED - 60 * minutes_ago,
            "last_run": last_run}


ONE_STAGES = [stage("data", ["mps2-an386-native"], 0.613, 3, "ran"),
              stage("train", ["mps2-an386-native"], 10.558, 3, "ran"),
              stage("toolchain", ["mps2-an386-native"], 19.2, 60 * 26, "cached"),
              stage("build", ["mps2-an386-native"], 2.388, 2, "ran"),
              stage("run", ["mps2-an386-native"], 0.088, 2, "ran")]
FOUR_STAGES = [stage("train", ALL4, 8.364, 5, "cached"),
               stage("toolchain", ["mps2-an385-native"], 23.716, 4, "cached"),
               stage("toolchain", ["mps2-an386-native", "netduinoplus2-native"], 27.678, 4, "cached"),
               stage("build", ["netduinoplus2-native"], 2.214, 1, "ran")]


def previous_of(rows: list[dict], instructions: dict[str, int]) -> dict:
    """What `history.previous` returns for an earlier run that differed in instructions and flash."""
    results = {r["variant"]: {**{f: r[f] for f in history.FIELDS}, "flash_bytes": r["flash_bytes"] - 1200,
                              "instructions_per_inference": instructions[r["variant"]]} for r in rows}
    return {"time": GENERATED - 3600, "results": results}


def section(page: str, heading: str) -> str:
    """The page from an <h2> to the next one."""
    start = page.index(f"<h2>{heading}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start:end if end > 0 else len(page)]


def bar_width(page: str, tip: str) -> float:
    """The width of the bar whose tooltip is `tip`."""
    match = re.search(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"[^>]*><title>' + re.escape(html.escape(tip)),
                      page)
    assert match, tip
    return float(match.group(1))


# --- the page from rows ----------------------------------------------------------------------------------

def test_one_variant_gets_charts_that_say_something():
    page = render_html("gesture", ONE, ONE_STAGES, previous=previous_of(ONE, {"mps2-an386-native": 63309}),
                       generated=GENERATED)
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == ["Results", "Memory", "Classification on the device", "Training",
                        "Per operator (<code>target.profile_layers</code>)", "Change since the previous run",
                        "Stages"]  # no comparison of one variant with itself
    assert "<td>56,526</td>" in page and "<td>19,032</td>" in page and "<td>17,280</td>" in page
    assert '<div class="v">56,526</div>' in page and '<div class="v">97.8%</div>' in page

    memory = section(page, "Memory")
    # the application's flash (without the 17,280 B of test windows) and RAM against the board's 4 MiB each
    assert "18.6 KiB of 4 MiB · 0.5%<tspan" in memory and "+ 16.9 KiB test windows" in memory
    assert "32.7 KiB of 4 MiB · 0.8%</text>" in memory
    assert "share of the board&#x27;s memory (%)" in memory and ">bytes</text>" in memory
    assert abs(bar_width(memory, "flash, firmware (code, model, runtime): 19,032 B") - 520 * 19032 / 4194304) < 0.1
    assert bar_width(memory, "RAM, stack used (high-water mark): 1,100 B") == 1.5  # a sliver, still drawn

    classes = section(page, "Classification on the device")
    assert classes.count("<svg") == 2  # heat map, precision/recall
    assert "true wave, predicted none: 1 windows (3.3% of wave)" in classes
    assert "<tr><td>tap</td><td>30</td><td>100.0%</td><td>96.7%</td><td>98.3%</td></tr>" in classes
    assert "<tr><td>none</td><td>30</td><td>96.8%</td><td>100.0%</td><td>98.4%</td></tr>" in classes
    assert ">predicted by the device</text>" in classes and ">true class</text>" in classes

    training = section(page, "Training")
    assert "Trained once for mps2-an386-native: 819 parameters, float test accuracy 97.8%, 30 epochs" in training
    assert training.count("<polyline") == 4 and training.count(">epoch</text>") == 2
    assert ">cross-entropy loss</text>" in training and ">accuracy (%)</text>" in training
    points = re.search(r'<polyline points="([^"]+)"', training).group(1).split()
    assert len(points) == 30

    layers = section(page, "Per operator (<code>target.profile_layers</code>)")
    assert "mps2-an386-native: instructions per operator" in layers and "30,973 (54.5%)" in layers
    assert abs(bar_width(layers, "#1 CONV_2D") / bar_width(layers, "#3 CONV_2D") - 30973 / 12740) < 0.01

    changes = section(page, "Change since the previous run")
    assert "63,309 → 56,526 <span class=\"good\">-10.7%</span>" in changes
    assert "35,112 → 36,312 <span class=\"bad\">+3.4%</span>" in changes
    assert "33,448 → 33,448 <span class=\"same\">unchanged</span>" in changes
    assert "+0.0 pp" not in changes and "unchanged" in changes

    stages = section(page, "Stages")
    assert "<td>toolchain</td><td>mps2-an386-native</td><td>built in 19.2 s</td>" in stages
    assert "(26 h before this report)</td><td>cached: took no time</td>" in stages
    assert "<td>built in 10.6 s</td>" in stages and "ran (built then)" in stages
    assert "19.2 s, cached" in stages  # the bar of a cached stage says so


def test_several_variants_compare_what_differs_and_draw_shared_results_once():
    page = render_html("gesture-boards", FOUR, FOUR_STAGES, previous=None, generated=GENERATED)
    across = section(page, "Across variants")
    assert "Every variant has device accuracy 97.8%, a tensor arena of 672 B." in across
    assert across.count("<svg") == 1  # instructions only: the equal accuracies and arenas are a sentence
    for r in FOUR:
        assert f">{r['instructions_per_inference']:,}</text>" in across
    an385 = bar_width(across, "mps2-an385-native: 106,182")
    an547 = bar_width(across, "mps3-an547-native: 52,855")
    assert abs(an385 / an547 - 106182 / 52855) < 0.01
    assert across.count("<path d=") == 4  # the fastest-to-slowest whiskers

    memory = section(page, "Memory")
    assert "18.8 KiB of 512 KiB · 3.7%" in memory  # mps3-an547
    assert "32.7 KiB of 128 KiB · 25.5%</text>" in memory  # netduinoplus2's RAM
    assert memory.count("(netduinoplus2)</text>") == 1
    unused = "RAM, stack reserved, unused: 31,668 B (24.16%)"  # netduinoplus2: 32 KiB of stack, 1,100 B used
    assert abs(bar_width(memory, unused) - 520 * 31668 / 131072) < 0.1

    classes = section(page, "Classification on the device")
    assert "Confusion matrix on the device: all 4 variants" in classes and classes.count("<svg") == 2
    assert section(page, "Training").count("<polyline") == 4
    assert "mps2-an386-native: instructions per operator" in page
    assert "No earlier result set recorded" in section(page, "Change since the previous run")
    stages = section(page, "Stages")
    assert "<td>train</td><td>all 4 variants</td><td>built in 8.4 s</td>" in stages
    assert "<td>toolchain</td><td>mps2-an386-native, netduinoplus2-native</td><td>built in 27.7 s</td>" in stages


def test_results_without_extras_still_render():
    """Rows straight from `--json` (an old store: no sections, confusion or history) still make a page."""
    bare = [{k: v for k, v in r.items() if k in ("variant", "board", "engine", "instructions_per_inference",
                                                 "flash_bytes", "ram_bytes", "arena_bytes", "accuracy_host",
                                                 "accuracy_device", "bit_exact", "layers", "realtime",
                                                 "flash_capacity_bytes", "ram_capacity_bytes")} for r in FOUR]
    page = render_html("old", bare, [], generated=GENERATED)
    assert "Flash and RAM against the board&#x27;s capacity" in page
    assert "35.8 KiB of 1 MiB · 3.5%</text>" in page  # all flash counted when the build did not split it
    assert "Classification on the device" not in page and "<h2>Training</h2>" not in page
    assert "No stage has been built yet." in page
    assert "<h2>Data</h2>" not in page


def test_the_data_section_shows_windows_recordings_scaling_and_one_trace_plot_per_class_once_per_entry():
    scaling = {"how": "standard", "offset": [1987.43, -983.7, 16396.4], "scale": [0.00025, 0.00066, 0.0033]}
    rows = [dict(r, data=dict(DATA, scaling=scaling)) for r in FOUR]  # one data entry shared by four variants
    shown = section(render_html("gesture-boards", rows, FOUR_STAGES, generated=GENERATED), "Data")
    assert shown.count('<table class="data">') == 1  # the shared entry is shown once
    figures = re.findall(r"<figure><h3>(.*?)</h3>", shown)
    assert figures == ["wave: 3 example windows", "tap: 3 example windows", "none: 3 example windows"]
    assert shown.count("<svg") == 3 and shown.count("<polyline") == 3 * 3 * 3  # examples x axes per class
    assert "<tr><td>train</td><td>140</td><td>140</td><td>140</td><td>420</td><td>1</td><td>9,000 / 9,000 / " \
           "9,000</td></tr>" in shown
    assert "<tr><td>test</td><td>30</td><td>30</td><td>30</td><td>90</td><td>0</td><td>—</td></tr>" in shown
    assert "Input scaling (fitted on the training split): model input = (raw - offset) x scale per axis; offset " \
           "1987.43, -983.7, 16396.4, scale 0.00025, 0.00066, 0.0033." in shown
    assert f"variants {', '.join(ALL4)}." in shown


# --- the data behind it ----------------------------------------------------------------------------------

def test_run_stage_counts_device_predictions_per_true_class():
    device = np.array([[9, -3, 0], [1, 7, 2], [0, 0, 5], [8, 1, 1], [0, 2, 1]], dtype=np.int8)
    labels = np.array([0, 1, 2, 2, 1], dtype=np.uint8)
    assert confusion(device, labels, ["a", "b", "c"]) == {
        "classes": ["a", "b", "c"], "matrix": [[1, 0, 0], [0, 2, 0], [1, 0, 1]]}
    assert confusion(device, None, ["a", "b", "c"]) is None
    assert confusion(device, labels, ["a", "b"]) is None  # not one output per class


def test_html_rows_and_stage_times_come_from_the_store(tmp_path):
    board = BOARDS["netduinoplus2"]
    project = Project(name="t", data={"samples_per_class": 8},
                      model={"layers": [{"type": "flatten"}, {"type": "dense", "units": 3}]})
    variant = Variant(name="netduinoplus2-native", project=project, board=board, engine="native",
                      project_dir=tmp_path)
    entry = tmp_path / "data-entry"
    entry.mkdir()
    data_summary = data.run(StageContext(variant=variant, inputs={}, out=entry, project_dir=tmp_path,
                                         _log=lambda line: None))
    summaries = {"build": {"text": 16948, "rodata": 19720, "data": 0, "bss": 680, "stack": 32768},
                 "run": {"stack_bytes": 1100, "instructions_min": 1, "instructions_max": 3, "confusion": CONFUSION},
                 "train": {"history": HISTORY, "params": 819, "test_accuracy_float": 0.9, "seconds": 8.0}}

    def node(name, created):
        return types.SimpleNamespace(name=name, variants=[variant.name],
                                     meta=lambda: {"seconds": 2.5, "created": created})

    data_node = types.SimpleNamespace(meta=lambda: {"summary": data_summary}, entry_dir=lambda: entry)
    pipeline = types.SimpleNamespace(variants=[variant], summary=lambda v, s: summaries.get(s),
                                     graph=types.SimpleNamespace(nodes=[node("build", 100.0), node("run", 300.0)],
                                                                 by_variant={variant.name: {"data": data_node}}))
    [out] = html_rows(pipeline, [{"variant": variant.name, "flash_bytes": 36668}])
    assert out["data"]["windows"] == data_summary["counts"] and out["data"]["recordings"] is None
    with np.load(entry / "data.npz") as npz:
        first_wave = npz["x_train"][np.flatnonzero(npz["y_train"] == 0)[0]]
    assert list(out["data"]["traces"]) == ["wave", "tap", "none"]
    assert len(out["data"]["traces"]["wave"]) == 3 and np.allclose(out["data"]["traces"]["wave"][0], first_wave,
                                                                    rtol=1e-3)
    assert out["ram_capacity_bytes"] == 131072 and out["memory"]["stack"] == 32768 and out["stack_used"] == 1100
    assert out["confusion"] == CONFUSION and out["training"] == {"history": HISTORY, "params": 819,
                                                                 "test_accuracy_float": 0.9}
    last = {"time": 200.0, "stages": [{"stage": "build", "variants": [variant.name], "status": "cached"},
                                      {"stage": "run", "variants": [variant.name], "status": "ran"}]}
    times = stage_times(pipeline, last)
    assert [(t["stage"], t["last_run"], t["seconds"]) for t in times] == [("build", "cached", 2.5), ("run", None, 2.5)]
    assert [t["last_run"] for t in stage_times(pipeline, None)] == [None, None]


def test_history_keeps_distinct_results_and_finds_the_previous_one(tmp_path):
    state = tmp_path / ".tinypipe"
    first = [dict(ONE[0], instructions_per_inference=63309)]
    assert history.previous(state, ONE) is None
    assert history.record(state, first, now=1.0)
    assert history.previous(state, first) is None  # nothing different yet
    assert history.record(state, ONE, now=2.0)
    assert not history.record(state, ONE, now=3.0)  # a no-op run adds nothing
    before = history.previous(state, ONE)
    assert before["time"] == 1.0 and before["results"]["mps2-an386-native"]["instructions_per_inference"] == 63309
    assert "layers" not in before["results"]["mps2-an386-native"]
    assert history.previous(state, first)["time"] == 2.0  # back to the first results: compare with the second

    assert not history.record(state, [dict(ONE[0], instructions_per_inference=None, flash_bytes=None,
                                           ram_bytes=None, arena_bytes=None, accuracy_host=None,
                                           accuracy_device=None, bit_exact=None)])  # measured nothing
    for i in range(5):
        history.record(state, [dict(ONE[0], instructions_per_inference=1000 + i)], keep=3, now=10.0 + i)
    saved = json.loads((state / history.HISTORY_FILE).read_text())
    assert [run["time"] for run in saved["runs"]] == [12.0, 13.0, 14.0]
    assert sorted(p.name for p in state.iterdir()) == [history.HISTORY_FILE]  # no temporary left behind

    history.record(state, ONE, stages=[{"stage": "run", "variants": ["mps2-an386-native"], "status": "ran",
                                        "seconds": 0.1}], now=20.0)
    assert history.last_run(state) == {"time": 20.0, "stages": [
        {"stage": "run", "variants": ["mps2-an386-native"], "status": "ran", "seconds": 0.1}]}

    (state / history.HISTORY_FILE).write_text("{not json")
    assert history.previous(state, ONE) is None and history.last_run(state) is None
    assert history.record(state, ONE)  # a broken file is replaced, not fatal


# --- the page in a browser -------------------------------------------------------------------------------

PROBE = """<script>
const svgs = [...document.querySelectorAll('svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const shapes = [...svg.querySelectorAll('rect, line, polyline, path, circle, text')];
  const drawn = shapes.filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; });
  return {title: svg.querySelector('title').textContent, width: box.width, height: box.height,
          declared: [Number(svg.getAttribute('width')), Number(svg.getAttribute('height'))],
          shapes: shapes.length, drawn: drawn.length};
});
const out = document.createElement('pre');
out.id = 'probe';
out.textContent = JSON.stringify({svgs, height: document.documentElement.scrollHeight});
document.body.appendChild(out);
</script>"""


def read_png(path) -> np.ndarray:
    """The pixels (height x width x RGB) of an 8-bit RGB or RGBA PNG such as Chromium's screenshots."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8:pos + 21])
        elif kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6), header
    bpp = 3 if colour == 2 else 4
    stride, raw = width * bpp, zlib.decompress(idat)
    prev, rows = bytearray(stride), []
    for y in range(height):  # undo each row's filter (PNG spec, section 9)
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 2:
            line = bytearray((np.frombuffer(line, np.uint8) + np.frombuffer(prev, np.uint8)).tobytes())
        elif kind in (1, 3, 4):
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                if kind == 1:
                    line[i] = (line[i] + a) & 255
                elif kind == 3:
                    line[i] = (line[i] + ((a + b) >> 1)) & 255
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return np.frombuffer(b"".join(rows), np.uint8).reshape(height, width, bpp)[..., :3]


def chromium(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={cwd / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=180, cwd=cwd)


def test_chromium_renders_every_chart(tmp_path, capsys):
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; `make test` installs it)")
    rows = [dict(r, accuracy_device=r["accuracy_device"] - 0.011 * i, data=DATA) for i, r in enumerate(FOUR)]
    page = render_html("gesture-boards", rows, FOUR_STAGES, generated=GENERATED,
                       previous=previous_of(rows, {r["variant"]: r["instructions_per_inference"] + 2000 * i - 3000
                                                   for i, r in enumerate(rows)}))
    report = tmp_path / "report.html"
    report.write_text(page)
    probed = tmp_path / "report-probed.html"  # the same page plus a script that measures what was drawn
    probed.write_text(page.replace("</body>", PROBE + "</body>"))

    dom = chromium("--dump-dom", "--window-size=1200,2000", probed.as_uri(), cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the probe did not run:\n{dom.stdout[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))
    titles = [s["title"] for s in probe["svgs"]]
    assert len(titles) == page.count("<svg") == 14, titles  # three example-trace plots (one per class), two
    # across variants, two each for memory, classification and training, one per-operator, the changes, the stages
    for svg in probe["svgs"]:
        assert [svg["width"], svg["height"]] == svg["declared"], svg  # laid out at its own size, not collapsed
        assert svg["shapes"] >= 10 and svg["drawn"] == svg["shapes"], svg  # every shape has a drawn extent

    height = max(2000, int(probe["height"]))
    screenshot = tmp_path / "report.png"
    shot = chromium(f"--screenshot={screenshot}", f"--window-size=1200,{height}", report.as_uri(), cwd=tmp_path)
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    with capsys.disabled():
        print(f"\nHTML report screenshot: {screenshot}")
    pixels = read_png(screenshot)
    assert pixels.shape == (height, 1200, 3)

    def count(colour: str) -> int:
        return int(np.all(pixels == np.frombuffer(bytes.fromhex(colour[1:]), np.uint8), axis=-1).sum())

    # the charts' fills painted: bars (blue), RAM (orange), the better/worse changes (green/red)
    painted = {colour: count(colour) for colour in ("#3b7dd8", "#d8843b", "#2a9d55", "#c8463d")}
    assert all(n > 300 for n in painted.values()), painted
