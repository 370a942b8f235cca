"""Toolchain, firmware rendering, build and QEMU run, against the real tools.

A stand-in kernel crate and a stand-in `model.rs` (whose outputs are easy to compute in Python) play the
engine's part; the sysroots are built once per session into the session's user-level cache.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import build_firmware, native_variant, stage_context, standin_model_rs, write_reference
from tinypipe.core.hashing import sha256_tree
from tinypipe.devtools import harness
from tinypipe.config.boards import Memory
from tinypipe.config.schema import Hal
from tinypipe.core.errors import UserError
from tinypipe.core.paths import template_dir
from tinypipe.runners import qemu
from tinypipe.stages import build, crates, firmware, run, toolchain
from tinypipe.toolchain import cache
from tinypipe.toolchain.rust import find_rust

pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm") and Path("/usr/bin/cargo").exists()),
    reason="needs gcc-arm-none-eabi, qemu-system-arm and Debian's rustc/cargo")

INPUT_LEN, OUTPUT_LEN, N = 64, 4, 10
OFFSETS = [1, -2, 3, -4]

KERNELS_CARGO = """\
[package]
name = "tinyml-kernels"
version = "0.1.0"
edition = "2021"
"""
KERNELS_LIB = """\
#![no_std]
/// Clamp to the int8 range.
pub fn saturate_i8(value: i32) -> i8 {
    value.clamp(-128, 127) as i8
}
"""

# output[j] = saturate(trunc(sum(input[16j..16j+16]) * 0.75) + OFFSETS[j]); the float multiply runs on the FPU
# (M4F) or in libgcc (M3), OFFSETS lives in .data (checks the reset handler's copy), SCRATCH in .bss.
MODEL_RS = standin_model_rs(64, 4, """\
use core::sync::atomic::{AtomicI32, AtomicI8, Ordering};

static OFFSETS: [AtomicI32; OUTPUT_LEN] =
    [AtomicI32::new(1), AtomicI32::new(-2), AtomicI32::new(3), AtomicI32::new(-4)];
static SCRATCH: [AtomicI8; INPUT_LEN] = [const { AtomicI8::new(0) }; INPUT_LEN];

pub fn invoke(input: &[i8], output: &mut [i8]) {
    for (slot, &value) in SCRATCH.iter().zip(input) {
        slot.store(value, Ordering::Relaxed);
    }
    for j in 0..OUTPUT_LEN {
        let mut sum = 0i32;
        for k in 0..16 {
            sum += SCRATCH[16 * j + k].load(Ordering::Relaxed) as i32;
        }
        let scaled = (core::hint::black_box(sum) as f32 * 0.75) as i32;
        let offset = OFFSETS[j].load(Ordering::Relaxed);
        OFFSETS[j].store(core::hint::black_box(offset), Ordering::Relaxed); // keeps OFFSETS a writable global
        output[j] = tinyml_kernels::saturate_i8(scaled + offset);
    }
    /*EXTRA*/
}
""")


def expected_outputs(inputs: np.ndarray) -> np.ndarray:
    sums = inputs.astype(np.int32).reshape(len(inputs), OUTPUT_LEN, 16).sum(axis=2)
    scaled = np.trunc(sums * 0.75).astype(np.int32)
    return np.clip(scaled + np.array(OFFSETS), -128, 127).astype(np.int8)


@pytest.fixture(scope="module")
def kernels_crate(tmp_path_factory):
    """The stand-in kernel crate, through TINYPIPE_KERNELS for this module only (other tests get the real one)."""
    root = tmp_path_factory.mktemp("kernels")
    (root / "src").mkdir()
    (root / "Cargo.toml").write_text(KERNELS_CARGO)
    (root / "src" / "lib.rs").write_text(KERNELS_LIB)
    old = os.environ.get("TINYPIPE_KERNELS")
    os.environ["TINYPIPE_KERNELS"] = str(root)
    yield root
    if old is None:
        os.environ.pop("TINYPIPE_KERNELS", None)
    else:
        os.environ["TINYPIPE_KERNELS"] = old


@pytest.fixture(scope="module")
def test_set():
    rng = np.random.default_rng(7)
    inputs = rng.integers(-128, 128, size=(N, INPUT_LEN), dtype=np.int8)
    inputs[0] = 127  # saturates high
    inputs[1] = -128  # saturates low
    outputs = expected_outputs(inputs)
    labels = np.argmax(outputs, axis=1).astype(np.uint8)
    labels[7:] = (labels[7:] + 1) % OUTPUT_LEN  # 3 of 10 wrong: device accuracy 0.7
    return inputs, outputs, labels


def write_codegen(root: Path, extra: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "model.rs").write_text(MODEL_RS.replace("/*EXTRA*/", extra))
    return root


def render_and_build(tmp: Path, variant, toolchain_entry: Path, reference: Path, extra: str = "") -> Path:
    """The stand-in model (with `extra` Rust in its `invoke`) through the firmware and build stages."""
    return build_firmware(variant, write_codegen(tmp / "codegen", extra), reference, toolchain_entry, tmp)


@pytest.fixture(scope="module")
def an386(tmp_path_factory, rust_toolchain, kernels_crate, test_set):
    tmp = tmp_path_factory.mktemp("an386")
    reference = write_reference(tmp / "reference", *test_set)
    variant = native_variant("mps2-an386")
    return variant, reference, render_and_build(tmp, variant, rust_toolchain("mps2-an386"), reference)


# --- toolchain ----------------------------------------------------------------------------------------------

def test_toolchain_entry_has_sysroot_and_link_flags(rust_toolchain):
    entry = rust_toolchain("mps2-an386")
    meta = json.loads((entry / "toolchain.json").read_text())
    assert meta["triple"] == "thumbv7em-none-eabihf" and meta["cpu"] == "cortex-m4"
    assert meta["sysroot"] == "sysroot"
    lib = entry / "sysroot" / "lib" / "rustlib" / "thumbv7em-none-eabihf" / "lib"
    assert (lib / "libcore.rlib").is_file() and (lib / "libcompiler_builtins.rlib").is_file()
    assert meta["libgcc"].endswith("thumb/v7e-m+fp/hard/libgcc.a")
    assert meta["libc"].endswith("thumb/v7e-m+fp/hard/libc.a")
    assert meta["link_libs"] == [meta["libc"], meta["libgcc"]]
    assert "target-cpu=cortex-m4" in meta["rustflags"] and "linker-flavor=ld" in meta["rustflags"]
    assert meta["rustc_version"].startswith("rustc ") and "release: " in meta["rustc_version"]
    soft = json.loads((rust_toolchain("mps2-an385") / "toolchain.json").read_text())
    assert soft["libgcc"].endswith("thumb/v7-m/nofp/libgcc.a")


def test_toolchain_stage_key_inputs_are_cheap_and_complete():
    variant = native_variant("mps2-an386")
    assert toolchain.STAGE.shared and toolchain.STAGE.needs == ()
    assert toolchain.STAGE.config(variant) == {"triple": "thumbv7em-none-eabihf", "cpu": "cortex-m4"}
    tools = toolchain.STAGE.tools(variant)
    assert tools["rustc"].startswith("rustc ") and tools["cargo"].startswith("cargo ")
    assert tools["arm-none-eabi-gcc"].startswith("arm-none-eabi-gcc")


def test_debian_rustc_is_chosen_when_no_rustc_has_the_target():
    tc = find_rust("thumbv7em-none-eabihf")
    assert tc.rustc == Path("/usr/bin/rustc") and not tc.has_target


def test_rustc_with_the_target_installed_needs_no_sysroot(tmp_path, monkeypatch, rust_toolchain, kernels_crate,
                                                         test_set):
    # a toolchain that ships the target, like `rustup target add`: the rustc that built the session's sysroot,
    # over a copy of that sysroot
    built_by = rust_toolchain("mps2-an386")
    meta = json.loads((built_by / "toolchain.json").read_text())
    sysroot = tmp_path / "rust"
    shutil.copytree(built_by / "sysroot", sysroot)
    (sysroot / "bin").mkdir()
    (sysroot / "bin" / "rustc").write_text(f'#!/bin/sh\nexec {meta["rustc"]} --sysroot {sysroot} "$@"\n')
    (sysroot / "bin" / "rustc").chmod(0o755)
    (sysroot / "bin" / "cargo").symlink_to(meta["cargo"])
    monkeypatch.setenv("PATH", f"{sysroot / 'bin'}{os.pathsep}{os.environ['PATH']}")
    variant = native_variant()
    tc = find_rust(variant.triple)
    assert tc.rustc == sysroot / "bin" / "rustc" and tc.has_target
    entry = tmp_path / "toolchain"
    assert toolchain.run(stage_context(variant, entry))["sysroot_built"] is False
    assert json.loads((entry / "toolchain.json").read_text())["sysroot"] is None and not (entry / "sysroot").exists()
    reference = write_reference(tmp_path / "reference", *test_set)
    built = render_and_build(tmp_path, variant, entry, reference)
    assert run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))["bit_exact"] is True


def test_no_rustc_at_all_is_a_user_error_with_the_fix(tmp_path, monkeypatch):
    from tinypipe.toolchain import rust

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(rust, "DEBIAN_RUSTC", tmp_path / "rustc")
    with pytest.raises(UserError) as err:
        find_rust("thumbv7m-none-eabi")
    assert err.value.message == f"no Rust compiler found (rustc is not on PATH and {tmp_path}/rustc does not exist)"
    assert err.value.hint == "apt-get install -y rustc-web cargo-web rust-web-src"
    assert toolchain.STAGE.tools(native_variant("mps2-an385"))["rustc"] == "missing"


def test_rustc_override_that_does_not_exist_is_a_user_error(monkeypatch):
    monkeypatch.setenv("TINYPIPE_RUSTC", "/nonexistent/rustc")
    with pytest.raises(UserError) as err:
        find_rust("thumbv7m-none-eabi")
    assert err.value.message == "TINYPIPE_RUSTC=/nonexistent/rustc does not exist"
    assert "apt-get install -y rustc-web cargo-web rust-web-src" in err.value.hint


def test_tool_versions_are_asked_once_per_binary_version(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYPIPE_CACHE", str(tmp_path / "cache"))
    calls = tmp_path / "calls"
    tool = tmp_path / "fake-rustc"
    tool.write_text(f"#!/bin/sh\necho x >> {calls}\necho fake 1.0\n")
    tool.chmod(0o755)
    assert cache.cached_output(tool, ["-vV"]) == "fake 1.0"
    assert cache.cached_output(tool, ["-vV"]) == "fake 1.0"
    cache._memory.clear()  # a new process: the answer comes from the JSON file
    assert cache.cached_output(tool, ["-vV"]) == "fake 1.0"
    assert calls.read_text().count("x") == 1
    tool.write_text(f"#!/bin/sh\necho x >> {calls}\necho fake 2.0.1\n")  # upgraded: size and mtime change
    assert cache.cached_output(tool, ["-vV"]) == "fake 2.0.1"
    assert calls.read_text().count("x") == 2
    stored = json.loads((tmp_path / "cache" / "tool-versions.json").read_text())
    assert list(stored.values()) == ["fake 2.0.1"]  # the old version's answer was dropped


# --- firmware rendering -------------------------------------------------------------------------------------

def test_render_project(tmp_path, kernels_crate, test_set):
    reference = write_reference(tmp_path / "reference", *test_set)
    codegen = write_codegen(tmp_path / "codegen")
    (codegen / "model").mkdir()
    (codegen / "model" / "weights.bin").write_bytes(b"\x01\x02")
    variant = native_variant("mps2-an386", hal=[Hal(crate="stm32f4xx-hal", version="0.21", features=["stm32f405"]),
                                              Hal(crate="cortex-m-rt", version="0.7")])
    out = tmp_path / "firmware"
    firmware.run(stage_context(variant, out, codegen=codegen, reference=reference))
    project = out / "project"
    assert (project / "src" / "model.rs").read_text() == (codegen / "model.rs").read_text()
    assert (project / "src" / "model" / "weights.bin").read_bytes() == b"\x01\x02"
    assert (project / "data" / "test_inputs.bin").read_bytes() == test_set[0].tobytes()
    assert (project / "kernels" / "src" / "lib.rs").read_text() == KERNELS_LIB
    for name in ("main.rs", "rt.rs", "semihosting.rs", "systick.rs", "stack.rs"):
        assert (project / "src" / name).is_file()
    assert not (project / "link.x.in").exists()
    script = (project / "link.x").read_text()
    assert "FLASH : ORIGIN = 0x00000000, LENGTH = 0x400000" in script
    assert "RAM   : ORIGIN = 0x20000000, LENGTH = 0x400000" in script
    assert "_stack_size  = 32768;" in script and "${" not in script
    manifest = tomllib.loads((project / "Cargo.toml").read_text())
    assert manifest["dependencies"] == {"tinyml-kernels": {"path": "kernels"}}
    assert manifest["profile"]["release"] == {"opt-level": 3, "lto": "fat", "codegen-units": 1, "panic": "abort",
                                              "debug": False, "incremental": False, "overflow-checks": False}
    hal = tomllib.loads((project / "Cargo.hal.toml").read_text())
    assert hal["dependencies"] == {"tinyml-kernels": {"path": "kernels"},
                                   "stm32f4xx-hal": {"version": "0.21", "features": ["stm32f405"]},
                                   "cortex-m-rt": {"version": "0.7"}}


def test_an_engine_can_ask_for_the_opt_level_and_nothing_else_changes():
    template = (template_dir() / "Cargo.toml").read_text()
    assert firmware.set_opt_level(template, None) == template
    sized = firmware.set_opt_level(template, "z")
    assert tomllib.loads(sized)["profile"]["release"]["opt-level"] == "z"
    assert tomllib.loads(firmware.set_opt_level(template, "2"))["profile"]["release"]["opt-level"] == 2
    assert sized.replace('opt-level = "z"', "opt-level = 3") == template  # the one line, nothing else
    with pytest.raises(ValueError, match="codegen.json asks for opt-level 'fast'; cargo knows 0, 1, 2, 3, s, z"):
        firmware.set_opt_level(template, "fast")
    with pytest.raises(ValueError, match=r"no opt-level in \[profile.release\]"):
        firmware.set_opt_level(template.replace("opt-level = 3\n", ""), "z")


def test_render_without_hal_has_no_hal_manifest(tmp_path, kernels_crate, test_set):
    reference = write_reference(tmp_path / "reference", *test_set)
    out = tmp_path / "firmware"
    firmware.run(stage_context(native_variant(), out, codegen=write_codegen(tmp_path / "codegen"), reference=reference))
    assert not (out / "project" / "Cargo.hal.toml").exists()


def test_firmware_key_follows_board_hal_and_template_edits(tmp_path, monkeypatch, kernels_crate):
    template = tmp_path / "template"
    shutil.copytree(template_dir(), template,
                    ignore=shutil.ignore_patterns("kernels", "target"))
    monkeypatch.setenv("TINYPIPE_FIRMWARE_TEMPLATE", str(template))
    base = firmware.STAGE.config(native_variant())
    assert base["board"] == "mps2-an386" and base["engine"] == "native" and base["hal"] is None
    assert base["memory"] == {"flash": [0, 4 << 20], "ram": [0x2000_0000, 4 << 20], "stack_bytes": 32768}
    assert firmware.STAGE.config(native_variant()) == base
    assert firmware.STAGE.config(native_variant("mps2-an385"))["board"] == "mps2-an385"
    assert firmware.STAGE.config(native_variant(hal=Hal(crate="x-hal", version="1")))["hal"][0]["crate"] == "x-hal"
    main = template / "src" / "main.rs"
    main.write_text(main.read_text() + "\n// edited\n")
    assert firmware.STAGE.config(native_variant())["template"] != base["template"]
    (kernels_crate / "src" / "extra.rs").write_text("// a new kernel file\n")
    try:
        assert firmware.STAGE.config(native_variant())["template"] not in (base["template"],)
    finally:
        (kernels_crate / "src" / "extra.rs").unlink()


# --- build and run ------------------------------------------------------------------------------------------

def test_build_writes_elf_bin_and_sizes(an386):
    _, _, out = an386
    elf = (out / "firmware.elf").read_bytes()
    assert elf[:4] == b"\x7fELF" and (out / "firmware.bin").stat().st_size > 64
    sizes = json.loads((out / "size.json").read_text())
    assert sizes["stack"] == 32768
    assert sizes["data"] >= 16  # OFFSETS
    assert sizes["bss"] >= INPUT_LEN  # SCRATCH
    assert sizes["text"] > 0 and sizes["rodata"] >= 64 + N * INPUT_LEN  # vector table + test windows
    assert sizes["flash_bytes"] == sizes["text"] + sizes["rodata"] + sizes["data"]
    assert sizes["ram_bytes"] == sizes["data"] + sizes["bss"] + sizes["stack"]
    assert b"/tmp" not in elf and b"tinypipe-build-" not in elf  # build paths are remapped


def test_build_is_reproducible_with_or_without_the_compiled_crates(an386, rust_toolchain, tmp_path):
    variant, _, first = an386  # built starting from the crates stage's target directory (tests/helpers.py)
    fw, entry = first.parent / "firmware", rust_toolchain("mps2-an386")
    alone = build.run(stage_context(variant, tmp_path / "alone", firmware=fw, toolchain=entry))
    reusing = build.run(stage_context(variant, tmp_path / "reusing", firmware=fw, toolchain=entry,
                                      crates=harness.crates_entry(variant, entry)))
    assert sorted(alone["compiled_crates"]) == ["tinyml-kernels", "tinypipe-firmware"]
    assert reusing["compiled_crates"] == ["tinypipe-firmware"] and reusing["reused_crates"]  # cargo found it fresh
    for again in (tmp_path / "alone", tmp_path / "reusing"):
        assert (again / "firmware.elf").read_bytes() == (first / "firmware.elf").read_bytes()
        assert (again / "firmware.bin").read_bytes() == (first / "firmware.bin").read_bytes()


def test_the_compiled_crates_are_the_same_bytes_wherever_they_are_built(rust_toolchain, tmp_path):
    """Its entry travels through remote caches and the lock: nothing in it may name where it was built."""
    variant, entry = native_variant("mps2-an386"), rust_toolchain("mps2-an386")
    crates.run(stage_context(variant, tmp_path / "here", toolchain=entry))
    assert sha256_tree(tmp_path / "here") == sha256_tree(harness.crates_entry(variant, entry))
    for path in (tmp_path / "here").rglob("*"):
        if path.is_file():
            assert b"tinypipe-crates-" not in path.read_bytes() and str(tmp_path).encode() not in path.read_bytes()


def test_a_changed_kernel_crate_is_compiled_by_the_build_not_taken_stale(an386, rust_toolchain, tmp_path):
    variant, _, first = an386
    fw = tmp_path / "firmware"
    shutil.copytree(first.parent / "firmware", fw)
    lib = fw / "project" / "kernels" / "src" / "lib.rs"
    lib.write_text(lib.read_text() + "\n// edited after the crates stage compiled it\n")
    entry = rust_toolchain("mps2-an386")
    result = build.run(stage_context(variant, tmp_path / "build", firmware=fw, toolchain=entry,
                                     crates=harness.crates_entry(variant, entry)))
    assert not result["reused_crates"] and "tinyml-kernels" in result["compiled_crates"]


def test_run_on_an386_matches_python_bit_exactly(an386, test_set, tmp_path):
    variant, reference, built = an386
    out = tmp_path / "run"
    result = run.run(stage_context(variant, out, build=built, reference=reference))
    inputs, outputs, _ = test_set
    device = np.fromfile(out / "device_outputs.bin", dtype=np.int8).reshape(N, OUTPUT_LEN)
    np.testing.assert_array_equal(device, expected_outputs(inputs))
    assert result["bit_exact"] is True and result["mismatches"] == {"count": 0, "first": []}
    assert result["n"] == N and result["accuracy_device"] == pytest.approx(0.7)
    # one SysTick tick at 25 MHz is 40 instructions under -icount shift=0
    assert 0 < result["instructions_min"] <= result["instructions_per_inference"] <= result["instructions_max"]
    assert result["instructions_min"] % 40 == 0 and result["instructions_max"] < 10_000
    assert 0 < result["stack_bytes"] < 32768 and result["stack_overflow"] is False
    # run.json is the summary without the wall-clock time, which must not reach the entry's output hash
    assert result["qemu_seconds"] > 0
    assert json.loads((out / "run.json").read_text()) == {k: v for k, v in result.items() if k != "qemu_seconds"}
    log = (out / "qemu.log").read_text()
    assert log.splitlines()[-1] == "done" and f"out 0 {expected_outputs(inputs)[0].tobytes().hex()}" in log


def test_run_reports_mismatches_against_the_oracle(an386, test_set, tmp_path):
    variant, _, built = an386
    inputs, outputs, labels = test_set
    wrong = outputs.copy()
    wrong[3, 2] ^= 1
    wrong[8, 0] ^= 1
    reference = write_reference(tmp_path / "reference", inputs, wrong, None)
    result = run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert result["bit_exact"] is False
    assert result["mismatches"] == {"count": 2, "first": [3, 8]}
    assert result["accuracy_device"] is None  # no labels.bin


def test_run_on_an385_soft_float(tmp_path, rust_toolchain, kernels_crate, test_set):
    variant = native_variant("mps2-an385")
    assert variant.triple == "thumbv7m-none-eabi"
    reference = write_reference(tmp_path / "reference", *test_set)
    built = render_and_build(tmp_path, variant, rust_toolchain("mps2-an385"), reference)
    result = run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert result["bit_exact"] is True and result["machine"] == "mps2-an385"
    device = np.fromfile(tmp_path / "run" / "device_outputs.bin", dtype=np.int8).reshape(N, OUTPUT_LEN)
    np.testing.assert_array_equal(device, expected_outputs(test_set[0]))


CXX_PART = """\
#include <stdint.h>
static int32_t read_factor() { volatile int32_t v = 3; return v; }
// dynamic initialisation with a destructor: needs __libc_init_array, __cxa_atexit and __dso_handle
struct Factor { int32_t n; Factor() : n(read_factor()) {} ~Factor() { n = 0; } };
static Factor factor;
extern "C" int32_t tp_scale(int32_t x) { return x * factor.n; }
"""
CXX_MODEL_RS = standin_model_rs(64, 4, """\
static TABLE: &[u8; 4] = include_bytes!("table.bin");
extern "C" {
    fn tp_scale(x: i32) -> i32;
}
pub fn invoke(input: &[i8], output: &mut [i8]) {
    for j in 0..OUTPUT_LEN {
        output[j] = tinyml_kernels::saturate_i8(unsafe { tp_scale(input[j] as i32) } + TABLE[j] as i32);
    }
}
""")


def test_engine_with_a_cxx_archive_links_through_its_manifest(tmp_path, rust_toolchain, kernels_crate, test_set):
    """The TFLM engine's contract: include_bytes! files, a C++ archive and link.json; constructors run."""
    from tinypipe.core import proc
    from tinypipe.toolchain import gnu
    from tinypipe.toolchain.flags import gcc_flags

    variant = native_variant()
    flags = gcc_flags(variant)
    codegen = tmp_path / "codegen"
    (codegen / "lib").mkdir(parents=True)
    (codegen / "model.rs").write_text(CXX_MODEL_RS)
    (codegen / "table.bin").write_bytes(bytes([5, 6, 7, 8]))
    (tmp_path / "part.cc").write_text(CXX_PART)
    proc.run(["arm-none-eabi-g++", *flags, "-O2", "-fno-exceptions", "-fno-rtti", "-c", tmp_path / "part.cc",
              "-o", tmp_path / "part.o"])
    proc.run(["arm-none-eabi-ar", "rcs", codegen / "lib" / "libpart.a", tmp_path / "part.o"])
    search = sorted({str(gnu.library(name, variant).parent)
                     for name in ("libc_nano.a", "libnosys.a", "libgcc.a")})
    (codegen / "link.json").write_text(json.dumps(
        {"static_libs": ["lib/libpart.a"], "search_dirs": search, "libs": ["c_nano", "gcc", "nosys"]}))
    inputs = test_set[0]
    expected = np.clip(inputs[:, :4].astype(np.int32) * 3 + np.array([5, 6, 7, 8]), -128, 127).astype(np.int8)
    reference = write_reference(tmp_path / "reference", inputs, expected, None)

    fw = tmp_path / "firmware"
    firmware.run(stage_context(variant, fw, codegen=codegen, reference=reference))
    project = fw / "project"
    assert (project / "src" / "table.bin").read_bytes() == bytes([5, 6, 7, 8])
    assert json.loads((project / "link.json").read_text())["static_libs"] == ["link/libpart.a"]
    built = tmp_path / "build"
    build.run(stage_context(variant, built, firmware=fw, toolchain=rust_toolchain("mps2-an386")))
    result = run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert result["bit_exact"] is True  # factor == 3 only if the C++ constructor ran


def test_long_inference_is_timed_across_systick_wraps(tmp_path, rust_toolchain, kernels_crate, test_set):
    # 400 M iterations of a 2-instruction loop: 800 M instructions = 20 M ticks, past the 24-bit counter
    loop = ('if input[0] == 1 { unsafe { core::arch::asm!("1:", "subs {0}, #1", "bne 1b", '
            'inout(reg) 400_000_000u32 => _, options(nomem, nostack)) } }')
    inputs, outputs, _ = test_set
    inputs, outputs = inputs[:2].copy(), outputs[:2].copy()
    inputs[1, 0] = 1
    outputs[1] = expected_outputs(inputs[1:2])[0]
    reference = write_reference(tmp_path / "reference", inputs, outputs, None)
    variant = native_variant()
    built = render_and_build(tmp_path, variant, rust_toolchain("mps2-an386"), reference, extra=loop)
    result = run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert result["bit_exact"] is True
    # the loop adds 800 M instructions (SysTick x 40) to the window's ordinary work, to within a few
    assert abs(result["instructions_max"] - result["instructions_min"] - 800_000_000) <= 200


def test_panic_in_model_fails_the_run_with_its_message(tmp_path, rust_toolchain, kernels_crate, test_set):
    inputs, outputs, labels = test_set
    inputs = inputs.copy()
    inputs[4, :2] = 42
    reference = write_reference(tmp_path / "reference", inputs, expected_outputs(inputs), labels)
    variant = native_variant()
    panic = 'if input[0] == 42 && input[1] == 42 { panic!("model refuses window with {}", input[2]); }'
    built = render_and_build(tmp_path, variant, rust_toolchain("mps2-an386"), reference, extra=panic)
    with pytest.raises(run.FirmwareFailed) as err:
        run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    message = str(err.value)
    assert "the firmware failed on mps2-an386: panic: panicked at src/model.rs:" in message
    assert f"model refuses window with {int(inputs[4, 2])}" in message
    assert err.value.exit_code == 1
    result = qemu.run_elf(built / "firmware.elf", "mps2-an386", timeout_s=60)
    assert result.returncode == 1 and "out 3 " in result.output and "out 4 " not in result.output


def test_hard_fault_in_model_fails_the_run(tmp_path, rust_toolchain, kernels_crate, test_set):
    inputs, outputs, labels = test_set
    reference = write_reference(tmp_path / "reference", inputs[:3], outputs[:3], labels[:3])
    variant = native_variant()
    fault = "if input[0] == -128 { unsafe { core::ptr::read_volatile(0xF000_0000 as *const u32); } }"  # unmapped
    built = render_and_build(tmp_path, variant, rust_toolchain("mps2-an386"), reference, extra=fault)
    with pytest.raises(run.FirmwareFailed) as err:
        run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert "the firmware failed on mps2-an386: hardfault pc=0x" in str(err.value)
    assert "out 0 " in str(err.value)  # the log tail comes with it


def test_hung_firmware_is_stopped_at_the_timeout(tmp_path, rust_toolchain, kernels_crate, test_set, monkeypatch):
    inputs, outputs, labels = test_set
    reference = write_reference(tmp_path / "reference", inputs[:2], outputs[:2], labels[:2])
    variant = native_variant()
    hang = "if input[0] == 127 { loop { core::hint::spin_loop(); } }"
    built = render_and_build(tmp_path, variant, rust_toolchain("mps2-an386"), reference, extra=hang)
    with pytest.raises(qemu.QemuTimeout) as err:
        qemu.run_elf(built / "firmware.elf", "mps2-an386", timeout_s=1.0)
    assert "did not finish on QEMU mps2-an386 within 1 s" in str(err.value)
    monkeypatch.setenv("TINYPIPE_QEMU_TIMEOUT", "0.5")
    with pytest.raises(UserError) as err:
        run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert "TINYPIPE_QEMU_TIMEOUT" in err.value.hint


def test_firmware_that_does_not_fit_ram_fails_before_cargo(tmp_path, kernels_crate, test_set):
    variant = native_variant(ram=Memory(0x2000_0000, 16 * 1024))  # smaller than the 32 KiB stack reservation
    reference = write_reference(tmp_path / "reference", *test_set)
    with pytest.raises(UserError) as err:
        firmware.run(stage_context(variant, tmp_path / "firmware", codegen=write_codegen(tmp_path / "codegen"),
                             reference=reference))
    assert err.value.message == ("the model does not fit board mps2-an386: RAM needs 32,768 B (arena 0 + stack "
                                 "32,768) but the board has 16,384 B")


def test_firmware_that_passes_the_fit_check_but_not_the_linker_is_a_user_error(tmp_path, rust_toolchain,
                                                                                kernels_crate, test_set):
    # the fit check counts arena + stack only; .data/.bss of the runtime and model (~100 B) overflow the linker
    variant = native_variant(ram=Memory(0x2000_0000, 32 * 1024 + 16))
    reference = write_reference(tmp_path / "reference", *test_set)
    with pytest.raises(UserError) as err:
        render_and_build(tmp_path, variant, rust_toolchain("mps2-an386"), reference)
    assert err.value.message == (
        "the firmware does not fit board mps2-an386: .data + .bss + the stack reservation do not fit in RAM: "
        "shrink the model's arena or pick a board with more RAM")


def test_board_with_neither_emulator_nor_probe_target_cannot_run(an386, tmp_path):
    _, reference, built = an386
    variant = native_variant(qemu_machine=None)
    with pytest.raises(UserError) as err:
        run.run(stage_context(variant, tmp_path / "run", build=built, reference=reference))
    assert err.value.message == "board mps2-an386 has no pyocd target, so tinypipe cannot flash it"
    assert run.STAGE.config(variant) == {"runner": "probe", "pyocd_target": None, "clock_hz": 25_000_000}
    assert set(run.STAGE.tools(variant)) == {"pyocd"}


def test_missing_qemu_is_a_user_error_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYPIPE_QEMU", "/nonexistent/qemu-system-arm")
    with pytest.raises(UserError) as err:
        qemu.run_elf(tmp_path / "x.elf", "mps2-an386")
    assert err.value.message == "`qemu-system-arm` not found (TINYPIPE_QEMU=/nonexistent/qemu-system-arm)"
    assert err.value.hint == "apt-get install -y qemu-system-arm"
    assert qemu.qemu_version() == "missing"
