"""The project.yaml schema (pydantic v2). Every option is declared once here with its type, default and help."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tinypipe.config.boards import BOARDS, DEFAULT_BOARD


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sensor(Strict):
    kind: Literal["accelerometer", "imu", "microphone", "generic"] = Field(
        "accelerometer", description="what the device reads; decides the default data generator")
    axes: list[str] = Field(default_factory=lambda: ["x", "y", "z"], description="channel names, in order")
    sample_rate_hz: float = Field(50.0, gt=0, description="samples per second per axis")
    window: int = Field(64, ge=4, le=4096, description="samples per classified window")


class Split(Strict):
    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> "Split":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")
        return self


class Data(Strict):
    source: Literal["generator"] = Field("generator", description="where windows come from")
    classes: list[str] = Field(default_factory=lambda: ["wave", "tap", "none"], min_length=2)
    samples_per_class: int = Field(200, ge=4, le=100_000)
    split: Split = Field(default_factory=Split)


Activation = Literal["relu", "relu6", "tanh", "sigmoid", "linear"]


class Conv1D(Strict):
    type: Literal["conv1d"]
    filters: int = Field(ge=1, le=1024)
    kernel_size: int = Field(ge=1, le=64)
    strides: int = Field(1, ge=1)
    padding: Literal["valid", "same"] = "valid"
    activation: Activation = "relu"


class MaxPool1D(Strict):
    type: Literal["maxpool1d"]
    pool_size: int = Field(2, ge=1)


class AveragePool1D(Strict):
    type: Literal["avgpool1d"]
    pool_size: int = Field(2, ge=1)


class Flatten(Strict):
    type: Literal["flatten"]


class Dense(Strict):
    type: Literal["dense"]
    units: int = Field(ge=1, le=4096)
    activation: Activation = "linear"


class Dropout(Strict):
    type: Literal["dropout"]
    rate: float = Field(ge=0, lt=1)


Layer = Annotated[Union[Conv1D, MaxPool1D, AveragePool1D, Flatten, Dense, Dropout], Field(discriminator="type")]


class Model(Strict):
    layers: list[Layer] | None = Field(None, description="a Sequential stack; the last Dense gets one unit per class")
    path: str | None = Field(None, description="a .keras or .tflite file to import instead of `layers`")
    softmax: bool = Field(True, description="end with a softmax (probabilities) rather than raw logits")
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(0.003, gt=0)

    @model_validator(mode="after")
    def _layers_or_path(self) -> "Model":
        if (self.layers is None) == (self.path is None):
            raise ValueError("give exactly one of `layers` or `path`")
        return self


class Quantization(Strict):
    scheme: Literal["int8"] = Field("int8", description="full-integer int8 (weights per-channel, activations per-tensor)")
    io: Literal["int8", "float32"] = Field("int8", description="dtype of the model's input and output tensors")
    representative_samples: int = Field(100, ge=1, le=100_000, description="training windows used to calibrate")


class Target(Strict):
    board: str = Field(DEFAULT_BOARD, description="a name from `tinypipe boards`")
    triple: str | None = Field(None, description="Rust target triple; defaults from the board")
    cpu: str | None = Field(None, description="-C target-cpu; defaults from the board")
    runner: Literal["emulator", "probe"] = Field(
        "emulator", description="where `run` runs a real board QEMU also emulates (e.g. stm32f4-discovery on "
        "netduinoplus2): the emulator, or the board itself on a debug probe (pyocd)")
    profile_layers: bool = Field(
        False, description="also time every operator on the device (native: its own hook; tflm: TFLM's "
        "profiler): run.json gets `layers`, and `tinypipe run` and `tinypipe report` print them")

    @field_validator("board")
    @classmethod
    def _known_board(cls, value: str) -> str:
        if value not in BOARDS:
            raise ValueError(f"unknown board {value!r}")
        return value


class Hal(Strict):
    crate: str
    version: str
    features: list[str] = Field(default_factory=list)


class Tflm(Strict):
    path: str | None = Field(None, description="TFLM source tree (else $TINYPIPE_TFLM_PATH); relative to project.yaml")
    kernels: Literal["reference", "cmsis_nn"] = Field("cmsis_nn", description="TFLM kernel set to compile")
    library: Literal["model_ops", "full"] = Field(
        "model_ops", description="model_ops: TFLM's core plus only the kernels of the model's ops (shared by "
        "every project with the same ops); full: every kernel, for any model")
    arena_bytes: int | None = Field(None, ge=256, description="fixed tensor arena size; default: measured + headroom")


class Budgets(Strict):
    flash_bytes: int | None = Field(None, ge=1)
    ram_bytes: int | None = Field(None, ge=1)
    instructions_per_inference: int | None = Field(None, ge=1)
    accuracy_device_min: float | None = Field(None, ge=0, le=1)


class Matrix(Strict):
    board: list[str] | None = None
    engine: list[Literal["native", "tflm"]] | None = None


class Project(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    sensor: Sensor = Field(default_factory=Sensor)
    data: Data = Field(default_factory=Data)
    model: Model
    quantization: Quantization = Field(default_factory=Quantization)
    target: Target = Field(default_factory=Target)
    hal: list[Hal] | None = Field(
        None, description="crates.io crates for a registry build (Cargo.hal.toml): one mapping or a list, e.g. "
        "[{crate: stm32f4xx-hal, version: '0.21', features: [stm32f407]}, {crate: cortex-m-rt, version: '0.7'}]")

    @field_validator("hal", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return value if value is None or isinstance(value, list) else [value]
    engine: Literal["native", "tflm"] = "native"
    tflm: Tflm = Field(default_factory=Tflm)
    budgets: Budgets = Field(default_factory=Budgets)
    matrix: Matrix | None = None


from tinypipe.config.variant import Variant  # noqa: E402,F401 - re-exported: stages and tests import it from here
