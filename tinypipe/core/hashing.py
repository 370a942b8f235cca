"""Content hashing: canonical JSON for keys, sha256 for files and directory trees."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tinypipe.core.snapshot import per_snapshot


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text, so equal keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_tree(root: Path, exclude: frozenset[str] = frozenset()) -> str:
    """Hash of a directory: every regular file's relative path and content, in sorted order.

    Names in `exclude` (top-level only) are skipped, so a store entry's own metadata does not feed its hash.
    """
    h = hashlib.sha256()
    root = Path(root)
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if rel in exclude:
                continue
            entries.append((rel, full))
    for rel, full in sorted(entries):
        h.update(rel.encode() + b"\0")
        h.update(sha256_file(full).encode() + b"\n")
    return h.hexdigest()


_tree_memo: dict[tuple, str] = {}  # (root, every file's path, mtime and size) -> content hash


def tree_hash(root: Path, ignore: tuple[str, ...] = (), skip_top: tuple[str, ...] = ()) -> str:
    """Content hash of a source tree for stage keys, memoized per process: file contents are re-read only when
    some file's mtime or size changed, so every no-op run can afford it, and the tree is walked once per
    snapshot (`core.snapshot`). `ignore`: glob patterns skipped at any depth; `skip_top`: names skipped at the
    top only. "missing" for a tree that does not exist."""
    return _tree_hash(str(Path(root)), tuple(ignore), tuple(skip_top))


@per_snapshot
def _tree_hash(root: str, ignore: tuple[str, ...], skip_top: tuple[str, ...]) -> str:
    import fnmatch
    import re

    if not os.path.isdir(root):
        return "missing"
    ignored = re.compile("|".join(fnmatch.translate(p) for p in ignore)).match if ignore else lambda name: None

    files = []
    prefix = len(root.rstrip("/")) + 1
    for dirpath, dirnames, filenames in os.walk(root):
        top = dirpath == root
        dirnames[:] = sorted(d for d in dirnames if not ignored(d) and not (top and d in skip_top))
        for name in filenames:
            if not ignored(name) and not (top and name in skip_top):
                full = os.path.join(dirpath, name)
                st = os.stat(full)
                files.append((full[prefix:], st.st_mtime_ns, st.st_size))
    signature = (root, tuple(sorted(files)))
    if signature not in _tree_memo:
        _tree_memo[signature] = sha256_json({rel: sha256_file(Path(root) / rel) for rel, _, _ in signature[1]})
    return _tree_memo[signature]


_file_memo: dict[tuple[str, int, int], str] = {}  # (path, mtime, size) -> content hash


def file_hashes(root: Path, suffix: str) -> dict[str, str]:
    """{relative path: sha256} of every file under `root` whose name ends with `suffix` (names starting with a dot
    skipped, at any depth), for a stage key that names each file. Memoized per file like `tree_hash`: a file is
    re-read only when its mtime or size changed, so touching it costs one hash and changes nothing."""
    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not name.endswith(suffix):
                continue
            full = Path(dirpath) / name
            out[full.relative_to(root).as_posix()] = file_hash(full)
    return dict(sorted(out.items()))


def file_hash(path: Path) -> str:
    """sha256 of one file, memoized per process by (path, mtime, size), like `file_hashes`."""
    st = os.stat(path)
    signature = (str(path), st.st_mtime_ns, st.st_size)
    if signature not in _file_memo:
        _file_memo[signature] = sha256_file(path)
    return _file_memo[signature]
