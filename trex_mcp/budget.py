"""Search budgets, enforced by the server whoever plans.

A tree carries its budget as a dict (stored on the tree). `check_new_round` refuses a round that would exceed
it, with a message saying which limit was hit and what to do; `usage` reports what has been spent so far.
Device seconds are GPU seconds on a GPU and process CPU seconds on a CPU-only machine.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tree_store import Tree, TreeStore
from trex_mcp.errors import TrexError


class BudgetError(TrexError):
    """A budget would be exceeded."""


class TreeBudget(BaseModel):
    """Limits of one search."""

    model_config = ConfigDict(extra="forbid")

    max_rounds: int = Field(20, ge=1, le=20, description="Rounds (nodes below the root); the paper's limit is 20.")
    runs_per_round: int = Field(3, ge=1, le=5, description="Default number of runs a planner proposes per round.")
    max_samples_per_round: int = Field(50_000, ge=1, le=50_000,
                                       description="Training rows per run of a round (recipe cap).")
    max_wall_s: float | None = Field(None, gt=0, le=30 * 24 * 3600,
                                     description="Wall-clock seconds from tree creation after which no round starts.")
    max_device_hours: float | None = Field(None, gt=0, le=100_000,
                                           description="GPU hours (CPU hours on CPU) after which no round starts.")
    max_llm_tokens: int | None = Field(None, ge=1, le=1_000_000_000,
                                       description="Tokens the LLM planner may spend on this tree.")


def usage(store: TreeStore, tree: Tree, *, now: float) -> dict[str, Any]:
    """What the tree has spent: rounds, runs, wall seconds, device hours, training tokens, LLM tokens."""
    nodes = store.list_nodes(tree.id)
    runs = store.find_runs(tree_id=tree.id)
    device_s = sum(float(r.cost.get("device_s") or 0.0) for r in runs)
    tokens = sum(int(r.cost.get("tokens") or 0) for r in runs)
    return {
        "rounds": sum(1 for n in nodes if n.parent_id is not None),
        "runs": len(runs),
        "wall_s": round(now - tree.created_at, 3),
        "device_hours": round(device_s / 3600.0, 6),
        "train_tokens": tokens,
        "llm_tokens": int(tree.meta.get("llm_tokens") or 0),
    }


def check_new_round(store: TreeStore, tree: Tree, *, runs: int, now: float) -> None:
    """Raise BudgetError when a new round of `runs` runs would exceed the tree's budget."""
    budget = TreeBudget.model_validate(tree.budget)
    used = usage(store, tree, now=now)
    finish = "call finalize_tree to score the best node on the test split"
    if used["rounds"] >= budget.max_rounds:
        raise BudgetError(f"budget: the tree has used all {budget.max_rounds} rounds", field="max_rounds", hint=finish)
    if runs > 5:
        raise BudgetError(f"runs: a round has at most 5 runs, got {runs}", field="runs")
    if budget.max_wall_s is not None and used["wall_s"] >= budget.max_wall_s:
        raise BudgetError(f"budget: wall time {used['wall_s']:.0f}s reached the limit of {budget.max_wall_s:.0f}s",
                          field="max_wall_s", hint=finish)
    if budget.max_device_hours is not None and used["device_hours"] >= budget.max_device_hours:
        raise BudgetError(f"budget: {used['device_hours']:.3f} device hours reached the limit of "
                          f"{budget.max_device_hours}", field="max_device_hours", hint=finish)
    if budget.max_llm_tokens is not None and used["llm_tokens"] >= budget.max_llm_tokens:
        raise BudgetError(f"budget: {used['llm_tokens']} LLM tokens reached the limit of {budget.max_llm_tokens}",
                          field="max_llm_tokens", hint=finish)
