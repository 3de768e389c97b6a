"""Text normalisation shared by deduplication and the contamination check.

Normalised text is lower-cased, NFKC-folded, and reduced to its word characters, so punctuation, case and
spacing differences never hide a duplicate.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["row_text", "words"]

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The normalised words of `text`."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _WORD.findall(text.lower())


def row_text(row: dict[str, Any]) -> str:
    """All text of a TRL-format row (prompt, completion, chosen, rejected, message contents), joined by newlines."""
    parts: list[str] = []
    for key in ("prompt", "completion", "chosen", "rejected"):
        value = row.get(key)
        if isinstance(value, str):
            parts.append(value)
    messages = row.get("messages")
    if isinstance(messages, list):
        parts.extend(str(m.get("content", "")) for m in messages if isinstance(m, dict))
    if not parts:  # not a TRL row: every string value
        parts = [v for v in row.values() if isinstance(v, str)]
    return "\n".join(parts)
