"""Normalised gain: the paper's formula, its fallbacks, and its direction."""

from __future__ import annotations

import math

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.evaluation import EvaluationError, best_possible, normalised_gain, task_gain


def test_gain_is_the_share_of_the_gap_to_the_reference_closed() -> None:
    assert normalised_gain(0.7, base=0.5, reference=0.9, higher_is_better=True) == pytest.approx(0.5)
    assert normalised_gain(0.9, base=0.5, reference=0.9, higher_is_better=True) == pytest.approx(1.0)
    assert normalised_gain(0.4, base=0.5, reference=0.9, higher_is_better=True) == pytest.approx(-0.25)
    assert normalised_gain(1.0, base=0.5, reference=0.9, higher_is_better=True) == pytest.approx(1.25)


def test_gain_is_direction_aware_for_lower_is_better_metrics() -> None:
    assert normalised_gain(0.3, base=0.4, reference=0.2, higher_is_better=False) == pytest.approx(0.5)
    assert normalised_gain(0.5, base=0.4, reference=0.2, higher_is_better=False) == pytest.approx(-0.5)


def test_gain_without_reference_is_relative_to_the_best_possible_value() -> None:
    assert normalised_gain(0.75, base=0.5, reference=None, higher_is_better=True) == pytest.approx(0.5)
    assert normalised_gain(0.1, base=0.4, reference=None, higher_is_better=False) == pytest.approx(0.75)
    # kendall tau ranges over [-1, 1]
    assert best_possible("kendall_tau", True) == 1.0
    assert normalised_gain(0.4, base=-0.2, reference=None, higher_is_better=True,
                           metric="kendall_tau") == pytest.approx(0.5)


def test_gain_falls_back_when_the_reference_equals_or_trails_the_base() -> None:
    assert normalised_gain(0.75, base=0.5, reference=0.5, higher_is_better=True) == pytest.approx(0.5)
    assert normalised_gain(0.75, base=0.5, reference=0.3, higher_is_better=True) == pytest.approx(0.5)


def test_gain_with_no_headroom_is_the_raw_difference_and_stays_finite() -> None:
    assert normalised_gain(1.0, base=1.0, reference=None, higher_is_better=True) == 0.0
    assert normalised_gain(0.9, base=1.0, reference=1.0, higher_is_better=True) == pytest.approx(-0.1)
    assert math.isfinite(normalised_gain(0.0, base=0.0, reference=0.0, higher_is_better=False))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_gain_refuses_non_finite_scores(bad: float) -> None:
    with pytest.raises(EvaluationError, match="finite"):
        normalised_gain(bad, base=0.5, reference=0.9, higher_is_better=True)
    with pytest.raises(EvaluationError, match="finite"):
        normalised_gain(0.5, base=bad, reference=0.9, higher_is_better=True)


def test_task_gain_uses_the_task_reference_score(sentiment: TaskSpec) -> None:
    reference = sentiment.scores.reference
    assert reference is not None
    assert task_gain(sentiment, reference, base=0.5) == pytest.approx(1.0)
    assert task_gain(sentiment, 0.5, base=0.5) == pytest.approx(0.0)
