"""Earlier results of a project, so the HTML report can show what changed since the previous run.

`.tinypipe/report-history.json` keeps the last `KEEP` distinct result sets (a run whose results equal the newest
entry adds nothing) and what the latest run did with each stage (ran or cached). Only the scalar results are
kept, not the per-layer profiles. The file is a convenience: a missing or unreadable one is an empty history, and
writes are atomic so a killed run never leaves half of it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tinypipe.core.fs import atomic_write_text

HISTORY_FILE = "report-history.json"
SCHEMA = 1
KEEP = 20
FIELDS = ("board", "engine", "instructions_per_inference", "flash_bytes", "ram_bytes", "arena_bytes",
          "accuracy_host", "accuracy_device", "bit_exact")


def _results(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """variant -> its scalar results, for the rows that measured anything."""
    out = {}
    for row in rows:
        kept = {f: row.get(f) for f in FIELDS}
        if any(kept[f] is not None for f in FIELDS if f not in ("board", "engine")):
            out[row["variant"]] = kept
    return out


def _load(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(state_dir) / HISTORY_FILE).read_text())
    except (OSError, ValueError):
        return {"schema": SCHEMA, "runs": [], "last_run": None}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("runs"), list):
        return {"schema": SCHEMA, "runs": [], "last_run": None}
    return data


def record(state_dir: Path, rows: list[dict[str, Any]], stages: list[dict[str, Any]] | None = None,
           keep: int = KEEP, now: float | None = None) -> bool:
    """Remember a run's results (`rows` in the `--json` "results" shape) and, when given, what it did with each
    stage (`stages` in the `--json` "stages" shape: `{stage, variants, status, seconds}`).

    Appends the results unless they equal the newest entry's, keeping the last `keep`; returns whether it
    appended. Rows without any measurement (e.g. `run --until train`) are left out."""
    now = time.time() if now is None else now
    history = _load(state_dir)
    results = _results(rows)
    runs = history["runs"]
    appended = bool(results) and (not runs or runs[-1].get("results") != results)
    if appended:
        runs.append({"time": now, "results": results})
        del runs[:max(0, len(runs) - keep)]
    if stages is not None:
        history["last_run"] = {"time": now, "stages": [
            {"stage": s["stage"], "variants": list(s.get("variants") or [s.get("variant")]), "status": s["status"],
             "seconds": s.get("seconds", 0.0)} for s in stages]}
    if appended or stages is not None:
        # compact: a sweep's history holds every stage of every cell, and json's indenting encoder is slow
        atomic_write_text(Path(state_dir) / HISTORY_FILE, json.dumps(history, separators=(",", ":")) + "\n")
    return appended


def previous(state_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest recorded result set that differs from `rows` in a variant both have, as
    `{"time": seconds since the epoch, "results": {variant: {field: value}}}`; None when there is none.

    So right after `record(rows)` it is the run before, and a report of unchanged results still compares
    against the last change."""
    current = _results(rows)
    for run in reversed(_load(state_dir)["runs"]):
        results = run.get("results") or {}
        shared = [v for v in current if v in results]
        if shared and any(results[v] != current[v] for v in shared):
            return {"time": run.get("time"), "results": results}
    return None


def last_run(state_dir: Path) -> dict[str, Any] | None:
    """What the latest recorded run did with each stage: `{"time", "stages": [{stage, variants, status,
    seconds}]}`, or None when no run recorded its stages."""
    return _load(state_dir).get("last_run")
