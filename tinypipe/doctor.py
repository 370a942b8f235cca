"""`tinypipe doctor`: what is installed, what is missing, and the command that fixes it."""

from __future__ import annotations

import importlib.util
import shutil

from tinypipe.config.boards import BOARDS, DEFAULT_BOARD
from tinypipe.core import proc
from tinypipe.core.errors import UserError
from tinypipe.toolchain import tools
from tinypipe.toolchain.cache import first_line
from tinypipe.toolchain.rust import find_rust, rust_library_source


def _rust_checks() -> list[tuple[str, str | None, str]]:
    """rustc, cargo and the Rust library source, found as the toolchain stage finds them (for the default
    board's target)."""
    triple = BOARDS[DEFAULT_BOARD].triple
    try:
        tc = find_rust(triple)
    except (UserError, proc.ToolFailed) as exc:
        fix = exc.hint if isinstance(exc, UserError) and exc.hint else proc.apt_hint("rustc")
        return [("rustc", None, fix), ("cargo", None, fix), ("Rust library source", None, fix)]
    source = None if tc.has_target else rust_library_source(tc)
    return [("rustc", f"{first_line(tc.version)} ({tc.rustc})", proc.apt_hint("rustc")),
            ("cargo", f"{tc.cargo_version()} ({tc.cargo})", proc.apt_hint("cargo")),
            ("Rust library source", "not needed: the target is installed" if tc.has_target else
             (str(source) if source else None), f"{proc.apt_hint('rust-src')}   (or: rustup component add rust-src)")]


def run_doctor(as_json: bool = False) -> int:
    checks = _rust_checks()
    for tool in (tools.GCC, tools.QEMU, tools.BINDGEN, tools.CLANG):
        checks.append((tool, tools.version(tool) if tools.locate(tool) else None, proc.apt_hint(tool)))
    for module, fix in [("tensorflow", "pip install tensorflow-cpu (make setup does it)"),
                        ("tflite_micro", "pip install tflite-micro"), ("pyocd", "pip install pyocd")]:
        found = importlib.util.find_spec(module) is not None
        checks.append((f"python: {module}", "installed" if found else None, fix))

    probes = _probes()
    boards = _board_support()
    rustup_note = ("rustup is on PATH; tinypipe calls Debian's /usr/bin/rustc unless the rustup toolchain has the "
                   "thumb target installed (set TINYPIPE_RUSTC to choose)") if shutil.which("rustup") else None
    bad = sum(1 for _, version, _ in checks if not version)
    if as_json:
        import json
        import sys

        sys.stdout.write(json.dumps({
            "ok": bad == 0,
            "tools": [{"name": label, "found": bool(version), "version": version, "fix": None if version else fix}
                      for label, version, fix in checks],
            "probes": probes, "boards": boards, "notes": [rustup_note] if rustup_note else [],
        }, indent=2) + "\n")
        return 0 if bad == 0 else 2
    for label, version, fix in checks:
        if version:
            print(f"  ok       {label:<22} {version}")
        else:
            print(f"  MISSING  {label:<22} fix: {fix}")
    if not probes:
        print("  probes   none attached (emulated boards need none)")
    for probe in probes:
        print(f"  probe    {probe}")
    for board in boards:
        print(f"  board    {board['board']:<18} {board['state']}")
    if rustup_note:
        print(f"  note     {rustup_note}.")
    return 0 if bad == 0 else 2


def _pyocd_targets() -> tuple[set[str], set[str]] | None:
    """(built-in target names, targets from installed CMSIS packs), or None without pyocd."""
    if importlib.util.find_spec("pyocd") is None:
        return None
    from pyocd.target import TARGET

    try:
        from pyocd.target.pack.pack_target import ManagedPacks

        packs = {t.part_number.lower() for t in ManagedPacks.get_installed_targets()}
    except Exception:  # noqa: BLE001 - no pack index yet, or cmsis-pack-manager missing: no packs
        packs = set()
    return set(TARGET), packs


def _board_support() -> list[dict]:
    """One line per real board: can pyocd reach it (built-in target, installed pack), and can we build it."""
    targets = _pyocd_targets()
    lines = []
    for board in BOARDS.values():
        if board.pyocd_target is None or board.qemu_machine:
            continue
        if not board.buildable:
            lines.append({"board": board.name, "state": f"not buildable yet: {board.notes[0]}"})
            continue
        if targets is None:
            state = "pyocd not installed (pip install pyocd)"
        elif board.pyocd_target in targets[0]:
            state = f"pyocd target {board.pyocd_target} built in"
        elif board.pyocd_target in targets[1]:
            state = f"pyocd target {board.pyocd_target} from an installed CMSIS pack"
        else:
            state = (f"NEEDS a CMSIS pack: pyocd pack install {board.pyocd_target}   (needs the internet once)")
        emulated = f"; its ELF also runs on QEMU {board.emulator.qemu_machine}" if board.emulator else ""
        lines.append({"board": board.name, "state": f"{state}{emulated}"})
    return lines


def _probes() -> list[str]:
    """One line per attached debug probe; a line saying why when they cannot be listed."""
    if importlib.util.find_spec("pyocd") is None:
        return ["pyocd not installed: no probes can be used"]
    try:
        from pyocd.core.helpers import ConnectHelper

        probes = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    except Exception as exc:  # noqa: BLE001 - a broken USB stack is reported, not fatal
        return [f"could not enumerate debug probes: {exc}"]
    return [f"{p.unique_id}  {p.description}" for p in probes]
