"""Where tinypipe keeps things that outlive one project: the user-level cache."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """Artifacts shared between projects (sysroots, libraries): $TINYPIPE_CACHE, else $XDG_CACHE_HOME/tinypipe."""
    explicit = os.environ.get("TINYPIPE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinypipe"
