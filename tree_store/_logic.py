"""Rules every backend applies the same way: validation, finishing, backpropagation, critical nodes, export.

Backends decide how to store; this module decides what is allowed and what the stored values are.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tree_store import codec
from tree_store.errors import InvalidInputError, SchemaVersionError, UpdateFinishedError
from tree_store.records import (
    TREE_STATUSES,
    Failure,
    FailureKind,
    Insight,
    Node,
    Run,
    State,
    Tree,
    TreeStatus,
    is_valid_score,
)

SCHEMA_VERSION = 1
EXPORT_FORMAT = "trex-tree"
EXPORT_VERSION = 1


def new_id() -> str:
    """A random id: uuid4 (122 random bits) as 32 hex characters. Never sequential."""
    return uuid.uuid4().hex


def json_dict(value: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """A private, canonical copy of a JSON dict (tuples -> lists). Raises InvalidInputError."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{where} must be a dict, got {type(value).__name__}")
    out: dict[str, Any] = codec.decode_json(codec.encode_json(value, where))
    return out


def opt_float(value: Any, where: str) -> float | None:
    """None or a float (NaN/inf allowed). Raises InvalidInputError for non-numbers and bools."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{where} must be a number or None, got {value!r}")
    return float(value)


def timestamp(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"now must be a finite unix time in seconds, got {value!r}")
    return float(value)


def text(value: Any, where: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{where} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidInputError(f"{where} must not be empty")
    return value


def tree_status(value: Any) -> TreeStatus:
    if value not in TREE_STATUSES:
        raise InvalidInputError(f"status must be one of {', '.join(TREE_STATUSES)}; got {value!r}")
    status: TreeStatus = value
    return status


def state_arg(value: Any) -> State:
    try:
        return State(value)
    except ValueError:
        allowed = ", ".join(s.value for s in State)
        raise InvalidInputError(f"state must be one of {allowed}; got {value!r}") from None


def finished_state(value: Any) -> State:
    state = state_arg(value)
    if not state.is_finished():
        raise InvalidInputError(
            f"finish needs COMPLETE, FAIL or PRUNED; got {state.value} (use claim for RUNNING)"
        )
    return state


def failure_arg(value: Any) -> Failure | None:
    if value is None or isinstance(value, Failure):
        return value
    raise InvalidInputError(f"failure must be a tree_store.Failure or None, got {type(value).__name__}")


def ensure_unfinished(kind: str, record_id: str, state: State, action: str) -> None:
    if state.is_finished():
        raise UpdateFinishedError(kind, record_id, state.value, action)


def finish_outcome(
    kind: str, state: State, score: float | None, failure: Failure | None
) -> tuple[State, Failure | None]:
    """The state and failure actually stored for a finish (reliability S8: NaN never completes)."""
    if state is not State.COMPLETE:
        return state, failure
    if score is not None and not math.isfinite(score):
        return State.FAIL, Failure(
            FailureKind.NAN_LOSS, f"{kind} finished COMPLETE with a non-finite score ({score})"
        )
    if score is None and kind == "node":
        return State.FAIL, Failure(
            FailureKind.CRASH, "node finished COMPLETE without a score (no run produced one)"
        )
    return state, failure


def backprop_value(visits: int, value: float, reward: float, mode: str) -> tuple[int, float]:
    visits += 1
    if mode == "mean":
        return visits, value + (reward - value) / visits
    if mode == "max":
        return visits, reward if visits == 1 else max(value, reward)
    raise InvalidInputError(f"mode must be 'mean' or 'max'; got {mode!r}")


def reward_arg(reward: Any) -> float:
    r = opt_float(reward, "reward")
    if r is None or not math.isfinite(r):
        raise InvalidInputError(f"reward must be a finite number to backpropagate; got {reward!r}")
    return r


def retry_attempt(run: Run) -> int:
    """J3: infrastructure failures (server restart, cancellation) do not use up an attempt."""
    if run.failure is not None and run.failure.kind.is_infrastructure():
        return run.attempt
    return run.attempt + 1


def gain(score: float | None, parent_score: float | None, higher_is_better: bool) -> float | None:
    """Improvement of ``score`` over ``parent_score`` in the metric's direction, or None if undefined."""
    if not (is_valid_score(score) and is_valid_score(parent_score)):
        return None
    assert score is not None and parent_score is not None
    d = score - parent_score
    return d if higher_is_better else -d


def pick_critical(
    pinned: Sequence[Node], gains: Sequence[Node], failures: Sequence[Node], k: int
) -> list[Node]:
    """Combine ranked candidate lists into at most ``k`` distinct nodes (see TreeStore.critical_nodes).

    ``gains`` best first; ``failures`` already ordered one-per-kind first, then most recent.
    """
    if k < 0:
        raise InvalidInputError(f"k must be >= 0; got {k}")
    out: list[Node] = []
    seen: set[str] = set()

    def take(nodes: Iterable[Node], limit: int) -> None:
        for n in nodes:
            if len(out) >= limit:
                return
            if n.id not in seen:
                seen.add(n.id)
                out.append(n)

    take(pinned, k)
    left = k - len(out)
    gains = [n for n in gains if n.id not in seen]
    failures = [n for n in failures if n.id not in seen]
    fail_slots = min(len(failures), left // 2 if len(gains) >= left - left // 2 else left - len(gains))
    take(gains, k - fail_slots)
    take(failures, k)
    return out


def order_failures(failures: Sequence[Node]) -> list[Node]:
    """One node per failure kind first (most recent of each), then the rest, most recent first."""
    # Newest first; a missing finish time counts as oldest (as NULL sorts last in SQL's DESC).
    recent = sorted(failures, key=lambda n: (n.finished_at is None, -(n.finished_at or 0.0), -n.number))
    first: list[Node] = []
    rest: list[Node] = []
    kinds: set[str] = set()
    for n in recent:
        kind = n.failure.kind.value if n.failure else ""
        (rest if kind in kinds else first).append(n)
        kinds.add(kind)
    return first + rest


def evidence_arg(evidence: Iterable[str]) -> list[str]:
    if isinstance(evidence, str):
        raise InvalidInputError("evidence must be a list of node ids, not a single string")
    out = list(evidence)
    for e in out:
        if not isinstance(e, str):
            raise InvalidInputError(f"evidence must hold node ids (strings); got {e!r}")
    return list(dict.fromkeys(out))


def stale_failure(seen: float | None, now: float, grace: float) -> Failure:
    age = "never" if seen is None else f"{now - seen:.1f} s ago"
    return Failure(
        FailureKind.STALE,
        f"no heartbeat within the grace period of {grace:g} s (last heartbeat: {age}); the worker is presumed dead",
        details={"last_heartbeat_at": seen, "grace_s": grace},
    )


# ---------------------------------------------------------------------- export / import


def build_export(
    tree: Tree, nodes: Sequence[Node], runs: Sequence[Run], insights: Sequence[Insight]
) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "tree": codec.tree_to_dict(tree),
        "nodes": [codec.node_to_dict(n) for n in nodes],
        "runs": [codec.run_to_dict(r) for r in runs],
        "insights": [codec.insight_to_dict(i) for i in insights],
    }


def parse_export(data: Mapping[str, Any]) -> tuple[Tree, list[Node], list[Run], list[Insight]]:
    """Validate an export and return its records, nodes by number. Raises InvalidInputError, SchemaVersionError."""
    if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
        raise InvalidInputError(
            'not a trex tree export: expected a dict with "format": "trex-tree" (made by export_tree)'
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidInputError(
            f"trex tree export has an invalid version {version!r}; expected an integer >= 1"
        )
    if version > EXPORT_VERSION:
        raise SchemaVersionError(
            f"trex tree export version {version} is newer than this tree_store supports ({EXPORT_VERSION}); "
            "upgrade trex-mcp to import it"
        )
    try:
        tree = codec.tree_from_dict(data["tree"])
        tree_status(tree.status)
        nodes = sorted((codec.node_from_dict(d) for d in data.get("nodes", [])), key=lambda n: n.number)
        runs = [codec.run_from_dict(d) for d in data.get("runs", [])]
        insights = [codec.insight_from_dict(d) for d in data.get("insights", [])]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"malformed trex tree export: {type(exc).__name__}: {exc}") from exc
    node_ids: set[str] = set()
    numbers: set[int] = set()
    roots = 0
    for n in nodes:
        if n.tree_id != tree.id:
            raise InvalidInputError(
                f"malformed trex tree export: node {n.id!r} belongs to tree {n.tree_id!r}"
            )
        if n.id in node_ids or n.number in numbers:
            raise InvalidInputError(f"malformed trex tree export: duplicate node id or number at {n.id!r}")
        if n.parent_id is None:
            roots += 1
        elif n.parent_id not in node_ids:
            raise InvalidInputError(
                f"malformed trex tree export: node {n.id!r} has parent {n.parent_id!r} missing or numbered later"
            )
        node_ids.add(n.id)
        numbers.add(n.number)
    if roots > 1:
        raise InvalidInputError("malformed trex tree export: more than one root node")
    run_ids: set[str] = set()
    for r in runs:
        if r.node_id not in node_ids or r.tree_id != tree.id or r.id in run_ids:
            raise InvalidInputError(
                f"malformed trex tree export: run {r.id!r} has an unknown node or duplicate id"
            )
        run_ids.add(r.id)
    for i in insights:
        if i.tree_id != tree.id or any(e not in node_ids for e in i.evidence):
            raise InvalidInputError(f"malformed trex tree export: insight {i.id!r} cites an unknown node")
    return tree, nodes, runs, insights
