"""Tree policies: which node to refine next.

Every policy sees the same candidates: finished COMPLETE nodes (the root baseline included) that are not
vetoed. Pinned nodes are preferred: when any candidate is pinned, only pinned candidates are considered.
Rewards are normalised gains (0 = base model, 1 = reference model), so the exploration constant means the
same thing on every task.

UCT treats every node as an arm that may receive another child: the value of refining v is its backed-up
reward Q(v) (mean or max of the rewards in its subtree, including its own) plus an exploration bonus
c * sqrt(ln N / (1 + n_v)), where n_v counts the rounds already backed up through v and N the rounds in the
tree. A node that already has many descendants is therefore explored less, which is how "any node may get
children" stays balanced without a separate widening rule.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from tree_store import Node, State

PolicyName = Literal["uct", "greedy", "random"]
Backup = Literal["mean", "max"]


@dataclass(frozen=True)
class Candidate:
    """One node's numbers as the policy saw them."""

    node_id: str
    number: int
    q: float
    bonus: float
    total: float
    visits: int
    pinned: bool


@dataclass(frozen=True)
class Selection:
    """The chosen node and why."""

    node_id: str
    number: int
    policy: str
    reason: str
    candidates: list[Candidate] = field(default_factory=list)


class NoCandidateError(ValueError):
    """No node can be expanded (all failed, vetoed, or still running)."""


def node_q(node: Node, backup: Backup) -> float:
    """Backed-up reward of a node: its own reward before any visit, then the mean or max over its subtree."""
    own = _own_reward(node)
    if node.visits <= 0:
        return own
    # The store keeps `value` as the running mean (or the max) of the rewards backed up through the node.
    return max(own, node.value) if backup == "max" else node.value


def _own_reward(node: Node) -> float:
    return node.reward if node.reward is not None and math.isfinite(node.reward) else 0.0


def candidates(nodes: Sequence[Node]) -> list[Node]:
    """Nodes that may receive a child: COMPLETE and not vetoed; pinned ones only, if any are pinned."""
    ok = [n for n in nodes if n.state == State.COMPLETE and not n.vetoed]
    pinned = [n for n in ok if n.pinned]
    return pinned or ok


def select(
    nodes: Sequence[Node],
    *,
    policy: PolicyName = "uct",
    c: float = 1.0,
    backup: Backup = "mean",
    rng: random.Random | None = None,
) -> Selection:
    """Pick the node to refine next. Raises NoCandidateError when nothing can be expanded."""
    pool = candidates(nodes)
    if not pool:
        raise NoCandidateError("no node can be expanded: every node is running, failed or vetoed")
    total_rounds = max(1, sum(1 for n in nodes if n.parent_id is not None and n.state.is_finished()))
    scored: list[Candidate] = []
    for node in pool:
        # Greedy and random look at each node's own reward; UCT at the reward backed up through it.
        q = node_q(node, backup) if policy == "uct" else _own_reward(node)
        bonus = c * math.sqrt(math.log(total_rounds + 1) / (1 + max(node.visits, 0))) if policy == "uct" else 0.0
        scored.append(Candidate(node.id, node.number, q, bonus, q + bonus, node.visits, node.pinned))
    pinned_note = " (pinned nodes only)" if any(n.pinned for n in pool) else ""
    if policy == "random":
        chosen = (rng or random.Random()).choice(scored)  # noqa: S311 - a search policy, not cryptography
        reason = f"random choice among {len(scored)} expandable nodes{pinned_note}"
    else:
        # Ties: fewer visits first (explore), then the older node.
        chosen = max(scored, key=lambda s: (s.total, -s.visits, -s.number))
        if policy == "uct":
            reason = (f"UCT (c={c}, backup={backup}): node #{chosen.number} has Q={chosen.q:.3f} + "
                      f"bonus={chosen.bonus:.3f} = {chosen.total:.3f}, the highest of {len(scored)}{pinned_note}")
        else:
            reason = f"greedy: node #{chosen.number} has the best reward Q={chosen.q:.3f}{pinned_note}"
    ranked = sorted(scored, key=lambda s: -s.total)
    return Selection(chosen.node_id, chosen.number, policy, reason, ranked)
