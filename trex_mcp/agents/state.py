"""What a planner sees when it plans one round, gathered by the driver through the MCP tools.

Planners are pure functions of a `PlanningState`: the task, the node being expanded with its runs, every run the
tree has already made (so nothing is repeated), the memory context text, and the budget left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


def _normalised(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    """`data` with every default filled in, as the server stores it (so a planner's short dict and the stored
    full dump of the same variant get the same key). Data the model refuses is hashed as it is."""
    from pydantic import ValidationError

    try:
        return dict(model.model_validate(data).model_dump(mode="json"))
    except ValidationError:
        return data


def variant_key(recipe: dict[str, Any], config: dict[str, Any], warm_from: str | None = None) -> str:
    """Identity of a run variant: recipe (without description and cap), config, and for a warm start the node
    whose model it continues from. Both are normalised first (defaults filled in)."""
    from trex_mcp.recipes.config import TrainConfig
    from trex_mcp.recipes.recipe import DataRecipe

    recipe, config = _normalised(DataRecipe, recipe), _normalised(TrainConfig, config)
    blob = json.dumps({"recipe": {k: v for k, v in recipe.items() if k not in ("description", "max_samples")},
                       "config": config, "from": warm_from if config.get("warm_start") else None},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class RunRecord:
    """One run the tree already made."""

    run_id: str
    node_id: str
    node_number: int
    label: str
    recipe: dict[str, Any]
    config: dict[str, Any]
    state: str
    score: float | None
    failure: str | None = None
    parent_node_id: str | None = None

    @property
    def key(self) -> str:
        return variant_key(self.recipe, self.config, self.parent_node_id)

    @property
    def failure_kind(self) -> str | None:
        return None if not self.failure else self.failure.split(":", 1)[0]


@dataclass
class PlanningState:
    """Everything a planner gets for one round."""

    task: dict[str, Any]
    parent: dict[str, Any]
    parent_runs: list[RunRecord]
    all_runs: list[RunRecord]
    path: list[dict[str, Any]]
    context_text: str
    runs_per_round: int
    max_samples: int
    higher_is_better: bool
    round_index: int
    seed: int = 0
    excluded_keys: set[str] = field(default_factory=set)
    rejections: list[str] = field(default_factory=list)  # the server's reasons for refusing earlier plans

    def used_keys(self) -> set[str]:
        """Keys of every variant already run or refused."""
        return {r.key for r in self.all_runs} | set(self.excluded_keys)

    def best_parent_run(self) -> RunRecord | None:
        """The parent's best COMPLETE run."""
        done = [r for r in self.parent_runs if r.state == "COMPLETE" and r.score is not None]
        if not done:
            return None
        return (max if self.higher_is_better else min)(done, key=lambda r: r.score or 0.0)

    @property
    def is_tiny(self) -> bool:
        return str(self.task.get("base_model", "")).startswith("tiny:")
