"""Helpers shared by the ML stages (data, train, quantize, reference): model files, int8 maths, TFLM calls.

Not a stage (no STAGE). Cheap to import: numpy, TensorFlow and tflite_micro are imported inside functions, and
the functions used by stage `config` callables (`model_source`) only stat and hash one small file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_bytes
from tinypipe.core.hashing import sha256_file

if TYPE_CHECKING:
    import numpy as np

    from tinypipe.config.schema import Variant

MODEL_SUFFIXES = (".keras", ".tflite")


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: `layers` in project.yaml, or an imported `.keras` / `.tflite` file."""

    kind: str  # "layers" | "keras" | "tflite"
    path: Path | None = None
    sha256: str | None = None

    def key(self) -> dict:
        """The part of a stage config that pins an imported file by content, not by name or mtime."""
        return {} if self.kind == "layers" else {"model_file": {"kind": self.kind, "sha256": self.sha256}}


def model_source(variant: "Variant") -> ModelSource:
    """Resolve `model.path` (relative to the project directory, `Variant.resolve`) and hash the file; a model
    given by `layers` gives kind "layers". Cheap enough for a `config` callable: one stat and one small hash."""
    raw = variant.config["model"]["path"]
    if raw is None:
        return ModelSource("layers")
    path = variant.resolve(raw)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise UserError(f"model.path: {raw!r} is neither a .keras nor a .tflite file",
                        "point model.path at a Keras 3 `.keras` or an int8 `.tflite` file, or give `layers`")
    if not path.is_file():
        raise UserError(f"model.path: file not found: {path}",
                        "fix the path; a relative path starts at project.yaml's directory")
    return ModelSource(suffix[1:], path, sha256_file(path))


# A fixed count, not the machine's cores: how Eigen splits a float reduction between threads depends on their
# number, so a model trained on an 8-core CI machine would otherwise differ in its last bits from one trained on
# a 2-core laptop. Two: what small machines (this project's 2-core CI) used anyway, so pinning costs them nothing.
TENSORFLOW_THREADS = 2
# What tinypipe cannot pin down in TensorFlow's float arithmetic: recorded in tinypipe.lock and printed by `verify`.
TENSORFLOW_CAVEAT = ("TensorFlow float arithmetic: seeded, op determinism on, a fixed 2 threads, oneDNN off, so "
                     "the same machine type and TensorFlow build give the same bits; another CPU instruction set "
                     "(AVX-512 vs AVX2, Arm) or TensorFlow version may give different float weights or "
                     "calibration ranges (`tinypipe verify` on that machine shows it)")


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and Python logging before (and after) it is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: keep training bit-stable
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import sys

    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    # absl's handler keeps whatever sys.stderr was when absl was first imported: point it at the process's own
    # stderr (in a worker, the stage's log) rather than at a stream something may have swapped in.
    absl.logging.get_absl_handler().python_handler.stream = sys.__stderr__
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.autograph.set_verbosity(0)
    # Set before TensorFlow's runtime starts (the first TensorFlow stage in this worker process); the same
    # value again later is a no-op.
    tf.config.threading.set_intra_op_parallelism_threads(TENSORFLOW_THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(TENSORFLOW_THREADS)


@contextlib.contextmanager
def captured_output():
    """Send file descriptors 1 and 2 to a temporary file while TensorFlow's C++ code talks (the converter prints
    MLIR diagnostics there, below Python's reach). Yields a function returning the captured text, for errors;
    afterwards the text goes on to the real stderr, which in a worker is the stage's log.

    A worker process runs one stage at a time, so swapping its descriptors briefly is safe."""
    import sys
    import tempfile

    with tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)

        def text() -> str:
            sink.seek(0)
            return sink.read().decode(errors="replace")

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield text
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            os.write(2, text().encode())  # kept in the stage's log too (the worker's stderr), never lost


def load_split(data_dir: Path, name: str = "data.npz") -> dict[str, "np.ndarray"]:
    import numpy as np

    with np.load(data_dir / name) as npz:
        return {name: npz[name] for name in npz.files}


def format_accuracy(accuracy: float | None) -> str:
    return "n/a" if accuracy is None else f"{accuracy:.3f}"


def write_npz(path: Path, arrays: dict[str, "np.ndarray"]) -> None:
    """Like np.savez, but byte-reproducible: np.savez stamps each zip entry with the wall clock."""
    import io
    import zipfile

    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue())
    atomic_write_bytes(path, buffer.getvalue())


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: Any  # numpy dtype class
    scale: float | None
    zero_point: int | None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    def as_json(self) -> dict:
        import numpy as np

        return {"shape": list(self.shape), "dtype": np.dtype(self.dtype).name, "scale": self.scale,
                "zero_point": self.zero_point}


def _tensor_info(details: dict) -> TensorInfo:
    q = details.get("quantization_parameters") or {}
    scales = list(q.get("scales", []))
    zero_points = list(q.get("zero_points", []))
    return TensorInfo(
        shape=tuple(int(d) for d in details["shape"]),
        dtype=details["dtype"],
        scale=float(scales[0]) if scales else None,
        zero_point=int(zero_points[0]) if zero_points else None,
    )


_PROBE = """\
import sys
from tflite_micro.python.tflite_micro import runtime
interpreter = runtime.Interpreter.from_bytes(sys.stdin.buffer.read())
interpreter.invoke()
"""
PROBE_TIMEOUT_S = 120


def probe_untrusted_model(model_bytes: bytes, source: str) -> None:
    """Load and invoke a model from outside in a child process first: TFLM's C++ trusts the flatbuffer, and a
    crash there must become a message (exit 2), not the death of the stage with no word."""
    import signal
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], input=model_bytes, capture_output=True,
                              timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UserError(f"{source}: the model file is malformed: the host TFLM interpreter did not finish loading "
                        f"and running it in {PROBE_TIMEOUT_S} s", "re-export the model with TFLiteConverter") from None
    if proc.returncode < 0:
        from tinypipe.tflite.aborts import known_abort

        known = known_abort(model_bytes, source)
        if known:
            raise UserError(known[0], known[1])
        raise UserError(f"{source}: the model file is malformed: the host TFLM interpreter crashed on it "
                        f"({signal.Signals(-proc.returncode).name})",
                        "re-export the model with TFLiteConverter, or check that the file was copied completely")
    if proc.returncode != 0:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["(no message)"])[-1]
        raise UserError(f"{source}: does not load in the host TFLM interpreter: {last[:300]}",
                        "import a .tflite flatbuffer made of builtin ops that TFLM supports")


class MicroModel:
    """The host TFLM interpreter (PyPI tflite-micro): the oracle every engine must match byte for byte."""

    def __init__(self, model_bytes: bytes):
        from tflite_micro.python.tflite_micro import runtime

        self._interpreter = runtime.Interpreter.from_bytes(model_bytes)
        self.input = _tensor_info(self._interpreter.get_input_details(0))
        self.output = _tensor_info(self._interpreter.get_output_details(0))

    def invoke(self, x: "np.ndarray") -> "np.ndarray":
        """Run one example already in the input dtype; returns a copy of output 0."""
        import numpy as np

        self._interpreter.set_input(np.asarray(x, dtype=self.input.dtype).reshape(self.input.shape), 0)
        self._interpreter.invoke()
        return np.array(self._interpreter.get_output(0), copy=True)

    def to_input(self, x_float: "np.ndarray") -> "np.ndarray":
        """Float windows [N, ...] -> the model's input dtype (quantized when the input is an integer tensor)."""
        import numpy as np

        if np.issubdtype(self.input.dtype, np.integer):
            from tinypipe.tflite.io import quantize_input  # TFLM's QUANTIZE; not at the top: no-op runs import us

            return quantize_input(x_float, self.input.scale, self.input.zero_point, self.input.dtype)
        return np.asarray(x_float, dtype=self.input.dtype)

    def takes(self, x_float: "np.ndarray") -> bool:
        """Whether one window of x_float [N, ...] has the model's input shape, dimensions of size 1 aside
        (a model taking [1, 50, 6] takes windows [N, 50, 6])."""
        return [d for d in self.input.shape if d != 1] == [int(d) for d in x_float.shape[1:] if d != 1]

    def fits(self, x_float: "np.ndarray") -> bool:
        """Whether one window of x_float [N, ...] has exactly the model's input element count."""
        import numpy as np

        return int(np.prod(x_float.shape[1:])) == self.input.size


def builtin_op_names(model_bytes: bytes) -> list[str]:
    """Builtin operator names used by a .tflite model, sorted (custom ops as `CUSTOM:<name>`)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    by_code = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    model = schema.Model.GetRootAs(model_bytes, 0)
    names = set()
    for i in range(model.OperatorCodesLength()):
        op = model.OperatorCodes(i)
        # schema v3a: the int8 `deprecated_builtin_code` caps at 127; the real code is the larger of the two
        code = max(op.BuiltinCode(), op.DeprecatedBuiltinCode())
        if code == schema.BuiltinOperator.CUSTOM:
            names.add(f"CUSTOM:{(op.CustomCode() or b'').decode()}")
        else:
            names.add(by_code.get(code, f"BUILTIN_{code}"))
    return sorted(names)


def require_takes_windows(micro: MicroModel, x_float: "np.ndarray", num_classes: int, source: str) -> None:
    """An imported model evaluated on the user's own data (csv, npz) must take its windows and output one score
    per class; otherwise a UserError naming both shapes (the generator's projects fall back to random inputs)."""
    window = [int(d) for d in x_float.shape[1:]]
    if not micro.takes(x_float):
        raise UserError(f"model.path: {source} takes input {list(micro.input.shape)}, but the data windows are "
                        f"{window} (sensor.window x sensor.axes)",
                        "set sensor.window and sensor.axes to the shape the model was trained on, or import a model "
                        "trained on these windows")
    if micro.output.size != num_classes:
        raise UserError(f"model.path: {source} outputs {micro.output.size} score(s), but data.classes has "
                        f"{num_classes} class(es)",
                        "list one class per model output, in the model's output order, in data.classes")
