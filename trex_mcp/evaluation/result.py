"""The evaluation result record: a score with everything needed to trust and reproduce it.

An `EvalResult` always carries the task version, the metric and its direction, the sample count, the split,
the package versions and every prediction next to its reference (so a score can be recomputed and diagnosed).
Its score is finite by construction: a NaN or infinite score cannot be recorded.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, field_validator
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

__all__ = ["EvalResult", "Prediction", "package_versions"]


class Prediction(TypedDict):
    """One evaluated example. `prediction` is the model's answer cut at its stop (not lower-cased)."""

    id: str
    input: str
    prediction: str
    reference: str
    correct: bool
    score: NotRequired[float]
    truncated: NotRequired[bool]
    raw: NotRequired[str]


class EvalResult(BaseModel):
    """Scores of one model (base, or base + adapter) on one split of one task."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, description="Task name, e.g. 'mini/sentiment'.")
    task_version: int = Field(ge=1, description="Task version the data and scoring belong to.")
    split: Literal["validation", "test"] = Field(description="Split that was scored.")
    kind: Literal["generative", "multiple_choice", "lm_eval"] = Field(description="Evaluation kind.")
    metric: str = Field(min_length=1, description="Headline metric name.")
    score: float = Field(description="Headline score on the metric's own scale (e.g. 0..1 accuracy).")
    higher_is_better: bool = Field(description="Direction of the headline metric.")
    n: int = Field(ge=1, description="Number of scored examples.")
    metrics: dict[str, float] = Field(default_factory=dict,
                                      description="Headline and related metrics (e.g. invalid_rate, f1/<label>).")
    predictions: list[Prediction] = Field(default_factory=list, description="Every prediction with its reference.")
    model_id: str | None = Field(default=None, description="Base model id, when loaded by id.")
    adapter_dir: str | None = Field(default=None, description="Adapter folder evaluated on top of the base model.")
    fingerprint: str | None = Field(default=None, description="Fingerprint of the evaluated model artifact.")
    limit: int | None = Field(default=None, ge=1, description="Only the first `limit` examples were scored.")
    eval_s: float = Field(default=0.0, ge=0, description="Seconds spent evaluating (0 for a cache hit's lookup).")
    cached: bool = Field(default=False, description="True when this result came from the evaluation cache.")
    permit_tree_id: str | None = Field(default=None, description="Tree whose test-split permit allowed a test score.")
    versions: dict[str, str] = Field(default_factory=dict, description="Package versions used to score.")
    created_at: float = Field(default=0.0, ge=0, description="Unix time the score was computed.")

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"score must be finite, got {value}")
        return value

    def summary(self) -> str:
        """One line: task, split, metric, score, n."""
        tail = " (cached)" if self.cached else ""
        return f"{self.task} {self.split}: {self.metric}={self.score:.4f} on {self.n} examples{tail}"


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of `names` (only the ones installed)."""
    return {name: version for name in names if (version := _version(name)) is not None}


@functools.lru_cache(maxsize=64)
def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
