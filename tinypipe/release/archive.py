"""Reproducible archives and checksums: the same files give the same bytes, on any machine, at any time.

A `.tar.gz` made here depends on nothing but the files' relative paths and contents (and whether each is
executable): entries sorted by path, every mtime the release epoch (`SOURCE_DATE_EPOCH`, else 0), uid/gid 0,
empty user and group names, mode 0644 (0755 for directories and executables), GNU format, and a gzip header
with mtime 0 and no file name. What is left is zlib itself: another zlib version could compress the same tar
differently (the SHA256SUMS inside the tar are over the files, so they do not depend on it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass

from tinypipe.core.errors import UserError

GZIP_LEVEL = 9


@dataclass(frozen=True)
class Member:
    """One file of an archive or bundle: its path (relative, `/`-separated) and its bytes."""

    path: str
    data: bytes
    executable: bool = False


def release_epoch(environ: dict[str, str] | None = None) -> int:
    """The timestamp every archive entry carries: `SOURCE_DATE_EPOCH` (reproducible-builds.org) or 0."""
    raw = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise UserError(f"SOURCE_DATE_EPOCH={raw!r} is not a whole number of seconds since 1970",
                        "set it to e.g. `$(git log -1 --format=%ct)`, or unset it (the archives then say 1970)")
    return int(raw)


def _directories(paths: list[str]) -> list[str]:
    """Every directory that holds one of `paths`, parents first."""
    found = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            found.add("/".join(parts[:depth]))
    return sorted(found)


def _entry(name: str, epoch: int, mode: int, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mtime = epoch
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tar_gz(members: list[Member], epoch: int) -> bytes:
    """A gzip-compressed tar of `members` (their directories included), byte-identical for the same input."""
    paths = [m.path for m in members]
    if len(set(paths)) != len(paths):
        raise AssertionError(f"an archive lists a path twice: {sorted(p for p in paths if paths.count(p) > 1)}")
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.GNU_FORMAT) as tar:
        entries = [(d + "/", None) for d in _directories(paths)] + [(m.path, m) for m in members]
        for name, member in sorted(entries, key=lambda e: e[0].rstrip("/")):  # a directory before its files
            if member is None:
                tar.addfile(_entry(name, epoch, 0o755, tarfile.DIRTYPE))
            else:
                mode = 0o755 if member.executable else 0o644
                tar.addfile(_entry(name, epoch, mode, tarfile.REGTYPE, len(member.data)), io.BytesIO(member.data))
    compressed = io.BytesIO()
    # filename="" and mtime=0: the gzip header names no file and carries no time
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=GZIP_LEVEL, mtime=0) as gz:
        gz.write(tar_bytes.getvalue())
    return compressed.getvalue()


def sha256sums(members: list[Member]) -> bytes:
    """`sha256sum`'s format (`<hex>  <path>`), sorted by path: `sha256sum -c SHA256SUMS` checks the files."""
    ordered = sorted(members, key=lambda m: m.path)
    return "".join(f"{hashlib.sha256(m.data).hexdigest()}  {m.path}\n" for m in ordered).encode()
