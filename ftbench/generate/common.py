"""Shared pieces of the mini task generators.

What it guarantees: output bytes depend only on the seeds. The random source uses nothing but
`random.Random.random()` (stable across Python versions), rows are written as one JSON object per line with keys in
insertion order, and `manifest.json` is written with sorted keys.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "GeneratedTask",
    "Rng",
    "encode_json",
    "encode_jsonl",
    "make_names",
    "word_distance",
]

T = TypeVar("T")

_SYLLABLES = ["ka", "lo", "mir", "zen", "tor", "vex", "bri", "sol", "dan", "qui", "rel", "pho", "mu", "tas",
              "gen", "ri", "bo", "nel", "sar", "fin"]


class Rng:
    """A seeded random source whose draws are all built on `random.Random.random()`."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)  # noqa: S311 - synthetic data, not security

    def random(self) -> float:
        return self._r.random()

    def below(self, n: int) -> int:
        """An int in [0, n)."""
        return min(int(self._r.random() * n), n - 1)

    def chance(self, p: float) -> bool:
        return self._r.random() < p

    def choice(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def shuffle(self, items: list[T]) -> None:
        """Fisher-Yates, in place."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        pool = list(items)
        self.shuffle(pool)
        return pool[:k]


def make_names(seed: int) -> list[str]:
    """Every three-syllable made-up name (8,000), in a seeded order. Names make rows distinguishable, so a planted
    near-copy of an evaluation item can be told apart from a row that is merely similar."""
    names = [a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in _SYLLABLES if len({a, b, c}) == 3]
    Rng(seed).shuffle(names)
    return names


def word_distance(a: str, b: str) -> int:
    """Word-level edit distance (insertions, deletions, substitutions)."""
    x, y = a.split(), b.split()
    prev = list(range(len(y) + 1))
    for i, wx in enumerate(x, 1):
        cur = [i]
        for j, wy in enumerate(y, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (wx != wy)))
        prev = cur
    return prev[-1]


def encode_jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def encode_json(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


@dataclass
class GeneratedTask:
    """The files of one mini task: file name -> rows, plus a manifest of facts the tests check."""

    name: str
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    def render(self) -> dict[str, bytes]:
        """File name -> exact bytes, including manifest.json."""
        out = {name: encode_jsonl(rows) for name, rows in self.files.items()}
        out["manifest.json"] = encode_json(self.manifest)
        return out
