"""The toolchain package: tool discovery and versions (asked once per binary, `missing` when absent), compiler
flags derived from the board registry, the QEMU command line, and the object cache's pruning."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tinypipe.config.boards import BOARDS
from tinypipe.core.errors import UserError
from tinypipe.runners import qemu
from tinypipe.toolchain import cache, objects, tools
from tinypipe.toolchain.flags import gcc_flags, rustc_flags


def target(board: str, cpu: str | None = None, triple: str | None = None) -> SimpleNamespace:
    b = BOARDS[board]
    return SimpleNamespace(board=b, cpu=cpu or b.cpu, triple=triple or b.triple)


def fake_tool(directory: Path, name: str, calls: Path) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho {name} >> {calls}\necho '{name} 1.2.3'\necho second line\n")
    path.chmod(0o755)
    return path


# --- flags ------------------------------------------------------------------------------------------------------

def test_gcc_and_rustc_flags_come_from_the_board():
    # pinned: these flags are in stage keys and toolchain entries; a change rebuilds every user's firmware
    assert gcc_flags(target("mps2-an386")) == ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    assert gcc_flags(target("mps2-an386"), explicit_fpu=False) == ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard"]
    assert gcc_flags(target("mps2-an385")) == ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"]
    assert gcc_flags(target("mps3-an547"))[-1] == "-mfpu=fpv5-d16"
    assert gcc_flags(target("mps2-an386", triple="thumbv7em-none-eabi"))[2:] == ["-mfloat-abi=soft"]
    # a cpu override takes the FPU of a board with that cpu
    assert gcc_flags(target("mps2-an386", cpu="cortex-m7"))[-1] == "-mfpu=fpv5-d16"
    assert rustc_flags(target("mps2-an386")) == ["-C", "linker=arm-none-eabi-ld", "-C", "linker-flavor=ld",
                                                 "-C", "target-cpu=cortex-m4"]


def test_a_hard_float_cpu_without_a_known_fpu_is_a_user_error():
    with pytest.raises(UserError) as err:
        gcc_flags(target("mps2-an385", triple="thumbv7em-none-eabihf"))
    assert err.value.message == ("target thumbv7em-none-eabihf is hard-float but tinypipe knows no FPU for cpu "
                                 "'cortex-m3'")


@pytest.mark.skipif(not shutil.which(tools.GCC), reason="needs arm-none-eabi-gcc (`make setup`)")
def test_gcc_accepts_every_boards_flags_and_enables_its_fpu(tmp_path):
    source = tmp_path / "x.c"
    source.write_text("int f(int x) { return x + 1; }\n")
    for board in BOARDS.values():
        flags = gcc_flags(target(board.name))
        macros = subprocess.run([tools.GCC, *flags, "-dM", "-E", source], capture_output=True, text=True)
        assert macros.returncode == 0, (board.name, macros.stderr)
        assert ("#define __ARM_FP " in macros.stdout) == board.hard_float, board.name
        if "mve" in board.features:
            assert "#define __ARM_FEATURE_MVE" in macros.stdout, board.name  # -mfpu must not switch Helium off


# --- tools ------------------------------------------------------------------------------------------------------

def test_tool_versions_come_from_the_disk_cache_and_a_missing_tool_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYPIPE_CACHE", str(tmp_path / "cache"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake_tool(bin_dir, tools.BINDGEN, calls)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert tools.version(tools.BINDGEN) == "bindgen 1.2.3"
    cache._memory.clear()  # another process: the answer is read from disk, nothing is spawned
    assert tools.version(tools.BINDGEN) == "bindgen 1.2.3"
    assert calls.read_text().split() == ["bindgen"]
    assert tools.version(tools.GXX) == "missing"
    with pytest.raises(UserError) as err:
        tools.find(tools.GXX)
    assert err.value.message == "`arm-none-eabi-g++` not found on PATH"
    assert err.value.hint == "apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi"


def test_tflm_stage_keys_need_no_bindgen(tmp_path, monkeypatch):
    """`status` on a TFLM project works on a machine without bindgen; the codegen stage itself says what to do."""
    from tinypipe.engines.tflm import codegen

    monkeypatch.setenv("TINYPIPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("TINYPIPE_QEMU", raising=False)
    assert codegen.STAGE.tools(target("mps2-an386")) == {"arm-none-eabi-g++": "missing", "bindgen": "missing",
                                                          "qemu-system-arm": "missing"}
    with pytest.raises(UserError) as err:
        codegen.bindgen(tmp_path / "shim.h", "thumbv7em-none-eabihf")
    assert err.value.hint == "apt-get install -y bindgen clang"


def test_one_qemu_command_line_honours_the_override(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYPIPE_CACHE", str(tmp_path / "cache"))
    fake = fake_tool(tmp_path, "my-qemu", tmp_path / "calls")
    monkeypatch.setenv("TINYPIPE_QEMU", str(fake))
    argv = qemu.command(Path("fw.elf"), "mps2-an386")
    assert argv == [str(fake), "-machine", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                    "-semihosting-config", "enable=on,target=native", "-icount", "shift=0,sleep=off", "-kernel", "fw.elf"]
    assert "-icount" not in qemu.command(Path("fw.elf"), "mps2-an386", icount=False)
    assert qemu.qemu_version() == "my-qemu 1.2.3"


# --- the object cache -------------------------------------------------------------------------------------------

def test_object_cache_prunes_what_has_been_idle(tmp_path):
    directory = objects.object_cache_dir(tmp_path)
    now = time.time()
    entries = {}
    for name, idle_days in (("old", 40), ("new", 1)):
        entry = directory / "ab" / (name * 8)
        entry.mkdir(parents=True)
        (entry / "h.o").write_bytes(b"\0" * 100)
        (entry / "h.json").write_text("{}")
        os.utime(entry / "h.o", (now - idle_days * 86_400,) * 2)
        entries[name] = entry
    listed = objects.prune(30, dry_run=True, cache=tmp_path, now=now)
    assert [(p.name, round(p.idle_days), p.bytes) for p in listed] == [("oldoldoldoldoldo", 40, 102)]
    assert (entries["old"] / "h.o").exists()
    assert objects.prune(30, cache=tmp_path, now=now) == listed
    assert not entries["old"].exists() and (entries["new"] / "h.o").exists()
