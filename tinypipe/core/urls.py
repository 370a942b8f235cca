"""URLs that may carry a secret: found, so project.yaml refuses them, and hidden whenever a URL is printed."""

from __future__ import annotations

import re

_PASSWORD_IN_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:]*):[^/@]*@")


def password_in_url(url: str) -> bool:
    """True for `scheme://user:password@host/...`."""
    return _PASSWORD_IN_URL.match(url) is not None


def redact(url: str) -> str:
    """The URL as it may be printed: a password in it replaced by `***`."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
