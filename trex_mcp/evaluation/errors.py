"""The root error of `trex_mcp.evaluation`.

Every expected evaluation failure (a missing split, a label outside the declared choices, an empty evaluation
set, an adapter that does not fit its base model, a test-split request without a permit) raises
`EvaluationError`. When it is raised nothing has been scored or cached.
"""

from __future__ import annotations

from trex_mcp.errors import TrexError

__all__ = ["EvaluationError"]


class EvaluationError(TrexError):
    """An evaluation that cannot be run or scored; the message says what was wrong and what to do."""
