"""tinypipe's native engine: an int8 .tflite -> Rust source that calls the `tinyml-kernels` crate, ahead of
time (no interpreter). `generate.py` is the compiler (lower -> plan -> emit), `codegen.py` its stage."""

from tinypipe.engines.base import Engine

ENGINE = Engine(
    name="native",
    description="ahead-of-time Rust: weights as statics, a planned arena, calls into tinyml-kernels",
    stages=(("codegen", "tinypipe.engines.native.codegen"),),
    outputs=(),
)
