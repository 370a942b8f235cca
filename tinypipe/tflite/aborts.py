"""Well-formed models whose numbers TFLM's own checks abort on (`TFLITE_CHECK`, which calls abort(), not an
error status): the host interpreter dies with SIGABRT, and so would the device. Named here so that the crash
becomes a message saying which operator and why, instead of "malformed file".

Known today: an int8 SOFTMAX whose input scale is so small that `beta * scale * 2^(31 - 5)` is not above 1
(`PreprocessSoftmaxScaling` -> `QuantizeMultiplierGreaterThanOne`), which is what an untrained model's logits
calibrate to.
"""

from __future__ import annotations

from tinypipe.core.errors import UserError
from tinypipe.tflite.reader import parse_model

SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5  # TFLM's kScaledDiffIntegerBits for int8 SOFTMAX


def softmax_real_multiplier(beta: float, input_scale: float) -> float:
    """PreprocessSoftmaxScaling's real multiplier for int8 input (capped at int32's largest value)."""
    return min(beta * input_scale * (1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)


def softmax_aborts(beta: float, input_scale: float) -> bool:
    """QuantizeMultiplierGreaterThanOne's check: the multiplier must exceed 1."""
    return not softmax_real_multiplier(beta, input_scale) > 1.0


def known_abort(model_bytes: bytes, source: str) -> tuple[str, str] | None:
    """(message, hint) for the first operator TFLM aborts on, or None when none is known to."""
    try:
        graph = parse_model(model_bytes, source).main
    except UserError:
        return None
    for op in graph.operators:
        if op.op != "SOFTMAX" or not op.inputs:
            continue
        x = graph.tensors[op.inputs[0]]
        scales = x.quantization.scale if x.quantization else ()
        if x.dtype != "int8" or not scales:
            continue
        beta = float(op.options.get("beta", 0.0))
        if softmax_aborts(beta, scales[0]):
            return (f"{source}: operator {op.index} (SOFTMAX): TFLM aborts on this model, in the host interpreter "
                    f"and on the device alike: beta * input scale * 2^26 = {beta * scales[0] * 2 ** 26:.3g} must "
                    f"exceed 1 (the input scale {scales[0]:.3g} spans logits of only about "
                    f"+-{128 * scales[0]:.2g})",
                    "quantize with calibration data that gives the logits their real range (a trained model's), "
                    "or export the model without its final SOFTMAX and take the arg-max of the logits")
    return None
