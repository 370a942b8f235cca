"""One look at the machine per graph: while a snapshot is open, a memoized question (a source tree's hash, a
tool's version) is answered once, however many matrix cells ask it.

Building the graph of a 1,000-stage sweep asks the same questions for every cell; outside a snapshot (a stage
running, a test editing the template between two runs) every call asks afresh, as before.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, TypeVar

Fn = TypeVar("Fn", bound=Callable[..., Any])

_answers: dict[tuple, Any] | None = None  # the open snapshot's answers, or None outside one


@contextlib.contextmanager
def snapshot() -> Iterator[None]:
    """Memoize `@per_snapshot` functions until the outermost snapshot closes."""
    global _answers
    outer = _answers
    if outer is None:
        _answers = {}
    try:
        yield
    finally:
        _answers = outer


def per_snapshot(fn: Fn) -> Fn:
    """Answer `fn(*args)` (hashable positional arguments) once per snapshot."""

    @functools.wraps(fn)
    def memoized(*args):
        if _answers is None:
            return fn(*args)
        key = (fn, args)
        if key not in _answers:
            _answers[key] = fn(*args)
        return _answers[key]

    return memoized  # type: ignore[return-value]
