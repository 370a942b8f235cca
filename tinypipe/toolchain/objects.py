"""A ccache-style object cache in the user-level cache: C and C++ objects keyed by compiler, flags and source
bytes, compiled in parallel, archived deterministically, pruned by `tinypipe gc --cache`.

A hit also needs every header the last compile read (from its `-MD` list) to be unchanged, so editing one source
recompiles that source, and editing a header recompiles exactly its includers. Which sources and flags make a
build is the caller's (engines/tflm knows TFLM's); this module only compiles. Each entry's last use is its
object's mtime, which `prune` reads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tinypipe.core import jobserver, proc
from tinypipe.core.hashing import sha256_file, sha256_json
from tinypipe.core.paths import user_cache_dir
from tinypipe.toolchain import tools

DIRECTORY = "tflm-objects"  # its name in the user-level cache (the TFLM library is its first user)


def object_cache_dir(cache: Path | None = None) -> Path:
    """The objects' directory inside the user-level cache `cache` (default: this user's)."""
    return (cache or user_cache_dir()) / DIRECTORY


@dataclass
class CompileStats:
    compiled: int = 0
    reused: int = 0


class ObjectCache:
    """Objects keyed by (compiler, flags, source bytes); a hit also needs the recorded headers unchanged."""

    def __init__(self, root: Path, cache_dir: Path | None = None):
        self.root = root
        self.dir = cache_dir or object_cache_dir()
        self._header_hashes: dict[str, str | None] = {}
        self._guard = threading.Lock()

    def _header_hash(self, rel: str) -> str | None:
        with self._guard:
            if rel in self._header_hashes:
                return self._header_hashes[rel]
        path = self.root / rel
        digest = sha256_file(path) if path.is_file() else None
        with self._guard:
            self._header_hashes[rel] = digest
        return digest

    def _entry(self, language: str, rel: str, flags: list[str]) -> Path:
        key = sha256_json({"compiler": tools.version(_compiler(language)), "language": language,
                           "flags": flags, "source": rel, "sha256": sha256_file(self.root / rel)})
        return self.dir / key[:2] / key

    def lookup(self, entry: Path) -> Path | None:
        if not entry.is_dir():
            return None
        for manifest in sorted(entry.glob("*.json")):
            try:
                headers = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            if all(self._header_hash(h) == digest for h, digest in headers.items()):
                obj = manifest.with_suffix(".o")
                if obj.is_file():
                    try:
                        os.utime(obj)  # last use, for `tinypipe gc --cache`
                    except OSError:
                        pass
                    return obj
        return None

    def cached(self, rel: str, flags: list[str]) -> Path | None:
        """The object of `rel` compiled with `flags`, if the cache holds a current one."""
        return self.lookup(self._entry(_language(rel), rel, flags))

    def compile(self, rel: str, flags: list[str]) -> tuple[Path, bool]:
        """(object path, whether it was compiled now). `rel` is relative to the tree root."""
        language = _language(rel)
        entry = self._entry(language, rel, flags)
        hit = self.lookup(entry)
        if hit is not None:
            return hit, False
        entry.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=entry, prefix=".tmp-") as tmp:
            obj, deps = Path(tmp) / "out.o", Path(tmp) / "out.d"
            # cwd = the tree and a relative source path: __FILE__ strings, and so the objects, do not depend
            # on where the tree lives
            proc.run([tools.find(_compiler(language)), *flags, "-MD", "-MF", deps, "-c", rel, "-o", obj],
                     cwd=self.root)
            headers = {h: self._header_hash(h) for h in _tree_headers(deps.read_text(), rel)}
            name = sha256_json(headers)[:16]
            os.replace(obj, entry / f"{name}.o")  # the object first: a manifest never points at nothing
            manifest_tmp = Path(tmp) / "manifest.json"
            manifest_tmp.write_text(json.dumps(headers, sort_keys=True))
            os.replace(manifest_tmp, entry / f"{name}.json")
        return entry / f"{name}.o", True


def _language(rel: str) -> str:
    return "c" if rel.endswith(".c") else "c++"


def _compiler(language: str) -> str:
    return tools.GXX if language == "c++" else tools.GCC


def _tree_headers(depfile: str, source: str) -> list[str]:
    """The headers from a make-style `-MD` file that live in the tree (relative paths; system ones are covered
    by the compiler version)."""
    body = depfile.replace("\\\n", " ").split(":", 1)[1] if ":" in depfile else ""
    return sorted({p for p in body.split() if not os.path.isabs(p) and p != source})


def compile_sources(root: Path, sources: list[str], flags: dict[str, list[str]], *,
                    jobs: int | None = None, progress: Callable[[int, int], None] | None = None,
                    cache: ObjectCache | None = None) -> tuple[list[tuple[str, Path]], CompileStats]:
    """Compile `sources` (those the cache does not hold) in parallel, one compiler per job slot, returning
    (source, object) in source order.

    The slots come from the jobserver of the run (`core.jobserver`): the first compiler runs on the stage's own
    slot, each further one on a token, so `-j` bounds the compilers of every stage together. Outside a run,
    `jobs` slots (default: one per CPU)."""
    cache = cache or ObjectCache(root)
    objects = {rel: cache.cached(rel, flags[_language(rel)]) for rel in sources}
    missing = [rel for rel, obj in objects.items() if obj is None]
    stats = CompileStats(reused=len(sources) - len(missing))
    total = len(sources)
    if progress:
        progress(stats.reused, total)

    def compiled(rel: str, result: tuple[Path, bool]) -> None:
        objects[rel] = result[0]
        if result[1]:
            stats.compiled += 1
        else:  # another process compiled it meanwhile
            stats.reused += 1
        if progress:
            progress(stats.compiled + stats.reused, total)

    jobserver.run_with_slots(lambda rel: cache.compile(rel, flags[_language(rel)]), missing,
                             fallback_jobs=jobs, on_done=compiled)
    return [(rel, objects[rel]) for rel in sources], stats


def archive(objects: list[tuple[str, Path]], out: Path) -> None:
    """A deterministic static library (`ar rcsD`). Members are named after their source path, since several
    sources share a file name (kernel_util.cc, tensor_utils.cc, …) and `ar r` would replace one with the other."""
    with tempfile.TemporaryDirectory() as tmp:
        members = []
        for rel, obj in objects:
            member = Path(tmp) / (rel.replace("/", "_").rsplit(".", 1)[0] + ".o")
            shutil.copyfile(obj, member)
            members.append(member.name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        proc.run([tools.find(tools.AR), "rcsD", out.resolve(), *members], cwd=tmp)


@dataclass(frozen=True)
class Pruned:
    name: str  # the entry's key, shortened
    idle_days: float
    bytes: int


def prune(days: float, dry_run: bool = False, *, cache: Path | None = None, now: float | None = None) -> list[Pruned]:
    """Delete (or with `dry_run` only list) the objects unused for more than `days` days, in the user-level cache
    `cache` (default: this user's). Entries being written (`.tmp-*` of live processes) are never touched."""
    now = time.time() if now is None else now
    cutoff = now - days * 86_400
    directory = object_cache_dir(cache)
    pruned = []
    for obj in sorted(directory.glob("*/*/*.o")) if directory.is_dir() else []:
        used = obj.stat().st_mtime
        if used >= cutoff:
            continue
        manifest = obj.with_suffix(".json")
        pruned.append(Pruned(obj.parent.name[:16], (now - used) / 86_400,
                             obj.stat().st_size + (manifest.stat().st_size if manifest.is_file() else 0)))
        if not dry_run:
            manifest.unlink(missing_ok=True)  # the manifest first: it must never point at nothing
            obj.unlink(missing_ok=True)
            if not any(obj.parent.iterdir()):
                shutil.rmtree(obj.parent, ignore_errors=True)
    return pruned
