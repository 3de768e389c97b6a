"""What a planner proposes for one round: a direction, a hypothesis and 1-5 run variants.

These models are the contract between every planner (a client model over MCP, the heuristic planner, the
LLM planner) and the server: the `propose_round` tool takes a `RoundPlan`, and the LLM planner's JSON is
validated against the same class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trex_mcp.recipes.config import TrainConfig
from trex_mcp.recipes.recipe import DataRecipe

StrategyKind = Literal[
    "baseline",
    "refine_data",
    "synthetic_data",
    "training_scheme",
    "warm_start",
    "other",
]


class RunPlan(BaseModel):
    """One variant of a round: the data it trains on and how it trains."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=80, description="Short name of the variant, e.g. 'clean lr=5e-3'.")
    recipe: DataRecipe = Field(description="The training data: sources, mapping to a TRL format, operators.")
    config: TrainConfig = Field(default_factory=TrainConfig, description="How the variant trains.")


class RoundPlan(BaseModel):
    """One experiment round: the node's plan and its runs (3-5 in the paper; 1-5 accepted)."""

    model_config = ConfigDict(extra="forbid")

    strategy_kind: StrategyKind = Field(description="Kind of change this round tries (the paper's strategy kinds).")
    direction: str = Field(min_length=3, max_length=300, description="What this round changes, in one sentence.")
    hypothesis: str = Field(min_length=3, max_length=1500,
                            description="Why it should help, given the memory context and diagnoses.")
    runs: list[RunPlan] = Field(min_length=1, max_length=5, description="1-5 variants run in parallel.")

    @model_validator(mode="after")
    def _distinct_labels(self) -> RoundPlan:
        labels = [r.label for r in self.runs]
        if len(set(labels)) != len(labels):
            raise ValueError("runs: every run needs a distinct label")
        return self
