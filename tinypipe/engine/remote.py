"""A remote cache shared by a team (or by the machines of one run): store entries by key, through fsspec.

The remote holds `<url>/<key>/`, the same files as a local entry, `meta.json` included. `meta.json` is the
marker: it is written last, and an entry without one does not exist. Nothing is trusted by name: `pull`
downloads an entry into a directory and checks that its files hash to the output its meta records (and, when
the caller knows it from the lock, that this output is the expected one); a corrupt or tampered entry is
ignored with a warning, so the stage is rebuilt locally and pushed over it.

`push` never lets a reader see half an entry. Where the file system renames (a local or network path,
`sftp://`), the entry is uploaded under a temporary name and renamed into place. Where it cannot (`s3://`),
the old marker is deleted first, the files are written, then the marker; a reader that catches the entry
between those steps finds either no marker or files that do not hash to it, and rebuilds.

Failures of the remote itself (network down, refused login, a missing bucket) warn once and turn the remote
off for the rest of the run: a build never fails because its cache is away. fsspec and its protocol packages
(sshfs, s3fs) are imported only when a remote is used.

A pull that verifies rewrites the entry's `.used` file (not listed in meta.json, so never downloaded): its
modification time is the entry's last use, which `tinypipe gc --remote` (`remote_gc.py`) reads, with `scan` and
`delete` here, to prune what nobody has pulled or pushed for a while.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from tinypipe.core.fs import read_json
from tinypipe.core.hashing import sha256_tree
from tinypipe.core.urls import redact
from tinypipe.engine.store import LOG, META

ENV_VAR = "TINYPIPE_REMOTE_CACHE"
READ_ONLY_PROTOCOLS = ("http", "https")
RENAMING_PROTOCOLS = ("file", "local", "sftp", "ssh")  # others (s3, gcs, ...) get the marker-last upload
TMP_PREFIX = ".tmp-"
USED = ".used"  # rewritten by every verified pull: its mtime is the entry's last use
KEY = re.compile(r"^[0-9a-f]{64}$")  # an entry's directory name; nothing else under the URL is ever deleted


@dataclass
class RemoteItem:
    """A directory under the remote's URL that `gc --remote` may delete: an entry (`complete`: its marker exists)
    or an upload's temporary. `last_used`: seconds since the epoch of its newest marker, `.used` or file."""

    name: str
    complete: bool
    temporary: bool
    bytes: int
    last_used: float


def choose_url(flag: str | None, env: dict[str, str], config: dict[str, Any], project_dir: Path) -> str | None:
    """The remote cache's URL: `--remote-cache` over $TINYPIPE_REMOTE_CACHE over `cache.remote` in project.yaml
    (a plain path there is relative to project.yaml's directory). An empty flag or variable turns a configured
    remote off for this run."""
    for value in (flag, env.get(ENV_VAR)):
        if value is not None:
            return value.strip() or None
    configured = (config.get("cache") or {}).get("remote") or None
    if configured is not None and "://" not in configured:
        configured = str(Path(project_dir) / Path(configured).expanduser())
    return configured


class RemoteError(Exception):
    """The remote did not answer as a file system should (unreachable, refused, misconfigured)."""


class RemoteCache:
    """Store entries on an fsspec URL. `warn` reports problems; `push=False` (or an http(s) URL) only reads."""

    def __init__(self, url: str, push: bool = True, warn: Callable[[str], None] | None = None):
        self.url = url.rstrip("/")
        self.name = redact(self.url)
        protocol = self.url.split("://", 1)[0].lower() if "://" in self.url else "file"
        self.protocol = protocol
        self.push_enabled = push and protocol not in READ_ONLY_PROTOCOLS
        self.renames = protocol in RENAMING_PROTOCOLS
        self.warn = warn or _warn_stderr
        self.offline = False  # set on the first failure of the remote itself: the run goes on locally
        self._untouchable = False  # set when recording a use (`.used`) failed once: not tried again
        self._fs: Any = None
        self._root = ""

    # --- the file system ----------------------------------------------------------------------------------------

    def _connect(self):
        if self._fs is None:
            try:
                from fsspec.core import url_to_fs
            except ImportError as exc:
                raise RemoteError(f"fsspec is not installed ({exc}); pip install 'tinypipe[remote]'") from None
            try:
                self._fs, self._root = url_to_fs(self.url)
            except ImportError as exc:  # fsspec names the package the protocol needs (sshfs, s3fs, aiohttp)
                raise RemoteError(str(exc)) from None
            self._root = self._root.rstrip("/")
        return self._fs

    def _path(self, *parts: str) -> str:
        return "/".join((self._root, *parts)) if self._root else "/".join(parts)

    def _went_away(self, what: str, exc: BaseException) -> None:
        self.offline = True
        detail = str(exc).strip() or type(exc).__name__
        self.warn(f"remote cache {self.name}: could not {what} ({detail}); continuing with the local store only "
                  "for the rest of this run")

    # --- reading ------------------------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """Whether the remote has an entry for `key` (its marker exists; its files are not checked)."""
        if self.offline:
            return False
        try:
            return bool(self._connect().exists(self._path(key, META)))
        except Exception as exc:  # noqa: BLE001 - any failure of the remote is a warning, never the run's end
            self._went_away(f"look up entry {key[:12]}…", exc)
            return False

    def meta(self, key: str) -> dict[str, Any] | None:
        """The entry's meta.json as the remote holds it, unverified (for `status`, which downloads nothing else),
        or None."""
        if not self.has(key):
            return None
        try:
            meta = json.loads(self._fs.cat(self._path(key, META)))
        except FileNotFoundError:
            return None
        except ValueError:  # not JSON: a run would ignore this entry too
            return None
        except Exception as exc:  # noqa: BLE001
            self._went_away(f"download entry {key[:12]}…", exc)
            return None
        return meta if isinstance(meta, dict) and meta.get("key") == key and isinstance(meta.get("output"), str) \
            else None

    def pull(self, key: str, dest: Path, expected_output: str | None = None) -> bool:
        """Download the entry `key` into the empty directory `dest` and verify it; True when `dest` now holds a
        whole entry whose files hash to its recorded output (and to `expected_output`, when given). False when
        the remote has no such entry, the entry is corrupt (a warning says so) or the remote failed; `dest` may
        then hold partial files, for the caller to discard."""
        if not self.has(key):
            return False
        fs, dest = self._fs, Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        try:
            fs.get(self._path(key, META), str(dest / META))
        except FileNotFoundError:  # pushed over between our look-up and now: a miss
            return False
        except Exception as exc:  # noqa: BLE001
            self._went_away(f"download entry {key[:12]}…", exc)
            return False
        problem, meta = None, None
        try:
            meta = read_json(dest / META)
            if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get("output"), str) \
                    or not isinstance(meta.get("files"), dict):
                raise ValueError("it does not describe this entry")
            files = [_safe_relative(rel) for rel in meta["files"]]
        except (OSError, ValueError) as exc:
            problem = f"its meta.json is unreadable ({exc})"
        if problem is None and files:
            for rel in files:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get([self._path(key, rel) for rel in files], [str(dest / rel) for rel in files])
            except FileNotFoundError as exc:
                problem = f"a file it lists is missing ({exc})"
            except Exception as exc:  # noqa: BLE001
                self._went_away(f"download entry {key[:12]}…", exc)
                return False
        if problem is None:
            output = sha256_tree(dest, exclude=frozenset({META, LOG}))
            if output != meta["output"]:
                problem = "its files do not match the hash its meta.json records"
            elif expected_output is not None and output != expected_output:
                problem = f"its output {output[:12]}… is not the {expected_output[:12]}… tinypipe.lock records"
        if problem is not None:
            stage = meta.get("stage") if isinstance(meta, dict) else None
            what = f"{stage} entry" if isinstance(stage, str) else "entry"
            self.warn(f"remote cache {self.name}: {what} {key[:12]}… ignored, {problem}; building it locally"
                      + (" and pushing it over" if self.push_enabled else ""))
            return False
        self._touch(key)
        return True

    def _touch(self, key: str) -> None:
        """Record a use of the entry (its `.used` file rewritten) for `gc --remote`; a remote that takes no
        writes from us (read-only credentials, `push: false`) only misses that record."""
        if not self.push_enabled or self._untouchable:
            return
        try:
            self._fs.pipe(self._path(key, USED), f"{time.time():.0f}\n".encode())
        except Exception as exc:  # noqa: BLE001 - the pull succeeded; a use not recorded is not worth failing for
            self._untouchable = True
            self.warn(f"remote cache {self.name}: could not record the use of entry {key[:12]}… ({exc}); "
                      "`tinypipe gc --remote` will see such entries as unused since their push")

    # --- writing ------------------------------------------------------------------------------------------------

    def push(self, key: str, entry_dir: Path) -> bool:
        """Upload the local entry `entry_dir` as `key`, replacing what the remote holds there, so that a reader
        sees the old entry, no entry, or the whole new one. True when it was pushed."""
        if not self.push_enabled or self.offline:
            return False
        entry_dir = Path(entry_dir)
        files = sorted(rel for rel in (p.relative_to(entry_dir).as_posix() for p in entry_dir.rglob("*")
                                       if p.is_file()) if rel != META)
        try:
            fs = self._connect()
            if self.renames:
                self._push_renaming(fs, key, entry_dir, files)
            else:
                self._push_marker_last(fs, key, entry_dir, files)
        except Exception as exc:  # noqa: BLE001
            self._went_away(f"push entry {key[:12]}…", exc)
            return False
        return True

    def _put(self, fs, entry_dir: Path, files: list[str], target: str) -> None:
        if files:
            if self.renames:  # a file system with real directories needs them before the files
                for parent in sorted({str(Path(rel).parent) for rel in files} - {"."}):
                    fs.makedirs(f"{target}/{parent}", exist_ok=True)
            fs.put([str(entry_dir / rel) for rel in files], [f"{target}/{rel}" for rel in files])
        fs.put(str(entry_dir / META), f"{target}/{META}")  # the marker, last

    def _push_renaming(self, fs, key: str, entry_dir: Path, files: list[str]) -> None:
        if self._root:
            fs.makedirs(self._root, exist_ok=True)
        tmp = self._path(f"{TMP_PREFIX}{uuid.uuid4().hex}")
        fs.makedirs(tmp, exist_ok=True)
        try:
            self._put(fs, entry_dir, files, tmp)
            final = self._path(key)
            if fs.exists(final):  # a corrupt entry we are replacing: moved aside first (a rename wants no target)
                old = self._path(f"{TMP_PREFIX}old-{uuid.uuid4().hex}")
                fs.mv(final, old, recursive=True)
                fs.rm(old, recursive=True)
            try:
                fs.mv(tmp, final, recursive=True)
            except Exception:
                if not fs.exists(self._path(key, META)):
                    raise
                fs.rm(tmp, recursive=True)  # another machine pushed the same key meanwhile: its entry stands
        except BaseException:
            try:
                fs.rm(tmp, recursive=True)
            except Exception:  # noqa: BLE001 - the upload's own error is the one to report
                pass
            raise

    def _push_marker_last(self, fs, key: str, entry_dir: Path, files: list[str]) -> None:
        marker = self._path(key, META)
        if fs.exists(marker):  # invalidate the old entry before its files change under a reader
            fs.rm(marker)
        self._put(fs, entry_dir, files, self._path(key))

    # --- pruning (`tinypipe gc --remote`) ------------------------------------------------------------------------

    def scan(self) -> list[RemoteItem]:
        """Every entry and upload temporary under the URL, with its size and last use; other names are left out
        (a URL pointed at the wrong directory lists nothing to delete). Raises RemoteError when the remote fails."""
        try:
            fs = self._connect()
            try:
                found = fs.find(self._root, withdirs=False, detail=True)
            except FileNotFoundError:
                found = {}
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise RemoteError(str(exc).strip() or type(exc).__name__) from None
        root, now = self._root.strip("/"), time.time()
        items: dict[str, RemoteItem] = {}
        for path, info in found.items():
            path = path.strip("/")
            if root and not path.startswith(f"{root}/"):
                continue
            name, _, inside = (path[len(root) + 1:] if root else path).partition("/")
            temporary = name.startswith(TMP_PREFIX)
            if not inside or not (temporary or KEY.match(name)):
                continue
            item = items.setdefault(name, RemoteItem(name, False, temporary, 0, 0.0))
            item.bytes += int(info.get("size") or 0)
            item.complete = item.complete or inside == META
            item.last_used = max(item.last_used, _mtime(info) or now)  # no time given: as if used now (kept)
        return sorted(items.values(), key=lambda item: item.name)

    def delete(self, name: str) -> None:
        """Remove one entry or temporary (`scan`'s names) so that a reader never finds half of it: renamed aside
        and removed where the file system renames, else its marker first. Raises RemoteError."""
        if not (KEY.match(name) or name.startswith(TMP_PREFIX)) or "/" in name:
            raise ValueError(f"not an entry of the remote cache: {name!r}")
        try:
            fs = self._connect()
            target = self._path(name)
            if self.renames and KEY.match(name):
                aside = self._path(f"{TMP_PREFIX}gc-{uuid.uuid4().hex}")
                fs.mv(target, aside, recursive=True)
                target = aside
            elif KEY.match(name) and fs.exists(self._path(name, META)):
                fs.rm(self._path(name, META))
            fs.rm(target, recursive=True)
        except FileNotFoundError:
            return  # gone already (another gc, or a push that replaced it)
        except Exception as exc:  # noqa: BLE001
            raise RemoteError(str(exc).strip() or type(exc).__name__) from None

    def stage_of(self, key: str) -> str | None:
        """The stage an entry's marker names (for gc's listing), or None."""
        try:
            meta = json.loads(self._connect().cat(self._path(key, META)))
        except Exception:  # noqa: BLE001 - a listing detail, never an error
            return None
        return meta.get("stage") if isinstance(meta, dict) and isinstance(meta.get("stage"), str) else None


def _mtime(info: dict[str, Any]) -> float:
    """A listed file's modification time in seconds since the epoch, whatever the file system calls it (local:
    `mtime`; sshfs: `mtime` as a datetime; s3fs: `LastModified`); 0 when it gives none."""
    for field in ("mtime", "LastModified", "last_modified", "modified", "created"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return 0.0


def _safe_relative(rel: str) -> str:
    """A path from a remote meta.json, refused unless it stays inside the entry."""
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts or rel == META:
        raise ValueError(f"it lists a file outside the entry: {rel!r}")
    return Path(*parts).as_posix()


def _warn_stderr(message: str) -> None:
    import sys

    sys.stderr.write(f"warning: {message}\n")
