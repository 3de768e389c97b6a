"""FT-Bench task specifications.

A task is data: one YAML file per task, validated into a `TaskSpec`. Local data paths in a YAML file are
relative to that file and are resolved to absolute paths when the spec is loaded, so a spec never depends on
the current working directory.

What this module guarantees: a `TaskSpec` that loads is internally consistent (fields it names exist in its
declaration, choices are declared for classification metrics, scores are finite, budgets are in range).
What it does not check: that Hub datasets exist or that local files parse; the task contract tests do that.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MetricName = Literal[
    "accuracy",
    "exact_match",
    "macro_f1",
    "multilabel_macro_f1",
    "multilabel_micro_f1",
    "rouge1",
    "rougeL",
    "kendall_tau",
]
EvaluationKind = Literal["generative", "multiple_choice", "lm_eval"]

#: Metrics that need a closed label set (`evaluation.choices`).
LABEL_METRICS = {"macro_f1", "multilabel_macro_f1", "multilabel_micro_f1"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Strict):
    """One place data comes from: a local file shipped with the task, or a Hub dataset."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$",
                      description="Short id of the source within the task, e.g. 'clean' or 'noisy'.")
    kind: Literal["local", "hub"] = Field(description="'local' for a file shipped with the task, 'hub' for a Hub dataset.")
    path: str | None = Field(None, description="Local file (JSONL, JSON, CSV or Parquet); relative to the YAML file.")
    hub_id: str | None = Field(None, description="Hub dataset id, e.g. 'stanfordnlp/sst2'.")
    config: str | None = Field(None, description="Hub dataset config name, if any.")
    split: str | None = Field(None, description="Hub dataset split, e.g. 'train'.")
    revision: str | None = Field(None, description="Hub dataset revision (commit or tag) for reproducibility.")
    description: str = Field("", max_length=2000, description="What the source holds and how good it is.")
    gated: bool = Field(False, description="True when the Hub dataset requires accepting terms or a token.")
    evaluation_only: bool = Field(False, description="True when the dataset is published for evaluation only.")
    id_uncertain: bool = Field(False, description="True when the Hub id could not be verified.")

    @model_validator(mode="after")
    def _one_location(self) -> DataSource:
        if self.kind == "local" and not self.path:
            raise ValueError(f"source '{self.name}': kind 'local' needs 'path' (a file next to the task YAML)")
        if self.kind == "hub" and not self.hub_id:
            raise ValueError(f"source '{self.name}': kind 'hub' needs 'hub_id' (e.g. 'org/dataset')")
        return self


class TaskData(_Strict):
    """Where a task's training, validation and test rows come from."""

    train: list[DataSource] = Field(default_factory=list, description="Candidate training sources; may be empty "
                                    "when the agent must find or synthesise data.")
    validation: DataSource = Field(description="Validation split; steers the search.")
    test: DataSource = Field(description="Held-out test split; used once, for the final report.")

    @model_validator(mode="after")
    def _unique_names(self) -> TaskData:
        names = [s.name for s in self.train] + [self.validation.name, self.test.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique within a task; repeated: {', '.join(dupes)}")
        return self


class EvaluationSpec(_Strict):
    """How a model is scored on the task."""

    kind: EvaluationKind = Field(description="generative, multiple_choice (log-likelihood) or lm_eval (harness).")
    metric: MetricName = Field(description="Headline metric.")
    choices: list[str] | None = Field(None, min_length=2, description="Closed label set for classification.")
    label_separator: str = Field(", ", min_length=1, description="Separator between labels in multi-label targets.")
    max_new_tokens: int = Field(16, ge=1, le=4096, description="Generation budget per example.")
    harness_task: str | None = Field(None, description="Named lm-eval task when kind is lm_eval and data is available.")

    @model_validator(mode="after")
    def _choices_when_needed(self) -> EvaluationSpec:
        if (self.metric in LABEL_METRICS or self.kind == "multiple_choice") and not self.choices:
            raise ValueError(f"evaluation.choices: metric '{self.metric}' / kind '{self.kind}' needs the label set")
        if self.choices and len(set(self.choices)) != len(self.choices):
            raise ValueError("evaluation.choices: labels must be unique")
        return self


class PublishedScores(_Strict):
    """Scores from the paper (or measured for mini tasks), on the task's metric."""

    base: float | None = Field(None, description="Base model score.")
    reference: float | None = Field(None, description="Reference (large) model score.")
    best_trex: float | None = Field(None, description="Best TREX score reported by the paper.")

    @model_validator(mode="after")
    def _finite(self) -> PublishedScores:
        for key in ("base", "reference", "best_trex"):
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"scores.{key}: must be a finite number, got {value}")
        return self


class Budgets(_Strict):
    """Search budgets; the server enforces them whoever plans."""

    max_rounds: int = Field(20, ge=1, le=20, description="Rounds (tree nodes) per search.")
    max_samples_per_round: int = Field(50_000, ge=1, le=50_000, description="Training samples per round.")
    runs_per_round: int = Field(3, ge=1, le=5, description="Default parallel runs (variants) per round.")


class TaskSpec(_Strict):
    """One FT-Bench task."""

    name: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9_\-/]*$",
                      description="Registry name without the 'ftbench/' prefix, e.g. 'mini/sentiment'.")
    version: int = Field(1, ge=1, description="Bumped whenever data or scoring changes.")
    description: str = Field(min_length=1, description="What the task is and what data the agent must find.")
    domain: str = Field(min_length=1, description="Domain, e.g. 'medicine', 'finance', 'sentiment'.")
    base_model: str = Field(min_length=1, description="Model to fine-tune: Hub id, local folder or 'tiny:<size>'.")
    reference_model: str | None = Field(None, description="Large reference model whose score defines G = 100%.")
    data: TaskData
    input_field: str = Field(min_length=1, description="Column holding the input text in evaluation data.")
    target_field: str = Field(min_length=1, description="Column holding the target in evaluation data.")
    prompt_template: str = Field("{input}", min_length=1,
                                 description="Python format string building the prompt; '{input}' is the input field, "
                                 "other '{column}' names are evaluation-data columns.")
    evaluation: EvaluationSpec
    higher_is_better: bool = Field(True, description="Metric direction.")
    scores: PublishedScores = Field(default_factory=PublishedScores)
    budgets: Budgets = Field(default_factory=Budgets)
    mini: bool = Field(False, description="True for offline mini tasks that ship their data.")
    unsafe_code: bool = Field(False, description="Evaluation executes model output; needs operator opt-in.")

    @model_validator(mode="after")
    def _template_mentions_input(self) -> TaskSpec:
        if "{input}" not in self.prompt_template:
            raise ValueError("prompt_template: must contain '{input}' where the input text goes")
        return self

    @property
    def registry_name(self) -> str:
        """The name users type: 'ftbench/<name>'."""
        return f"ftbench/{self.name}"

    def local_path(self, source: DataSource) -> Path:
        """Absolute path of a local source (resolved at load time). Raises ValueError for Hub sources."""
        if source.kind != "local" or source.path is None:
            raise ValueError(f"source '{source.name}' is not a local file")
        return Path(source.path)

    def train_source(self, name: str) -> DataSource:
        """The training source called `name`. Raises KeyError listing the known names."""
        for source in self.data.train:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.data.train) or "none"
        raise KeyError(f"task {self.name} has no training source '{name}'; known: {known}")
