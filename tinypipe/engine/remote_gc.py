"""Pruning a team's remote cache (`tinypipe gc --remote`): the entries nobody has pulled or pushed for a while.

An entry's last use is the newest of its push (its files and `meta.json`) and its last verified pull (the `.used`
file every pull rewrites, `remote.py`). Entries idle for `days` or more go, except those a project's
`tinypipe.lock` references (the project gc runs in: its release must stay reproducible from the cache). Upload
temporaries (`.tmp-…`) and entries without a marker (an S3 upload that stopped half-way) go once idle for a day,
whatever `days` says: younger ones may be uploads in flight. A deleted entry that someone still needs is rebuilt
and pushed again by their next run; a pull that races the deletion finds the entry gone or incomplete and does the
same. Only directories named like entries (64 hex digits) or temporaries are ever deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tinypipe.engine.remote import RemoteCache

DAY_S = 86_400.0
PARTIAL_GRACE_S = DAY_S  # temporaries and marker-less entries younger than this may be uploads in flight


@dataclass
class RemotePruned:
    deleted: list[dict] = field(default_factory=list)  # {"key", "stage", "idle_days", "bytes", "why"}
    deleted_bytes: int = 0
    kept: int = 0
    kept_bytes: int = 0
    kept_locked: int = 0  # of `kept`: referenced by the lock


def prune_remote(cache: RemoteCache, days: float, keep: frozenset[str] = frozenset(), dry_run: bool = False,
                 now: float | None = None) -> RemotePruned:
    """Delete (or with `dry_run` list) what has been idle for `days` days, keeping the keys in `keep`. Raises
    RemoteError when the remote cannot be listed or an entry cannot be deleted."""
    now = time.time() if now is None else now
    out = RemotePruned()
    for item in cache.scan():
        idle = max(0.0, now - item.last_used)
        if item.temporary or not item.complete:
            doomed, why = idle >= PARTIAL_GRACE_S, "an interrupted upload"
        else:
            doomed, why = item.name not in keep and idle >= days * DAY_S, "unused"
        if not doomed:
            out.kept += 1
            out.kept_bytes += item.bytes
            out.kept_locked += item.name in keep
            continue
        stage = cache.stage_of(item.name) if item.complete and not item.temporary else None
        if not dry_run:
            cache.delete(item.name)
        out.deleted.append({"key": item.name, "stage": stage, "idle_days": round(idle / DAY_S, 1),
                            "bytes": item.bytes, "why": why})
        out.deleted_bytes += item.bytes
    return out
