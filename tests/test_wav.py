"""`data.source: wav`: mono 16-bit PCM recordings, one folder per class, read as int16 values, cut into windows
like CSV recordings; a file at another rate resampled with a warning naming it and both rates; anything but mono
16-bit PCM an exit 2 naming the file and what it holds. The WAV files are real ones, written by Python's `wave`."""

import json
import wave

import numpy as np
import pytest

from tests.helpers import run_data, store_entry, tinypipe
from tinypipe.config.boards import BOARDS
from tinypipe.config.schema import Project, Variant

RATE = 8000
TINY_MODEL = {"layers": [{"type": "conv1d", "filters": 4, "kernel_size": 3, "strides": 2},
                         {"type": "flatten"}, {"type": "dense", "units": 2}], "epochs": 2}


def write_wav(path, samples, rate=RATE, channels=1, width=2) -> None:
    """A PCM WAV file: `samples` are written as given (frames of `channels` x `width` bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        dtype = {1: np.uint8, 2: "<i2"}.get(width)
        wav.writeframes(np.asarray(samples, dtype=dtype).tobytes() if dtype else bytes(samples))


def tones(root, lengths=(300, 340, 380, 420, 460)) -> dict[str, np.ndarray]:
    """recordings/{hum,hiss}/r<i>.wav: a 200 Hz tone, or noise; returns each file's samples by relative path."""
    rng = np.random.default_rng(1)
    written = {}
    for name in ("hiss", "hum"):
        for i, n in enumerate(lengths):
            t = np.arange(n) / RATE
            signal = 9000 * np.sin(2 * np.pi * 200 * t) if name == "hum" else rng.normal(0, 3000, n)
            samples = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
            write_wav(root / "recordings" / name / f"r{i}.wav", samples)
            written[f"{name}/r{i}.wav"] = samples
    return written


def wav_doc(rate=RATE, **data_fields) -> dict:
    return {"name": "mic", "seed": 3, "sensor": {"kind": "microphone", "axes": ["mic"], "window": 64,
                                                 "sample_rate_hz": rate},
            "data": {"source": "wav", "path": "recordings", **data_fields}, "model": TINY_MODEL}


def run_wav_data(root, doc):
    variant = Variant(name="t", project=Project(**doc), board=BOARDS["mps2-an386"], engine="native", project_dir=root)
    return (*run_data(variant, root / "out"), root / "out")


def test_wav_recordings_become_windows_of_their_int16_samples(tmp_path):
    written = tones(tmp_path)
    summary, arrays, logs, out = run_wav_data(tmp_path, wav_doc(hop=32))
    assert json.loads((out / "classes.json").read_text()) == ["hiss", "hum"]
    assert json.loads((out / "samples.json").read_text()) == {name: len(s) for name, s in written.items()}
    manifest = json.loads((out / "recordings.json").read_text())
    # every window is a run of 64 samples of one file, 32 apart: its first sample's offset finds it
    for split in ("train", "val", "test"):
        for window in arrays[f"x_{split}"]:
            assert window.shape == (64, 1)
            assert any(np.array_equal(window[:, 0], samples[s:s + 64]) for name, samples in written.items()
                       if name in manifest[split] for s in range(0, len(samples) - 63, 32))
    assert summary["windows"] == sum((len(s) - 64) // 32 + 1 for s in written.values())
    assert "resampled" not in summary and not any("warning" in line for line in logs)


def test_a_wav_file_at_another_rate_is_resampled_with_a_warning_naming_it_and_both_rates(tmp_path):
    written = tones(tmp_path)
    slow = np.arange(-200, 200, 2, dtype=np.int16) * 7  # a ramp, so linear interpolation is exact
    write_wav(tmp_path / "recordings" / "hum" / "r9.wav", slow, rate=RATE // 2)
    summary, arrays, logs, out = run_wav_data(tmp_path, wav_doc())
    assert "warning: recordings/hum/r9.wav is sampled at 4000 Hz, sensor.sample_rate_hz is 8000 Hz: resampled " \
           "(linear interpolation)" in logs
    assert summary["resampled"] == [{"file": "recordings/hum/r9.wav", "rate_hz": 4000}]
    lengths = json.loads((out / "samples.json").read_text())
    assert lengths["hum/r9.wav"] == 2 * len(slow)
    assert {k: v for k, v in lengths.items() if k != "hum/r9.wav"} == {k: len(s) for k, s in written.items()}

    from tinypipe.stages._recordings import read_wav

    resampled = []
    twice = read_wav(tmp_path / "recordings" / "hum" / "r9.wav", "r9.wav", RATE, resampled)[:, 0]
    assert np.array_equal(twice[0::2], slow)  # the original samples where the times coincide
    assert np.array_equal(twice[1:-1:2], (slow[:-1] + 7))  # midpoints of a ramp of step 14
    assert [(r.name, r.rate_hz) for r in resampled] == [("r9.wav", 4000)]


def _stereo(path):
    write_wav(path, np.zeros(200, np.int16), channels=2)


def _eight_bit(path):
    write_wav(path, np.full(300, 128, np.uint8), width=1)


def _twenty_four_bit(path):
    write_wav(path, bytes(3 * 300), width=3)


def _not_a_wav(path):
    path.write_text("t,mic\n0,1\n")


BAD_WAV = {
    "stereo": (_stereo, "recordings/hum/r1.wav: 2 channels; data.source: wav reads mono recordings"),
    "8-bit": (_eight_bit, "recordings/hum/r1.wav: 8-bit samples; data.source: wav reads 16-bit PCM"),
    "24-bit": (_twenty_four_bit, "recordings/hum/r1.wav: 24-bit samples; data.source: wav reads 16-bit PCM"),
    "not a wav": (_not_a_wav, "recordings/hum/r1.wav: not a PCM WAV file (file does not start with RIFF id)"),
}


@pytest.mark.parametrize("case", list(BAD_WAV))
def test_a_wav_that_is_not_mono_16_bit_pcm_is_exit_2_naming_the_file_what_it_holds_and_the_fix(tmp_path, case):
    tones(tmp_path)
    spoil, message = BAD_WAV[case]
    spoil(tmp_path / "recordings" / "hum" / "r1.wav")
    (tmp_path / "project.yaml").write_text(json.dumps(wav_doc()))
    proc = tinypipe("run", str(tmp_path), "--until", "data")
    assert proc.returncode == 2, proc.stderr
    assert f"{message}\n  hint: export it as mono 16-bit PCM WAV (e.g. `sox in.wav -c 1 -b 16 -e signed-integer " \
           "out.wav`)" in proc.stderr, proc.stderr
    assert not (tmp_path / ".tinypipe" / "store").is_dir() or not any((tmp_path / ".tinypipe" / "store").iterdir())


def test_wav_needs_a_microphone_with_one_axis():
    doc = wav_doc()
    with pytest.raises(ValueError, match=r"`data.source: wav` needs `sensor.kind: microphone` and one axis \(got "
                                         r"kind 'microphone' with 2 axes\)"):
        Project(**{**doc, "sensor": {**doc["sensor"], "axes": ["l", "r"]}})
    with pytest.raises(ValueError, match="got kind 'accelerometer' with 1 axes"):
        Project(**{**doc, "sensor": {**doc["sensor"], "kind": "accelerometer"}})


def test_tinypipe_data_shows_wav_recording_lengths_in_samples(tmp_path):
    written = tones(tmp_path)
    (tmp_path / "project.yaml").write_text(json.dumps(wav_doc()))
    assert tinypipe("run", str(tmp_path), "--until", "data").returncode == 0
    proc = tinypipe("data", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)
    lengths = {name: r["samples"] for recs in doc["recordings"].values() for name, r in recs.items()}
    assert lengths == {name: len(s) for name, s in written.items()}
    assert (store_entry(tmp_path, "mps2-an386-native", "data") / "samples.json").is_file()
    text = tinypipe("data", str(tmp_path)).stdout.splitlines()
    sparks = [line.split() for line in text if line.startswith(("  hiss mic ", "  hum mic "))]
    assert [words[:2] for words in sparks] == [["hiss", "mic"], ["hum", "mic"]]  # one trace per class
    assert all(len(words[2]) == 64 and set(words[2]) <= set("▁▂▃▄▅▆▇█") for words in sparks), text
    ascii_env = {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    plain = tinypipe("data", str(tmp_path), env=ascii_env)  # a pipe that cannot encode the blocks
    assert plain.returncode == 0, plain.stderr
    assert any(line.startswith("  hum mic ") and set(line.split()[2]) <= set("_.,-=+*#")
               for line in plain.stdout.splitlines()), plain.stdout
