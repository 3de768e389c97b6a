"""FT-Bench task specifications.

A task is data: one YAML file per task, validated into a `TaskSpec`. Local data paths in a YAML file are
relative to that file and are resolved to absolute paths when the spec is loaded, so a spec never depends on
the current working directory.

What this module guarantees: a `TaskSpec` that loads is internally consistent (fields it names exist in its
declaration, choices are declared for classification metrics, scores are finite, budgets are in range, Hub ids
are well formed, mini tasks only use local files).
What it does not check: that Hub datasets exist or that local files parse; the task contract tests do that
(`ftbench.testing.TaskContract`).

Validator messages start with the offending field relative to the model that raises them ("choices: ..."), so
the loader can report a full dotted path ("evaluation.choices").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "EXTERNAL_METRIC",
    "LABEL_METRICS",
    "METRICS",
    "Budgets",
    "DataSource",
    "EvaluationKind",
    "EvaluationSpec",
    "MetricName",
    "PublishedScores",
    "TaskData",
    "TaskSpec",
]

MetricName = Literal[
    "accuracy",
    "exact_match",
    "macro_f1",
    "multilabel_macro_f1",
    "multilabel_micro_f1",
    "rouge1",
    "rougeL",
    "kendall_tau",
    "external",
]
EvaluationKind = Literal["generative", "multiple_choice", "lm_eval"]

#: Every metric name a spec may use.
METRICS: tuple[str, ...] = MetricName.__args__  # type: ignore[attr-defined]

#: Metrics that need a closed label set (`evaluation.choices`).
LABEL_METRICS = {"macro_f1", "multilabel_macro_f1", "multilabel_micro_f1"}

#: A score computed by the benchmark's own scorer (named in `evaluation.scorer`), not by trex-mcp.
EXTERNAL_METRIC = "external"

_HUB_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Strict):
    """One place data comes from: a local file shipped with the task, a Hub dataset, or a file at a URL."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$",
                      description="Short id of the source within the task, e.g. 'clean' or 'noisy'.")
    kind: Literal["local", "hub", "url"] = Field(
        description="'local' for a file shipped with the task, 'hub' for a Hub dataset, 'url' for a file published "
                    "outside the Hub (e.g. a GitHub release) that the agent must fetch itself.")
    path: str | None = Field(
        default=None, description="Local file (JSONL, JSON, CSV or Parquet); relative to the YAML file.")
    hub_id: str | None = Field(default=None, pattern=_HUB_ID, description="Hub dataset id, e.g. 'stanfordnlp/sst2'.")
    config: str | None = Field(default=None, description="Hub dataset config name, if any.")
    split: str | None = Field(
        default=None, description="Hub dataset split, e.g. 'train' (slices such as 'train[:1000]' are allowed).")
    revision: str | None = Field(
        default=None, description="Hub dataset revision (commit or tag) for reproducibility.")
    data_files: list[str] | None = Field(
        default=None, min_length=1, description="Files inside the Hub repo, for repos without configs (passed to "
                                                "datasets.load_dataset as data_files).")
    url: str | None = Field(
        default=None, pattern=r"^https://\S+$", description="https URL of the file, folder or archive when kind is "
                                                            "'url'.")
    description: str = Field(default="", max_length=2000, description="What the source holds and how good it is.")
    fields: list[str] = Field(
        default_factory=list, description="Columns every row has, e.g. ['id', 'text', 'label']; checked against "
                                          "local files by the task contract.")
    rows: int | None = Field(default=None, ge=0, description="Number of rows, when known; checked for local files.")
    label_vocabulary: list[str] | None = Field(
        default=None, min_length=1, description="Target labels of this source when they differ from evaluation.choices "
                                        "(e.g. an off-domain source with star ratings instead of positive/negative).")
    gated: bool = Field(default=False, description="True when the Hub dataset requires accepting terms or a token.")
    evaluation_only: bool = Field(
        default=False, description="True when the dataset is published for evaluation only.")
    id_uncertain: bool = Field(default=False, description="True when the Hub id could not be verified.")

    @model_validator(mode="after")
    def _one_location(self) -> DataSource:
        if self.kind == "local" and not self.path:
            raise ValueError(f"path: source '{self.name}' has kind 'local' and needs 'path' (a file next to the "
                             "task YAML)")
        if self.kind == "hub" and not self.hub_id:
            raise ValueError(f"hub_id: source '{self.name}' has kind 'hub' and needs 'hub_id' (e.g. 'org/dataset')")
        if self.kind == "url" and not self.url:
            raise ValueError(f"url: source '{self.name}' has kind 'url' and needs 'url' (an https address)")
        if self.label_vocabulary and len(set(self.label_vocabulary)) != len(self.label_vocabulary):
            raise ValueError("label_vocabulary: labels must be unique")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError("fields: column names must be unique")
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
            raise ValueError(f"train: source names must be unique within a task; repeated: {', '.join(dupes)}")
        return self


class EvaluationSpec(_Strict):
    """How a model is scored on the task."""

    kind: EvaluationKind = Field(description="generative, multiple_choice (log-likelihood) or lm_eval (harness).")
    metric: MetricName = Field(description="Headline metric; 'external' when only the benchmark's own scorer "
                               "(see 'scorer') can compute it.")
    choices: list[str] | None = Field(
        default=None, min_length=2, description="Closed label set for classification.")
    label_separator: str = Field(
        default=", ", min_length=1, description="Separator between labels in multi-label targets.")
    max_new_tokens: int = Field(default=16, ge=1, le=4096, description="Generation budget per example.")
    harness_task: str | None = Field(
        default=None, description="Named lm-eval task when kind is lm_eval and data is available.")
    label_map: dict[str, str] | None = Field(
        default=None, description="Maps raw target values (as strings) to label text, for data whose target column holds "
                          "codes, e.g. a Hub ClassLabel: {'0': 'negative', '1': 'positive'}.")
    scorer: str | None = Field(
        default=None, max_length=500, description="The benchmark's official scorer and how the paper computes the "
                                                  "number (required when metric is 'external').")

    @model_validator(mode="after")
    def _choices_when_needed(self) -> EvaluationSpec:
        if (self.metric in LABEL_METRICS or self.kind == "multiple_choice") and not self.choices:
            raise ValueError(f"choices: metric '{self.metric}' / kind '{self.kind}' needs the label set")
        if self.choices and len(set(self.choices)) != len(self.choices):
            raise ValueError("choices: labels must be unique")
        if self.metric == EXTERNAL_METRIC and not self.scorer:
            raise ValueError("scorer: metric 'external' needs 'scorer' naming the benchmark's official scorer")
        if self.label_map and self.choices:
            unknown = sorted(set(self.label_map.values()) - set(self.choices))
            if unknown:
                raise ValueError(f"label_map: maps to labels outside choices: {', '.join(unknown)}")
        return self


class PublishedScores(_Strict):
    """Scores from the paper (or targets for mini tasks), on the task's metric."""

    base: float | None = Field(default=None, description="Base model score.")
    reference: float | None = Field(default=None, description="Reference (large) model score.")
    best_trex: float | None = Field(default=None, description="Best TREX score reported by the paper.")
    note: str = Field(default="", max_length=1000, description="Where the numbers come from and how sure they are.")

    @model_validator(mode="after")
    def _finite(self) -> PublishedScores:
        for key in ("base", "reference", "best_trex"):
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{key}: must be a finite number, got {value}")
        return self


class Budgets(_Strict):
    """Search budgets; the server enforces them whoever plans."""

    max_rounds: int = Field(default=20, ge=1, le=20, description="Rounds (tree nodes) per search.")
    max_samples_per_round: int = Field(default=50_000, ge=1, le=50_000, description="Training samples per round.")
    runs_per_round: int = Field(default=3, ge=1, le=5, description="Default parallel runs (variants) per round.")


class TaskSpec(_Strict):
    """One FT-Bench task."""

    name: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9_\-/]*$",
                      description="Registry name without the 'ftbench/' prefix, e.g. 'mini/sentiment'.")
    version: int = Field(default=1, ge=1, description="Bumped whenever data or scoring changes.")
    description: str = Field(min_length=1, description="What the task is and what data the agent must find.")
    domain: str = Field(min_length=1, description="Domain, e.g. 'medicine', 'finance', 'sentiment'.")
    base_model: str = Field(min_length=1, description="Model to fine-tune: Hub id, local folder or 'tiny:<size>'.")
    reference_model: str | None = Field(
        default=None, description="Large reference model whose score defines G = 100%.")
    data: TaskData
    input_field: str = Field(min_length=1, description="Column holding the input text in evaluation data.")
    target_field: str = Field(min_length=1, description="Column holding the target in evaluation data.")
    prompt_template: str = Field(default="{input}", min_length=1,
                                 description="Python format string building the prompt; '{input}' is the input field, "
                                 "other '{column}' names are evaluation-data columns.")
    evaluation: EvaluationSpec
    higher_is_better: bool = Field(default=True, description="Metric direction.")
    scores: PublishedScores = Field(default_factory=PublishedScores)
    budgets: Budgets = Field(default_factory=Budgets)
    mini: bool = Field(default=False, description="True for offline mini tasks that ship their data.")
    unsafe_code: bool = Field(default=False, description="Evaluation executes model output; needs operator opt-in.")
    references: list[str] = Field(default_factory=list, description="Paper, repository and dataset-card URLs.")

    @model_validator(mode="after")
    def _template_mentions_input(self) -> TaskSpec:
        if "{input}" not in self.prompt_template:
            raise ValueError("prompt_template: must contain '{input}' where the input text goes")
        if self.mini:
            remote = [s.name for s in self.all_sources() if s.kind != "local"]
            if remote:
                raise ValueError(f"mini: mini tasks ship their data, but source(s) {', '.join(remote)} are not local")
        return self

    @property
    def registry_name(self) -> str:
        """The name users type: 'ftbench/<name>'."""
        return f"ftbench/{self.name}"

    def all_sources(self) -> list[DataSource]:
        """Training sources, then validation, then test."""
        return [*self.data.train, self.data.validation, self.data.test]

    def local_path(self, source: DataSource) -> Path:
        """Absolute path of a local source (resolved at load time). Raises ValueError for Hub and URL sources."""
        if source.kind != "local" or source.path is None:
            raise ValueError(f"source '{source.name}' is not a local file (kind '{source.kind}')")
        return Path(source.path)

    def train_source(self, name: str) -> DataSource:
        """The training source called `name`. Raises KeyError listing the known names."""
        for source in self.data.train:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.data.train) or "none"
        raise KeyError(f"task {self.name} has no training source '{name}'; known: {known}")

    def source(self, name: str) -> DataSource:
        """Any source by name; 'validation' and 'test' also name the evaluation splits. Raises KeyError."""
        if name == "validation":
            return self.data.validation
        if name == "test":
            return self.data.test
        for source in self.all_sources():
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.all_sources())
        raise KeyError(f"task {self.name} has no source '{name}'; known: {known}")

    def target_text(self, row: Mapping[str, Any]) -> str:
        """The reference text of `row`: `label_map` applied, lists joined with `evaluation.label_separator`.

        Raises KeyError when the row lacks the target field.
        """
        value = row[self.target_field]
        mapping = self.evaluation.label_map or {}
        if isinstance(value, list | tuple):
            return self.evaluation.label_separator.join(mapping.get(str(v), str(v)) for v in value)
        if value is None:
            return ""
        return mapping.get(str(value), str(value))

    def format_prompt(self, row: Mapping[str, Any]) -> str:
        """`prompt_template` filled with the row's columns and '{input}' = the input field.

        Raises KeyError when the template names a column the row lacks.
        """
        return self.prompt_template.format(**{**row, "input": row[self.input_field]})
