"""`tinypipe doctor`: what is installed, what is missing, and the command that fixes it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

APT_FIX = ("apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm rustc-web cargo-web "
           "rust-web-src bindgen clang   (or: make setup)")


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0] if out.returncode == 0 and lines else None


def run_doctor(as_json: bool = False) -> int:
    checks: list[tuple[str, str | None, str]] = []
    for label, argv, fix in [
        ("rustc (Debian)", ["/usr/bin/rustc", "--version"], APT_FIX),
        ("cargo (Debian)", ["/usr/bin/cargo", "--version"], APT_FIX),
        ("arm-none-eabi-gcc", ["arm-none-eabi-gcc", "--version"], APT_FIX),
        ("qemu-system-arm", ["qemu-system-arm", "--version"], APT_FIX),
        ("bindgen", ["bindgen", "--version"], APT_FIX),
        ("clang", ["clang", "--version"], APT_FIX),
    ]:
        checks.append((label, _version(argv), fix))
    rust_src = _version(["sh", "-c", "dpkg -L rust-web-src 2>/dev/null | grep -m1 'library/core/src/lib.rs$'"])
    checks.append(("Rust library source", rust_src, APT_FIX))
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
    from tinypipe.config.boards import BOARDS

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
