"""What the report shows, computed from a tree export: best path, score curves, runs table, summaries.

Pure functions of a ``trex-tree`` export (see ``tree_store.TreeStore.export_tree``); nothing here draws or
imports plotly. Scores are compared in the task's direction with ``tree_store.records.is_better``, so a
missing or NaN score never wins. Vetoed nodes are drawn but never count as "best" (the store's rule).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tree_store.codec import insight_from_dict, node_from_dict, run_from_dict, tree_from_dict
from tree_store.records import Insight, Node, Run, State, Tree, is_better, is_valid_score
from trex_mcp.report.errors import ReportError

__all__ = [
    "TreeData",
    "best_node",
    "best_path",
    "compute_seconds",
    "config_summary",
    "final_result",
    "normalised_gain",
    "parse_export",
    "recipe_summary",
    "score_curves",
    "short_float",
]

EXPORT_FORMAT = "trex-tree"
SUPPORTED_VERSION = 1
# Long free text is clipped in the page (the store keeps it whole); log tails are already <= 8,000 chars.
MAX_TEXT_CHARS = 8_000


@dataclass(frozen=True)
class TreeData:
    """A parsed export: the tree and its records, nodes and runs ordered by number."""

    tree: Tree
    nodes: list[Node]
    runs: list[Run]
    insights: list[Insight]
    runs_by_node: dict[str, list[Run]] = field(default_factory=dict)

    @property
    def nodes_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @property
    def metric(self) -> str:
        evaluation = self.tree.task_snapshot.get("evaluation")
        if isinstance(evaluation, Mapping) and evaluation.get("metric"):
            return str(evaluation["metric"])
        return "score"


def parse_export(export: Mapping[str, Any]) -> TreeData:
    """Read a ``trex-tree`` export into records. Raises ReportError naming what is wrong."""
    if not isinstance(export, Mapping):
        raise ReportError(f"expected a trex-tree export (a JSON object), got {type(export).__name__}")
    fmt = export.get("format")
    if fmt != EXPORT_FORMAT:
        raise ReportError(f"not a trex-tree export: format is {fmt!r}", field="format",
                          hint="export the tree with TreeStore.export_tree or `trex-mcp report <tree id>`")
    version = export.get("version")
    if not isinstance(version, int) or version > SUPPORTED_VERSION:
        raise ReportError(f"unsupported trex-tree version {version!r} (this report reads up to "
                          f"{SUPPORTED_VERSION})", field="version", hint="upgrade trex-mcp")
    try:
        tree = tree_from_dict(export["tree"])
        nodes = sorted((node_from_dict(n) for n in export.get("nodes") or []), key=lambda n: n.number)
        runs = sorted((run_from_dict(r) for r in export.get("runs") or []),
                      key=lambda r: (r.created_at, r.number))
        insights = [insight_from_dict(i) for i in export.get("insights") or []]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"malformed trex-tree export: {exc!r}", hint="re-export the tree") from exc
    known = {n.id for n in nodes}
    by_node: dict[str, list[Run]] = {n.id: [] for n in nodes}
    for run in runs:
        if run.node_id in known:
            by_node[run.node_id].append(run)
    for node_runs in by_node.values():
        node_runs.sort(key=lambda r: r.number)
    return TreeData(tree=tree, nodes=nodes, runs=[r for r in runs if r.node_id in known],
                    insights=insights, runs_by_node=by_node)


# ----------------------------------------------------------------------------------------- best node, path


def final_result(data: TreeData, test_result: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The held-out test result: ``test_result`` if given, else ``tree.meta["final"]``, else None."""
    source = test_result if test_result is not None else data.tree.meta.get("final")
    if not isinstance(source, Mapping) or not source:
        return None
    return dict(source)


def best_node(data: TreeData, test_result: Mapping[str, Any] | None = None) -> Node | None:
    """The node the search reports: the final result's ``best_node_id`` when it names a node of this tree,
    else the COMPLETE, non-vetoed node with the best score (ties: lowest number), else None."""
    final = final_result(data, test_result)
    by_id = data.nodes_by_id
    if final and isinstance(final.get("best_node_id"), str) and final["best_node_id"] in by_id:
        return by_id[final["best_node_id"]]
    best: Node | None = None
    for node in data.nodes:
        eligible = node.state is State.COMPLETE and not node.vetoed and is_valid_score(node.score)
        if eligible and (best is None or is_better(node.score, best.score, data.tree.higher_is_better)):
            best = node
    return best


def best_path(data: TreeData, node: Node | None) -> list[str]:
    """Node ids from the root to ``node`` (empty when ``node`` is None)."""
    if node is None:
        return []
    by_id = data.nodes_by_id
    path: list[str] = []
    current: Node | None = node
    while current is not None and current.id not in path:
        path.append(current.id)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return path[::-1]


def normalised_gain(score: float | None, base: float | None, reference: float | None) -> float | None:
    """G = (S - S_base) / (S_ref - S_base) as a fraction (1.0 = matches the reference), or None if unknown."""
    if not (is_valid_score(score) and is_valid_score(base) and is_valid_score(reference)):
        return None
    assert score is not None and base is not None and reference is not None
    if reference == base:
        return None
    return (score - base) / (reference - base)


# ----------------------------------------------------------------------------------------- compute, curves


def compute_seconds(cost: Mapping[str, Any]) -> float | None:
    """Device seconds spent, from a cost dict: ``device_s``, else ``gpu_hours``, else ``wall_s``."""
    for key, scale in (("device_s", 1.0), ("gpu_s", 1.0), ("gpu_hours", 3600.0), ("wall_s", 1.0)):
        value = cost.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) * scale
    return None


def short_float(x: float) -> float:
    """``x`` to 6 significant digits, or to whole units from 1e6 up (timestamps, counts).

    The page shows 4 significant digits; 6 keep every shown digit right and let gzip work (full-precision
    floats are random digits that do not compress). Non-finite values pass through.
    """
    if not math.isfinite(x):
        return x
    return float(round(x)) if abs(x) >= 1e6 else float(f"{x:.6g}")


def _finite(x: float | None) -> float | None:
    return x if is_valid_score(x) else None


def score_curves(data: TreeData) -> dict[str, Any]:
    """Best-so-far validation score against rounds and against cumulative compute.

    ``rounds``: one point per scored, non-vetoed, COMPLETE node in number order. ``compute``: the best-so-far
    line, one step per finished run in finishing order: x is the cumulative compute of every run finished
    so far (failed runs cost compute too), y the best score so far. ``compute_points``: one point per scored
    node, at the compute spent when its best run finished (one marker per round keeps big trees fast to
    draw). Vetoed nodes' scores are listed apart and never raise a best-so-far line.
    """
    hib = data.tree.higher_is_better
    rounds: dict[str, list[Any]] = {"x": [], "best": [], "score": [], "node": []}
    vetoed: dict[str, list[Any]] = {"x": [], "score": [], "node": []}
    best: float | None = None
    for node in data.nodes:
        if node.state is not State.COMPLETE or not is_valid_score(node.score):
            continue
        if node.vetoed:
            vetoed["x"].append(node.number)
            vetoed["score"].append(node.score)
            vetoed["node"].append(node.id)
            continue
        if best is None or is_better(node.score, best, hib):
            best = node.score
        rounds["x"].append(node.number)
        rounds["best"].append(best)
        rounds["score"].append(node.score)
        rounds["node"].append(node.id)

    by_id = data.nodes_by_id
    finished = [r for r in data.runs if r.state.is_finished()]
    finished.sort(key=lambda r: (r.finished_at if r.finished_at is not None else math.inf, r.created_at))
    compute: dict[str, list[Any]] = {"x": [], "best": []}
    node_points: dict[str, tuple[float, float]] = {}  # node id -> (compute so far, best run score so far)
    total = 0.0
    best = None
    for run in finished:
        total += compute_seconds(run.cost) or 0.0
        node = by_id[run.node_id]
        score = _finite(run.score) if run.state is State.COMPLETE and not node.vetoed else None
        if score is not None:
            if best is None or is_better(score, best, hib):
                best = score
            if node.id not in node_points or is_better(score, node_points[node.id][1], hib):
                node_points[node.id] = (total, score)
        compute["x"].append(total)
        compute["best"].append(best)
    points = sorted(node_points.items(), key=lambda item: item[1][0])
    compute_points = {"x": [p[1][0] for p in points], "score": [p[1][1] for p in points],
                      "node": [p[0] for p in points]}
    return {"rounds": rounds, "vetoed": vetoed, "compute": compute, "compute_points": compute_points,
            "total_compute_s": total}


# ----------------------------------------------------------------------------------------- summaries


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def recipe_summary(recipe: Mapping[str, Any]) -> str:
    """One line naming a data recipe's sources, operators and format, e.g.
    ``task:clean + hub:org/ds → dedup → filter_length · prompt_completion``."""
    if not recipe:
        return ""
    parts: list[str] = []
    sources = recipe.get("sources")
    if isinstance(sources, list) and sources:
        labels = []
        for source in sources:
            if isinstance(source, Mapping):
                kind = source.get("kind", "?")
                name = next((source[k] for k in ("name", "dataset", "repo_id", "path", "id") if source.get(k)), "")
                label = f"{kind}:{_short(name, 40)}" if name else str(kind)
                limit = source.get("max_rows") or source.get("limit") or source.get("n")
                labels.append(f"{label}[{limit}]" if limit else label)
            else:
                labels.append(_short(source, 40))
        parts.append(" + ".join(labels))
    operators = recipe.get("operators")
    if isinstance(operators, list):
        for op in operators:
            if isinstance(op, Mapping):
                parts.append(str(op.get("op") or op.get("kind") or op.get("name") or "?"))
            else:
                parts.append(_short(op, 30))
    text = " → ".join(parts)
    if recipe.get("format"):
        text = f"{text} · {recipe['format']}" if text else str(recipe["format"])
    return text or _short(dict(recipe), 120)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0e}".replace("e-0", "e-") if 0 < abs(value) < 1e-2 else f"{value:g}"
    return str(value)


def config_summary(config: Mapping[str, Any]) -> str:
    """One line with the training config's deciding choices, e.g. ``sft lora r8 lr 2e-4 1 ep bs 8``."""
    if not config:
        return ""
    parts = [str(config[k]) for k in ("method", "adapter") if config.get(k)]
    if config.get("adapter", "lora") == "lora" and config.get("lora_r") is not None:
        parts.append(f"r{config['lora_r']}")
    if config.get("learning_rate") is not None:
        parts.append(f"lr {_num(config['learning_rate'])}")
    if config.get("max_steps"):
        parts.append(f"{config['max_steps']} steps")
    elif config.get("epochs") is not None:
        parts.append(f"{_num(config['epochs'])} ep")
    if config.get("batch_size") is not None:
        accum = config.get("grad_accum") or 1
        parts.append(f"bs {config['batch_size']}" + (f"×{accum}" if accum != 1 else ""))
    if config.get("warm_start"):
        parts.append("warm start")
    return " ".join(parts) or _short(dict(config), 120)


def rounds_used(data: TreeData) -> int:
    """Rounds so far, as the budget counts them: the nodes below the root (the root is the baseline)."""
    return sum(1 for n in data.nodes if n.parent_id is not None)


def state_counts(items: Iterable[Node | Run]) -> dict[str, int]:
    """How many records are in each state, in lifecycle order, zero counts left out."""
    counts = {s.value: 0 for s in State}
    for item in items:
        counts[item.state.value] += 1
    return {k: v for k, v in counts.items() if v}
