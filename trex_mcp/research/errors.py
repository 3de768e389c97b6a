"""The one error type of `trex_mcp.research`.

Every expected failure of a paper or Hub lookup becomes a `ResearchError` whose `kind` says what happened and
whose message says what to do. Kinds that describe a transient upstream problem (`offline`, `timeout`,
`rate_limited`, `upstream`) let the cache answer with an older result marked stale instead.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from trex_mcp.errors import TrexError

__all__ = ["TRANSIENT_KINDS", "ErrorKind", "ResearchError"]

ErrorKind = Literal["bad_input", "not_found", "gated", "offline", "timeout", "rate_limited", "upstream"]

#: Failures worth answering from a stale cache entry: the question was fine, the upstream was not.
TRANSIENT_KINDS: frozenset[str] = frozenset({"offline", "timeout", "rate_limited", "upstream"})


class ResearchError(TrexError):
    """A paper or Hub lookup that could not be answered.

    `kind` is one of "bad_input", "not_found", "gated", "offline", "timeout", "rate_limited", "upstream";
    `field` names the offending input when there is one; `hint` says what to do.
    """

    def __init__(self, message: str, *, kind: ErrorKind, field: str | None = None,
                 hint: str | None = None) -> None:
        if kind not in get_args(ErrorKind):
            raise ValueError(f"unknown ResearchError kind {kind!r}")
        super().__init__(message, field=field, hint=hint)
        self.kind: ErrorKind = kind

    @property
    def transient(self) -> bool:
        """True when retrying later (or serving a cached answer) makes sense."""
        return self.kind in TRANSIENT_KINDS

    def copy(self) -> ResearchError:
        """A fresh instance with the same content (for handing one failure to several waiting callers)."""
        return ResearchError(self.message, kind=self.kind, field=self.field, hint=self.hint)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe view for tool results: kind, message, field, hint."""
        return {"kind": self.kind, "message": self.message, "field": self.field, "hint": self.hint}
