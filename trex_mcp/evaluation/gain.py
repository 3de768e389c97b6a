"""Normalised gain: how far a score moved from the base model towards a target.

G = (S - S_base) / (S_ref - S_base), the paper's headline number: 0 is the untuned base model, 1 (100%) matches
the large reference model, above 1 beats it, below 0 is worse than the base.

Direction-aware: for a lower-is-better metric both differences are taken in the "better" direction, so an
improvement is always positive. The denominator ("headroom") is, in order:
1. `reference - base` when a reference score is given and the reference is better than the base;
2. otherwise (no reference, the reference equals the base, or the base already beats it) the metric's best
   possible value minus the base: G = (S - S_base) / (S_max - S_base) for higher-is-better metrics,
   (S_base - S) / (S_base - S_min) for lower-is-better ones; S_max is 1.0 unless the metric is known
   (`METRIC_RANGE`);
3. if there is no headroom at all (the base is already at the best possible value), the raw difference in the
   better direction (0 when nothing changed, negative when it got worse).

G is not clipped. Inputs must be finite; a NaN score is never turned into a gain (`EvaluationError`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from trex_mcp.evaluation.errors import EvaluationError
from trex_mcp.evaluation.metrics import METRIC_RANGE

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec

__all__ = ["best_possible", "normalised_gain", "task_gain"]

_EPS = 1e-12


def best_possible(metric: str | None, higher_is_better: bool) -> float:
    """The best value `metric` can take in its direction (1.0 / 0.0 for metrics this module does not know)."""
    low, high = METRIC_RANGE.get(metric or "", (0.0, 1.0))
    return high if higher_is_better else low


def normalised_gain(score: float, *, base: float, reference: float | None, higher_is_better: bool,
                    metric: str | None = None) -> float:
    """G for `score` relative to `base` and `reference` (see the module docstring for the fallbacks).

    Raises `EvaluationError` when a given value is not finite.
    """
    for name, value in (("score", score), ("base", base), ("reference", reference)):
        if value is not None and not math.isfinite(value):
            raise EvaluationError(f"{name} is {value}; a normalised gain needs finite scores", field=name,
                                  hint="a run whose score is NaN or infinite counts as failed, not as a gain")
    sign = 1.0 if higher_is_better else -1.0
    improvement = sign * (score - base)
    if reference is not None and sign * (reference - base) > _EPS:
        return improvement / (sign * (reference - base))
    headroom = sign * (best_possible(metric, higher_is_better) - base)
    if headroom > _EPS:
        return improvement / headroom
    return improvement


def task_gain(task: TaskSpec, score: float, *, base: float) -> float:
    """G for `score` on `task`: its published reference score, direction and metric range."""
    return normalised_gain(score, base=base, reference=task.scores.reference,
                           higher_is_better=task.higher_is_better, metric=task.evaluation.metric)
