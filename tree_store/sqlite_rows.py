"""Rows of the SQLite store: column lists, constant queries, record <-> row conversion, export rows.

Only the constants in this module ever become SQL text; every value is bound as a ``?`` parameter.
Floats that may be NaN are stored as the text 'NaN' (SQLite turns a NaN REAL into NULL); +-inf is a
native REAL. Dict fields are strict-JSON text (see :mod:`tree_store.codec`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tree_store import _logic as L
from tree_store import codec
from tree_store.records import Failure, Insight, Node, Run, State, Tree

TREE_COLS = (
    "id", "name", "task_name", "task_snapshot", "higher_is_better", "base_score", "reference_score",
    "budget", "status", "meta", "created_at", "updated_at",
)  # fmt: skip
NODE_COLS = (
    "id", "tree_id", "parent_id", "depth", "number", "state", "strategy_kind", "plan", "diagnosis",
    "score", "reward", "visits", "value", "cost", "pinned", "vetoed", "note", "failure", "meta",
    "created_at", "started_at", "finished_at",
)  # fmt: skip
RUN_COLS = (
    "id", "node_id", "tree_id", "number", "state", "recipe", "config", "job", "metrics", "score",
    "artifacts", "failure", "cost", "attempt", "retry_of", "heartbeat_at", "meta", "created_at",
    "started_at", "finished_at",
)  # fmt: skip
INSIGHT_COLS = ("id", "tree_id", "text", "evidence", "scope", "effect", "created_at")

PARTS = {
    "{T}": ", ".join(TREE_COLS),
    "{N}": ", ".join(NODE_COLS),
    "{NN}": ", ".join("n." + c for c in NODE_COLS),
    "{R}": ", ".join(RUN_COLS),
    "{RR}": ", ".join("r." + c for c in RUN_COLS),
    "{I}": ", ".join(INSIGHT_COLS),
    "{T?}": ", ".join("?" * len(TREE_COLS)),
    "{N?}": ", ".join("?" * len(NODE_COLS)),
    "{R?}": ", ".join("?" * len(RUN_COLS)),
    "{FINITE}": "BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308",
}
COLUMNS = {"trees": set(TREE_COLS), "nodes": {*NODE_COLS, "gain", "failure_kind"}, "runs": set(RUN_COLS)}
EXISTS = {
    "trees": "SELECT 1 FROM trees WHERE id = ?",
    "nodes": "SELECT 1 FROM nodes WHERE id = ?",
    "runs": "SELECT 1 FROM runs WHERE id = ?",
    "insights": "SELECT 1 FROM insights WHERE id = ?",
}


@functools.cache
def q(template: str) -> str:
    """Fill the constant column lists into a query template.

    Only these constants ever become SQL text; every value is bound as a ``?`` parameter.
    """
    for key, part in PARTS.items():
        template = template.replace(key, part)
    return template


BEST = (
    "SELECT id FROM nodes WHERE tree_id = ? AND state = 'COMPLETE' AND score {FINITE} AND (? OR vetoed = 0) "
    "ORDER BY score DIRECTION, number LIMIT 1"
)
BEST_HIGHER = q(BEST).replace("DIRECTION", "DESC")
BEST_LOWER = q(BEST).replace("DIRECTION", "ASC")
CRITICAL_GAINS = (
    "SELECT id FROM nodes WHERE tree_id = ? AND gain > 0 AND vetoed = 0 AND state = 'COMPLETE' "
    "ORDER BY gain DESC, number LIMIT ?"
)
CRITICAL_FAILURES = (
    "SELECT id, finished_at, number FROM nodes WHERE tree_id = ? AND state = 'FAIL' AND failure_kind = ? "
    "ORDER BY finished_at DESC, number DESC LIMIT ?"
)


Row = Sequence[Any]


# ---------------------------------------------------------------------- value encoding


def fin(x: float | None) -> float | str | None:
    """SQLite stores NaN as NULL; keep it as the text 'NaN' (inf is stored natively)."""
    if x is not None and x != x:
        return "NaN"
    return x


def fout(v: Any) -> float | None:
    if v is None:
        return None
    return float(v)  # float("NaN") for the text 'NaN'


def jin(d: Any, where: str) -> str:
    return codec.dumps(d, where)


def jout(s: str | None) -> Any:
    if s is None:
        return None
    return {} if s == "{}" else codec.loads(s)


def failure_in(f: Failure | None) -> str | None:
    return None if f is None else codec.dumps(f.to_dict(), "failure")


def failure_out(s: str | None) -> Failure | None:
    return None if s is None else Failure.from_dict(codec.loads(s))


def tree_row(t: Tree) -> tuple[Any, ...]:
    return (
        t.id, t.name, t.task_name, jin(t.task_snapshot, "task_snapshot"), int(t.higher_is_better),
        fin(t.base_score), fin(t.reference_score), jin(t.budget, "budget"), t.status,
        jin(t.meta, "meta"), t.created_at, t.updated_at,
    )  # fmt: skip


def tree_from_row(r: Row) -> Tree:
    return Tree(
        id=r[0], name=r[1], task_name=r[2], task_snapshot=jout(r[3]), higher_is_better=bool(r[4]),
        base_score=fout(r[5]), reference_score=fout(r[6]), budget=jout(r[7]), status=r[8],
        meta=jout(r[9]), created_at=r[10], updated_at=r[11],
    )  # fmt: skip


def node_row(n: Node) -> tuple[Any, ...]:
    return (
        n.id, n.tree_id, n.parent_id, n.depth, n.number, n.state.value, n.strategy_kind,
        jin(n.plan, "plan"), None if n.diagnosis is None else jin(n.diagnosis, "diagnosis"),
        fin(n.score), fin(n.reward), n.visits, fin(n.value), jin(n.cost, "cost"), int(n.pinned),
        int(n.vetoed), n.note, failure_in(n.failure), jin(n.meta, "meta"), n.created_at,
        n.started_at, n.finished_at,
    )  # fmt: skip


def node_from_row(r: Row) -> Node:
    return Node(
        id=r[0], tree_id=r[1], parent_id=r[2], depth=r[3], number=r[4], state=State(r[5]),
        strategy_kind=r[6], plan=jout(r[7]), diagnosis=jout(r[8]), score=fout(r[9]),
        reward=fout(r[10]), visits=r[11], value=float(r[12]), cost=jout(r[13]), pinned=bool(r[14]),
        vetoed=bool(r[15]), note=r[16], failure=failure_out(r[17]), meta=jout(r[18]),
        created_at=r[19], started_at=r[20], finished_at=r[21],
    )  # fmt: skip


def run_row(r: Run) -> tuple[Any, ...]:
    return (
        r.id, r.node_id, r.tree_id, r.number, r.state.value, jin(r.recipe, "recipe"),
        jin(r.config, "config"), jin(r.job, "job"), jin(r.metrics, "metrics"), fin(r.score),
        jin(r.artifacts, "artifacts"), failure_in(r.failure), jin(r.cost, "cost"), r.attempt,
        r.retry_of, r.heartbeat_at, jin(r.meta, "meta"), r.created_at, r.started_at, r.finished_at,
    )  # fmt: skip


def run_from_row(r: Row) -> Run:
    return Run(
        id=r[0], node_id=r[1], tree_id=r[2], number=r[3], state=State(r[4]), recipe=jout(r[5]),
        config=jout(r[6]), job=jout(r[7]), metrics=jout(r[8]), score=fout(r[9]),
        artifacts=jout(r[10]), failure=failure_out(r[11]), cost=jout(r[12]), attempt=r[13],
        retry_of=r[14], heartbeat_at=r[15], meta=jout(r[16]), created_at=r[17], started_at=r[18],
        finished_at=r[19],
    )  # fmt: skip


def insight_row(i: Insight) -> tuple[Any, ...]:
    return (i.id, i.tree_id, i.text, jin(i.evidence, "evidence"), i.scope, fin(i.effect), i.created_at)


def insight_from_row(r: Row) -> Insight:
    return Insight(
        id=r[0],
        tree_id=r[1],
        text=r[2],
        evidence=jout(r[3]),
        scope=r[4],
        effect=fout(r[5]),
        created_at=r[6],
    )


# Export straight from rows: how each column becomes a JSON value ("j" parsed JSON text, "f" float that may
# be NaN/inf, "b" bool; the rest as stored).
NODE_KINDS = {
    "plan": "j", "diagnosis": "j", "cost": "j", "failure": "j", "meta": "j",
    "score": "f", "reward": "f", "value": "f", "pinned": "b", "vetoed": "b",
}  # fmt: skip
RUN_KINDS = {
    "recipe": "j", "config": "j", "job": "j", "metrics": "j", "artifacts": "j", "failure": "j", "cost": "j",
    "meta": "j", "score": "f",
}  # fmt: skip
INSIGHT_KINDS = {"evidence": "j", "effect": "f"}


def export_rows(cols: Sequence[str], rows: Iterable[Row], kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows as export dicts. All JSON cells are parsed in one ``json.loads`` call (one C pass)."""
    out = [dict(zip(cols, row, strict=True)) for row in rows]
    json_cols = [c for c in cols if kinds.get(c) == "j"]
    cells = [d[c] for d in out for c in json_cols]
    parsed = json.loads("[" + ",".join("null" if v is None else v for v in cells) + "]")
    it = iter(parsed)
    float_cols = [c for c in cols if kinds.get(c) == "f"]
    bool_cols = [c for c in cols if kinds.get(c) == "b"]
    for d in out:
        for c in json_cols:
            d[c] = next(it)
        for c in float_cols:
            v = d[c]
            if v is not None:
                d[c] = codec.encode_json(fout(v))
        for c in bool_cols:
            d[c] = bool(d[c])
    return out


def derived(tree: Tree, nodes: Sequence[Node]) -> list[tuple[float | None, str | None, str]]:
    """(gain, failure_kind, id) for each node: the indexed columns behind critical_nodes.

    ``gain`` is a COMPLETE node's improvement over its parent's score (the base score for the root) in
    the tree's direction; ``failure_kind`` the kind of its failure. Neither is part of the record.
    """
    scores = {n.id: n.score for n in nodes}
    out: list[tuple[float | None, str | None, str]] = []
    for n in nodes:
        ref = tree.base_score if n.parent_id is None else scores.get(n.parent_id)
        gain = L.gain(n.score, ref, tree.higher_is_better) if n.state is State.COMPLETE else None
        out.append((gain, None if n.failure is None else n.failure.kind.value, n.id))
    return out
