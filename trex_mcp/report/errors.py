"""The root of the report package's expected errors."""

from __future__ import annotations

from trex_mcp.errors import TrexError

__all__ = ["ReportError"]


class ReportError(TrexError):
    """A report could not be built: not a trex-tree export, an unknown tree, an unwritable output path."""
