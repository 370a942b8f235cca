"""Error types: a UserError is the user's to fix (exit 2) and carries a hint; anything else is our bug (exit 3)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing tool. The message says what is wrong and where; the hint says what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class CheckFailed(Exception):
    """A budget or a verification (bit-exactness, accuracy) did not hold: exit 1."""

    exit_code = 1


class StageFailed(Exception):
    """A stage raised; carries the stage and variant so the report can name the failing cell."""

    def __init__(self, stage: str, variant: str, cause: BaseException):
        super().__init__(f"stage {stage} ({variant}) failed: {cause}")
        self.stage = stage
        self.variant = variant
        self.cause = cause


class StageCrashed(Exception):
    """A stage raised something that is neither a UserError nor a CheckFailed: a tinypipe bug (exit 3)."""


# --- the exit-code map: every command ends through `exit_code` --------------------------------------------

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a budget or a check (bit-exactness, accuracy, a stale lock) failed
EXIT_USER_ERROR = 2  # a mistake in the input, or a missing tool
EXIT_BUG = 3  # a bug in tinypipe
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), or SIGTERM/SIGHUP
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (`tinypipe status | head -1`), as SIGPIPE would


def exit_code(exc: BaseException | None) -> int:
    """The exit code an outcome maps to: None is success; anything not named here is a tinypipe bug."""
    if exc is None:
        return EXIT_OK
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    if isinstance(exc, CheckFailed):
        return EXIT_CHECK_FAILED
    if isinstance(exc, UserError):
        return EXIT_USER_ERROR
    return EXIT_BUG
