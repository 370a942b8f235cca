"""Semantic checks of a parsed `.tflite` model, run before any interpreter or code generator sees the bytes.

The reader (`reader.py`) guarantees the structure is in bounds; this checks that the values make sense —
positive dimensions, finite positive scales with matching zero points, per-channel arrays as long as their
dimension, options of the operator's own kind — so a downloaded file that would crash TFLM's C++ (or make
our codegen divide by zero) is refused with a message instead.
"""

from __future__ import annotations

import math

from tinypipe.core.errors import UserError
from tinypipe.tflite.reader import Model

HINT = "re-export the model with TFLiteConverter, or check that the file was copied completely"
MAX_ELEMENTS = 1 << 28  # one tensor of more elements than this cannot be meant for a microcontroller

# builtin operator -> the BuiltinOptions type TFLite writes for it (schema.fbs); 0 (none) is always accepted
OPTIONS_OF = {
    "CONV_2D": 1, "DEPTHWISE_CONV_2D": 2, "AVERAGE_POOL_2D": 5, "MAX_POOL_2D": 5, "L2_POOL_2D": 5,
    "FULLY_CONNECTED": 8, "SOFTMAX": 9, "CONCATENATION": 10, "ADD": 11, "RESHAPE": 17, "MUL": 21, "PAD": 22,
    "TRANSPOSE": 26, "MEAN": 27, "SUM": 27, "REDUCE_MAX": 27, "SUB": 28, "SQUEEZE": 30, "STRIDED_SLICE": 32,
    "LEAKY_RELU": 75,
}


def check_model(model: Model) -> None:
    """Raise UserError naming the first value that no TFLite converter writes."""
    for s_index, subgraph in enumerate(model.subgraphs):
        where = f"subgraph {s_index}"
        if not subgraph.inputs or not subgraph.outputs:
            _bad(model, f"{where} has no {'inputs' if not subgraph.inputs else 'outputs'}")
        for t in subgraph.tensors:
            name = f"{where} tensor {t.index} ({t.name!r})"
            if any(d <= 0 for d in t.shape):
                _bad(model, f"{name} has shape {list(t.shape)}: every dimension must be 1 or more")
            if t.size > MAX_ELEMENTS:
                _bad(model, f"{name} has {t.size:,} elements (shape {list(t.shape)})")
            q = t.quantization
            if q is None or not q.scale:
                continue
            for i, scale in enumerate(q.scale):
                if not (math.isfinite(scale) and scale > 0):
                    _bad(model, f"{name} has quantization scale {scale} (channel {i}): scales must be finite "
                                "and positive")
            if q.zero_point and len(q.zero_point) != len(q.scale):
                _bad(model, f"{name} has {len(q.scale)} scales but {len(q.zero_point)} zero points")
            if any(not -(1 << 31) <= z < (1 << 31) for z in q.zero_point):
                _bad(model, f"{name} has a zero point outside int32")
            if len(q.scale) > 1:
                # older converters write the filter's dimension (3) on 1-D biases too: TFLM reads the last one
                dim = q.quantized_dimension if 0 <= q.quantized_dimension < len(t.shape) else len(t.shape) - 1
                if dim < 0 or len(q.scale) != t.shape[dim]:
                    _bad(model, f"{name} has {len(q.scale)} per-channel scales for shape {list(t.shape)} "
                                f"(quantized dimension {q.quantized_dimension})")
        for op in subgraph.operators:
            expected = OPTIONS_OF.get(op.op)
            kind = op.options_type
            if expected is not None and kind not in (0, expected):
                _bad(model, f"{where} operator {op.index} ({op.op}) carries options of type {kind}, not {expected}")
            if not op.outputs:
                _bad(model, f"{where} operator {op.index} ({op.op}) has no outputs")


def _bad(model: Model, what: str) -> None:
    raise UserError(f"{model.source}: the model file is malformed: {what}", HINT)
