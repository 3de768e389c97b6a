"""Tree tools: create a search, read it, pick the next node, propose rounds, and record human input."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from pydantic import BaseModel, ConfigDict, Field

from trex_mcp.plans import RoundPlan
from trex_mcp.tools.common import (
    READ,
    WRITE,
    WRITE_IDEMPOTENT,
    Id,
    LabGetter,
    TaskName,
    as_dict,
    expected_errors,
)


class BudgetOverrides(BaseModel):
    """Tighter limits for one search (the task's budgets are the ceiling)."""

    model_config = ConfigDict(extra="forbid")

    max_rounds: int | None = Field(None, ge=1, le=20, description="Rounds below the root.")
    runs_per_round: int | None = Field(None, ge=1, le=5, description="Default runs per round.")
    max_samples_per_round: int | None = Field(None, ge=1, le=50_000, description="Training rows per run.")
    max_wall_s: float | None = Field(None, gt=0, le=30 * 24 * 3600, description="Wall-clock seconds.")
    max_device_hours: float | None = Field(None, gt=0, le=100_000, description="GPU (or CPU) hours.")
    max_llm_tokens: int | None = Field(None, ge=1, le=1_000_000_000, description="LLM planner tokens.")


def register(server: MCPServer, lab: LabGetter) -> None:
    @server.tool(annotations=WRITE, title="Create a search tree")
    def create_tree(task: TaskName,
                    name: Annotated[str | None, Field(max_length=120, description="A name for people.")] = None,
                    budget: BudgetOverrides | None = None) -> dict[str, Any]:
        """Start a TREX search on a task. The root round (the baseline: the base model scored on the validation
        split) launches at once; wait_round on the returned root_node_id, then use suggest_next_node."""
        with expected_errors():
            overrides = {k: v for k, v in (budget.model_dump() if budget else {}).items() if v is not None}
            tree = lab().create_tree(task, name=name, budget=overrides)
            root = lab().store.get_root(tree.id)
            return {"tree_id": tree.id, "name": tree.name, "task": tree.task_name, "budget": tree.budget,
                    "root_node_id": None if root is None else root.id, "status": tree.status}

    @server.tool(annotations=READ, title="List search trees")
    def list_trees() -> dict[str, Any]:
        """List every search tree with its task, status and best score."""
        with expected_errors():
            out = []
            for tree in lab().list_trees():
                best = lab().store.best_node(tree.id)
                out.append({"tree_id": tree.id, "name": tree.name, "task": tree.task_name, "status": tree.status,
                            "base_score": tree.base_score, "best_score": None if best is None else best.score,
                            "created_at": tree.created_at})
            return {"trees": out}

    @server.tool(annotations=READ, title="Get a tree summary")
    def get_tree(tree_id: Id) -> dict[str, Any]:
        """A compact summary of a search: task, budget and usage, base and reference scores, best node, and one
        line per node (number, parent, state, strategy, direction, score, reward)."""
        with expected_errors():
            return as_dict(lab().tree_summary(tree_id))

    @server.tool(annotations=READ, title="Get a node")
    def get_node(node_id: Id) -> dict[str, Any]:
        """One round in full: plan, runs with their state and score, diagnosis, failure, cost, human flags."""
        with expected_errors():
            return as_dict(lab().get_node(node_id))

    @server.tool(annotations=READ, title="Suggest the next node")
    def suggest_next_node(
        tree_id: Id,
        policy: Literal["uct", "greedy", "random"] | None = None,
        exploration: Annotated[float, Field(ge=0.0, le=10.0, description="UCT exploration constant c.")] = 1.0,
        backup: Literal["mean", "max"] = "mean",
        max_chars: Annotated[int, Field(ge=500, le=20_000, description="Size bound of the memory context.")] = 4000,
        seed: Annotated[int | None, Field(ge=0, le=2**31 - 1, description="Seed for the random policy.")] = None,
    ) -> dict[str, Any]:
        """Ask the tree policy which node to refine next and why, with the memory context for planning: the
        path from the root, siblings, critical nodes (big gains, instructive failures), insights, the task brief
        and the budget left. Then write a plan and call propose_round with that node as parent."""
        with expected_errors():
            return as_dict(lab().suggest_next(tree_id, policy=policy, c=exploration, backup=backup,
                                               max_chars=max_chars, seed=seed))

    @server.tool(annotations=WRITE, title="Propose a round")
    def propose_round(tree_id: Id, parent_id: Id, plan: RoundPlan) -> dict[str, Any]:
        """Add a round under a finished node: a direction, a hypothesis and 1-5 run variants, each a data recipe
        plus a training config. Budgets and duplicate runs are checked here. Nothing trains until launch_round."""
        with expected_errors():
            return as_dict(lab().propose_round(tree_id, parent_id, plan))

    @server.tool(annotations=WRITE_IDEMPOTENT, title="Annotate a node")
    def annotate_node(
        node_id: Id,
        pinned: Annotated[bool | None, Field(description="Prefer this node when choosing what to expand.")] = None,
        vetoed: Annotated[bool | None, Field(description="Never expand this node.")] = None,
        note: Annotated[str | None, Field(max_length=2000, description="A note shown to planners; '' clears.")] = None,
    ) -> dict[str, Any]:
        """Record human judgement on a node: pin it, veto it, or leave a note. Allowed in any state."""
        with expected_errors():
            return as_dict(lab().annotate(node_id, pinned=pinned, vetoed=vetoed, note=note))

    @server.tool(annotations=WRITE, title="Record an insight")
    def record_insight(
        tree_id: Id,
        text: Annotated[str, Field(min_length=3, max_length=2000, description="The lesson, in one or two sentences.")],
        evidence: Annotated[list[str], Field(max_length=20, description="Node ids that support it.")],
        scope: Annotated[str, Field(min_length=1, max_length=40, description="e.g. 'data', 'training', 'tree'.")] = "tree",
        effect: Annotated[float | None, Field(ge=-1e6, le=1e6, description="Effect size, e.g. score change.")] = None,
    ) -> dict[str, Any]:
        """Distil a lesson from finished rounds (what helped, what failed and why); later memory contexts show it."""
        with expected_errors():
            return as_dict(lab().record_insight(tree_id, text, evidence=evidence, scope=scope, effect=effect))

    @server.tool(annotations=WRITE, title="Record LLM usage")
    def record_llm_usage(tree_id: Id, tokens: Annotated[int, Field(ge=0, le=100_000_000)]) -> dict[str, Any]:
        """Count tokens an LLM planner spent on this tree; the server refuses new rounds past the token budget."""
        with expected_errors():
            return lab().add_llm_tokens(tree_id, tokens)

    @server.tool(annotations=READ, title="Preview a recipe")
    def preview_recipe(
        task: TaskName,
        recipe: Annotated[dict[str, Any], Field(description="A DataRecipe (see a propose_round plan's runs[].recipe).")],
        examples: Annotated[int, Field(ge=1, le=10)] = 3,
    ) -> dict[str, Any]:
        """Build a recipe (cached) and show what a run would train on: formatted examples in the base model's chat
        template, token-length statistics, row counts per operator, and the contamination report."""
        with expected_errors():
            return as_dict(lab().preview_recipe(task, recipe, n=examples))
