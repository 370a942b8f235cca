"""Where things are: the user-level cache, the firmware template and its kernels crate."""

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


REPO_ROOT = Path(__file__).resolve().parents[2]


def template_dir() -> Path:
    """The firmware template (a cargo workspace); $TINYPIPE_FIRMWARE_TEMPLATE overrides it."""
    return Path(os.environ.get("TINYPIPE_FIRMWARE_TEMPLATE") or REPO_ROOT / "firmware-template")


def kernels_dir() -> Path:
    """The `tinyml-kernels` crate the native engine's code calls and the firmware vendors."""
    return Path(os.environ.get("TINYPIPE_KERNELS") or template_dir() / "kernels")
