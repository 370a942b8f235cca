"""The firmware template as a crate of its own: its stand-ins for generated files agree with their generators,
the board features render as the firmware stage says, and — with the real tools — the template builds for a
Cortex-M4F (with the session's sysroot) and the `tinyml-kernels` crate passes its own `cargo test` on the host.

The cargo runs keep the template clean: target directories and cargo homes live in pytest's tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tinypipe.config.boards import BOARDS
from tinypipe.core.paths import template_dir
from tinypipe.stages import build, firmware

TEMPLATE = template_dir()
KERNELS = TEMPLATE / "kernels"
CARGO, RUSTC = Path("/usr/bin/cargo"), Path("/usr/bin/rustc")
STANDIN_BOARD = "mps2-an386"  # link.x is rendered for it
# what src/app_config.rs is rendered from (src/model.rs: 2 samples x 3 axes in, 3 outputs)
STANDIN_SENSOR = {"window": 2, "axes": ["x", "y", "z"], "sample_rate_hz": 50}
STANDIN_CLASSES = ["wave", "tap", "none"]
STANDIN_QUANTIZATION = {"input_scale": 0.05, "input_zero_point": 0}  # src/model.rs's input

needs_debian_rust = pytest.mark.skipif(not (CARGO.exists() and RUSTC.exists()),
                                       reason="needs Debian's rustc and cargo (apt-get install rustc-web cargo-web)")


def _rust_const(name: str) -> int:
    match = re.search(rf"^pub const {name}: usize = (\d+);", (TEMPLATE / "src" / "model.rs").read_text(), re.M)
    assert match, f"src/model.rs has no `pub const {name}: usize`"
    return int(match.group(1))


def _cargo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CARGO", "RUST"))}
    # Debian's toolchain first: rustup's newer rustc (also on PATH here) rejects a `core` built by another one
    env.update(PATH=f"/usr/bin{os.pathsep}{env.get('PATH', '')}", RUSTC=str(RUSTC),
               CARGO_HOME=str(tmp_path / "cargo-home"), CARGO_TARGET_DIR=str(tmp_path / "target"),
               CARGO_TERM_COLOR="never", CARGO_INCREMENTAL="0", **extra)
    return env


def _cargo(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([str(CARGO), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"cargo {' '.join(args)} failed in {cwd}:\n{result.stderr[-4000:]}"
    return result


# --- the stand-ins ---------------------------------------------------------------------------------------------

def test_linker_script_standin_is_the_rendering_for_its_board():
    assert (TEMPLATE / "link.x").read_text() == firmware.render_linker_script(BOARDS[STANDIN_BOARD])


def test_app_config_standin_is_the_rendering_for_the_standin_model():
    rendered = firmware.render_app_config({"classes": STANDIN_CLASSES}, STANDIN_SENSOR)
    assert (TEMPLATE / "src" / "app_config.rs").read_text() == rendered
    assert _rust_const("INPUT_LEN") == STANDIN_SENSOR["window"] * len(STANDIN_SENSOR["axes"])


def test_raw_input_standin_is_the_rendering_for_the_standin_model():
    from tinypipe.stages._scaling import InputScaling

    scaling = InputScaling([0.0, 0.0, 0.0], [0.05, 0.05, 0.05], "sensor")  # raw x 0.05 = the stand-in's input scale
    fixed = scaling.fixed_point(0.05, 0)
    assert fixed.as_json() == {"multiplier": [1 << 30] * 3, "bias": [0] * 3, "shift": [30] * 3}  # one to one
    rendered = firmware.render_raw_input({"axes": 3, **fixed.as_json(), "scaling": scaling.as_json()})
    assert (TEMPLATE / "src" / "raw_input.rs").read_text() == rendered


def test_realtime_config_standin_is_the_rendering_for_the_standin_model():
    settings = firmware.realtime_settings(STANDIN_SENSOR, {}, BOARDS[STANDIN_BOARD].systick_hz, STANDIN_BOARD)
    rendered = firmware.render_realtime_config(settings, STANDIN_QUANTIZATION)
    assert (TEMPLATE / "src" / "realtime_config.rs").read_text() == rendered
    assert "pub const TICKS_PER_INTERRUPT: u32 = 500000;\n" in rendered  # 25 MHz / 50 Hz


def test_audio_config_standin_is_the_rendering_of_a_log_mel_front_end_for_the_standin_model():
    # 3 frames of 4 samples in a 6-sample window, 2 mel bins each: the stand-in model's 6 inputs (and 6 raw samples
    # per window, the real-time loop stand-in's 2 samples x 3 axes)
    spec = {"kind": "log_mel", "window": 6, "axes": 1, "sample_rate_hz": 50.0, "frame_length": 4, "frame_stride": 1,
            "fft_length": 4, "mel_bins": 2, "coefficients": 2, "low_hz": 0.0, "high_hz": 25.0}
    rendered = firmware.render_audio_config(spec)
    assert (TEMPLATE / "src" / "audio_config.rs").read_text() == rendered
    assert "pub const FEATURES: usize = 6;\n" in rendered and _rust_const("INPUT_LEN") == 6


def test_test_windows_standin_holds_whole_windows_of_the_standin_model():
    size = (TEMPLATE / "data" / "test_inputs.bin").stat().st_size  # int8 input: one byte per value
    assert size > 0 and size % _rust_const("INPUT_LEN") == 0


def test_every_board_support_has_its_feature_and_module():
    cargo_toml = (TEMPLATE / "Cargo.toml").read_text()
    for support in {b.support for b in BOARDS.values() if b.support}:
        assert (TEMPLATE / firmware.BOARD_SUPPORT_DIR / f"{support}.rs").is_file()
        feature = firmware.board_feature(support)
        assert re.search(rf"^{feature} = \[\]$", cargo_toml, re.M)
        assert f'feature = "{feature}"' in (TEMPLATE / "src" / "main.rs").read_text()


def test_enable_features_sets_the_default_and_refuses_unknown_features():
    cargo_toml = (TEMPLATE / "Cargo.toml").read_text()
    assert firmware.enable_features(cargo_toml, []) == cargo_toml
    enabled = firmware.enable_features(cargo_toml, ["board-stm32f4-discovery", "layers"])
    assert '\n[features]\ndefault = ["board-stm32f4-discovery", "layers"]\n' in enabled
    with pytest.raises(ValueError, match="no feature 'board-nonesuch'"):
        firmware.enable_features(cargo_toml, ["board-nonesuch"])


# --- cargo -----------------------------------------------------------------------------------------------------

@pytest.mark.slow
@needs_debian_rust
@pytest.mark.skipif(not shutil.which("arm-none-eabi-ld"), reason="needs gcc-arm-none-eabi (GNU ld)")
@pytest.mark.parametrize("features", [[], ["layers", "realtime"], ["board-stm32f4-discovery", "layers", "raw-input", "realtime"]],
                         ids=["generic", "layers-realtime", "stm32f4-discovery"])
def test_template_builds_for_cortex_m4f_with_the_cached_sysroot(rust_toolchain, tmp_path, features):
    triple, env = _target_env(rust_toolchain, tmp_path)
    result = _cargo(["build", "--release", "--offline", "--target", triple, *_features(features)], TEMPLATE, env)
    assert "warning" not in result.stderr, result.stderr
    assert (tmp_path / "target" / triple / "release" / build.BINARY).is_file()


@pytest.mark.slow
@needs_debian_rust
@pytest.mark.skipif(not Path("/usr/bin/cargo-clippy").exists(), reason="needs Debian's clippy (rust-web-clippy)")
@pytest.mark.parametrize("features", [[], ["board-stm32f4-discovery", "layers", "raw-input", "realtime"],
                                      ["board-stm32f4-discovery", "features", "realtime"]],
                         ids=["generic", "stm32f4-discovery", "stm32f4-discovery-features"])
def test_template_and_kernels_pass_clippy(rust_toolchain, tmp_path, features):
    triple, env = _target_env(rust_toolchain, tmp_path)
    _cargo(["clippy", "--release", "--offline", "--target", triple, *_features(features), "--", "-D", "warnings"],
           TEMPLATE, env)


def _target_env(rust_toolchain, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The target triple and a cargo environment with the session's sysroot and link flags for it."""
    entry = rust_toolchain(STANDIN_BOARD)
    toolchain = json.loads((entry / "toolchain.json").read_text())
    flags = build.build_rustflags(toolchain, entry, TEMPLATE)
    return toolchain["triple"], _cargo_env(tmp_path, CARGO_ENCODED_RUSTFLAGS="\x1f".join(flags))


def _features(features: list[str]) -> list[str]:
    return ["--features", ",".join(features)] if features else []


@pytest.mark.slow
@needs_debian_rust
def test_kernels_unit_tests_pass_on_the_host(tmp_path):
    result = _cargo(["test", "--offline", "--quiet"], KERNELS, _cargo_env(tmp_path))
    passed = sum(int(n) for n in re.findall(r"test result: ok\. (\d+) passed", result.stdout))
    assert passed > 0, result.stdout
