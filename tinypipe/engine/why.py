"""`status --why`: for every stage, is it cached, and if not, exactly which input or key changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinypipe.engine.graph import Graph, Node
from tinypipe.engine.lock import Lock


@dataclass
class StageStatus:
    variant: str
    stage: str
    state: str  # "cached" | "stale" | "new" | "remote" (missing here, on the remote cache: a run pulls it)
    reasons: list[str]
    key: str | None = None  # the store key for the current inputs; None while an upstream output is missing
    id: str = ""  # `<stage>:<key prefix>` or `<stage>:pending-<identity prefix>`: as plan, status, show name it


def _short(value: Any) -> str:
    from tinypipe.core.hashing import canonical_json

    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"  # a content hash: its prefix is enough to see it changed
    text = canonical_json(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _files_diff(old: dict, new: dict, path: str) -> list[str]:
    """A `files` mapping ({relative path: sha256}, e.g. data.files) by file: one line each for the files added,
    removed and changed, naming a few."""
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(name for name in set(old) & set(new) if old[name] != new[name])
    out = []
    for verb, names in (("added", added), ("removed", removed), ("changed", changed)):
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            out.append(f"{path}: {len(names)} file{'' if len(names) == 1 else 's'} {verb}: {shown}")
    return out


def diff_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON values, by key path (a mapping named `files` by file)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "files" and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                out.extend(_files_diff(old[key], new[key], path))
            elif key not in old:
                out.append(f"{path} added ({_short(new[key])})")
            elif key not in new:
                out.append(f"{path} removed (was {_short(old[key])})")
            else:
                out.extend(diff_paths(old[key], new[key], path))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out.extend(diff_paths(a, b, f"{prefix}[{i}]"))
        return out
    if old != new:
        return [f"{prefix or 'value'}: {_short(old)} -> {_short(new)}"]
    return []


def explain(node: Node, variant: str, lock: Lock) -> StageStatus:
    status = _explain(node, variant, lock)
    status.key = node.key()
    status.id = node.label()
    return status


def _explain(node: Node, variant: str, lock: Lock) -> StageStatus:
    entry = lock.entry(variant, node.name)
    current = node.key_inputs()
    if current is None:
        waiting = [d.name for d in node.needs if d.meta() is None and d.name not in node.stage.helped_by]
        reasons = [f"waits on {', '.join(waiting)} (not built yet or stale)"]
        if entry is not None:
            reasons = _input_diffs(entry.get("inputs", {}), None, node) + reasons
        return StageStatus(variant, node.name, "stale" if entry else "new", reasons)
    if node.meta() is not None:
        return StageStatus(variant, node.name, "cached", [])
    if entry is None:
        return StageStatus(variant, node.name, "new", ["never built for this variant"])
    reasons = _input_diffs(entry.get("inputs", {}), current, node)
    if not reasons:
        reasons = ["the store entry is missing (deleted or garbage-collected)"]
    return StageStatus(variant, node.name, "stale", reasons)


def _input_diffs(old: dict, new: dict | None, node: Node) -> list[str]:
    reasons = []
    if old.get("version") != node.stage.version:
        reasons.append(f"stage code changed (version {old.get('version')} -> {node.stage.version})")
    for path in diff_paths(old.get("config", {}), node.config):
        reasons.append(f"config {path}")
    for path in diff_paths(old.get("tools", {}), node.tools):
        reasons.append(f"tool {path}")
    if new is not None:
        for dep, out in new["needs"].items():
            if old.get("needs", {}).get(dep) != out:
                reasons.append(f"input from {dep} changed")
    return reasons


def lock_mismatches(graph: Graph, lock: Lock) -> list[str]:
    """`run --locked`: every way the project no longer matches the lock, one readable line each (empty: it matches).

    Decided before anything runs: a stage matches when the lock has an entry for it in each of its variants and
    its stage code version, config (input files enter through their hashes there) and tool versions are the
    locked ones; when its key is computable (its upstream entries are in the store) the key itself must be the
    locked one. Entries missing from the store are no mismatch: the lock pins keys, the store is a cache."""
    if not (lock.path.exists() or lock.path.is_symlink()):
        return [f"no {lock.path.name}: run without --locked once and commit it"]
    out = []
    for node in graph.nodes:
        entries = {v: lock.entry(v, node.name) for v in node.variants}
        missing = [v for v, e in entries.items() if e is None]
        where = f"{node.name} ({', '.join(node.variants)})"
        if missing:
            out.append(f"{node.name} ({', '.join(missing)}): not in the lock")
            continue
        keys = {e["key"] for e in entries.values()}
        entry = next(iter(entries.values()))
        reasons = _input_diffs(entry.get("inputs", {}), None, node)
        if not reasons and len(keys) > 1:
            reasons = ["the lock records different keys for these variants"]
        if not reasons:
            key = node.key()
            if key is not None and key != entry["key"]:
                changed = [dep for dep, output in (node.key_inputs() or {}).get("needs", {}).items()
                           if entry.get("inputs", {}).get("needs", {}).get(dep) != output]
                reasons = ([f"input from {dep} changed" for dep in changed]
                           or [f"key {key[:12]}… is not the locked {entry['key'][:12]}…"])
        out.extend(f"{where}: {r}" for r in reasons)
    return out


def status(graph: Graph, lock: Lock, remote: Any = None) -> list[StageStatus]:
    """Every (variant, stage)'s status; with `remote` (an engine.remote.RemoteCache), a stage missing here whose
    entry the remote holds is "remote": a run pulls it."""
    on_remote = _peek_remote(graph, remote) if remote is not None else set()
    out = []
    for variant in graph.variants:
        for node in graph.by_variant[variant.name].values():
            s = explain(node, variant.name, lock)
            if id(node) in on_remote:
                s.state, s.reasons = "remote", [f"its entry is on the remote cache {remote.name}: a run pulls it"]
            out.append(s)
    return out


def _peek_remote(graph: Graph, remote: Any) -> set[int]:
    """The nodes (ids) a run would pull, found in pipeline order from the remote's meta.json files alone: each
    one's recorded output gives the key of the stage after it. The nodes keep those metas (a status graph is
    never run)."""
    found = set()
    for node in graph.nodes:
        key = node.key()
        if node.meta() is None and key is not None:
            meta = remote.meta(key)
            if meta is not None:
                node.set_meta(meta)
                found.add(id(node))
    return found
