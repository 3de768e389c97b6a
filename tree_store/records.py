"""Records of the experiment tree: frozen snapshots, states, failure kinds and score comparison.

Every record a store returns is a frozen dataclass: a snapshot of the stored state at the time of the read.
Changing a snapshot's dict fields changes nothing in the store; every change goes through a store method.

Scores are compared with :func:`is_better`, which knows the metric direction and treats a missing or
non-finite (NaN, +-inf) score as the worst possible value, so such a score never wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "Failure",
    "FailureKind",
    "Insight",
    "Node",
    "Run",
    "State",
    "Tree",
    "TreeStatus",
    "is_better",
    "is_valid_score",
    "score_key",
]

TreeStatus = Literal["active", "finished", "stopped"]
TREE_STATUSES: tuple[str, ...] = ("active", "finished", "stopped")

# How much output a failure keeps (reliability T5: the last 50 lines or fewer).
LOG_TAIL_LINES = 50
LOG_TAIL_CHARS = 8_000


class State(StrEnum):
    """Lifecycle of a node or run: WAITING -> RUNNING -> COMPLETE | FAIL | PRUNED.

    WAITING -> RUNNING is a compare-and-set claim. Any unfinished state may go straight to a finished
    one (a run refused at preflight fails while WAITING; a cancelled one is PRUNED).
    """

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"
    PRUNED = "PRUNED"

    def is_finished(self) -> bool:
        """True for COMPLETE, FAIL and PRUNED: records in these states are immutable."""
        return self in (State.COMPLETE, State.FAIL, State.PRUNED)


class FailureKind(StrEnum):
    """Why a node or run failed (reliability T5)."""

    OOM = "oom"
    NAN_LOSS = "nan_loss"
    TIMEOUT = "timeout"
    CRASH = "crash"
    STALE = "stale"
    SERVER_RESTART = "server_restart"
    INVALID_CONFIG = "invalid_config"
    CANCELLED = "cancelled"

    def is_infrastructure(self) -> bool:
        """True when the failure is the infrastructure's fault, not the run's.

        Such failures do not count against a retry budget (reliability J3).
        """
        return self in (FailureKind.SERVER_RESTART, FailureKind.CANCELLED)


def _tail(text: str) -> str:
    lines = text.splitlines()
    kept = "\n".join(lines[-LOG_TAIL_LINES:])
    return kept[-LOG_TAIL_CHARS:]


@dataclass(frozen=True)
class Failure:
    """What went wrong: a kind, a human message, the last lines of output and structured details.

    ``kind`` accepts a :class:`FailureKind` or its string value. ``log_tail`` is trimmed to the last
    50 lines (and at most 8,000 characters). ``details`` holds structured facts, e.g. the batch size at
    an OOM.
    """

    kind: FailureKind
    message: str
    log_tail: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, FailureKind):
            try:
                kind = FailureKind(self.kind)
            except ValueError:
                allowed = ", ".join(k.value for k in FailureKind)
                raise ValueError(f"unknown failure kind {self.kind!r}; use one of: {allowed}") from None
            object.__setattr__(self, "kind", kind)
        if not isinstance(self.message, str):
            raise TypeError(f"failure message must be a string, got {type(self.message).__name__}")
        if not isinstance(self.log_tail, str):
            raise TypeError(f"failure log_tail must be a string, got {type(self.log_tail).__name__}")
        trimmed = _tail(self.log_tail)
        if trimmed != self.log_tail:
            object.__setattr__(self, "log_tail", trimmed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the details are stored as given)."""
        return {
            "kind": self.kind.value,
            "message": self.message,
            "log_tail": self.log_tail,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=FailureKind(data["kind"]),
            message=str(data.get("message", "")),
            log_tail=str(data.get("log_tail", "")),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Tree:
    """One search on one task: the task snapshot, metric direction, base/reference scores, budget."""

    id: str
    name: str
    task_name: str
    task_snapshot: dict[str, Any]
    higher_is_better: bool
    base_score: float | None
    reference_score: float | None
    budget: dict[str, Any]
    status: TreeStatus
    meta: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Node:
    """One experiment round: a plan with 3-5 runs, its score, reward and tree-policy statistics.

    ``number`` is a per-tree counter for people (the root is 0); ``id`` is random. ``score`` is the best
    run's validation score, ``reward`` its normalised gain. ``visits`` and ``value`` belong to the tree
    policy and keep changing after the node is finished, as do the human flags ``pinned``, ``vetoed``
    and ``note``.
    """

    id: str
    tree_id: str
    parent_id: str | None
    depth: int
    number: int
    state: State
    strategy_kind: str
    plan: dict[str, Any]
    diagnosis: dict[str, Any] | None
    score: float | None
    reward: float | None
    visits: int
    value: float
    cost: dict[str, Any]
    pinned: bool
    vetoed: bool
    note: str
    failure: Failure | None
    meta: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def is_root(self) -> bool:
        return self.parent_id is None


@dataclass(frozen=True)
class Run:
    """One variant inside a round: recipe + training config, job handle, metrics, artifacts, failure.

    ``number`` counts runs within the node (from 0). ``attempt`` starts at 1 and grows with each retry
    that counts against the retry budget; ``retry_of`` names the run this one retries.
    """

    id: str
    node_id: str
    tree_id: str
    number: int
    state: State
    recipe: dict[str, Any]
    config: dict[str, Any]
    job: dict[str, Any]
    metrics: dict[str, Any]
    score: float | None
    artifacts: dict[str, Any]
    failure: Failure | None
    cost: dict[str, Any]
    attempt: int
    retry_of: str | None
    heartbeat_at: float | None
    meta: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class Insight:
    """A distilled lesson: text, evidence (node ids), scope (e.g. "tree", "data") and effect size."""

    id: str
    tree_id: str
    text: str
    evidence: list[str]
    scope: str
    effect: float | None
    created_at: float


def is_valid_score(score: float | None) -> bool:
    """True when ``score`` is a finite number (not None, NaN or +-inf)."""
    return score is not None and not isinstance(score, bool) and math.isfinite(score)


def is_better(a: float | None, b: float | None, higher_is_better: bool) -> bool:
    """True when score ``a`` is strictly better than ``b`` in the metric's direction.

    A missing or non-finite score is the worst value: it is never better than anything, and any finite
    score is better than it. Two worst values are equal (neither is better).
    """
    a_ok, b_ok = is_valid_score(a), is_valid_score(b)
    if not a_ok:
        return False
    if not b_ok:
        return True
    assert a is not None and b is not None
    return a > b if higher_is_better else a < b


def score_key(score: float | None, higher_is_better: bool) -> tuple[int, float]:
    """A sort key that puts the best score first: ``sorted(xs, key=lambda s: score_key(s, hib))``.

    Missing and non-finite scores sort last.
    """
    if not is_valid_score(score):
        return (1, 0.0)
    assert score is not None
    return (0, -score if higher_is_better else score)
