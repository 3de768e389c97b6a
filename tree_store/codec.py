"""JSON data with exact non-finite floats, and record <-> dict conversion shared by backends and export.

Strict JSON cannot hold NaN or +-inf, so they are written as ``{"$float": "nan" | "inf" | "-inf"}``.
A user dict that itself looks like such a tag (one key, ``$float`` or ``$escaped``) is wrapped as
``{"$escaped": {...}}``, so every value round-trips exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from tree_store.errors import InvalidInputError
from tree_store.records import Failure, Insight, Node, Run, State, Tree

__all__ = [
    "decode_json",
    "dumps",
    "encode_json",
    "insight_from_dict",
    "insight_to_dict",
    "loads",
    "node_from_dict",
    "node_to_dict",
    "run_from_dict",
    "run_to_dict",
    "tree_from_dict",
    "tree_to_dict",
]

_FLOAT_TAG = "$float"
_ESCAPE_TAG = "$escaped"
_TAGS = frozenset((_FLOAT_TAG, _ESCAPE_TAG))


def _encode_float(x: float) -> Any:
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return {_FLOAT_TAG: "nan"}
    return {_FLOAT_TAG: "inf" if x > 0 else "-inf"}


class _BadValue(Exception):
    """Internal: carries the problem and the path to it while unwinding the recursion."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []


def _enc(value: Any) -> Any:
    # Hot path: exact type checks first (fast), isinstance only for subclasses (StrEnum, OrderedDict, ...).
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if value - value == 0.0 else _encode_float(value)  # x - x is NaN for NaN and +-inf
    if t is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str:
                if not isinstance(k, str):
                    raise _BadValue(
                        f"dict keys must be strings, got {k!r} ({type(k).__name__}); convert keys with str()"
                    )
                k = str.__str__(k)
            try:
                out[k] = _enc(v)
            except _BadValue as exc:
                exc.path.append(f".{k}")
                raise
        if len(out) == 1 and next(iter(out)) in _TAGS:
            return {_ESCAPE_TAG: out}
        return out
    if t is list or t is tuple or isinstance(value, list | tuple):
        items: list[Any] = []
        for i, v in enumerate(value):
            try:
                items.append(_enc(v))
            except _BadValue as exc:
                exc.path.append(f"[{i}]")
                raise
        return items
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _enc(float(value))
    raise _BadValue(f"{t.__name__} is not JSON data; use str, int, float, bool, None, list or dict")


def encode_json(value: Any, where: str = "value") -> Any:
    """Turn JSON data into strict-JSON data (non-finite floats tagged; subclasses of str/int/float and
    tuples become plain str/int/float and lists). Raises InvalidInputError naming the bad field, e.g.
    ``plan.steps[2]``; ``where`` is the field's name.
    """
    try:
        return _enc(value)
    except _BadValue as exc:
        raise InvalidInputError(f"{where}{''.join(reversed(exc.path))}: {exc.problem}") from None


def decode_json(value: Any) -> Any:
    """Inverse of :func:`encode_json`."""
    if isinstance(value, dict):
        if len(value) == 1:
            key = next(iter(value))
            if key == _FLOAT_TAG:
                return float(value[key])
            if key == _ESCAPE_TAG:
                inner = value[key]
                return {k: decode_json(v) for k, v in inner.items()}
        return {k: decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_json(v) for v in value]
    return value


def dumps(value: Any, where: str = "value") -> str:
    """Encode JSON data (non-finite floats allowed) to a strict JSON string."""
    if type(value) is dict and not value:
        return "{}"
    return json.dumps(encode_json(value, where), separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`."""
    data = json.loads(text)
    # Tags are dict keys starting with "$": without the two characters '"$' there is nothing to decode.
    return decode_json(data) if '"$' in text else data


def _f(x: Any) -> Any:
    return _encode_float(x) if isinstance(x, float) else x


def _unf(x: Any) -> float | None:
    if x is None:
        return None
    if isinstance(x, dict):
        return float(x[_FLOAT_TAG])
    return float(x)


def _failure_out(f: Failure | None) -> Any:
    return None if f is None else encode_json(f.to_dict(), "failure")


def _failure_in(d: Any) -> Failure | None:
    return None if d is None else Failure.from_dict(decode_json(d))


def tree_to_dict(t: Tree) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "task_name": t.task_name,
        "task_snapshot": encode_json(t.task_snapshot),
        "higher_is_better": t.higher_is_better,
        "base_score": _f(t.base_score),
        "reference_score": _f(t.reference_score),
        "budget": encode_json(t.budget),
        "status": t.status,
        "meta": encode_json(t.meta),
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def tree_from_dict(d: Mapping[str, Any]) -> Tree:
    return Tree(
        id=str(d["id"]),
        name=str(d["name"]),
        task_name=str(d["task_name"]),
        task_snapshot=decode_json(d.get("task_snapshot") or {}),
        higher_is_better=bool(d["higher_is_better"]),
        base_score=_unf(d.get("base_score")),
        reference_score=_unf(d.get("reference_score")),
        budget=decode_json(d.get("budget") or {}),
        status=d.get("status", "active"),
        meta=decode_json(d.get("meta") or {}),
        created_at=float(d["created_at"]),
        updated_at=float(d.get("updated_at", d["created_at"])),
    )


def node_to_dict(n: Node) -> dict[str, Any]:
    return {
        "id": n.id,
        "tree_id": n.tree_id,
        "parent_id": n.parent_id,
        "depth": n.depth,
        "number": n.number,
        "state": n.state.value,
        "strategy_kind": n.strategy_kind,
        "plan": encode_json(n.plan),
        "diagnosis": None if n.diagnosis is None else encode_json(n.diagnosis),
        "score": _f(n.score),
        "reward": _f(n.reward),
        "visits": n.visits,
        "value": _f(n.value),
        "cost": encode_json(n.cost),
        "pinned": n.pinned,
        "vetoed": n.vetoed,
        "note": n.note,
        "failure": _failure_out(n.failure),
        "meta": encode_json(n.meta),
        "created_at": n.created_at,
        "started_at": n.started_at,
        "finished_at": n.finished_at,
    }


def node_from_dict(d: Mapping[str, Any]) -> Node:
    diagnosis = d.get("diagnosis")
    value = _unf(d.get("value"))
    return Node(
        id=str(d["id"]),
        tree_id=str(d["tree_id"]),
        parent_id=None if d.get("parent_id") is None else str(d["parent_id"]),
        depth=int(d["depth"]),
        number=int(d["number"]),
        state=State(d["state"]),
        strategy_kind=str(d.get("strategy_kind", "")),
        plan=decode_json(d.get("plan") or {}),
        diagnosis=None if diagnosis is None else decode_json(diagnosis),
        score=_unf(d.get("score")),
        reward=_unf(d.get("reward")),
        visits=int(d.get("visits", 0)),
        value=0.0 if value is None else value,
        cost=decode_json(d.get("cost") or {}),
        pinned=bool(d.get("pinned", False)),
        vetoed=bool(d.get("vetoed", False)),
        note=str(d.get("note") or ""),
        failure=_failure_in(d.get("failure")),
        meta=decode_json(d.get("meta") or {}),
        created_at=float(d["created_at"]),
        started_at=_unf(d.get("started_at")),
        finished_at=_unf(d.get("finished_at")),
    )


def run_to_dict(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "node_id": r.node_id,
        "tree_id": r.tree_id,
        "number": r.number,
        "state": r.state.value,
        "recipe": encode_json(r.recipe),
        "config": encode_json(r.config),
        "job": encode_json(r.job),
        "metrics": encode_json(r.metrics),
        "score": _f(r.score),
        "artifacts": encode_json(r.artifacts),
        "failure": _failure_out(r.failure),
        "cost": encode_json(r.cost),
        "attempt": r.attempt,
        "retry_of": r.retry_of,
        "heartbeat_at": r.heartbeat_at,
        "meta": encode_json(r.meta),
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
    }


def run_from_dict(d: Mapping[str, Any]) -> Run:
    return Run(
        id=str(d["id"]),
        node_id=str(d["node_id"]),
        tree_id=str(d["tree_id"]),
        number=int(d["number"]),
        state=State(d["state"]),
        recipe=decode_json(d.get("recipe") or {}),
        config=decode_json(d.get("config") or {}),
        job=decode_json(d.get("job") or {}),
        metrics=decode_json(d.get("metrics") or {}),
        score=_unf(d.get("score")),
        artifacts=decode_json(d.get("artifacts") or {}),
        failure=_failure_in(d.get("failure")),
        cost=decode_json(d.get("cost") or {}),
        attempt=int(d.get("attempt", 1)),
        retry_of=None if d.get("retry_of") is None else str(d["retry_of"]),
        heartbeat_at=_unf(d.get("heartbeat_at")),
        meta=decode_json(d.get("meta") or {}),
        created_at=float(d["created_at"]),
        started_at=_unf(d.get("started_at")),
        finished_at=_unf(d.get("finished_at")),
    )


def insight_to_dict(i: Insight) -> dict[str, Any]:
    return {
        "id": i.id,
        "tree_id": i.tree_id,
        "text": i.text,
        "evidence": list(i.evidence),
        "scope": i.scope,
        "effect": _f(i.effect),
        "created_at": i.created_at,
    }


def insight_from_dict(d: Mapping[str, Any]) -> Insight:
    return Insight(
        id=str(d["id"]),
        tree_id=str(d["tree_id"]),
        text=str(d["text"]),
        evidence=[str(x) for x in d.get("evidence") or []],
        scope=str(d.get("scope", "tree")),
        effect=_unf(d.get("effect")),
        created_at=float(d["created_at"]),
    )
