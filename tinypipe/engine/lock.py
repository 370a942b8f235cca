"""tinypipe.lock: every stage's key, the inputs that made it, and its output hash, per variant.

The lock is what `status --why` compares against, and what `verify` rebuilds and checks against. Its schema is
versioned; a lock from a newer schema is refused rather than misread. `caveats` ({stage: text}) says, for the
stages whose output may still differ on another machine with the same inputs (TensorFlow's float arithmetic),
what tinypipe could not pin down: written where it is known, never hidden.
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
        self.frozen = False  # `run --locked`: record in memory, never write the file
        if self.path.exists() or self.path.is_symlink():
            self.data = self._read()
            self.data["project"] = project
        self._loaded_text = canonical_json(self.data)

    def _read(self) -> dict[str, Any]:
        """The lock's content, or a UserError (exit 2) with the fix for any file that is not a lock."""
        fix = "delete it; the next `tinypipe run` writes a new one (or restore it from version control)"
        try:
            data = read_json(self.path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{self.path}: not a tinypipe lock: not valid JSON ({exc})", fix) from None
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read the lock file: {exc.strerror or exc}", fix) from None
        if not isinstance(data, dict):
            kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
                type(data), "null")
            raise UserError(f"{self.path}: not a tinypipe lock: {kind}, not a JSON object", fix)
        if data.get("version") != SCHEMA_VERSION:
            raise UserError(
                f"{self.path}: lock schema version {data.get('version')!r} is not {SCHEMA_VERSION}",
                "this lock was written by another tinypipe version; delete it or use that version",
            )
        variants = data.get("variants")
        if not isinstance(variants, dict) or not all(
                isinstance(stages, dict) and all(isinstance(e, dict) and isinstance(e.get("key"), str)
                                                 and isinstance(e.get("output"), str) for e in stages.values())
                for stages in variants.values()):
            raise UserError(f"{self.path}: not a tinypipe lock: `variants` must map each variant to its stages' "
                            "{key, output, inputs}", fix)
        return data

    def entry(self, variant: str, stage: str) -> dict[str, Any] | None:
        return self.data["variants"].get(variant, {}).get(stage)

    def keys(self) -> frozenset[str]:
        """Every store key the lock records, over all variants and stages (what `gc` keeps)."""
        return frozenset(entry["key"] for stages in self.data["variants"].values() for entry in stages.values())

    def record(self, variants: list[str], stage: str, entry: dict[str, Any], save: bool = True,
               caveat: str = "") -> None:
        with self._guard:
            for v in variants:
                self.data["variants"].setdefault(v, {})[stage] = entry
            if caveat:
                self.data.setdefault("caveats", {})[stage] = caveat
            if save:
                self._save_locked()

    def drift(self) -> list[str]:
        """What this run recorded unlike the lock file it read: `variant stage: output A -> B`, one line each."""
        import json

        old = json.loads(self._loaded_text or "{}").get("variants", {})
        out = []
        for variant, stages in self.data["variants"].items():
            for stage, entry in stages.items():
                was = old.get(variant, {}).get(stage)
                if was != entry:
                    before = "(none)" if was is None else was["output"][:12] + "…"
                    out.append(f"{stage} ({variant}): rebuilt with output {entry['output'][:12]}…, the lock "
                               f"records {before}: not reproducible")
        return out

    def save(self) -> None:
        with self._guard:
            self._save_locked()

    def _save_locked(self) -> None:
        text = canonical_json(self.data)
        if text != self._loaded_text and not self.frozen:  # a no-op run leaves the file untouched
            atomic_write_json(self.path, self.data)
            self._loaded_text = text
