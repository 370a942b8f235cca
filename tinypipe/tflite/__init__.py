"""Read .tflite flatbuffers without TensorFlow: `read_model(path)` / `parse_model(data, source)`."""

from tinypipe.tflite.reader import (
    BUILTIN_OPERATORS,
    Model,
    Operator,
    Quantization,
    Subgraph,
    Tensor,
    parse_model,
    read_model,
)

__all__ = [
    "BUILTIN_OPERATORS", "Model", "Operator", "Quantization", "Subgraph", "Tensor", "parse_model", "read_model",
]
