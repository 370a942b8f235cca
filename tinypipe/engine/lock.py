"""tinypipe.lock: every stage's key, the inputs that made it, and its output hash, per variant.

The lock is what `status --why` compares against, and what `verify` rebuilds and checks against. Its schema is
versioned; a lock from a newer schema is refused rather than misread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tinypipe.core.errors import UserError
from tinypipe.core.fs import atomic_write_json, read_json
from tinypipe.core.hashing import canonical_json

LOCK_FILE = "tinypipe.lock"
SCHEMA_VERSION = 1


class Lock:
    def __init__(self, path: Path, project: str):
        self.path = Path(path)
        self.project = project
        self._guard = threading.Lock()
        self.data: dict[str, Any] = {"version": SCHEMA_VERSION, "project": project, "variants": {}}
        self._loaded_text: str | None = None
        if self.path.exists():
            try:
                data = read_json(self.path)
            except ValueError as exc:
                raise UserError(f"{self.path}: not valid JSON ({exc})",
                                "delete the lock file; the next run writes a new one") from None
            if data.get("version") != SCHEMA_VERSION:
                raise UserError(
                    f"{self.path}: lock schema version {data.get('version')!r} is not {SCHEMA_VERSION}",
                    "this lock was written by another tinypipe version; delete it or use that version",
                )
            self.data = data
            self.data["project"] = project
        self._loaded_text = canonical_json(self.data)

    def entry(self, variant: str, stage: str) -> dict[str, Any] | None:
        return self.data["variants"].get(variant, {}).get(stage)

    def record(self, variants: list[str], stage: str, entry: dict[str, Any], save: bool = True) -> None:
        with self._guard:
            for v in variants:
                self.data["variants"].setdefault(v, {})[stage] = entry
            if save:
                self._save_locked()

    def save(self) -> None:
        with self._guard:
            self._save_locked()

    def _save_locked(self) -> None:
        text = canonical_json(self.data)
        if text != self._loaded_text:  # a no-op run leaves the file untouched
            atomic_write_json(self.path, self.data)
            self._loaded_text = text
