"""Cached tool output: `rustc -vV` and friends, keyed by the binary's path, mtime and size.

Stage keys include tool versions, so every `tinypipe run` asks for them; spawning rustc, cargo and gcc each
time would cost most of a no-op run. The answers live in one small JSON file in the user-level cache and are
re-asked only when the binary changes (or, for a rustup proxy, when rustup's settings change).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Sequence

from tinypipe.core import proc
from tinypipe.core.fs import atomic_write_json
from tinypipe.core.paths import user_cache_dir

CACHE_FILE = "tool-versions.json"
_memory: dict[str, dict[str, str]] = {}  # cache file path -> its entries, read once per process
_lock = threading.Lock()  # stages ask from several threads under `-j N`


def _cache_path() -> Path:
    return user_cache_dir() / CACHE_FILE


def _entries(path: Path) -> dict[str, str]:
    key = str(path)
    if key not in _memory:
        try:
            with open(path) as f:
                loaded = json.load(f)
            _memory[key] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _memory[key] = {}
    return _memory[key]


def _stamp(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_mtime_ns}:{st.st_size}"


def _rustup_stamp(binary: Path) -> str:
    """A rustup proxy answers for whichever toolchain rustup selects: key on rustup's settings too."""
    if not (binary.parent / "rustup").exists():
        return ""
    home = Path(os.environ.get("RUSTUP_HOME") or Path.home() / ".rustup")
    settings = home / "settings.toml"
    selected = os.environ.get("RUSTUP_TOOLCHAIN", "")
    return f"|rustup:{selected}:{_stamp(settings) if settings.exists() else '-'}"


def cached_output(binary: str | os.PathLike, args: Sequence[str], env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> str:
    """`binary args...` stdout (stripped), from the cache when the binary has not changed since it was asked.

    A missing binary raises UserError (from core.proc); a failing one raises ToolFailed.
    """
    with _lock:
        return _cached_output(Path(binary), args, env, cwd)


def _cached_output(binary: Path, args: Sequence[str], env: dict[str, str] | None, cwd: Path | None) -> str:
    try:
        stamp = _stamp(binary) + _rustup_stamp(binary)
    except FileNotFoundError:
        stamp = None
    key = f"{binary}\t{stamp}\t{' '.join(args)}\t{sorted((env or {}).items())}"
    path = _cache_path()
    entries = _entries(path)
    if stamp is not None and key in entries:
        return entries[key]
    out = proc.run([binary, *args], env=env, cwd=cwd).stdout.strip()
    if stamp is not None:
        # drop answers for older versions of the same binary so the file stays small
        same_binary, same_version = f"{binary}\t", f"{binary}\t{stamp}\t"
        fresh = {k: v for k, v in entries.items() if not k.startswith(same_binary) or k.startswith(same_version)}
        fresh[key] = out
        entries.clear()
        entries.update(fresh)
        try:
            atomic_write_json(path, entries)
        except OSError:
            pass  # a read-only cache only costs speed
    return out


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""
