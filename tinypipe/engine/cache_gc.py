"""Pruning the user-level cache (`tinypipe gc --cache`): what no project has used for a while.

The cache ($TINYPIPE_CACHE, else $XDG_CACHE_HOME/tinypipe) holds what projects share: the shared store's
entries (Rust sysroots, TFLM libraries) and the toolchain's object cache (`toolchain.objects`, which prunes
itself). Each records its last use in its mtime — a store entry's `meta.json` is touched whenever a run finds it
cached, an object whenever a library build reuses it — so an entry idle for longer than the cut-off can go: the
next run that needs it rebuilds it. Entries being written (temporaries of live processes) are never touched.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tinypipe.engine.store import Store
from tinypipe.toolchain import objects


@dataclass
class Pruned:
    entries: list[tuple[str, str, float]] = field(default_factory=list)  # (what, name, days idle)
    bytes: int = 0


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prune_user_cache(cache: Path, days: float, dry_run: bool = False, now: float | None = None) -> Pruned:
    """Delete shared-store entries and cached objects unused for more than `days` days (or list them)."""
    now = time.time() if now is None else now
    cutoff = now - days * 86_400
    out = Pruned()
    store = Store(cache / "store")
    if not dry_run:
        store.sweep()
    for key in sorted(store.keys()):
        used = store.last_used(key)
        if used < cutoff:
            stage = store.meta(key).get("stage", "?")
            out.entries.append((f"store {stage}", key[:16], (now - used) / 86_400))
            out.bytes += _size(store.path(key))
            if not dry_run:
                store.remove(key)
    for obj in objects.prune(days, dry_run, cache=cache, now=now):
        out.entries.append(("tflm object", obj.name, obj.idle_days))
        out.bytes += obj.bytes
    return out
