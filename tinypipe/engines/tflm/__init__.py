"""The TensorFlow Lite Micro engine: TFLM compiled for the CPU (reference or CMSIS-NN kernels), a C shim with an
op resolver holding exactly the model's ops, Rust bindings from bindgen. `source.py` finds and reads the TFLM
tree, `ops.py` picks the ops, `lib.py` builds the library, `codegen.py` the shim, bindings and model.rs."""

from tinypipe.engines.base import Engine

ENGINE = Engine(
    name="tflm",
    description="TensorFlow Lite Micro through a C shim and bindgen",
    stages=(("tflm_ops", "tinypipe.engines.tflm.ops"), ("tflm_lib", "tinypipe.engines.tflm.lib"),
            ("codegen", "tinypipe.engines.tflm.codegen")),
    tools=("arm-none-eabi-g++", "bindgen", "qemu-system-arm"),
    outputs=("model.tflite", "bindings.rs", "link.json", "lib/libtflm_model.a"),
)
