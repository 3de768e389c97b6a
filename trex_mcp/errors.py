"""The root of trex_mcp's expected errors.

An expected error is one a caller can act on (bad input, a missing file, an offline upstream). Tools turn a
`TrexError` into an `is_error` result carrying its message; anything else is logged with its traceback on the
server and reaches the client as a short generic message.
"""

from __future__ import annotations


class TrexError(Exception):
    """An expected failure with an actionable message.

    `field` names the offending input field when there is one; `hint` says what to do.
    """

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.field and self.field not in self.message:
            parts.insert(0, f"{self.field}:")
        if self.hint:
            parts.append(f"({self.hint})")
        return " ".join(parts)
