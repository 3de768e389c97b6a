"""Memory context for expanding a node (TREX: path root -> v, v's siblings, the globally critical nodes).

Each remembered node is reduced to what a planner acts on: its number, strategy, direction and hypothesis,
score and reward, what its diagnosis found, and its failure. The whole context is bounded: `to_text` never
exceeds `max_chars`; when it must cut, it drops the least useful parts first (older path nodes' details,
then critical nodes, then siblings), never the node being expanded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tree_store import Insight, Node, TreeStore


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def summarise_node(node: Node, *, detail: bool = True) -> dict[str, Any]:
    """A compact, JSON-ready view of one node for a planner."""
    plan = node.plan or {}
    out: dict[str, Any] = {
        "node": node.number,
        "id": node.id,
        "state": node.state.value,
        "strategy": node.strategy_kind,
        "direction": str(plan.get("direction", ""))[:200],
        "score": node.score,
        "reward": node.reward,
    }
    if detail:
        out["hypothesis"] = str(plan.get("hypothesis", ""))[:300]
        if node.diagnosis:
            out["diagnosis"] = str(node.diagnosis.get("summary") or node.diagnosis.get("text") or "")[:600]
        if node.note:
            out["note"] = node.note[:200]
    if node.failure is not None:
        out["failure"] = f"{node.failure.kind.value}: {node.failure.message[:200]}"
    if node.pinned:
        out["pinned"] = True
    return out


def _line(entry: dict[str, Any]) -> str:
    parts = [f"#{entry['node']} [{entry['state']}] {entry['strategy'] or 'round'}: {entry['direction'] or '-'}",
             f"score={_fmt(entry['score'])} gain={_fmt(entry['reward'])}"]
    if entry.get("hypothesis"):
        parts.append(f"hypothesis: {entry['hypothesis']}")
    if entry.get("diagnosis"):
        parts.append(f"diagnosis: {entry['diagnosis']}")
    if entry.get("failure"):
        parts.append(f"FAILED {entry['failure']}")
    if entry.get("note"):
        parts.append(f"human note: {entry['note']}")
    return " | ".join(parts)


@dataclass
class MemoryContext:
    """What the planner sees when expanding `node`."""

    node: dict[str, Any]
    path: list[dict[str, Any]] = field(default_factory=list)
    siblings: list[dict[str, Any]] = field(default_factory=list)
    critical: list[dict[str, Any]] = field(default_factory=list)
    insights: list[str] = field(default_factory=list)
    max_chars: int = 4000

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (already bounded by the same budget as `to_text`)."""
        return {"node": self.node, "path": self.path, "siblings": self.siblings, "critical": self.critical,
                "insights": self.insights, "text": self.to_text()}

    def to_text(self) -> str:
        """The context as compact text of at most `max_chars` characters."""
        head = "Expanding: " + _line(self.node)
        sections: list[tuple[str, list[str]]] = [
            ("Path from the root", [_line(e) for e in self.path]),
            ("Siblings (other children of the same parent)", [_line(e) for e in self.siblings]),
            ("Critical nodes elsewhere (big gains, instructive failures)", [_line(e) for e in self.critical]),
            ("Insights so far", [f"- {t}" for t in self.insights]),
        ]
        text = _render(head, sections)
        # Drop from the least useful end until it fits: old path nodes, then critical, siblings, insights.
        order = [(2, False), (1, False), (3, True), (0, True)]
        for index, from_end in order:
            while len(text) > self.max_chars and sections[index][1]:
                lines = sections[index][1]
                lines.pop() if from_end else lines.pop(0)
                text = _render(head, sections)
        return text[: self.max_chars]


def _render(head: str, sections: list[tuple[str, list[str]]]) -> str:
    out = [head]
    for title, lines in sections:
        if lines:
            out.append(f"{title}:")
            out.extend(f"  {line}" for line in lines)
    return "\n".join(out)


def build_context(store: TreeStore, node_id: str, *, max_chars: int = 4000, critical_k: int = 5,
                  max_insights: int = 8) -> MemoryContext:
    """Memory context for expanding `node_id`. Raises tree_store.NotFoundError for an unknown id."""
    node = store.get_node(node_id)
    path = store.path_to_root(node_id)[:-1]
    siblings = store.siblings(node_id)
    seen = {n.id for n in path} | {n.id for n in siblings} | {node.id}
    critical = [n for n in store.critical_nodes(node.tree_id, k=critical_k) if n.id not in seen]
    insights: list[Insight] = store.list_insights(node.tree_id)[-max_insights:]
    return MemoryContext(
        node=summarise_node(node),
        path=[summarise_node(n) for n in path],
        siblings=[summarise_node(n, detail=False) for n in siblings],
        critical=[summarise_node(n) for n in critical],
        insights=[i.text[:300] for i in insights],
        max_chars=max_chars,
    )
