"""The root error of the recipes package."""

from __future__ import annotations

from trex_mcp.errors import TrexError

__all__ = ["RecipeError"]


class RecipeError(TrexError):
    """A recipe or training config that cannot be used as given.

    `field` names the offending field (dotted, e.g. 'sources[1].path' or 'config.learning_rate'); the message says
    what was wrong and what to do.
    """
