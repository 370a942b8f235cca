"""The fixed-point feature routines, host against device: the numpy emulation (`stages/_features/fixed.py`)
computes vectors, a Rust integration test in a copy of the `tinyml-kernels` crate runs the same inputs through
`tinyml_kernels::features` on the host and asserts every output integer equal, with the real cargo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinypipe.core.paths import template_dir
from tinypipe.stages import _features
from tinypipe.stages._features import fixed

CARGO = Path("/usr/bin/cargo")  # Debian's: rustup's, also on PATH here, is another toolchain


def rust_array(values, kind: str) -> str:
    values = [int(v) for v in np.asarray(values).ravel()]
    return f"&[{', '.join(f'{v}{kind}' for v in values)}]"


def extreme_windows(rng, length: int) -> np.ndarray:
    """Windows that push the scaling: full-scale random, all -32768, alternating extremes, a full-scale tone."""
    t = np.arange(length)
    return np.stack([rng.integers(-32768, 32768, length), np.full(length, -32768),
                     np.where(t % 2, 32767, -32768), np.round(32767 * np.cos(2 * np.pi * 3 * t / length)),
                     rng.integers(-40, 40, length)]).astype(np.int64)


def test_fft_matches_a_float_fft_within_the_fixed_point_rounding():
    x = extreme_windows(np.random.default_rng(3), 64)
    re, im = fixed.fft_q15(x)
    expected = np.fft.fft(x) / 64
    # log2(64) stages of rounding and Q15 twiddles (1.0 is 32767): a few units of 32768 at most
    assert np.abs(re - expected.real).max() <= 8 and np.abs(im - expected.imag).max() <= 8
    assert np.abs(re).max() < 2 ** 16 and np.abs(im).max() < 2 ** 16  # halved per stage: no growth


@pytest.mark.parametrize("length", [16, 32, 64, 128, 256])
def test_fft_agrees_with_cmsis_dsp_q15_cfft_as_a_second_reference(length):
    dsp = pytest.importorskip("cmsisdsp", reason="cmsisdsp (CMSIS-DSP's Python wrapper) is a test dependency")
    x = extreme_windows(np.random.default_rng(length), length)[0]
    instance = dsp.arm_cfft_instance_q15()
    assert dsp.arm_cfft_init_q15(instance, length) == 0
    interleaved = np.zeros(2 * length, np.int16)
    interleaved[0::2] = x
    theirs = np.asarray(dsp.arm_cfft_q15(instance, interleaved, 0, 1), np.int64)  # also scaled by 1/N
    real, imag = fixed.fft_q15(x)
    # CMSIS truncates where we round: up to about one unit per stage apart, never more
    tolerance = 2 * (length.bit_length() - 1) + 2
    assert np.abs(theirs[0::2] - real).max() <= tolerance and np.abs(theirs[1::2] - imag).max() <= tolerance


def test_log2_isqrt_and_biquad_helpers_are_what_they_claim():
    v = np.array([0, 1, 3, 255, 2 ** 20 - 1, 2 ** 40])
    assert list(fixed.log2_q8(v)) == [0, 256, 512, 2048, 20 * 256, 40 * 256]  # exact at powers of two
    big = np.array([0, 1, 15, 16, 2 ** 62 - 1, 10 ** 12])
    assert list(fixed.isqrt(big)) == [0, 1, 3, 4, 2 ** 31 - 1, 10 ** 6]
    lowpass = fixed.biquad_coefficients("lowpass", 2.0, 50.0)
    step = fixed.biquad_q28(np.full((1, 200), 10000), lowpass)
    assert abs(int(step[0, -1]) - 10000) <= 10  # unit gain at DC (Q28 coefficients: within 0.1%)
    highpass = fixed.biquad_coefficients("highpass", 2.0, 50.0)
    assert abs(int(fixed.biquad_q28(np.full((1, 400), 10000), highpass)[0, -1])) <= 10  # DC removed


@pytest.mark.slow
@pytest.mark.skipif(not CARGO.exists(), reason="needs Debian's cargo (apt-get install cargo-web)")
def test_rust_features_are_bit_exact_with_the_numpy_emulation(tmp_path):
    rng = np.random.default_rng(11)
    cases = []
    for length in (2, 4, 16, 64, 256):
        for window in extreme_windows(rng, length):
            real, imag = fixed.fft_q15(window)
            cases.append(f"    ffts += fft({rust_array(window, 'i16')}, {rust_array(fixed.twiddles(length), 'i16')}, "
                         f"{rust_array(real, 'i32')}, {rust_array(imag, 'i32')}, "
                         f"{rust_array(fixed.power(real, imag), 'i64')});")
    values = np.concatenate([rng.integers(0, 2 ** 62, 40), [0, 1, 2, 255, 256, 2 ** 31, 2 ** 62 - 1]])
    cases.append(f"    scalar += scalars({rust_array(values, 'i64')}, {rust_array(fixed.log2_q8(values), 'i32')}, "
                 f"{rust_array(fixed.isqrt(values), 'i64')});")
    for kind, cutoff in (("lowpass", 5.0), ("highpass", 0.5)):
        coefficients = fixed.biquad_coefficients(kind, cutoff, 50.0)
        for window in extreme_windows(rng, 64):
            filtered = fixed.biquad_q28(window, coefficients)
            cases.append(f"    biquads += biquad({rust_array(window, 'i16')}, "
                         f"[{', '.join(map(str, coefficients))}], {rust_array(filtered, 'i16')});")
    for window, axes, fft_length, peaks, filt in ((64, 3, 32, 2, None), (48, 2, 16, 8, ("highpass", 0.5)),
                                                  (8, 1, 8, 0, ("lowpass", 10.0))):
        config = {"features": {"kind": "spectral", "fft_length": fft_length, "peaks": peaks,
                               "filter": filt and {"type": filt[0], "cutoff_hz": filt[1]}},
                  "sensor": {"window": window, "axes": ["a"] * axes, "sample_rate_hz": 50}}
        spec = _features.resolve(config)
        t = np.arange(window)[:, None]
        raw = np.concatenate([rng.integers(-32768, 32768, (3, window, axes)), np.full((1, window, axes), -32768),
                              np.round(20000 * np.sin(2 * np.pi * 5 * t / fft_length + np.arange(axes)))[None]
                              + np.zeros((1, window, axes))]).astype(np.int64)
        for one in raw:
            expected = _features.compute(one, spec)
            coefficients = f"Some([{', '.join(map(str, spec['filter']['coefficients']))}])" if filt else "None"
            cases.append(f"    windows += spectral({rust_array(one, 'i16')}, {window}, {axes}, {fft_length}, {peaks}, "
                         f"{rust_array(spec['twiddles'], 'i16')}, {coefficients}, {rust_array(expected, 'i16')});")
    crate = tmp_path / "kernels"
    shutil.copytree(template_dir() / "kernels", crate, ignore=shutil.ignore_patterns("target"))
    (crate / "tests").mkdir()
    (crate / "tests" / "features_vectors.rs").write_text(VECTORS_TEST.replace("CASES", "\n".join(cases)))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARGO", "RUST"))}
    env.update(PATH=f"/usr/bin{os.pathsep}{env.get('PATH', '')}", CARGO_HOME=str(tmp_path / "cargo-home"),
               CARGO_TARGET_DIR=str(tmp_path / "target"))
    result = subprocess.run([str(CARGO), "test", "--offline", "--test", "features_vectors", "--", "--nocapture"],
                            cwd=crate, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert re.search(r"compared 25 FFTs, 47 scalars, 10 biquads, 15 spectral windows", result.stdout), result.stdout
    assert "test result: ok. 1 passed" in result.stdout


VECTORS_TEST = """
use tinyml_kernels::features::{fft, fixed, spectral};

fn fft(input: &[i16], twiddles: &[i16], re: &[i32], im: &[i32], power: &[i64]) -> usize {
    let (mut got_re, mut got_im) = (vec![0; input.len()], vec![0; input.len()]);
    assert!(fft::fft_q15(input, twiddles, &mut got_re, &mut got_im));
    assert_eq!((&got_re[..], &got_im[..]), (re, im), "FFT of {input:?}");
    let got_power: Vec<i64> = got_re.iter().zip(&got_im).map(|(&r, &i)| fft::power(r, i)).collect();
    assert_eq!(&got_power[..], power);
    1
}

fn scalars(values: &[i64], log2: &[i32], roots: &[i64]) -> usize {
    for ((&v, &l), &r) in values.iter().zip(log2).zip(roots) {
        assert_eq!((fixed::log2_q8(v), fixed::isqrt(v)), (l, r), "log2/isqrt of {v}");
    }
    values.len()
}

fn biquad(input: &[i16], coefficients: [i32; 5], expected: &[i16]) -> usize {
    let mut samples = input.to_vec();
    fixed::biquad_q28(&mut samples, &coefficients);
    assert_eq!(&samples[..], expected, "biquad {coefficients:?} of {input:?}");
    1
}

#[allow(clippy::too_many_arguments)]
fn spectral(samples: &[i16], window: usize, axes: usize, fft_length: usize, peaks: usize, twiddles: &[i16],
            filter: Option<[i32; 5]>, expected: &[i16]) -> usize {
    let spec = spectral::Spectral { window, axes, fft_length, peaks, twiddles, filter };
    let (mut signal, mut re, mut im, mut power) = (vec![0; window], vec![0; fft_length], vec![0; fft_length],
                                                   vec![0; fft_length / 2]);
    let mut scratch = spectral::Scratch { signal: &mut signal, re: &mut re, im: &mut im, power: &mut power };
    let mut out = vec![0; expected.len()];
    assert!(spectral::spectral_i16(samples, &spec, &mut scratch, &mut out));
    assert_eq!(&out[..], expected, "spectral features of {samples:?}");
    1
}

#[test]
fn features_match_the_host_vectors() {
    let (mut ffts, mut scalar, mut biquads, mut windows) = (0, 0, 0, 0);
CASES
    println!("compared {ffts} FFTs, {scalar} scalars, {biquads} biquads, {windows} spectral windows");
}
"""
