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
