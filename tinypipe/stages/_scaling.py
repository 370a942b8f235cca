"""The declared input scaling (`sensor.scale`/`sensor.offset`, or `data.normalize: standard`): raw int16 sensor
samples -> the model's input, the same on the host and on the device.

The float model is trained on `(raw - offset) * scale` (per axis). Its int8 input is then not TFLite's QUANTIZE of
that float but one integer step per axis, folded from the scaling and the input tensor's (scale, zero point):

    q = clamp(RoundingDivideByPOT(raw * multiplier + bias, shift), -128, 127)

with `multiplier` an int32 (`real_multiplier * 2^shift`), `bias` an int64 (`(zero_point - offset * real_multiplier)
* 2^shift`) and TFLM's rounding (gemmlowp `RoundingDivideByPOT`: halves away from zero). `quantize_raw` is the
numpy form the host uses for the oracle's inputs and its accuracy; the firmware's `tinyml_kernels::quant::
quantize_raw_i16` is the same arithmetic in i64, so the device computes the same bytes from the same raw samples.

Not a stage (no STAGE). numpy is imported inside functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinypipe.core.errors import UserError
from tinypipe.core.fs import read_json

if TYPE_CHECKING:
    import numpy as np

SCALING_FILE = "scaling.json"  # in the data stage's entry, only when a scaling is declared
MAX_SHIFT = 47  # keeps |bias| < 2^62 for |real bias| < 2^15, and |raw * multiplier| < 2^46: no i64 overflow
INT16 = (-32768, 32767)


@dataclass(frozen=True)
class FixedPoint:
    """Per axis: q = clamp(RoundingDivideByPOT(raw * multiplier + bias, shift), -128, 127)."""
    multiplier: list[int]
    bias: list[int]
    shift: list[int]

    def as_json(self) -> dict:
        return {"multiplier": self.multiplier, "bias": self.bias, "shift": self.shift}


@dataclass(frozen=True)
class InputScaling:
    """model input (float) = (raw - offset) * scale, per axis; `how` is `sensor` (declared) or `standard`."""
    offset: list[float]
    scale: list[float]
    how: str

    def as_json(self) -> dict:
        return {"offset": self.offset, "scale": self.scale, "how": self.how}

    def apply(self, x_raw: "np.ndarray") -> "np.ndarray":
        """The float model's input from raw windows [..., axes] (or features [..., rows, axes], a step per value)."""
        import numpy as np

        x, shape = _columns(np.asarray(x_raw, np.float64), len(self.offset))
        return ((x - np.asarray(self.offset)) * np.asarray(self.scale)).reshape(shape).astype(np.float32)

    def fixed_point(self, input_scale: float, zero_point: int) -> FixedPoint:
        """The integer step per axis for an int8 input tensor of (input_scale, zero_point)."""
        multipliers, biases, shifts = [], [], []
        for axis, (offset, scale) in enumerate(zip(self.offset, self.scale)):
            real = scale / input_scale
            real_bias = zero_point - offset * real
            if not 0 < real < 2 ** 16 or abs(real_bias) >= 2 ** 15:
                raise UserError(f"input scaling, axis {axis}: raw samples map onto the model's int8 input with "
                                f"multiplier {real:.4g} and offset {real_bias:.4g}: nearly every sample would clip",
                                "check sensor.scale and sensor.offset: (raw - offset) * scale should be of the "
                                "size the model was trained on")
            shift = min(MAX_SHIFT, 30 - math.floor(math.log2(real)))  # multiplier in [2^30, 2^31)
            multipliers.append(int(round(real * 2 ** shift)))
            biases.append(int(round(real_bias * 2 ** shift)))
            shifts.append(int(shift))
        return FixedPoint(multipliers, biases, shifts)


def declared(project, x_train: "np.ndarray") -> InputScaling | None:
    """The project's scaling, fitted on the training windows for `normalize: standard`; None when none is set."""
    import numpy as np

    axes = len(project.sensor.axes)
    if project.data.normalize == "standard":
        flat = np.asarray(x_train, np.float64).reshape(-1, axes)
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        return InputScaling([float(m) for m in mean], [float(1 / s) if s > 0 else 1.0 for s in std], "standard")
    sensor = project.sensor
    if sensor.scale is None and sensor.offset is None:
        return None

    def per_axis(value, default):
        value = default if value is None else value
        return [float(v) for v in value] if isinstance(value, list) else [float(value)] * axes

    return InputScaling(per_axis(sensor.offset, 0.0), per_axis(sensor.scale, 1.0), "sensor")


def require_raw_int16(arrays: dict, classes: list[str], label: str) -> None:
    """With a scaling declared the windows are raw int16 samples: whole numbers in [-32768, 32767]."""
    import numpy as np

    for split in ("train", "val", "test"):
        x = arrays[f"x_{split}"]
        bad = np.argwhere((x != np.round(x)) | (x < INT16[0]) | (x > INT16[1]))
        if len(bad):
            window, sample, axis = (int(i) for i in bad[0])
            name = classes[int(arrays[f"y_{split}"][window])]
            raise UserError(f"{label}: a {split} window of class {name!r} has sample {sample}, axis {axis} = "
                            f"{float(x[window, sample, axis])!r}; with a declared input scaling the recordings "
                            "must be raw int16 samples (whole numbers from -32768 to 32767)",
                            "store the sensor's raw readings (ADC counts), or drop sensor.scale/sensor.offset and "
                            "data.normalize")


def model_data(inputs: dict[str, Path]) -> Path:
    """The entry holding the model's windows and their scaling: the features stage's when the variant computes
    features (it has the data stage's layout), else the data stage's."""
    return inputs.get("features") or inputs["data"]


def load(data_dir: Path) -> InputScaling | None:
    path = data_dir / SCALING_FILE
    if not path.is_file():
        return None
    doc = read_json(path)
    return InputScaling(doc["offset"], doc["scale"], doc["how"])


def model_split(data_dir: Path) -> dict[str, "np.ndarray"]:
    """The data stage's arrays with the declared scaling applied to every x: what the float model sees."""
    from tinypipe.stages._ml import load_split

    split = load_split(data_dir)
    scaling = load(data_dir)
    if scaling is not None:
        for name in ("x_train", "x_val", "x_test"):
            split[name] = scaling.apply(split[name])
    return split


def rounding_divide_by_pot(x: "np.ndarray", exponent: int) -> "np.ndarray":
    """gemmlowp's RoundingDivideByPOT on int64: x / 2^exponent, halves rounded away from zero."""
    import numpy as np

    x = np.asarray(x, np.int64)
    mask = np.int64((1 << exponent) - 1)
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def quantize_raw(x_raw: "np.ndarray", fixed: FixedPoint) -> "np.ndarray":
    """Raw windows [..., axes] (int16 values) -> int8 model inputs, per axis by `fixed` (see the module doc)."""
    import numpy as np

    raw, shape = _columns(np.asarray(x_raw).astype(np.int64), len(fixed.shift))
    out = np.empty(raw.shape, np.int64)
    for axis, (m, b, k) in enumerate(zip(fixed.multiplier, fixed.bias, fixed.shift)):
        out[..., axis] = rounding_divide_by_pot(raw[..., axis] * m + b, k)
    return np.clip(out, -128, 127).reshape(shape).astype(np.int8)


def _columns(x: "np.ndarray", columns: int) -> tuple["np.ndarray", tuple]:
    """`x` [..., rows, axes] with `columns` values per row: one step per axis, as it is; or one step per value of
    a window (`columns == rows * axes`: computed features, each standardised on its own), flattened."""
    if x.shape[-1] == columns or x.ndim < 2:
        return x, x.shape
    return x.reshape(*x.shape[:-2], x.shape[-2] * x.shape[-1]), x.shape


def model_inputs(micro, x_raw: "np.ndarray", scaling: InputScaling | None) -> "np.ndarray":
    """The model's input tensors for raw windows: the integer step with a scaling, else TFLite's QUANTIZE."""
    if scaling is None:
        return micro.to_input(x_raw)
    import numpy as np

    if np.dtype(micro.input.dtype) != np.int8 or micro.input.scale is None:
        raise UserError(f"the model's input is {np.dtype(micro.input.dtype).name}; a declared input scaling "
                        "feeds an int8 input", "quantize with quantization.io: int8, or drop the scaling")
    return quantize_raw(x_raw, scaling.fixed_point(micro.input.scale, micro.input.zero_point))
