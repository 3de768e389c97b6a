"""The test split is reachable only with a permit minted for a finished tree."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass
from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.evaluation import EvaluationError, TestSplitPermit, evaluate_model, mint_test_split_permit
from trex_mcp.settings import Settings


@dataclass(frozen=True)
class FakeTree:
    id: str
    status: str
    task_name: str


def test_a_permit_cannot_be_built_directly() -> None:
    with pytest.raises(EvaluationError, match="cannot be built directly"):
        TestSplitPermit(tree_id="t", task_name="mini/sentiment")


def test_a_permit_is_minted_only_for_a_finished_tree() -> None:
    for status in ("active", "stopped"):
        with pytest.raises(EvaluationError, match="not 'finished'"):
            mint_test_split_permit(FakeTree("t1", status, "ftbench/mini/sentiment"))
    permit = mint_test_split_permit(FakeTree("t1", "finished", "ftbench/mini/sentiment"))
    assert permit.tree_id == "t1" and permit.task_name == "mini/sentiment"


def test_a_permit_cannot_be_changed_pickled_or_copied() -> None:
    permit = mint_test_split_permit(FakeTree("t1", "finished", "mini/sentiment"))
    with pytest.raises(EvaluationError, match="read-only"):
        permit.task_name = "mini/notes"
    with pytest.raises(EvaluationError):
        pickle.dumps(permit)
    with pytest.raises(EvaluationError):
        copy.copy(permit)
    assert permit.task_name == "mini/sentiment" and "t1" in repr(permit)


def test_test_split_needs_a_permit_for_the_same_task(sentiment: TaskSpec, base_model: tuple[Any, Any]) -> None:
    model, tok = base_model
    with pytest.raises(EvaluationError, match="needs a TestSplitPermit") as info:
        evaluate_model(sentiment, model, tok, split="test")
    assert info.value.field == "split"
    other = mint_test_split_permit(FakeTree("t2", "finished", "mini/notes"))
    with pytest.raises(EvaluationError, match="minted for task 'mini/notes'"):
        evaluate_model(sentiment, model, tok, split="test", permit=other)
    with pytest.raises(EvaluationError, match="unknown split"):
        evaluate_model(sentiment, model, tok, split="train", limit=2)  # type: ignore[arg-type]
    permit = mint_test_split_permit(FakeTree("t3", "finished", "mini/sentiment"))
    result = evaluate_model(sentiment, model, tok, split="test", permit=permit, limit=5)
    assert result.split == "test" and result.permit_tree_id == "t3" and result.n == 5
    assert result.predictions[0]["id"].startswith("sent-test")


def test_cached_evaluation_also_refuses_the_test_split_without_a_permit(sentiment: TaskSpec,
                                                                        settings: Settings) -> None:
    from trex_mcp.evaluation import base_score, evaluate

    with pytest.raises(EvaluationError, match="TestSplitPermit"):
        evaluate(sentiment, split="test", settings=settings)
    with pytest.raises(EvaluationError, match="TestSplitPermit"):
        base_score(sentiment, settings, split="test")
