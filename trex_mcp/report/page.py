"""The data the report page's script reads: node and run details, the runs table, insights, figures.

All of it is JSON data; non-finite floats become the strings "NaN", "Infinity", "-Infinity" (JSON has no
such numbers) and free text longer than ``MAX_TEXT_CHARS`` is clipped. The page builds its DOM from this
data with ``textContent`` only, so text from the tree (plans, logs) can never inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

from tree_store.records import Failure, Node, Run, is_valid_score
from trex_mcp.report.figures import curves_figure, figure_json, node_positions, tree_figure
from trex_mcp.report.layout import Position
from trex_mcp.report.view import (
    MAX_TEXT_CHARS,
    TreeData,
    best_node,
    best_path,
    compute_seconds,
    config_summary,
    final_result,
    normalised_gain,
    recipe_summary,
    short_float,
)

__all__ = ["RUN_COLUMNS", "jsonable", "page_payload", "runs_table"]

# key, label, type (the page formats and sorts by type)
RUN_COLUMNS: list[tuple[str, str, str]] = [
    ("node", "node", "int"),
    ("run", "run", "int"),
    ("state", "state", "state"),
    ("strategy", "strategy", "str"),
    ("score", "score", "float"),
    ("gain", "G", "percent"),
    ("recipe", "recipe", "str"),
    ("config", "config", "str"),
    ("train_loss", "train loss", "float"),
    ("compute_s", "compute", "duration"),
    ("failure", "failure", "str"),
]


def jsonable(value: Any, limit: int = MAX_TEXT_CHARS) -> Any:
    """Strict-JSON data: non-finite floats as strings, floats to 6 significant digits (whole units from
    1e6 up), long strings clipped, tuples as lists, other objects as strings."""
    kind = type(value)  # exact-type dispatch first: this walks every value of a 500-node tree
    if kind is dict:
        return {str(k): jsonable(v, limit) for k, v in value.items()}
    if kind is str:
        return value if len(value) <= limit else value[:limit] + f"… [{len(value) - limit} more characters]"
    if kind is float:
        if math.isfinite(value):
            return short_float(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value is None or kind is int or kind is bool:
        return value
    if kind is list or kind is tuple:
        return [jsonable(v, limit) for v in value]
    # subclasses (str enums, OrderedDict, int and float subclasses): the slower, general path
    if isinstance(value, Enum):
        return jsonable(value.value, limit)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return jsonable(float(value), limit)
    if isinstance(value, str):
        return jsonable(str.__str__(value), limit)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, limit) for v in value]
    return jsonable(str(value), limit)


def _failure(f: Failure | None) -> dict[str, Any] | None:
    return None if f is None else jsonable(f.to_dict())


def _num(x: float | None) -> float | None:
    return x if is_valid_score(x) else None


def _train_loss(run: Run) -> float | None:
    for key in ("train_loss", "loss"):
        value = run.metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def runs_table(data: TreeData) -> dict[str, Any]:
    """The sortable runs table: ``columns`` [{key, label, type}] and ``rows``, one per run in creation order.

    Each row is a dict keyed by column, plus ``_node`` (node number) and ``_run`` (index into the page's
    run list). Non-finite numbers are None (shown as a dash, sorted last).
    """
    by_id = data.nodes_by_id
    tree = data.tree
    rows = []
    for index, run in enumerate(data.runs):
        node = by_id[run.node_id]
        score = _num(run.score)
        rows.append({
            "_node": node.number, "_run": index,
            "node": node.number, "run": run.number, "state": run.state.value,
            "strategy": node.strategy_kind, "score": score,
            "gain": normalised_gain(score, tree.base_score, tree.reference_score),
            "recipe": recipe_summary(run.recipe), "config": config_summary(run.config),
            "train_loss": _num(_train_loss(run)), "compute_s": compute_seconds(run.cost),
            "failure": run.failure.kind.value if run.failure else "",
        })
    return {"columns": [{"key": k, "label": label, "type": t} for k, label, t in RUN_COLUMNS],
            "rows": jsonable(rows)}


def _node_payload(node: Node, data: TreeData, pos: Position[str], *, numbers: Mapping[str, int],
                  run_index: Mapping[str, int], best_id: str | None, path: set[str],
                  insights: list[int], children: int) -> dict[str, Any]:
    tree = data.tree
    payload: dict[str, Any] = jsonable({
        "id": node.id, "number": node.number,
        "parent": numbers.get(node.parent_id) if node.parent_id else None, "depth": node.depth,
        "state": node.state.value, "strategy": node.strategy_kind, "plan": node.plan,
        "diagnosis": node.diagnosis, "score": node.score, "reward": node.reward,
        "gain": normalised_gain(node.score, tree.base_score, tree.reference_score),
        "visits": node.visits, "value": node.value, "cost": node.cost, "pinned": node.pinned,
        "vetoed": node.vetoed, "note": node.note, "failure": _failure(node.failure), "meta": node.meta,
        "created_at": node.created_at, "started_at": node.started_at, "finished_at": node.finished_at,
        "x": pos.x, "y": pos.depth, "best": node.id == best_id, "on_best_path": node.id in path,
        "runs": [run_index[r.id] for r in data.runs_by_node.get(node.id, [])], "insights": insights,
        "children": children,
    })
    return payload


def _run_payload(run: Run, data: TreeData, numbers: Mapping[str, int]) -> dict[str, Any]:
    tree = data.tree
    payload: dict[str, Any] = jsonable({
        "id": run.id, "node": numbers[run.node_id], "number": run.number, "state": run.state.value,
        "recipe": run.recipe, "recipe_summary": recipe_summary(run.recipe), "config": run.config,
        "config_summary": config_summary(run.config), "metrics": run.metrics, "score": run.score,
        "gain": normalised_gain(run.score, tree.base_score, tree.reference_score),
        "failure": _failure(run.failure), "cost": run.cost, "compute_s": compute_seconds(run.cost),
        "attempt": run.attempt, "retry_of": run.retry_of, "artifacts": run.artifacts, "job": run.job,
        "meta": run.meta, "created_at": run.created_at, "started_at": run.started_at,
        "finished_at": run.finished_at,
    })
    return payload


def page_payload(data: TreeData, *, test_result: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the page's script needs, as JSON data (see the module docstring).

    Nodes are keyed by their number (short and readable, unlike the random ids, which are shown but not
    used as keys); runs and insights are lists referred to by index.
    """
    best = best_node(data, test_result)
    path_ids = best_path(data, best)
    best_id = best.id if best else None
    pos = node_positions(data)
    numbers = {n.id: n.number for n in data.nodes}
    run_index = {r.id: i for i, r in enumerate(data.runs)}
    children: dict[str, int] = {}
    for n in data.nodes:
        if n.parent_id:
            children[n.parent_id] = children.get(n.parent_id, 0) + 1
    cited: dict[str, list[int]] = {}
    for index, insight in enumerate(data.insights):
        for nid in insight.evidence:
            cited.setdefault(nid, []).append(index)
    path_set = set(path_ids)
    return {
        "tree": jsonable({"id": data.tree.id, "name": data.tree.name, "metric": data.metric,
                          "higher_is_better": data.tree.higher_is_better,
                          "base_score": data.tree.base_score, "reference_score": data.tree.reference_score}),
        "best": best.number if best else None,
        "best_path": [numbers[i] for i in path_ids],
        "final": jsonable(final_result(data, test_result)),
        "nodes": {str(n.number): _node_payload(n, data, pos[n.id], numbers=numbers, run_index=run_index,
                                               best_id=best_id, path=path_set, insights=cited.get(n.id, []),
                                               children=children.get(n.id, 0))
                  for n in data.nodes},
        "runs": [_run_payload(r, data, numbers) for r in data.runs],
        "insights": [jsonable({"text": i.text, "evidence": [numbers[e] for e in i.evidence if e in numbers],
                               "scope": i.scope, "effect": i.effect, "created_at": i.created_at})
                     for i in data.insights],
        "table": runs_table(data),
        "figures": {
            "tree": figure_json(tree_figure(data, best_path_ids=path_ids, best_id=best_id)),
            "curves": figure_json(curves_figure(data)),
        },
    }
