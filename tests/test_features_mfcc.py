"""The audio front end (`features: {kind: mfcc | log_mel}`), host against device and against references:

- the numpy twin (`stages/_features/mfcc.py`) and the kernels crate's `features::mfcc` give the same integers for
  many random and extreme windows (a Rust integration test in a copy of the crate, with the real cargo);
- the fixed-point log-mel energies follow a float computation of the same quantity above the fixed-point noise floor;
- CMSIS-DSP (`cmsisdsp`, the Python wrapper of ARM's library) as a second reference: its mel filter bank and DCT
  matrix in q15 are ours to the bit (the same formulas), and its `arm_vlog_q31` agrees with our log2 within the
  table's stated accuracy.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tests.helpers import DEBIAN_CARGO, REPO, run_kernels_vector_test, rust_array, tinypipe
from tinypipe.config.loader import ConfigError, load_project
from tinypipe.stages import _features
from tinypipe.stages._features import fixed
from tinypipe.stages._features.mfcc import LOG2_TABLE, AudioFrontEnd, log2_q16

RUST_SOURCE = REPO / "firmware-template" / "kernels" / "src" / "features" / "mfcc.rs"

# (kind, sample rate, frame length, stride, FFT length, mel bins, coefficients, low Hz, high Hz, window samples)
FRONT_ENDS = [
    ("mfcc", 8000, 256, 128, 256, 20, 10, 20.0, 4000.0, 1024),
    ("log_mel", 16000, 200, 80, 256, 24, 24, 0.0, 8000.0, 480),
    ("mfcc", 8000, 48, 16, 64, 12, 6, 100.0, 3500.0, 96),  # a frame shorter than the FFT: zero padding
]


def front_end(case) -> tuple[AudioFrontEnd, int]:
    *params, window = case
    return AudioFrontEnd(*params), window


def audio_windows(rng, length: int) -> np.ndarray:
    """Extreme windows (full-scale noise, -32768 and 32767 held, alternating extremes, a full-scale tone, silence)
    and ordinary ones (loud and quiet noise, tones)."""
    t = np.arange(length)
    windows = [rng.integers(-32768, 32768, length), np.full(length, -32768), np.full(length, 32767),
               np.where(t % 2, 32767, -32768), 32767 * np.cos(2 * np.pi * 3 * t / length), np.zeros(length),
               rng.normal(0, 12000, length), rng.normal(0, 30, length), 8000 * np.sin(2 * np.pi * 0.11 * t),
               300 * np.sin(2 * np.pi * 0.31 * t) + rng.normal(0, 50, length)]
    return np.clip(np.round(np.stack(windows)), -32768, 32767).astype(np.int64)


def test_the_log2_table_in_rust_is_the_hosts():
    literal = re.search(r"pub const LOG2_TABLE: \[i32; 33\] = \[([^\]]*)\]", RUST_SOURCE.read_text())
    assert literal, f"{RUST_SOURCE} has no LOG2_TABLE literal"
    assert [int(v) for v in literal.group(1).replace("\n", " ").split(",") if v.strip()] == LOG2_TABLE
    assert LOG2_TABLE[0] == 0 and LOG2_TABLE[-1] == 1 << 16


def test_log2_q16_is_within_the_tables_accuracy_over_the_whole_range():
    rng = np.random.default_rng(5)
    values = np.concatenate([[1, 2, 3, 5, 2 ** 16 - 1, 2 ** 16, 2 ** 16 + 1, 2 ** 62, 2 ** 63 - 1],
                             rng.integers(1, 2 ** 62, 2000), rng.integers(1, 2 ** 20, 2000)])
    error = np.abs(log2_q16(values) / 2 ** 16 - np.log2(values.astype(np.float64)))
    assert error.max() < 2.5e-4  # 32 linear segments of log2(1 + f): 1.8e-4, plus the Q16 and truncation steps
    assert list(log2_q16(np.array([0, 1, 2, 1 << 40]))) == [0, 0, 1 << 16, 40 << 16]  # exact at powers of two


def test_the_tables_have_the_shapes_and_ranges_the_device_relies_on():
    for case in FRONT_ENDS:
        front, window = front_end(case)
        first, offsets, weights = front.filter_tables()
        assert len(first) == front.mel_bins and len(offsets) == front.mel_bins + 1 and offsets[-1] == len(weights)
        assert all(0 < w < 2 ** 15 or w == 0 for w in weights) and min(first) >= 1  # q15, DC in no filter
        assert all(f + (b - a) <= front.spectrum_bins for f, a, b in zip(first, offsets, offsets[1:]))
        window_q15 = front.window_q15()
        assert len(window_q15) == front.frame_length and window_q15[0] == 0 and max(window_q15) <= 32767
        assert front.output_shape(window) == (front.frames(window),
                                              front.coefficients if front.kind == "mfcc" else front.mel_bins)


def test_log_mel_energies_follow_a_float_computation_above_the_noise_floor():
    """The fixed-point FFT scales by 1/N with rounding at each stage, so each bin carries about one unit of
    rounding noise: a mel band's energy is trustworthy once it is well above 2^17 (a q15 weight times a few noisy
    bins), and there it is within 0.1 log2 units (7%) of float arithmetic on the same window and filters."""
    front = AudioFrontEnd("log_mel", 8000, 256, 128, 256, 20, 20, 20.0, 4000.0)
    rng = np.random.default_rng(2)
    t = np.arange(1024) / 8000
    windows = np.clip(np.round(np.stack([8000 * np.sin(2 * np.pi * 1000 * t), rng.normal(0, 3000, 1024),
                                         20000 * np.sin(2 * np.pi * 300 * t), rng.normal(0, 15000, 1024)])),
                      -32768, 32767)
    ours = front.compute(windows) / 2 ** 8  # Q8
    dense = np.zeros((front.mel_bins, front.spectrum_bins))
    for m, filt in enumerate(front.mel_filters()):
        dense[m, filt.first:filt.first + len(filt.weights)] = filt.weights
    starts = np.arange(front.frames(1024)) * front.frame_stride
    frames = windows[:, starts[:, None] + np.arange(front.frame_length)] * np.asarray(front.window_q15()) / 2 ** 15
    power = np.abs(np.fft.rfft(frames, front.fft_length)) ** 2 / front.fft_length ** 2
    reference = np.log2(np.maximum(power @ dense.T, 1))
    strong = reference > 24
    assert strong.mean() > 0.3
    assert np.abs(ours - reference)[strong].max() < 0.1
    assert front.compute(windows).dtype == np.int16


def test_mfcc_is_the_dct_of_the_log_mel_energies_and_fits_int16_even_at_the_extremes():
    mfcc = AudioFrontEnd("mfcc", 8000, 256, 128, 256, 20, 10, 20.0, 4000.0)
    log_mel = AudioFrontEnd("log_mel", 8000, 256, 128, 256, 20, 20, 20.0, 4000.0)
    windows = audio_windows(np.random.default_rng(4), 1024)
    logs = log_mel.compute(windows).astype(np.float64) / 2 ** 8
    expected = logs @ (np.asarray(mfcc.dct_q15(), np.float64).T / 2 ** 15) * 2 ** (16 - mfcc.dct_shift())
    coefficients = mfcc.compute(windows)
    assert coefficients.dtype == np.int16 and mfcc.dct_shift() == 10  # 20 bins: coefficients in Q6
    # the Q8 logs are rounded (half a unit of 2^-8, times a row's absolute sum, at most sqrt(2 x 20)), then one
    # rounding of the coefficient itself
    assert np.abs(coefficients - expected).max() <= 0.5 * math.sqrt(40) * 2 ** (8 - mfcc.dct_shift()) + 0.5
    # the shift is chosen for the worst logs, whatever the window: the largest possible sum still fits
    worst = max(sum(abs(d) for d in row) for row in mfcc.dct_q15()) * (64 << 16)
    assert (worst + (1 << (14 + mfcc.dct_shift()))) >> (15 + mfcc.dct_shift()) <= 32767


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_CARGO.exists(), reason="needs Debian's cargo (apt-get install cargo-web)")
def test_rust_audio_features_are_bit_exact_with_the_numpy_emulation(tmp_path):
    rng = np.random.default_rng(16)
    cases = []
    windows_compared = 0
    for case in FRONT_ENDS:
        front, length = front_end(case)
        first, offsets, weights = front.filter_tables()
        dct = front.dct_q15() if front.kind == "mfcc" else []
        windows = np.concatenate([audio_windows(rng, length), rng.integers(-32768, 32768, (20, length))])
        features = front.compute(windows)
        shift = front.dct_shift() if front.kind == "mfcc" else 0
        tables = ", ".join([str(front.frame_stride), str(shift), rust_array(front.window_q15(), "i16"),
                            rust_array(fixed.twiddles(front.fft_length), "i16"), rust_array(first, "u16"),
                            rust_array(offsets, "u16"), rust_array(weights, "i16"), rust_array(dct, "i16")])
        for window, expected in zip(windows, features):
            cases.append(f"    windows += check(&front({tables}), {rust_array(window, 'i16')}, "
                         f"{rust_array(expected, 'i16')});")
        windows_compared += len(windows)
    values = np.concatenate([rng.integers(0, 2 ** 62, 200), [0, 1, 2, 3, 2 ** 16 - 1, 2 ** 16, 2 ** 33 + 1,
                                                             2 ** 62, 2 ** 63 - 1]])
    cases.append(f"    logs += log2s({rust_array(values, 'i64')}, {rust_array(log2_q16(values), 'i32')});")
    stdout = run_kernels_vector_test(tmp_path, "mfcc_vectors", VECTORS_TEST.replace("CASES", "\n".join(cases)))
    assert f"compared {windows_compared} windows, {len(values)} logarithms" in stdout, stdout


VECTORS_TEST = """
use tinyml_kernels::features::mfcc::{audio_features, log2_q16, AudioFrontEnd, AudioScratch, MelFilters};

fn front<'a>(frame_stride: usize, dct_shift: u32, window: &'a [i16], twiddles: &'a [i16], first: &'a [u16],
             offsets: &'a [u16], weights: &'a [i16], dct: &'a [i16]) -> AudioFrontEnd<'a> {
    AudioFrontEnd { frame_stride, dct_shift, window, twiddles, filters: MelFilters { first, offsets, weights }, dct }
}

fn check(front: &AudioFrontEnd, samples: &[i16], expected: &[i16]) -> usize {
    let n = front.twiddles.len();
    let bins = front.filters.bins();
    let (mut frame, mut re, mut im) = (vec![0i16; n], vec![0i32; n], vec![0i32; n]);
    let (mut power, mut energies, mut logs) = (vec![0i64; n / 2 + 1], vec![0i64; bins], vec![0i32; bins]);
    let mut scratch = AudioScratch { frame: &mut frame, re: &mut re, im: &mut im, power: &mut power,
                                     energies: &mut energies, logs: &mut logs };
    let mut out = vec![0i16; expected.len()];
    assert_eq!(out.len(), front.frames(samples.len()) * front.values_per_frame());
    assert!(audio_features(front, samples, &mut scratch, &mut out));
    assert_eq!(&out[..], expected, "features of {samples:?}");
    1
}

fn log2s(values: &[i64], expected: &[i32]) -> usize {
    for (&v, &l) in values.iter().zip(expected) {
        assert_eq!(log2_q16(v), l, "log2 of {v}");
    }
    values.len()
}

#[test]
fn audio_features_match_the_host_vectors() {
    let (mut windows, mut logs) = (0, 0);
CASES
    println!("compared {windows} windows, {logs} logarithms");
}
"""


# --- CMSIS-DSP as a second reference ---------------------------------------------------------------------------

def cmsisdsp_or_skip():
    return pytest.importorskip("cmsisdsp", reason="cmsisdsp (CMSIS-DSP's Python wrapper, the `test` extra) is not "
                                                  "installed: pip install cmsisdsp")


@pytest.mark.parametrize("case", FRONT_ENDS, ids=[f"{c[0]}-{c[1]}Hz-fft{c[4]}-mel{c[5]}" for c in FRONT_ENDS])
def test_mel_filters_and_dct_are_cmsis_dsps_to_the_bit(case):
    """Same formulas as `cmsisdsp.mfcc` (HTK mel edges, triangles in mel, q15 by round-and-saturate), so the same
    integers: if these ever differ, the filter bank has drifted from the library people compare against."""
    cmsisdsp_or_skip()
    from cmsisdsp import mfcc
    from cmsisdsp.datatype import Q15

    front, _ = front_end(case)
    lengths, positions, packed = mfcc.melFilterMatrix(Q15, front.low_hz, front.high_hz, front.mel_bins,
                                                      front.sample_rate_hz, front.fft_length)
    theirs = np.zeros((front.mel_bins, front.spectrum_bins), np.int64)
    offset = 0
    for m, (length, position) in enumerate(zip(lengths, positions)):
        theirs[m, position:position + length] = packed[offset:offset + length]
        offset += length
    ours = np.zeros_like(theirs)
    for m, filt in enumerate(front.mel_filters()):
        ours[m, filt.first:filt.first + len(filt.weights)] = filt.weights
    assert np.array_equal(ours, theirs)
    dct = mfcc.dctMatrix(Q15, front.coefficients, front.mel_bins).reshape(front.coefficients, front.mel_bins)
    assert np.array_equal(np.asarray(front.dct_q15()), dct)


def test_log2_agrees_with_cmsis_dsps_natural_log():
    """`arm_vlog_q31` takes q31 and returns ln in q5.26; it is accurate to about 1e-8, so the difference is our
    table's interpolation error (under 2.5e-4 in log2, 1.8e-4 in ln) plus Q16's step."""
    dsp = cmsisdsp_or_skip()
    rng = np.random.default_rng(9)
    values = np.concatenate([[1, 2, 3, 1000, 2 ** 31 - 1], rng.integers(1, 2 ** 31, 3000)]).astype(np.int32)
    theirs = dsp.arm_vlog_q31(values) / 2 ** 26
    ours = (log2_q16(values.astype(np.int64)) / 2 ** 16 - 31) * math.log(2)
    assert np.abs(ours - theirs).max() < 2e-4


# --- configuration: what the front end refuses, and where ---------------------------------------------------------

MICROPHONE = """\
name: demo
sensor: {kind: microphone, axes: [mic], sample_rate_hz: 8000, window: 1024}
data: {source: wav, path: clips}
model:
  layers:
    - {type: dense, units: 3}
"""

# features: section -> (the first line of the error, the key path it names)
BAD_AUDIO_FEATURES = {
    "mfcc on a motion sensor": (
        "features: {kind: mfcc}\n",
        "project.yaml:7:18 features.kind: `mfcc` computes features of sound: it needs `sensor.kind: microphone` "
        "with one axis (got accelerometer with 3 axes); use spectral for motion sensors"),
    "a frame longer than the window": (
        "features:\n  kind: log_mel\n  frame_length: 2000\n",
        "project.yaml:9:17 features.frame_length: a frame of 2000 samples does not fit sensor.window (1024 samples): "
        "use 2 to 1024 samples (128ms at 8000 Hz)"),
    "a frame longer than the longest FFT": (
        "features:\n  kind: mfcc\n  frame_length: 50ms\n",
        "project.yaml:9:17 features.frame_length: a frame of 400 samples does not fit a 512-point FFT (the longest "
        "is 256): use a frame of at most 256 samples (32ms at 8000 Hz)"),
    "a frame longer than the FFT given": (
        "features:\n  kind: mfcc\n  frame_length: 200\n  fft_length: 128\n",
        "project.yaml:10:15 features.fft_length: a frame of 200 samples does not fit a 128-point FFT (the longest "
        "is 256): use a frame of at most 128 samples (16ms at 8000 Hz)"),
    "more mel bins than FFT bins": (
        "features:\n  kind: mfcc\n  fft_length: 64\n  frame_length: 64\n  mel_bins: 40\n",
        "project.yaml:11:13 features.mel_bins: 40 mel bins for the 32 FFT bins of a 64-point FFT: use at most 32 mel "
        "bins, or a longer fft_length"),
    "more coefficients than mel bins": (
        "features:\n  kind: mfcc\n  mel_bins: 12\n  coefficients: 13\n",
        "project.yaml:10:17 features.coefficients: 13 coefficients from 12 mel bins: use at most 12"),
    "a band above half the sample rate": (
        "features:\n  kind: log_mel\n  high_hz: 5000\n",
        "project.yaml:9:12 features.high_hz: 5000 Hz is above half the sample rate (4000 Hz, "
        "sensor.sample_rate_hz / 2): use at most 4000"),
    "a stride that is not a duration": (
        "features:\n  kind: mfcc\n  frame_stride: 16 seconds\n",
        "project.yaml:9:17 features.frame_stride: neither a number of samples nor a duration such as 32ms "
        "(got '16 seconds')"),
}


def bad_project(tmp_path, case: str) -> str:
    section, _ = BAD_AUDIO_FEATURES[case]
    head = MICROPHONE
    if case == "mfcc on a motion sensor":
        head = MICROPHONE.replace("sensor: {kind: microphone, axes: [mic], sample_rate_hz: 8000, window: 1024}\n"
                                  "data: {source: wav, path: clips}\n", "sensor: {window: 64}\ndata: {}\n")
    (tmp_path / "project.yaml").write_text(head + section)
    return tmp_path


@pytest.mark.parametrize("case", list(BAD_AUDIO_FEATURES), ids=list(BAD_AUDIO_FEATURES))
def test_bad_audio_features_name_file_line_key_and_fix(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)  # messages name files relative to the working directory
    with pytest.raises(ConfigError) as info:
        load_project(bad_project(tmp_path, case))
    assert str(info.value).splitlines()[0] == BAD_AUDIO_FEATURES[case][1]


def test_a_bad_audio_feature_stops_the_cli_with_exit_2(tmp_path):
    proc = tinypipe("run", str(bad_project(tmp_path, "more mel bins than FFT bins")), cwd=tmp_path)
    assert proc.returncode == 2 and "features.mel_bins: 40 mel bins for the 32 FFT bins" in proc.stderr
    assert not (tmp_path / ".tinypipe" / "store").exists() or not any((tmp_path / ".tinypipe" / "store").iterdir())


def test_durations_become_samples_and_defaults_fill_the_rest(tmp_path, monkeypatch):
    (tmp_path / "project.yaml").write_text(MICROPHONE + "features: {kind: mfcc, frame_length: 25ms, "
                                           "frame_stride: 10ms}\n")
    monkeypatch.chdir(tmp_path)
    project, _ = load_project(tmp_path)
    spec = _features.resolve(project.model_dump(mode="json"))
    assert (spec["frame_length"], spec["frame_stride"], spec["fft_length"]) == (200, 80, 256)
    assert (spec["mel_bins"], spec["coefficients"], spec["low_hz"], spec["high_hz"]) == (20, 10, 20.0, 4000.0)
    assert spec["per_axis"] == (1 + (1024 - 200) // 80) * 10
