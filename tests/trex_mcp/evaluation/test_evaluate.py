"""End-to-end evaluation on the mini sentiment task with real tiny models: learning shows, results are cached,
bad input is refused before anything is scored."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.evaluation import (
    EvalResult,
    EvaluationError,
    base_score,
    diagnose,
    eval_cache_dir,
    evaluate,
    evaluate_model,
)
from trex_mcp.evaluation.fingerprint import fingerprint_folder
from trex_mcp.settings import Settings


def cache_entries(settings: Settings) -> int:
    from diskcache import Cache

    directory = eval_cache_dir(settings)
    if not directory.exists():
        return 0
    with Cache(str(directory)) as cache:
        return len(cache)


def test_the_score_tracks_learning_on_the_mini_task(sentiment: TaskSpec, base_model: tuple[Any, Any],
                                                    trained_model_dir: Path, models_dir: Path) -> None:
    from trex_mcp.execution.models import load_model

    untrained = evaluate_model(sentiment, *base_model, split="validation")
    trained = evaluate_model(sentiment, *load_model(sentiment.base_model, models_dir=models_dir, task=sentiment,
                                                    adapter_dir=trained_model_dir), split="validation")
    assert untrained.score <= 0.2
    assert trained.score >= 0.8
    assert trained.metrics["invalid_rate"] == 0.0 and trained.metrics["truncated_rate"] == 0.0
    assert trained.metrics["macro_f1"] >= 0.75
    for result in (untrained, trained):
        assert result.n == 100 and len(result.predictions) == 100
        assert result.task_version == sentiment.version and result.higher_is_better
        assert {"torch", "transformers"} <= set(result.versions)
        assert all(p["reference"] in ("positive", "negative") for p in result.predictions)
        assert sum(p["correct"] for p in result.predictions) == round(result.score * 100)
    # the untrained model's answers are not labels at all: the diagnosis says so
    groups = diagnose(sentiment, untrained.predictions).group_counts()
    assert groups.get("truncated", 0) + groups.get("invalid_label", 0) + groups.get("empty", 0) >= 80
    trained_groups = diagnose(sentiment, trained.predictions).groups
    assert trained_groups and all(g.kind == "confusion" for g in trained_groups)


def test_evaluate_caches_by_artifact_and_returns_the_same_result(sentiment: TaskSpec, fresh_settings: Settings,
                                                                 trained_model_dir: Path) -> None:
    first = evaluate(sentiment, adapter_dir=trained_model_dir, settings=fresh_settings, limit=40)
    assert not first.cached and first.fingerprint and first.adapter_dir == str(trained_model_dir)
    second = evaluate(sentiment, adapter_dir=trained_model_dir, settings=fresh_settings, limit=40)
    assert second.cached
    assert second.score == first.score and second.predictions == first.predictions
    assert second.fingerprint == first.fingerprint
    base = evaluate(sentiment, settings=fresh_settings, limit=40)  # another artifact: another entry
    assert not base.cached and base.fingerprint != first.fingerprint
    assert cache_entries(fresh_settings) == 2


def test_base_score_is_evaluated_once_per_task_and_base_model(sentiment: TaskSpec,
                                                              fresh_settings: Settings) -> None:
    score = base_score(sentiment, fresh_settings)
    assert cache_entries(fresh_settings) == 1
    again = evaluate(sentiment, settings=fresh_settings)
    assert again.cached and again.score == score and again.model_id == sentiment.base_model
    assert base_score(sentiment, fresh_settings) == score
    assert cache_entries(fresh_settings) == 1


def test_adapter_fingerprint_covers_names_sizes_and_weights(lora_adapter_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(lora_adapter_dir, copy)
    assert fingerprint_folder(copy) == fingerprint_folder(lora_adapter_dir)
    weights = copy / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # same name, same size, different weights
    weights.write_bytes(bytes(data))
    assert fingerprint_folder(copy) != fingerprint_folder(lora_adapter_dir)


def test_a_lora_adapter_is_loaded_merged_and_scored(sentiment: TaskSpec, fresh_settings: Settings,
                                                    lora_adapter_dir: Path) -> None:
    with_adapter = evaluate(sentiment, adapter_dir=lora_adapter_dir, settings=fresh_settings, limit=20)
    base = evaluate(sentiment, settings=fresh_settings, limit=20)
    assert with_adapter.fingerprint != base.fingerprint
    # an untrained LoRA adapter is a no-op once merged
    assert [p["prediction"] for p in with_adapter.predictions] == [p["prediction"] for p in base.predictions]


# ------------------------------------------------------------------------------------------ bad input


def test_a_missing_split_file_is_an_error_and_nothing_is_cached(sentiment: TaskSpec, fresh_settings: Settings,
                                                                tmp_path: Path) -> None:
    gone = sentiment.data.validation.model_copy(update={"path": str(tmp_path / "nope.jsonl")})
    task = sentiment.model_copy(update={"data": sentiment.data.model_copy(update={"validation": gone})})
    with pytest.raises(EvaluationError, match="validation split of task mini/sentiment is missing"):
        evaluate(task, settings=fresh_settings)
    assert cache_entries(fresh_settings) == 0


def test_a_label_outside_the_choices_is_an_error(task_variant: Callable[..., TaskSpec], fresh_settings: Settings,
                                                 base_model: tuple[Any, Any]) -> None:
    task = task_variant([{"id": "a", "text": "fine", "label": "positive"},
                         {"id": "b", "text": "meh", "label": "neutral"}])
    with pytest.raises(EvaluationError, match="row 'b'.*'neutral'.*not one of the declared choices") as info:
        evaluate_model(task, *base_model)
    assert info.value.field == "label"
    with pytest.raises(EvaluationError, match="neutral"):
        evaluate(task, settings=fresh_settings)
    assert cache_entries(fresh_settings) == 0


def test_an_empty_evaluation_set_is_an_error(task_variant: Callable[..., TaskSpec],
                                             base_model: tuple[Any, Any]) -> None:
    with pytest.raises(EvaluationError, match="is empty; nothing to evaluate"):
        evaluate_model(task_variant([]), *base_model)


def test_a_row_without_its_target_field_is_an_error(task_variant: Callable[..., TaskSpec],
                                                    base_model: tuple[Any, Any]) -> None:
    with pytest.raises(EvaluationError, match="row 'x' .* has no 'label' field"):
        evaluate_model(task_variant([{"id": "x", "text": "fine"}]), *base_model)


def test_an_adapter_for_another_base_model_is_an_error(sentiment: TaskSpec, fresh_settings: Settings,
                                                       lora_adapter_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(lora_adapter_dir, other)
    meta = json.loads((other / "trex_adapter.json").read_text())
    (other / "trex_adapter.json").write_text(json.dumps({**meta, "base_model": "tiny:2m"}))
    with pytest.raises(EvaluationError, match="trained on 'tiny:2m'") as info:
        evaluate(sentiment, adapter_dir=other, settings=fresh_settings)
    assert info.value.field == "adapter_dir"
    assert cache_entries(fresh_settings) == 0


def test_an_adapter_whose_shapes_do_not_fit_is_an_error(sentiment: TaskSpec, fresh_settings: Settings,
                                                        tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    wider = LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=96, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    adapter = tmp_path / "wide-adapter"
    get_peft_model(wider, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM")).save_pretrained(
        str(adapter))
    with pytest.raises(EvaluationError, match="does not fit"):
        evaluate(sentiment, adapter_dir=adapter, settings=fresh_settings)
    with pytest.raises(EvaluationError, match="does not exist"):
        evaluate(sentiment, adapter_dir=tmp_path / "missing", settings=fresh_settings)
    assert cache_entries(fresh_settings) == 0


def test_a_task_that_executes_model_output_needs_the_operator_opt_in(task_variant: Callable[..., TaskSpec],
                                                                     base_model: tuple[Any, Any]) -> None:
    with pytest.raises(EvaluationError, match="executes model output"):
        evaluate_model(task_variant(unsafe_code=True), *base_model)


def test_results_serialise_and_refuse_non_finite_scores(sentiment: TaskSpec, base_model: tuple[Any, Any]) -> None:
    result = evaluate_model(sentiment, *base_model, limit=3)
    again = EvalResult.model_validate(json.loads(result.model_dump_json()))
    assert again == result
    with pytest.raises(ValueError, match="finite"):
        EvalResult.model_validate({**result.model_dump(), "score": float("nan")})
