"""The lm-evaluation-harness bridge agrees with the built-in evaluator and honours the split."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.evaluation import EvaluationError, evaluate_model
from trex_mcp.evaluation.harness import jinja_template


@pytest.fixture(scope="module")
def trained(sentiment: TaskSpec, models_dir: Path, trained_model_dir: Path) -> tuple[Any, Any]:
    from trex_mcp.execution.models import load_model

    return load_model(sentiment.base_model, models_dir=models_dir, task=sentiment, adapter_dir=trained_model_dir)


def test_prompt_templates_translate_to_literal_safe_jinja() -> None:
    assert jinja_template("Review: {input}\nSentiment:", "text") == (
        "{% raw %}Review: {% endraw %}{{ text }}{% raw %}\nSentiment:{% endraw %}")
    assert "{{ title }}" in jinja_template("{title} {{braces}} {input}", "body")
    with pytest.raises(EvaluationError, match="cannot be translated"):
        jinja_template("{input!r}", "text")


def test_harness_multiple_choice_agrees_with_the_built_in_log_likelihood_scorer(
        task_variant: Callable[..., TaskSpec], trained: tuple[Any, Any]) -> None:
    own = evaluate_model(task_variant(evaluation={"kind": "multiple_choice"}), *trained, limit=40)
    harness = evaluate_model(task_variant(evaluation={"kind": "lm_eval"}), *trained, limit=40)
    assert own.score >= 0.8
    assert [p["prediction"] for p in harness.predictions] == [p["prediction"] for p in own.predictions]
    assert harness.score == pytest.approx(own.score)
    assert harness.metrics["harness/acc,none"] == pytest.approx(own.score)
    assert [p["id"] for p in harness.predictions] == [p["id"] for p in own.predictions]


def test_harness_generation_agrees_with_the_built_in_generator(task_variant: Callable[..., TaskSpec],
                                                               trained: tuple[Any, Any]) -> None:
    spec = {"metric": "exact_match", "choices": None}
    own = evaluate_model(task_variant(evaluation={**spec, "kind": "generative"}), *trained, limit=30)
    harness = evaluate_model(task_variant(evaluation={**spec, "kind": "lm_eval"}), *trained, limit=30)
    assert [p["prediction"] for p in harness.predictions] == [p["prediction"] for p in own.predictions]
    assert harness.score == pytest.approx(own.score)
    assert harness.metrics["harness/exact_match,strip"] == pytest.approx(own.score)


def test_a_named_harness_task_is_scored_on_the_requested_split(sentiment: TaskSpec, tmp_path: Path,
                                                               task_variant: Callable[..., TaskSpec],
                                                               trained: tuple[Any, Any]) -> None:
    from trex_mcp.evaluation import mint_test_split_permit

    files = {}
    for split, prefix in (("validation", "v"), ("test", "t")):
        files[split] = tmp_path / f"{split}.jsonl"
        rows = [{"id": f"{prefix}{i}", "text": "great" if i % 2 else "terrible",
                 "label": "positive" if i % 2 else "negative"} for i in range(6)]
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    yaml = tmp_path / "toy_named.yaml"
    yaml.write_text(
        "task: toy_named\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    validation: {files['validation']}\n    test: {files['test']}\n"
        "validation_split: validation\ntest_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: \"Review: {{text}}\\nSentiment:\"\ndoc_to_choice: [positive, negative]\n"
        "doc_to_target: \"{{ ['positive', 'negative'].index(label) }}\"\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
    task = task_variant(evaluation={"kind": "lm_eval", "harness_task": str(yaml)})
    validation = evaluate_model(task, *trained)
    assert [p["id"] for p in validation.predictions] == [f"v{i}" for i in range(6)]
    assert validation.metric == "accuracy" and 0.0 <= validation.score <= 1.0
    assert {p["reference"] for p in validation.predictions} == {"positive", "negative"}
    permit = mint_test_split_permit(type("T", (), {"id": "t", "status": "finished",
                                                   "task_name": "mini/sentiment"})())
    test = evaluate_model(task, *trained, split="test", permit=permit)
    assert [p["id"] for p in test.predictions] == [f"t{i}" for i in range(6)]


def test_an_unknown_named_harness_task_is_an_error(task_variant: Callable[..., TaskSpec], tmp_path: Path,
                                                   trained: tuple[Any, Any]) -> None:
    task = task_variant(evaluation={"kind": "lm_eval", "harness_task": str(tmp_path / "nope.yaml")})
    with pytest.raises(EvaluationError, match="is not available"):
        evaluate_model(task, *trained)
