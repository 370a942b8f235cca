"""The `features:` section: config errors, the graph (raw keeps today's stages and keys, a matrix shares the data
stage), the host's spectral features on signals whose answer is known, and end to end: the gesture pipeline with
`features.kind: [raw, spectral]` trained on host features and run on QEMU with the device's features byte-equal
to the host's and its outputs bit-exact with the oracle; the spectral cell built for the STM32F4 Discovery (its
application computing the features too) replaying bit-exact on QEMU's netduinoplus2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tinypipe.config.loader import ConfigError, load_project
from tinypipe.config.matrix import expand
from tinypipe.core.errors import exit_code
from tinypipe.core.paths import template_dir
from tinypipe.engine.graph import build_graph
from tinypipe.engine.store import Store
from tinypipe.stages import _features, firmware
from tinypipe.stages.run import _differing, parse_output

from tests.helpers import GESTURE, REPO, fresh_example, run_json, store_entry, tinypipe

GESTURE_FEATURES = REPO / "pipelines" / "gesture-features"


def spec_for(window=64, axes=1, fft_length=32, peaks=2, filt=None, rate=50.0) -> dict:
    return _features.resolve({"features": {"kind": "spectral", "fft_length": fft_length, "peaks": peaks,
                                           "filter": filt}, "sensor": {"window": window, "axes": ["a"] * axes,
                                                                        "sample_rate_hz": rate}})


# --- config ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("section, where, message", [
    ("{kind: spectral, fft_length: 48}", "features.fft_length",
     "must be a power of two, e.g. 32 or 64 (got 48)"),
    ("{kind: spectral, fft_length: 128}", "features.fft_length",
     "128 is longer than sensor.window (64): use at most 64"),
    ("{kind: spectral, filter: {type: lowpass, cutoff_hz: 30}}", "features.filter.cutoff_hz",
     "30 Hz is not below half the sample rate (25 Hz, sensor.sample_rate_hz / 2): choose a lower cutoff_hz"),
    ("{kind: spectral, fft_length: 8, peaks: 5}", "features.peaks", "5 peaks out of 4 FFT bins: use at most 4"),
    ("{kind: mfcc}", "features.kind", "`mfcc` computes features of sound: it needs `sensor.kind: microphone` with "
     "one axis (got accelerometer with 3 axes); use spectral for motion sensors"),
    ("{kind: spectral}  # and quantization.io: float32", "quantization.io",
     "`spectral` features reach the model as int8 values made from each feature on the device: use "
     "`quantization.io: int8`"),
])
def test_an_invalid_features_section_is_exit_2_naming_line_column_key_and_fix(tmp_path, section, where, message):
    text = GESTURE.joinpath("project.yaml").read_text().replace("\nmodel:", f"\nfeatures: {section}\nmodel:", 1)
    if "float32" in section:
        text = text.replace("  io: int8\n", "  io: float32\n")
    (tmp_path / "project.yaml").write_text(text)
    key = "  io: float32" if "float32" in section else f"features: {section}"
    line = text.splitlines().index(key) + 1
    with pytest.raises(ConfigError) as error:
        load_project(tmp_path)
    assert f"project.yaml:{line}:" in str(error.value) and f"{where}: {message}" in str(error.value)
    assert exit_code(error.value) == 2


def test_spectral_features_are_not_for_a_microphone_nor_with_a_declared_scaling(tmp_path):
    text = ("name: t\nsensor: {kind: microphone, axes: [mic], window: 256, sample_rate_hz: 16000}\n"
            "data: {source: wav, path: clips}\nfeatures: {kind: spectral}\n"
            "model: {layers: [{type: flatten}, {type: dense, units: 2}]}\n")
    (tmp_path / "project.yaml").write_text(text)
    result = tinypipe("plan", str(tmp_path))  # once through the CLI: the exit code and the message on stderr
    assert result.returncode == 2
    assert ("project.yaml:4:18 features.kind: `spectral` is for motion sensors, not `sensor.kind: microphone`; "
            "use raw for sound") in result.stderr, result.stderr
    (tmp_path / "project.yaml").write_text(text.replace("kind: microphone, axes: [mic]", "axes: [x], scale: 0.01")
                                           .replace("source: wav", "source: csv"))
    with pytest.raises(ConfigError, match=r"project.yaml:4:18 features.kind: `spectral` features are computed from "
                       r"the raw samples and standardised on the training split: drop sensor.scale, sensor.offset "
                       r"and data.normalize"):
        load_project(tmp_path)


# --- the graph -------------------------------------------------------------------------------------------------

def _graph(tmp_path, text: str):
    (tmp_path / "project.yaml").write_text(text)
    project, _ = load_project(tmp_path)
    variants = expand(project.model_dump(mode="json"), project_dir=tmp_path)
    return build_graph(variants, Store(tmp_path / "store"), Store(tmp_path / "shared"))


def test_raw_features_keep_every_stage_and_identity_and_a_matrix_shares_the_data_stage(tmp_path):
    plain = GESTURE.joinpath("project.yaml").read_text()
    before = _graph(tmp_path, plain)
    raw = _graph(tmp_path, plain.replace("\nmodel:", "\nfeatures: {kind: raw, fft_length: 32}\nmodel:", 1))
    ((name, stages),) = before.by_variant.items()
    assert "features" not in stages and list(raw.by_variant[name]) == list(stages)
    assert {s: n.ident for s, n in raw.by_variant[name].items()} == {s: n.ident for s, n in stages.items()}

    matrix = _graph(tmp_path, GESTURE_FEATURES.joinpath("project.yaml").read_text())
    cells = matrix.by_variant
    assert list(cells) == ["mps2-an386-native-features_raw", "mps2-an386-native-features_spectral"]
    raw_cell, spectral_cell = cells.values()
    assert raw_cell["data"] is spectral_cell["data"] and "features" not in raw_cell
    assert [n.name for n in spectral_cell["train"].needs] == ["data", "features"]
    assert [n.name for n in raw_cell["train"].needs] == ["data"]


# --- the host's features ---------------------------------------------------------------------------------------

def test_a_tone_peaks_at_its_bin_and_its_rms_is_its_amplitude_over_root_two():
    spec = spec_for(window=64, fft_length=32, peaks=2)
    t = np.arange(64)
    tone = np.round(4096 + 10000 * np.sin(2 * np.pi * 5 * t / 32))[None, :, None]  # bin 5, on a DC offset
    rows = dict(zip(_features.names(spec), _features.compute(tone, spec)[0, :, 0]))
    assert abs(rows["rms"] - 10000 / np.sqrt(2)) < 2  # the offset (gravity) is removed first
    assert rows["peak1_bin"] == 5 and rows["peak1_log2"] == rows["bin5"]
    assert rows["bin5"] > max(rows[f"bin{k}"] for k in range(1, 17) if k != 5) + 5 * 256  # 32x more power
    assert len(rows) == 1 + 16 + 4 == spec["per_axis"]


def test_the_filters_keep_and_remove_what_they_should():
    t = np.arange(64)
    slow, fast = np.sin(2 * np.pi * 1 * t / 32), np.sin(2 * np.pi * 12 * t / 32)  # 1.56 Hz and 18.75 Hz at 50 Hz
    both = np.round(8000 * (slow + fast))[None, :, None]
    for kind, kept, removed in (("lowpass", 1, 12), ("highpass", 12, 1)):
        spec = spec_for(filt={"type": kind, "cutoff_hz": 6.0})
        rows = dict(zip(_features.names(spec), _features.compute(both, spec)[0, :, 0]))
        assert rows["peak1_bin"] == kept and rows[f"bin{kept}"] > rows[f"bin{removed}"] + 3 * 256, (kind, rows)


def test_features_config_standin_is_the_rendering_for_the_standin_model():
    spec = spec_for(window=2, axes=3, fft_length=2, peaks=0)
    assert spec["per_axis"] * 3 == 6  # src/model.rs's stand-in input: 2 samples x 3 axes
    assert (template_dir() / "src" / "features_config.rs").read_text() == firmware.render_features_config(spec)


def test_the_run_stage_reads_feat_lines_and_names_the_windows_that_differ():
    report = parse_output("feat 0 0100ffff\nfeat 1 02000000\nout 0 7f\n")
    assert report.features == {0: bytes([1, 0, 255, 255]), 1: bytes([2, 0, 0, 0])}
    assert _differing(report.features, bytes([1, 0, 255, 255, 2, 0, 0, 0]), 2) == []
    assert _differing(report.features, bytes([1, 0, 255, 255, 3, 0, 0, 0]), 2) == [1]
    assert _differing({0: bytes([1, 0, 255, 255])}, bytes(8), 2) == [0, 1]  # a missing line differs too


# --- end to end ------------------------------------------------------------------------------------------------

needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="needs qemu-system-arm")


@pytest.fixture(scope="module")
def gesture_features(tmp_path_factory, rust_toolchain):
    """pipelines/gesture-features run once (raw and spectral on mps2-an386): the project and the run."""
    rust_toolchain("mps2-an386")  # the session's sysroot, shared through the user cache
    project = fresh_example(GESTURE_FEATURES, tmp_path_factory.mktemp("features"))
    text = (project / "project.yaml").read_text()  # fewer windows and epochs: the same pipeline, quicker
    (project / "project.yaml").write_text(text.replace("samples_per_class: 200", "samples_per_class: 80")
                                          .replace("epochs: 30", "epochs: 10")
                                          .replace("accuracy_device_min: 0.85", "accuracy_device_min: 0.4"))
    return project, tinypipe("run", str(project), "--json", "-j", "2")


@pytest.mark.slow
@needs_qemu
def test_gesture_with_spectral_features_runs_bit_exact_beside_raw_in_one_matrix(gesture_features):
    project, result = gesture_features
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    rows = {row["variant"]: row for row in doc["results"]}
    raw, spectral = rows["mps2-an386-native-features_raw"], rows["mps2-an386-native-features_spectral"]
    ran = [(s["stage"], s["variants"]) for s in doc["stages"] if s["stage"] in ("data", "features")]
    assert ran == [("data", [raw["variant"], spectral["variant"]]), ("features", [spectral["variant"]])]
    for row in (raw, spectral):
        assert row["bit_exact"] is True and row["accuracy_device"] == row["accuracy_host"] >= 0.4, row
        assert row["realtime"]["deadline_misses"] == 0
    # the spectral cell's device computed every feature value the host trained on, byte for byte
    assert spectral["features_bit_exact"] is True and raw["features_bit_exact"] is None
    run = json.loads((project / ".tinypipe" / "out" / spectral["variant"] / "run.json").read_text())
    assert run["features_bit_exact"] is True and run["feature_mismatches"]["count"] == 0
    assert "features_bit_exact" not in json.loads(
        (project / ".tinypipe" / "out" / raw["variant"] / "run.json").read_text())
    # the loop's preprocessing now includes the FFTs: it costs more than the raw cell's scaling
    assert spectral["realtime"]["features_instructions"] > 3 * raw["realtime"]["features_instructions"]
    table = tinypipe("report", str(project)).stdout
    assert "mps2-an386-native-features_raw" in table and "mps2-an386-native-features_spectral" in table


@pytest.mark.slow
@needs_qemu
def test_the_discovery_application_computes_spectral_features_and_its_elf_replays_bit_exact(gesture_features,
                                                                                             tmp_path):
    project, result = gesture_features
    assert result.returncode == 0, result.stderr[-3000:]
    disco = tmp_path / "disco"  # a copy with the store: the trained spectral cell, now for the Discovery
    shutil.copytree(project, disco)
    text = (disco / "project.yaml").read_text()
    assert "matrix:\n  features.kind: [raw, spectral]\n" in text and "  board: mps2-an386\n" in text
    (disco / "project.yaml").write_text(text.replace("matrix:\n  features.kind: [raw, spectral]\n", "")
                                        .replace("  board: mps2-an386\n", "  board: stm32f4-discovery\n"))
    doc = run_json(disco, "-j", "2")
    ran = [s["stage"] for s in doc["stages"] if s["status"] == "ran"]
    assert ran == ["codegen", "firmware", "build", "run"], doc["stages"]  # the same trained model and features
    (row,) = doc["results"]
    assert row["variant"] == "stm32f4-discovery-native"
    assert row["bit_exact"] is True and row["features_bit_exact"] is True, row
    assert row["accuracy_device"] == row["accuracy_host"] and row["realtime"]["deadline_misses"] == 0
    run = json.loads((store_entry(disco, row["variant"], "run") / "run.json").read_text())
    assert run["machine"] == "netduinoplus2" and run["feature_mismatches"]["count"] == 0
    # built with the board's application computing features: the replay's window is its window
    rendered = store_entry(disco, row["variant"], "firmware") / "project"
    assert 'default = ["board-stm32f4-discovery", "realtime", "raw-input", "features"]' in (
        rendered / "Cargo.toml").read_text()
    app_config = (rendered / "src" / "app_config.rs").read_text()
    assert "pub const WINDOW: usize = 64;" in app_config and "crate::TEST_WINDOW_LEN == WINDOW * 3" in app_config


@pytest.mark.parametrize("kind", ["mfcc", "log_mel"])
def test_sound_features_on_a_board_whose_application_reads_an_accelerometer_are_exit_2(kind):
    from tinypipe.config.boards import BOARDS
    from tinypipe.core.errors import UserError

    with pytest.raises(UserError) as error:
        firmware.refuse_audio_features_without_microphone({"kind": kind}, BOARDS["stm32f4-discovery"])
    assert str(error.value) == (
        f"features.kind: {kind} computes features of sound, but stm32f4-discovery's own application reads its "
        "LIS3DSH accelerometer\n  hint: run the sound pipeline on an emulated board (`tinypipe boards`), or give "
        "this board a motion project (`features.kind: spectral` or `raw`)")
    assert exit_code(error.value) == 2
    # motion features on the Discovery, and sound on a board that only replays, are fine
    firmware.refuse_audio_features_without_microphone({"kind": "spectral"}, BOARDS["stm32f4-discovery"])
    firmware.refuse_audio_features_without_microphone({"kind": kind}, BOARDS["mps2-an386"])


def test_a_feature_mismatch_fails_the_run_naming_the_features_not_the_model():
    from tinypipe.report.results import budget_failures

    row = {"variant": "v", "bit_exact": False, "features_bit_exact": False}
    assert budget_failures(row, {}) == ["v: the features the device computed differ from the host's "
                                        "(features_bit_exact: false; run.json's feature_mismatches names the windows)"]
    row["features_bit_exact"] = True
    assert budget_failures(row, {}) == ["v: device outputs differ from the host TFLM oracle (bit_exact: false)"]
