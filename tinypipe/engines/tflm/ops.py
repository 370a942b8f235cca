"""Stage `tflm_ops`: which ops the variant's TFLM library must provide — the model's (`tflm.library: model_ops`,
the default) or all of them (`full`).

A pure function of the model and that setting, and deliberately nothing else: its output is the key input of the
shared `tflm_lib` stage, so two projects whose models use the same ops (or that both ask for `full`) get the same
library key, whatever their models' weights and wherever the projects live.

Output: `ops.json` — `{"library": "model_ops", "ops": ["CONV_2D", …]}` or `{"library": "full", "ops": null}`.
"""

from __future__ import annotations

from tinypipe.core.fs import atomic_write_json
from tinypipe.engines.tflm import source as _tflm
from tinypipe.stages.base import Stage, StageContext, StageResult

OPS_FILE = "ops.json"


def _config(variant) -> dict:
    return {"library": _tflm.settings(variant).library}


STAGE = Stage(name="tflm_ops", version="1", needs=("quantize",), config=_config,
              description="the ops the TFLM library must hold: the model's, or all (tflm.library: full)")


def run(ctx: StageContext) -> StageResult:
    library = _tflm.settings(ctx.variant).library
    if library == "full":
        selection = {"library": "full", "ops": None}
        ctx.log("library: full (every TFLM kernel)")
    else:
        from tinypipe.tflite.reader import parse_model

        model = parse_model(ctx.input("quantize", "model.tflite").read_bytes(), "model.tflite")
        selection = {"library": "model_ops", "ops": _tflm.model_ops(model)}
        ctx.log(f"library: model_ops ({', '.join(selection['ops'])})")
    atomic_write_json(ctx.out / OPS_FILE, selection)
    return selection
