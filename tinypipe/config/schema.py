"""The project.yaml schema (pydantic v2). Every option is declared once here with its type, default and help."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from tinypipe.config.boards import BOARDS, DEFAULT_BOARD
from tinypipe.core.urls import password_in_url


def refuse(message: str, *at: str) -> PydanticCustomError:
    """A check across keys: the error names `at`, the key paths (relative to the model raising it) to point the
    user at, the first one the file spells out winning, so `file:line:col` is the line to edit, not the section's."""
    return PydanticCustomError("cross_key", message, {"at": list(at)})


class Strict(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` is never a learning rate, a rate or a budget
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Sensor(Strict):
    """The sensor and its window: one model input is `window` samples of `len(axes)` channels."""

    kind: Literal["accelerometer", "imu", "microphone", "generic"] = Field(
        "accelerometer", description="what the device reads; the built-in generator (`data.source: generator`) "
        "makes accelerometer data and accepts accelerometer, imu and generic, not microphone",
        examples=["accelerometer"])
    axes: list[str] = Field(
        default_factory=lambda: ["x", "y", "z"], description="channel names, in order: the model's input has "
        "one channel per axis; the built-in generator knows x, y and z (in g)", examples=[["x", "y", "z"]])
    sample_rate_hz: float = Field(
        50.0, gt=0, description="samples per second per axis: the generator's time step, the firmware's "
        "real-time loop's sample clock (a whole number of SysTick ticks), and compiled into the firmware of a "
        "board that reads its own sensor (rounded to whole hertz)", examples=[50])
    window: int = Field(
        64, ge=4, le=4096, description="samples per classified window: the model sees `window` x `len(axes)` "
        "values per inference", examples=[64])
    scale: float | list[float] | None = Field(
        None, description="declared scaling of raw sensor units (int16 samples, what the ADC or the sensor's "
        "registers give): the model's input is `(raw - offset) * scale`, one number for every axis or one per "
        "axis; the firmware receives raw int16 samples and computes the int8 model input with the same integer "
        "steps as the host (`quantization.io: int8`; not with the built-in generator)", examples=[[0.000244]])
    offset: float | list[float] | None = Field(
        None, description="subtracted from raw samples before `scale` (0 when unset); one number for every axis "
        "or one per axis", examples=[[0, 0, 4096]])


class Split(Strict):
    """How each class's windows are divided, after a shuffle seeded by `seed`; the three fractions must sum to 1.
    With `data.source: csv`, whole recordings are divided, not windows; when the folder fixes train and test,
    `val / (train + val)` of each class's training recordings become the validation set."""

    train: float = Field(0.7, gt=0, lt=1, description="fraction of each class's windows the model is trained on",
                         examples=[0.7])
    val: float = Field(0.15, ge=0, lt=1, description="fraction held out to report validation accuracy after each "
                       "epoch; 0 trains without one", examples=[0.15])
    test: float = Field(0.15, gt=0, lt=1, description="fraction held out for the final accuracy, on the host and on "
                        "the device (the firmware runs every test window); at least one window per class",
                        examples=[0.15])

    @model_validator(mode="after")
    def _sums_to_one(self) -> "Split":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:g}")  # the split as a whole
        return self


GENERATOR_CLASSES = ["wave", "tap", "none"]


class Data(Strict):
    """The labelled windows the model is trained and checked on: where they come from, their classes, the split."""

    source: Literal["generator", "csv", "wav", "npz"] = Field(
        "generator", description="where windows come from: `generator` is the built-in, seeded simulation of "
        "an accelerometer (gravity through a tilted mounting, gain error, noise and drift, plus each class's motion); "
        "`csv` reads your own recordings from the folder `data.path`: `DIR/<class>/*.csv`, one folder per class and "
        "one file per recording, or `DIR/train/<class>/*.csv` and `DIR/test/<class>/*.csv` for a split you fixed. "
        "Each file has a header row; `sensor.axes` picks its columns, in order (other columns, a timestamp say, are "
        "ignored). The split is by recording, never by window: windows of one recording stay in one split; "
        "`wav` (with `sensor.kind: microphone` and one axis) reads mono 16-bit PCM `.wav` recordings in the same "
        "folder layout; a file at another rate than `sensor.sample_rate_hz` is resampled (linear interpolation) "
        "with a warning; "
        "`npz` reads windows you cut yourself from the NumPy file `data.path`: `x` (float, [windows, sensor.window, "
        "len(sensor.axes)]) and `y` (integer labels, indices into `data.classes`), split one window at a time; or "
        "`x_train`, `y_train`, `x_test`, `y_test` (and optionally `x_val`, `y_val`) for a split you fixed — "
        "give it when windows overlap or several come from one recording, or the test accuracy flatters the model",
        examples=["csv"])
    path: str | None = Field(
        None, description="the folder of CSV recordings (`source: csv`) or the `.npz` file (`source: npz`), "
        "relative to project.yaml; the data stage reruns when a file's content changes (not its mtime)",
        examples=["recordings"])
    classes: list[str] | None = Field(
        None, min_length=2, description="class names in label order (label 0 first), each listed once; the generator "
        "knows wave, tap and none (all three when unset); with `source: csv`, the class folders to use, in this order "
        "(when unset: every class folder, sorted by name); with `source: npz`, required: the name of label 0, 1, "
        "...; with `model.path`, one class per model output",
        examples=[["wave", "tap", "none"]])
    samples_per_class: int = Field(200, ge=4, le=100_000, description="windows generated per class, before the "
                                   "split (`source: generator` only)", examples=[200])
    hop: int | None = Field(
        None, ge=1, le=65536, description="`source: csv`: samples between the starts of two windows cut from one "
        "recording; unset: `sensor.window` (windows side by side, no overlap). Samples after the last whole "
        "window are not used. The firmware's real-time loop classifies a window every `hop` samples too "
        "(every `sensor.window` samples with other sources)", examples=[32])
    short: Literal["drop", "pad"] = Field(
        "drop", description="`source: csv`: what becomes of a recording shorter than `sensor.window`: `drop` "
        "skips it (the data stage reports how many), `pad` makes one window of it by repeating its last sample",
        examples=["pad"])
    normalize: Literal["none", "standard"] = Field(
        "none", description="`standard`: the model's input is `(raw - mean) / std` per axis, with mean and std "
        "fitted on the training split only (recorded in the data stage's `scaling.json` and in the report; an "
        "axis with std 0 is only centred); raw samples are int16 values, and the firmware computes the int8 model "
        "input from them with the same integer steps as the host. Not with `sensor.scale`/`sensor.offset`, "
        "nor with the built-in generator", examples=["standard"])
    split: Split = Field(default_factory=Split)

    @model_validator(mode="before")
    @classmethod
    def _generator_classes(cls, data):
        # the generator's classes are the default only for the generator: a csv project's come from its folders
        if isinstance(data, dict) and data.get("source", "generator") == "generator" and data.get("classes") is None:
            return {**data, "classes": list(GENERATOR_CLASSES)}
        return data

    @model_validator(mode="after")
    def _path_for_csv(self) -> "Data":
        if self.source in ("csv", "wav") and self.path is None:
            raise refuse(f"`source: {self.source}` needs `path`, the folder of recordings", "source")
        if self.source == "npz" and (self.path is None or self.classes is None):
            raise refuse("`source: npz` needs `path`, the .npz file, and `classes`, the name of each label", "source")
        if self.source == "npz" and (self.hop is not None or self.short != "drop"):
            raise refuse("`hop` and `short` are read only with `source: csv` or `wav`", "hop", "short", "source")
        if self.source == "generator" and (self.path is not None or self.hop is not None or self.short != "drop"):
            raise refuse("`source: generator` reads none of `path`, `hop` and `short`", "path", "hop", "short", "source")
        return self


class FeatureFilter(Strict):
    """A second-order Butterworth filter run over each axis before the spectral features (fixed point, Q28
    coefficients computed at build time)."""

    type: Literal["lowpass", "highpass"] = Field(
        description="`lowpass` keeps what is slower than `cutoff_hz`; `highpass` what is faster (it removes "
        "gravity and drift)", examples=["highpass"])
    cutoff_hz: float = Field(gt=0, description="the -3 dB frequency, below half of `sensor.sample_rate_hz`",
                             examples=[0.5])


FEATURE_KINDS = ("raw", "spectral", "mfcc", "log_mel")
MAX_FFT_LENGTH = 256
DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*ms")  # a frame length or stride given in milliseconds


class Features(Strict):
    """What the model sees of each window. `raw`: the samples themselves (scaled as `sensor.scale`/`offset` or
    `data.normalize` say). `spectral` (motion sensors): per axis, in fixed point from the raw int16 samples, the
    same on the host and on the device: the RMS, the log energy of each FFT bin, and the strongest bins (their
    frequency and height). `mfcc` and `log_mel` (microphones): per frame of the window, the log energies in mel
    bands, and for `mfcc` their DCT, the front end of keyword spotting. The host trains on exactly the numbers the
    firmware computes; the device's features are checked byte for byte against the host's. The built-in generator's windows (in g) become int16 counts at
    4096 per g (a +-8 g accelerometer) first; your own recordings must be raw int16 samples."""

    kind: Literal["raw", "spectral", "mfcc", "log_mel"] = Field(
        "raw", description="`raw`: the samples as the model's input (the other keys are not read); `spectral`: "
        "per axis, after the optional `filter` and with the window's mean removed, the RMS, log2 of the power "
        "in FFT bins 1 to `fft_length / 2` (averaged over the window's `fft_length`-sample frames) and the "
        "`peaks` strongest bins; the model's input is then `[1 + fft_length / 2 + 2 * peaks, len(sensor.axes)]`, "
        "each feature standardised on the training split; `mfcc` and `log_mel` (`sensor.kind: microphone`): "
        "the window cut into frames (`frame_length` samples every `frame_stride`), each Hann-windowed, its FFT's "
        "power summed by `mel_bins` triangular mel filters and its log2 taken (`log_mel`), then for `mfcc` a "
        "DCT-II keeping `coefficients` values; the model's input is `[frames, mel_bins or coefficients]`, "
        "standardised likewise", examples=["spectral"])
    fft_length: int | None = Field(
        None, ge=2, le=MAX_FFT_LENGTH, description="`spectral`: samples per FFT frame, a power of two no longer "
        "than `sensor.window` (default: the largest such, at most 64); frequency resolution is "
        "`sensor.sample_rate_hz / fft_length`; `mfcc`/`log_mel`: the FFT's length, a power of two at least "
        "`frame_length` (the frame is zero-padded; default: the smallest such, or without `frame_length` the largest "
        "power of two in the window, at most 256)", examples=[32])
    peaks: int = Field(3, ge=0, le=16, description="`spectral`: how many of the strongest FFT bins to report, "
                       "each as its bin number and its log energy", examples=[2])
    filter: FeatureFilter | None = Field(
        None, description="`spectral`: a low- or high-pass filter run over each axis first (none when unset)",
        examples=[{"type": "highpass", "cutoff_hz": 0.5}])

    frame_length: int | str | None = Field(
        None, description="`mfcc`/`log_mel`: samples per frame, a whole number or a duration such as `32ms` (rounded "
        "to whole samples at `sensor.sample_rate_hz`), at most `sensor.window` and `fft_length` (default: "
        "`fft_length`)", examples=["32ms"])
    frame_stride: int | str | None = Field(
        None, description="`mfcc`/`log_mel`: samples from the start of one frame to the next, a number or a duration "
        "(`16ms`); the window holds `1 + (sensor.window - frame_length) // frame_stride` frames (default: half a "
        "frame)", examples=["16ms"])
    mel_bins: int = Field(
        20, ge=1, le=128, description="`mfcc`/`log_mel`: triangular filters on the mel scale from `low_hz` to "
        "`high_hz`, at most `fft_length / 2` (one per FFT bin)", examples=[32])
    coefficients: int = Field(
        10, ge=1, le=128, description="`mfcc`: DCT-II coefficients kept per frame (the first ones), at most `mel_bins`",
        examples=[13])
    low_hz: float = Field(20.0, ge=0, description="`mfcc`/`log_mel`: the lowest mel filter's lower edge",
                          examples=[60])
    high_hz: float | None = Field(
        None, gt=0, description="`mfcc`/`log_mel`: the highest mel filter's upper edge, at most half of "
        "`sensor.sample_rate_hz` (the default)", examples=[3800])

    @field_validator("frame_length", "frame_stride")
    @classmethod
    def _samples_or_duration(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not DURATION.fullmatch(value.strip()):
            raise PydanticCustomError("duration", "neither a number of samples nor a duration such as 32ms")
        if isinstance(value, int) and value < 1:
            raise PydanticCustomError("duration", "must be at least 1 sample")
        return value

    @field_validator("fft_length")
    @classmethod
    def _power_of_two(cls, value: int | None) -> int | None:
        if value is not None and value & (value - 1):
            lower = 1 << (value.bit_length() - 1)
            raise PydanticCustomError("fft_length", "must be a power of two, e.g. {lower} or {upper}",
                                      {"lower": lower, "upper": lower * 2})
        return value


def samples_of(value: int | str, rate_hz: float) -> int:
    """A frame length or stride in samples: as given, or a duration (`32ms`) at `rate_hz`, rounded."""
    if isinstance(value, int):
        return value
    return round(float(DURATION.fullmatch(value.strip()).group(1)) * rate_hz / 1000)


def audio_frames(features: "Features", sensor: Sensor) -> tuple[int, int, int, float]:
    """(frame_length, frame_stride, fft_length, high_hz) of an `mfcc`/`log_mel` front end, defaults filled in: a
    frame of `fft_length` samples (the largest power of two in the window, at most MAX_FFT_LENGTH) or an FFT just
    long enough for `frame_length`, half a frame's stride, mel filters up to half the sample rate."""
    rate = sensor.sample_rate_hz
    if features.frame_length is not None:
        frame = samples_of(features.frame_length, rate)
        fft_length = features.fft_length or max(2, 1 << (frame - 1).bit_length())
    else:
        fft_length = features.fft_length or min(MAX_FFT_LENGTH, 1 << (sensor.window.bit_length() - 1))
        frame = fft_length
    stride = samples_of(features.frame_stride, rate) if features.frame_stride is not None else max(1, frame // 2)
    return frame, stride, fft_length, features.high_hz or rate / 2


def default_fft_length(window: int) -> int:
    """`features.fft_length` when unset: the largest power of two no longer than the window, at most 64."""
    return min(1 << (window.bit_length() - 1), 64)


Activation = Literal["relu", "relu6", "tanh", "sigmoid", "linear"]


class Conv1D(Strict):
    """A 1-D convolution along the time axis (Keras `Conv1D`)."""

    type: Literal["conv1d"]
    filters: int = Field(ge=1, le=1024, description="output channels (one kernel each)", examples=[8])
    kernel_size: int = Field(ge=1, le=64, description="length of each kernel, in samples", examples=[5])
    strides: int = Field(1, ge=1, le=4096, description="step between kernel positions, in samples", examples=[2])
    padding: Literal["valid", "same"] = Field(
        "valid", description="`valid`: no padding, `floor((length - kernel_size) / strides) + 1` output steps; "
        "`same`: zero-padded to `ceil(length / strides)` output steps", examples=["same"])
    activation: Activation = Field("relu", description="applied to the convolution's output", examples=["relu6"])


class MaxPool1D(Strict):
    """The maximum over non-overlapping runs of samples, per channel (Keras `MaxPooling1D`)."""

    type: Literal["maxpool1d"]
    pool_size: int = Field(2, ge=1, le=4096, description="samples per run, and the step between runs", examples=[4])


class AveragePool1D(Strict):
    """The mean over non-overlapping runs of samples, per channel (Keras `AveragePooling1D`)."""

    type: Literal["avgpool1d"]
    pool_size: int = Field(2, ge=1, le=4096, description="samples per run, and the step between runs", examples=[4])


class Flatten(Strict):
    """Time steps times channels into one vector, as a `dense` after a convolution needs (Keras `Flatten`)."""

    type: Literal["flatten"]


class Dense(Strict):
    """A fully connected layer (Keras `Dense`)."""

    type: Literal["dense"]
    units: int = Field(ge=1, le=4096, description="outputs; a linear `dense` of one unit per class at the end "
                       "of the stack is the classifier head", examples=[16])
    activation: Activation = Field("linear", description="applied to the outputs; `linear` applies none",
                                   examples=["relu"])


class Dropout(Strict):
    """Zeroes a random fraction of its inputs while training, against overfitting (Keras `Dropout`)."""

    type: Literal["dropout"]
    rate: float = Field(ge=0, lt=1, description="fraction of inputs zeroed at each training step; inference "
                        "(and so the device) passes every input through", examples=[0.2])


Layer = Annotated[Union[Conv1D, MaxPool1D, AveragePool1D, Flatten, Dense, Dropout], Field(discriminator="type")]


class Model(Strict):
    """The classifier: a stack of layers trained here (`layers`) or a model file imported (`path`), not both."""

    layers: list[Layer] | None = Field(
        None, description="a Sequential stack, input first; unless it ends with a linear `dense` of one unit per "
        "class, tinypipe appends one (after a `flatten` if the output still has a time axis)",
        examples=[[{"type": "conv1d", "filters": 8, "kernel_size": 5}, {"type": "maxpool1d", "pool_size": 4},
                   {"type": "flatten"}, {"type": "dense", "units": 3}]])
    path: str | None = Field(
        None, description="a .keras or .tflite file to import instead of `layers`, relative to the project "
        "directory: a .keras model counts as trained (epochs, batch_size and learning_rate are ignored); "
        "a .tflite model is used as it is (an int8 one)", examples=["models/gesture.keras"])
    softmax: bool = Field(True, description="end with a softmax (probabilities) rather than raw logits",
                          examples=[False])
    epochs: int = Field(30, ge=1, le=10_000, description="passes over the training windows", examples=[30])
    batch_size: int = Field(32, ge=1, le=65536, description="training windows per gradient step", examples=[32])
    learning_rate: float = Field(0.003, gt=0, le=10, description="the Adam optimizer's learning rate", examples=[0.001])

    @model_validator(mode="after")
    def _layers_or_path(self) -> "Model":
        if (self.layers is None) == (self.path is None):
            raise refuse("give exactly one of `layers` or `path`", "path", "layers")
        return self


class Quantization(Strict):
    """Post-training quantization of the trained model to the int8 `.tflite` both engines run."""

    scheme: Literal["int8"] = Field(
        "int8", description="full-integer int8 (weights per-channel, activations per-tensor)", examples=["int8"])
    io: Literal["int8", "float32"] = Field(
        "int8", description="dtype of the model's input and output tensors; float32 keeps them float, with "
        "QUANTIZE and DEQUANTIZE at the model's edges", examples=["float32"])
    representative_samples: int = Field(
        100, ge=1, le=100_000, description="training windows used to calibrate the activation ranges, picked by "
        "`seed` (all of them when there are fewer)", examples=[100])


class Target(Strict):
    """The board the firmware is built for, and how it is run."""

    board: str = Field(DEFAULT_BOARD, description="a name from `tinypipe boards`", examples=["mps2-an386"])
    triple: str | None = Field(None, description="Rust target triple; defaults from the board",
                               examples=["thumbv7em-none-eabihf"])
    cpu: str | None = Field(None, description="the CPU to compile for (rustc's -C target-cpu, and gcc's -mcpu "
                            "for TFLM); defaults from the board",
                            examples=["cortex-m4"])
    runner: Literal["emulator", "probe"] = Field(
        "emulator", description="where `run` runs a real board QEMU also emulates (e.g. stm32f4-discovery on "
        "netduinoplus2): the emulator, or the board itself on a debug probe (pyocd)", examples=["probe"])
    profile_layers: bool = Field(
        False, description="also time every operator on the device (native: its own hook; tflm: TFLM's "
        "profiler): run.json gets `layers`, and `tinypipe run` and `tinypipe report` print them", examples=[True])

    @field_validator("board")
    @classmethod
    def _known_board(cls, value: str) -> str:
        if value not in BOARDS:
            raise ValueError(f"unknown board {value!r}")
        return value


class Hal(Strict):
    """Each item is one crates.io dependency of the registry build: its name, version and features."""

    crate: str = Field(description="the crate's name on crates.io", examples=["stm32f4xx-hal"],
                       pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
    version: str = Field(description="a Cargo version requirement", examples=["0.21"], min_length=1, max_length=64)
    features: list[str] = Field(default_factory=list, description="Cargo features to enable",
                                examples=[["stm32f407"]])


class Tflm(Strict):
    """Settings of `engine: tflm` (TensorFlow Lite Micro); ignored by the native engine."""

    path: str | None = Field(None, description="TFLM source tree (else $TINYPIPE_TFLM_PATH); relative to project.yaml",
                             examples=["../third_party/tflm"])
    kernels: Literal["reference", "cmsis_nn"] = Field("cmsis_nn", description="TFLM kernel set to compile",
                                                      examples=["reference"])
    library: Literal["model_ops", "full"] = Field(
        "model_ops", description="`model_ops`: TFLM's core plus only the kernels of the model's ops (shared by "
        "every project with the same ops); `full`: every kernel, for any model", examples=["full"])
    arena_bytes: int | None = Field(
        None, ge=256, description="fixed tensor arena size in bytes; default: the smallest arena the model "
        "initialises and runs in, measured on QEMU, plus headroom", examples=[16384])


class Native(Strict):
    """Settings of `engine: native` (tinypipe's ahead-of-time compiler); ignored by the TFLM engine."""

    optimize: Literal["speed", "balanced", "ram", "size"] = Field(
        "balanced", description="what the native engine trades for what, like the commercial tools' modes: "
        "`balanced`, the default; `speed`, the fastest kernels, flash permitting; `ram`, the activation schedule "
        "with the lowest peak arena; `size`, the least flash (compact kernels, int8 depthwise filters, packed biases "
        "and scales, entropy-coded dense weights, `opt-level = \"z\"`; about 1.5x the instructions of `balanced`). "
        "Sweep them with `matrix: {native.optimize: [speed, ram, size]}` to compare instructions, arena and flash",
        examples=["size"])


class Budgets(Strict):
    """Limits on each variant's results: one broken makes the run exit with 1. A limit left unset, or a number
    not measured (instructions on a probe), is not checked."""

    flash_bytes: int | None = Field(
        None, ge=1, description="most flash the firmware may take: .text + .rodata + .data, test windows included",
        examples=[65536])
    ram_bytes: int | None = Field(
        None, ge=1, description="most RAM the firmware may take: .data + .bss + the stack reservation",
        examples=[49152])
    instructions_per_inference: int | None = Field(
        None, ge=1, description="most instructions one inference may take, averaged over the test windows "
        "(counted on QEMU)", examples=[100000])
    accuracy_device_min: float | None = Field(
        None, ge=0, le=1, description="least fraction of test windows the device must classify right",
        examples=[0.9])
    deadline_misses_max: int | None = Field(
        None, ge=0, description="most windows the firmware's real-time loop may miss at `sensor.sample_rate_hz` "
        "(a window missed when its preprocessing and inference had not finished by the next hop)", examples=[0])
    realtime_margin_min: float | None = Field(
        None, ge=0, lt=1, description="least share of the period between two windows (`data.hop` samples) the "
        "real-time loop's slowest window must leave unused: 0.2 keeps 20% to spare", examples=[0.2])


class Cache(Strict):
    """A remote cache shared by a team or CI: before a stage runs, its entry is pulled from here by key (and
    verified by hash); after it runs, it is pushed. `tinypipe run --remote-cache URL` and $TINYPIPE_REMOTE_CACHE
    override `remote` (in that order). Credentials come from where ssh and AWS tools look for them (ssh-agent,
    ~/.ssh/config and keys; AWS_ACCESS_KEY_ID and the rest of the AWS environment, AWS_ENDPOINT_URL for an
    S3-compatible server), never from this file."""

    remote: str | None = Field(
        None, min_length=1, description="an fsspec URL: a local or network path, `sftp://[user@]host[:port]/path` "
        "(needs `sshfs`), `s3://bucket/prefix` (needs `s3fs`), or `http(s)://...` to read only; install them "
        "with `pip install 'tinypipe[remote]'`", examples=["sftp://cache.example.org/srv/tinypipe"])
    push: bool = Field(True, description="upload the entries this machine builds (false: only pull, for "
                       "read-only consumers such as CI jobs of pull requests)", examples=[False])

    @field_validator("remote")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None and password_in_url(value):
            raise PydanticCustomError(
                "secret_in_url", "the URL holds a password (`user:password@`), and project.yaml is shared")
        return value


class Matrix(BaseModel):
    """Several variants in one run: the cartesian product of every list given here. `board` and `engine` name
    boards and engines; any other key is a sweep, a key path of project.yaml (`model.epochs`,
    `sensor.window`, `model.layers[0].filters`) with the values to try, each validated like the rest of the
    file. A variant is named `<board>-<engine>` (`mps2-an386-native`), then one part per sweep, in the order
    of their paths: the path without its section (a section's `kind` by the section: `features_spectral`), then the value (`mps2-an386-native-epochs10-layers0.filters8`; a value that is not a
    short number or word is named by its position, `path_v0`; a word follows an underscore, `io_float32`). A list left unset or empty means
    `target.board` (or `engine`) alone, so without `matrix:` a project has one variant; a value listed twice
    is an error, and so are more than 1,024 variants. `tinypipe run --board B` (or `--engine E`) replaces the list with B (or E) and keeps the
    sweeps. Stages whose inputs do not change across variants run once for all of them (a sweep over
    `quantization.representative_samples` trains once; one over `model.epochs` generates data once); a
    variant that fails is reported while the others go on."""

    # extra keys are the sweeps: `"model.epochs": [10, 30]`, each value checked by the loader in a full config
    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    __pydantic_extra__: dict[str, list[Any]] = Field(init=False)

    board: list[str] | None = Field(
        None, description="boards to build for, each a name from `tinypipe boards`; replaces `target.board`",
        examples=[["mps2-an385", "mps2-an386"]])
    engine: list[Literal["native", "tflm"]] | None = Field(
        None, description="engines to build with; replaces `engine`", examples=[["native", "tflm"]])


# a release version (part of a directory and file name): 1.2, 1.2.0, 1.0.0-rc.1, 2.0.0+build.5
VERSION_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*([-+][0-9A-Za-z][0-9A-Za-z.-]*)?")


class Project(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the project's name, in tinypipe.lock and the "
                      "title of the HTML report; letters, digits, `_`, `.` and `-`", examples=["gesture"])
    version: str = Field(
        "0.1.0", description="the release version: `tinypipe release` writes `dist/<name>-<version>/`; numbers "
        "and dots (`1.2.0`), optionally a `-` or `+` suffix (`1.0.0-rc.1`); quote it when it looks like a "
        "number (`version: \"1.0\"`)", examples=["1.2.0"])
    seed: int = Field(0, ge=0, le=2**32 - 1, description="every random choice derives from it: the generated data and its split, the "
                      "initial weights and training order, the calibration windows; the same seed gives the same "
                      "model", examples=[7])
    sensor: Sensor = Field(default_factory=Sensor)
    data: Data = Field(default_factory=Data)
    features: Features = Field(default_factory=Features)
    model: Model
    quantization: Quantization = Field(default_factory=Quantization)
    target: Target = Field(default_factory=Target)
    hal: list[Hal] | None = Field(
        None, description="crates from crates.io for a registry build (Cargo.hal.toml, next to the offline "
        "Cargo.toml tinypipe builds): a list of them, or one as a mapping",
        examples=[[{"crate": "stm32f4xx-hal", "version": "0.21", "features": ["stm32f407"]},
                   {"crate": "cortex-m-rt", "version": "0.7"}]])

    @field_validator("features")
    @classmethod
    def _features_fit_sensor(cls, features: Features, info: ValidationInfo) -> Features:
        sensor = info.data.get("sensor")
        if features.kind == "raw" or sensor is None:
            return features
        # `refuse` names the key under `features` the loader points the error at
        if features.kind == "spectral" and sensor.kind == "microphone":
            raise refuse("`spectral` is for motion sensors, not `sensor.kind: microphone`; use raw for sound", "kind")
        data = info.data.get("data")
        if sensor.scale is not None or sensor.offset is not None or (data is not None and data.normalize != "none"):
            raise refuse(f"`{features.kind}` features are computed from the raw samples and standardised on the "
                         "training split: drop sensor.scale, sensor.offset and data.normalize", "kind")
        if features.kind in ("mfcc", "log_mel"):
            return _audio_features_fit_sensor(features, sensor)
        fft_length = features.fft_length or default_fft_length(sensor.window)
        if fft_length > sensor.window:
            raise refuse(f"{fft_length} is longer than sensor.window ({sensor.window}): use at most "
                         f"{1 << (sensor.window.bit_length() - 1)}", "fft_length")
        nyquist = sensor.sample_rate_hz / 2
        if features.filter is not None and features.filter.cutoff_hz >= nyquist:
            raise refuse(f"{features.filter.cutoff_hz:g} Hz is not below half the sample rate ({nyquist:g} Hz, "
                         "sensor.sample_rate_hz / 2): choose a lower cutoff_hz", "filter.cutoff_hz")
        if features.peaks > fft_length // 2:
            raise refuse(f"{features.peaks} peaks out of {fft_length // 2} FFT bins: use at most {fft_length // 2}",
                         "peaks")
        return features

    @field_validator("version", mode="before")
    @classmethod
    def _release_version(cls, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"{value!r} is a number, not a version: quote it (version: \"{value}\")")
        if not isinstance(value, str) or not VERSION_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a version like 1.2.0 (numbers and dots, then optionally - or + and "
                             "letters, digits, dots or dashes)")
        return value

    @field_validator("hal", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return value if value is None or isinstance(value, list) else [value]
    engine: Literal["native", "tflm"] = Field(
        "native", description="what runs the model on the device: `native`, tinypipe's ahead-of-time compiler "
        "(Rust source with the weights as static arrays); `tflm`, TensorFlow Lite Micro's interpreter (see `tflm`)",
        examples=["tflm"])
    tflm: Tflm = Field(default_factory=Tflm)
    native: Native = Field(default_factory=Native)
    budgets: Budgets = Field(default_factory=Budgets)
    cache: Cache = Field(default_factory=Cache)
    matrix: Matrix | None = None

    @model_validator(mode="after")
    def _sensor_fits_data(self) -> "Project":
        axes = len(self.sensor.axes)
        if self.data.source == "wav" and (self.sensor.kind != "microphone" or axes != 1):
            raise refuse("`data.source: wav` needs `sensor.kind: microphone` and one axis "
                         f"(got kind {self.sensor.kind!r} with {axes} axes), e.g. `axes: [mic]`",
                         "sensor.kind", "sensor.axes", "data.source")
        declared = self.sensor.scale is not None or self.sensor.offset is not None
        for key in ("scale", "offset"):
            value = getattr(self.sensor, key)
            if isinstance(value, list) and len(value) != axes:
                raise refuse(f"`sensor.{key}` has {len(value)} values for {axes} axes: give one per axis, "
                             "or one number for all", f"sensor.{key}")
        scales = self.sensor.scale if isinstance(self.sensor.scale, list) else [self.sensor.scale or 1.0]
        if any(not 0 < s <= 65536 for s in scales):
            raise refuse("`sensor.scale` must be positive (and at most 65536)", "sensor.scale")
        if self.features.kind != "raw" and self.quantization.io != "int8":
            raise refuse(f"`{self.features.kind}` features reach the model as int8 values made from each feature on "
                         "the device: use `quantization.io: int8`", "quantization.io")
        if declared and self.data.normalize != "none":
            raise refuse("give `sensor.scale`/`sensor.offset` or `data.normalize`, not both", "data.normalize")
        if (declared or self.data.normalize != "none") and (self.data.source == "generator"
                                                            or self.quantization.io != "int8"):
            raise refuse("a declared input scaling (`sensor.scale`/`sensor.offset`, `data.normalize`) needs "
                         "your own raw recordings (`data.source: csv`, `wav` or `npz`) and `quantization.io: int8`",
                         "data.normalize", "sensor.scale", "sensor.offset", "quantization.io", "data.source")
        return self


from tinypipe.config.variant import Variant  # noqa: E402,F401 - re-exported: stages and tests import it from here


def _audio_features_fit_sensor(features: Features, sensor: Sensor) -> Features:
    """`mfcc`/`log_mel` read one microphone; every length must fit the window, the FFT and the mel scale."""

    kind, rate = features.kind, sensor.sample_rate_hz
    if sensor.kind != "microphone" or len(sensor.axes) != 1:
        raise refuse(f"`{kind}` computes features of sound: it needs `sensor.kind: microphone` with one axis (got "
                     f"{sensor.kind} with {len(sensor.axes)} axes); use spectral for motion sensors", "kind")
    frame, stride, fft_length, high_hz = audio_frames(features, sensor)
    if frame < 2 or frame > sensor.window:
        raise refuse(f"a frame of {frame} samples does not fit sensor.window ({sensor.window} samples): use 2 to "
                     f"{sensor.window} samples ({sensor.window * 1000 / rate:g}ms at {rate:g} Hz)", "frame_length")
    if fft_length > MAX_FFT_LENGTH or fft_length < frame:
        longest = min(MAX_FFT_LENGTH, fft_length)
        raise refuse(f"a frame of {frame} samples does not fit a {fft_length}-point FFT (the longest is "
                     f"{MAX_FFT_LENGTH}): use a frame of at most {longest} samples ({longest * 1000 / rate:g}ms at "
                     f"{rate:g} Hz)", "frame_length" if features.fft_length is None else "fft_length")
    if stride < 1:
        raise refuse(f"a stride of {stride} samples: use at least 1 sample", "frame_stride")
    if features.mel_bins > fft_length // 2:
        raise refuse(f"{features.mel_bins} mel bins for the {fft_length // 2} FFT bins of a {fft_length}-point "
                     f"FFT: use at most {fft_length // 2} mel bins, or a longer fft_length", "mel_bins")
    if kind == "mfcc" and features.coefficients > features.mel_bins:
        raise refuse(f"{features.coefficients} coefficients from {features.mel_bins} mel bins: use at most "
                     f"{features.mel_bins}", "coefficients")
    if high_hz > rate / 2:
        raise refuse(f"{high_hz:g} Hz is above half the sample rate ({rate / 2:g} Hz, sensor.sample_rate_hz / 2): "
                     f"use at most {rate / 2:g}", "high_hz")
    if features.low_hz >= high_hz:
        raise refuse(f"{features.low_hz:g} Hz is not below high_hz ({high_hz:g} Hz): the mel filters need a band "
                     "to cover", "low_hz")
    return features
