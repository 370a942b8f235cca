"""The content-addressed store: `<root>/<key>/` holds one stage output plus `meta.json`.

An entry is built in a temporary directory beside the entries and renamed into place in one step, so a
crash (even SIGKILL) leaves either a whole entry or none; leftover temporaries are swept on the next open.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from tinypipe.core.fs import atomic_write_json, read_json
from tinypipe.core.hashing import sha256_tree

META = "meta.json"
LOG = "log.txt"  # the stage's own output: kept in the entry, not part of its output hash
TMP_PREFIX = ".tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.root / key / META).is_file()

    def meta(self, key: str) -> dict[str, Any]:
        return read_json(self.root / key / META)

    def begin(self) -> Path:
        """A fresh temporary directory for a stage to write into; named with our pid for the sweeper."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        return tmp

    def commit(self, tmp: Path, key: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Hash the outputs, write meta.json, and rename the temporary directory to its key."""
        meta = dict(meta)
        meta["key"] = key
        meta["output"] = sha256_tree(tmp, exclude=frozenset({META, LOG}))
        meta["created"] = time.time()
        atomic_write_json(tmp / META, meta)
        final = self.root / key
        try:
            os.rename(tmp, final)
        except OSError:
            if not self.has(key):  # not a benign race with an identical entry
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return self.meta(key)
        return meta

    def abort(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def sweep(self) -> int:
        """Remove temporaries left by dead processes (a killed run); returns how many."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for child in self.root.iterdir():
            if not child.name.startswith(TMP_PREFIX):
                continue
            try:
                pid = int(child.name[len(TMP_PREFIX):].split("-", 1)[0])
            except ValueError:
                pid = -1
            if pid > 0 and _pid_alive(pid) and pid != os.getpid():
                continue
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
        return removed

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if not p.name.startswith(".") and (p / META).is_file()]

    def remove(self, key: str) -> None:
        shutil.rmtree(self.root / key, ignore_errors=True)

    def touch(self, key: str) -> None:
        """Mark the entry used now (its meta.json's mtime): `tinypipe gc --cache` keeps recently used ones."""
        try:
            os.utime(self.root / key / META)
        except OSError:
            pass

    def last_used(self, key: str) -> float:
        """When the entry was last written or `touch`ed (seconds since the epoch)."""
        return (self.root / key / META).stat().st_mtime
