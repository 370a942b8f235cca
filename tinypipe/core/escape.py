"""One escaping function per language a user's string can reach: Rust, C, TOML. Generated code never pastes a
string from project.yaml (or a model file) unescaped; names that must be identifiers are validated instead."""

from __future__ import annotations

import re

CRATE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")  # what crates.io accepts for a package name


def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped; other text kept (UTF-8)."""
    out = []
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def rust_string(value: str) -> str:
    """A Rust string literal (non-ASCII as `\\u{…}`: the literal means exactly `value`)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\t\r\0":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}[ch])
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\u{{{ord(ch):x}}}")
    return '"' + "".join(out) + '"'


def c_string(value: str) -> str:
    """A C string literal of `value`'s UTF-8 bytes (octal escapes outside printable ASCII; no trigraphs)."""
    out = []
    for byte in value.encode("utf-8", errors="surrogatepass"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F and ch != "?":
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def comment_text(value: str) -> str:
    """Text safe inside a `//` or `/* */` comment of Rust or C: one line, no comment terminator."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", value).replace("*/", "* /")
