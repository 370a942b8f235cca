"""A sweep end to end on the real tools: pipelines/gesture-sweep (first-layer filters x epochs) with `-j 2`.

One result row per cell, named after its values; every cell bit-exact against the host TFLM oracle; the data
generated once for all cells; one training per distinct (filters, epochs) pair.
"""

import json
import re

import pytest

from tests.helpers import REPO, fresh_example, tinypipe

pytestmark = pytest.mark.slow

SWEEP = REPO / "pipelines" / "gesture-sweep"
CELLS = {f"mps2-an386-native-epochs{e}-layers0.filters{f}": {"model.layers[0].filters": f, "model.epochs": e}
         for e in (4, 8) for f in (4, 8)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    project = fresh_example(SWEEP, tmp_path_factory.mktemp("sweep"))
    proc = tinypipe("run", str(project), "--json", "-j", "2")
    assert proc.returncode == 0, proc.stderr[-6000:]
    return project, json.loads(proc.stdout)


def test_one_bit_exact_row_per_cell(sweep):
    _, doc = sweep
    rows = {r["variant"]: r for r in doc["results"]}
    assert list(rows) == list(CELLS)
    for name, row in rows.items():
        assert row["sweep"] == CELLS[name]
        assert row["bit_exact"] is True and row["accuracy_device"] == row["accuracy_host"]
        assert row["instructions_per_inference"] > 0
    # the first layer's width shows in the work per inference
    small, large = (rows[f"mps2-an386-native-epochs8-layers0.filters{f}"] for f in (4, 8))
    assert small["instructions_per_inference"] < large["instructions_per_inference"]


def test_data_once_and_one_training_per_distinct_filters_and_epochs(sweep):
    project, doc = sweep
    (data,) = [s for s in doc["stages"] if s["stage"] == "data"]
    assert data["status"] == "ran" and sorted(data["variants"]) == sorted(CELLS)
    trains = [s for s in doc["stages"] if s["stage"] == "train"]
    assert sorted(tuple(t["variants"]) for t in trains) == sorted((name,) for name in CELLS)
    assert all(t["status"] == "ran" for t in trains)
    lock = json.loads((project / "tinypipe.lock").read_text())
    keys = {name: stages["train"]["key"] for name, stages in lock["variants"].items()}
    assert len(set(keys.values())) == 4 and set(keys) == set(CELLS)
    # a second run builds nothing
    proc = tinypipe("run", str(project), "--json")
    assert proc.returncode == 0 and {s["status"] for s in json.loads(proc.stdout)["stages"]} == {"cached"}


def test_the_report_plots_accuracy_against_instructions_one_dot_per_cell(sweep, tmp_path):
    project, doc = sweep
    page = tmp_path / "report.html"
    proc = tinypipe("report", str(project), "--html", str(page))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    accuracies = {r["accuracy_device"] for r in doc["results"]}
    if len(accuracies) < 2:  # every cell equally accurate: no trade-off, and the report draws none
        assert "Accuracy against instructions per inference" not in text
        return
    figure = text[text.index("Accuracy against instructions per inference"):]
    figure = figure[:figure.index("</svg>")]
    dots = re.findall(r"<circle [^>]*><title>([^<]*)</title>", figure)
    assert len(dots) == len(CELLS)
    for r in doc["results"]:  # each cell named by its values, at its own figures
        label = " ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in r["sweep"].items())
        assert f"{label}: {r['instructions_per_inference']:,}, {r['accuracy_device'] * 100:.1f}%" in dots
