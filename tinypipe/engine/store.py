"""The content-addressed store: `<root>/<key>/` holds one stage output plus `meta.json`.

An entry is built in a temporary directory beside the entries and renamed into place in one step, so a
crash (even SIGKILL) leaves either a whole entry or none; leftover temporaries are swept on the next open.

An entry is trusted only while its output hash holds. `lookup` checks it cheaply: the size and mtime of every
file, recorded at commit, must be unchanged — on any difference (or always, with `paranoid`) the files are
hashed again. An entry that fails (a flipped byte, a truncated meta.json) is moved aside to `corrupt/` with a
warning, never deleted, and the stage is rebuilt.
"""

from __future__ import annotations

import json
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
CORRUPT_DIR = "corrupt"  # entries that failed their check, kept for inspection (not a key: no meta.json)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signature(root: Path | str) -> dict[str, list[int]]:
    """{relative path: [size, mtime_ns]} of every file of an entry but its meta.json, in path order."""
    out = {}

    def scan(directory: str, prefix: str) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    scan(entry.path, rel + "/")
                elif rel != META and entry.is_file():
                    st = entry.stat()
                    out[rel] = [st.st_size, st.st_mtime_ns]

    scan(str(root), "")
    return dict(sorted(out.items()))


def _warn_stderr(message: str) -> None:
    import sys

    sys.stderr.write(f"warning: {message}\n")


class Store:
    def __init__(self, root: Path, paranoid: bool = False):
        self.root = Path(root)
        self.paranoid = paranoid  # hash every entry's files on lookup, not only those whose size or mtime moved
        self.warn = _warn_stderr  # the pipeline routes warnings through its reporter while a display is live

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.root / key / META).is_file()

    def meta(self, key: str) -> dict[str, Any]:
        return read_json(self.root / key / META)

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The entry's meta if the entry exists and its files still hash to its recorded output, else None
        (a corrupt entry is set aside with a warning, so the stage runs again)."""
        entry = os.path.join(self.root, key)  # strings, not Paths: a 1,000-stage no-op run looks up every entry
        problem = None
        try:
            with open(os.path.join(entry, META), "rb") as f:
                meta = json.loads(f.read())
            if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get("output"), str):
                raise ValueError("meta.json does not describe this entry")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):  # no entry
            return None
        except (OSError, ValueError) as exc:
            meta, problem = None, f"its meta.json is unreadable ({exc})"
        if meta is not None:
            recorded = meta.get("files")
            signature = _signature(entry)
            if self.paranoid or signature != recorded:
                if sha256_tree(Path(entry), exclude=frozenset({META, LOG})) != meta["output"]:
                    problem = f"the files of this {meta.get('stage', '')} entry no longer match their recorded hash"
                elif signature != recorded:  # copied (new mtimes) or from before signatures: hash once only
                    meta["files"] = signature
                    try:
                        atomic_write_json(Path(entry) / META, meta)
                    except OSError:
                        pass  # a read-only store stays correct, only slower
        if problem is None:
            return meta
        self.set_aside(key, problem)
        return None

    def set_aside(self, key: str, problem: str) -> None:
        aside = self.root / CORRUPT_DIR / f"{key}-{uuid.uuid4().hex[:8]}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(self.root / key, aside)
        except OSError:
            shutil.rmtree(self.root / key, ignore_errors=True)
            aside = None
        self.warn(f"store entry {key[:12]}… is corrupt: {problem}; "
                  + (f"moved to {aside} and rebuilding" if aside else "removed and rebuilding"))

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
        meta["files"] = _signature(tmp)  # renaming the directory keeps sizes and mtimes
        meta["created"] = time.time()
        atomic_write_json(tmp / META, meta)
        return self._install(tmp, key, meta)

    def adopt(self, tmp: Path, key: str) -> dict[str, Any]:
        """Install an entry that arrived whole and verified in `tmp` (pulled from a remote cache): its meta.json
        as written where it was built, with this machine's sizes and mtimes; renamed into place like a commit."""
        meta = read_json(tmp / META)
        meta["files"] = _signature(tmp)
        atomic_write_json(tmp / META, meta)
        return self._install(tmp, key, meta)

    def _install(self, tmp: Path, key: str, meta: dict[str, Any]) -> dict[str, Any]:
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
        return [p.name for p in self.root.iterdir()
                if not p.name.startswith(".") and p.name != CORRUPT_DIR and (p / META).is_file()]

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
