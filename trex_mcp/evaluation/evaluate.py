"""Evaluate a model on a task's validation (search) or test (final report only) split.

- `evaluate_model(task, model, tokenizer, ...)`: an in-memory model (the training worker calls it right after
  training). Nothing is cached.
- `evaluate(task, model_id=..., adapter_dir=..., settings=...)`: loads the base model (plus adapter, merged),
  and caches the result by (artifact fingerprint, evaluation spec, data, split) under
  `settings.cache_dir / "eval"`.
- `base_score(task, settings)`: the base model's score, evaluated once per (task, base model) and cached.

Guarantees: the test split is refused without a `TestSplitPermit` (see `permit.py`); every failure that is the
caller's or the data's (missing split, label outside the choices, empty split, adapter that does not fit the
base model, task that executes model output without the operator's opt-in) raises `EvaluationError` before
anything is scored or cached; scores are finite.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trex_mcp.evaluation.cache import cache_get, cache_key, cache_set
from trex_mcp.evaluation.data import EvalExample, load_examples
from trex_mcp.evaluation.errors import EvaluationError
from trex_mcp.evaluation.fingerprint import combine, fingerprint_folder, fingerprint_model
from trex_mcp.evaluation.generation import Completion, choice_loglikelihoods, generate_completions
from trex_mcp.evaluation.metrics import score_predictions
from trex_mcp.evaluation.permit import TestSplitPermit, check_split_access
from trex_mcp.evaluation.result import EvalResult, Prediction, package_versions

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec
    from trex_mcp.settings import Settings

__all__ = ["base_score", "eval_cache_dir", "evaluate", "evaluate_model"]

Split = Literal["validation", "test"]
_RAW_CHARS = 300


def eval_cache_dir(settings: Settings) -> Path:
    """Where evaluation results are cached."""
    return settings.cache_dir / "eval"


def _check_unsafe(task: TaskSpec, allow_unsafe_code: bool) -> None:
    if task.unsafe_code and not allow_unsafe_code:
        raise EvaluationError(f"task {task.name} executes model output during evaluation", field="task",
                              hint="the operator must set allow_unsafe_code in the server settings "
                              "(it is not a sandbox)")


def evaluate_model(task: TaskSpec, model: Any, tokenizer: Any, *, split: Split = "validation",
                   limit: int | None = None, batch_size: int = 32, permit: TestSplitPermit | None = None,
                   allow_unsafe_code: bool = False) -> EvalResult:
    """Score an in-memory `model` on `split` of `task`, keeping every prediction with its reference.

    `split="test"` needs a `permit` minted for this task's finished tree. Returns an `EvalResult`.
    Raises `EvaluationError` for a refused split, unreadable or invalid data, or an empty split.
    """
    check_split_access(split, task.name, permit)
    _check_unsafe(task, allow_unsafe_code)
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be at least 1, got {batch_size}", field="batch_size")
    examples = load_examples(task, split, limit=limit)
    started = time.perf_counter()
    spec = task.evaluation
    stop_at_newline = not any("\n" in ex.reference for ex in examples)
    harness_metrics: dict[str, float] = {}
    versions = ["torch", "transformers", "peft", "scikit-learn", "rouge-score", "scipy"]
    if spec.kind == "lm_eval":
        from trex_mcp.evaluation.harness import run_harness

        versions.append("lm_eval")
        run = run_harness(task, model, tokenizer, split=split, examples=examples, limit=limit,
                          batch_size=batch_size, stop_at_newline=stop_at_newline,
                          allow_unsafe_code=allow_unsafe_code)
        harness_metrics = run.metrics
        if run.samples:
            return _named_result(task, split, run.samples, run.metrics, run.metric_key or "", limit, permit,
                                 time.perf_counter() - started, package_versions(*versions))
        completions = run.completions
    elif spec.kind == "multiple_choice":
        completions = _choose(model, tokenizer, examples, spec.choices or [], batch_size)
    else:
        completions = generate_completions(model, tokenizer, [ex.prompt for ex in examples],
                                           max_new_tokens=spec.max_new_tokens, stop_at_newline=stop_at_newline,
                                           batch_size=batch_size)
    scored = score_predictions(spec, [c.text for c in completions], [ex.reference for ex in examples])
    predictions: list[Prediction] = [
        Prediction(id=ex.id, input=ex.input, prediction=c.text, reference=ex.reference, correct=bool(ok),
                   score=float(s), truncated=c.truncated, raw=c.raw[:_RAW_CHARS])
        for ex, c, ok, s in zip(examples, completions, scored.correct, scored.example_scores, strict=True)
    ]
    metrics = {**scored.metrics, **harness_metrics,
               "truncated_rate": sum(c.truncated for c in completions) / len(completions)}
    return EvalResult(task=task.name, task_version=task.version, split=split, kind=spec.kind, metric=spec.metric,
                      score=scored.score, higher_is_better=task.higher_is_better, n=len(examples), metrics=metrics,
                      predictions=predictions, limit=limit, eval_s=time.perf_counter() - started,
                      permit_tree_id=permit.tree_id if permit else None, versions=package_versions(*versions),
                      created_at=time.time())


def _choose(model: Any, tokenizer: Any, examples: list[EvalExample], choices: list[str],
            batch_size: int) -> list[Completion]:
    scores = choice_loglikelihoods(model, tokenizer, [ex.prompt for ex in examples], choices,
                                   batch_size=batch_size)
    out = []
    for row in scores:
        best = max(range(len(choices)), key=lambda i: row[i])
        out.append(Completion(text=choices[best], raw=json.dumps({c: round(s, 4) for c, s in zip(choices, row,
                                                                                                 strict=True)}),
                              truncated=False))
    return out


def _named_result(task: TaskSpec, split: Split, samples: list[dict[str, Any]], metrics: dict[str, float],
                  metric_key: str, limit: int | None, permit: TestSplitPermit | None, elapsed: float,
                  versions: dict[str, str]) -> EvalResult:
    """An `EvalResult` from a named harness task's samples (its own docs, prompts and metric)."""
    short = metric_key.removeprefix("harness/").split(",")[0]
    predictions: list[Prediction] = []
    for sample in samples:
        args = sample.get("arguments") or [("", "")]
        resps = sample.get("filtered_resps") or [""]
        target = sample.get("target")
        if args and isinstance(args[0][1], str):  # multiple choice: pick the most likely continuation
            lls = [float(r[0] if isinstance(r, list | tuple) else r) for r in resps]
            prediction = args[max(range(len(lls)), key=lambda i: lls[i])][1].strip()
            reference = args[target][1].strip() if isinstance(target, int) and target < len(args) else str(target)
        else:
            prediction, reference = str(resps[0]).strip(), str(target)
        value = sample.get(short)
        correct = bool(float(value) >= 1.0) if isinstance(value, int | float) else prediction == reference
        doc = sample.get("doc") or {}
        predictions.append(Prediction(id=str(doc.get("id", sample["doc_id"])), input=str(args[0][0]),
                                      prediction=prediction, reference=reference, correct=correct,
                                      score=float(value) if isinstance(value, int | float) else float(correct)))
    if not predictions:
        raise EvaluationError(f"lm-eval scored no examples of task {task.name}", field="split")
    return EvalResult(task=task.name, task_version=task.version, split=split, kind="lm_eval",
                      metric=task.evaluation.metric, score=metrics[metric_key], higher_is_better=task.higher_is_better,
                      n=len(predictions), metrics=metrics, predictions=predictions, limit=limit, eval_s=elapsed,
                      permit_tree_id=permit.tree_id if permit else None, versions=versions, created_at=time.time())


def _model_error(exc: Exception, model_id: str) -> EvaluationError:
    field = getattr(exc, "field", None) or "model_id"
    hint = getattr(exc, "hint", None)
    message = getattr(exc, "message", str(exc))
    return EvaluationError(f"cannot evaluate '{model_id}': {message}", field=field, hint=hint)


def evaluate(task: TaskSpec, *, model_id: str | None = None, adapter_dir: str | Path | None = None,
             split: Split = "validation", settings: Settings, permit: TestSplitPermit | None = None,
             limit: int | None = None, batch_size: int = 32, use_cache: bool = True) -> EvalResult:
    """Load `model_id` (default: the task's base model) plus `adapter_dir`, score it on `split`, cache it.

    A cached result comes back with `cached=True`; `use_cache=False` forces a fresh evaluation (which then
    replaces the cached entry). Raises `EvaluationError` for a refused split, a model or
    adapter that cannot be loaded (including an adapter trained on another base model), or invalid data.
    """
    from trex_mcp.execution.models import ModelError, load_model, resolve_model

    check_split_access(split, task.name, permit)
    _check_unsafe(task, settings.allow_unsafe_code)
    model_id = model_id or task.base_model
    adapter = Path(adapter_dir).expanduser().resolve() if adapter_dir is not None else None
    if adapter is not None and not adapter.is_dir():
        raise EvaluationError(f"adapter folder {adapter} does not exist", field="adapter_dir",
                              hint="give the run's adapter/ folder")
    try:
        resolved = resolve_model(model_id, models_dir=settings.models_dir, task=task)
    except ModelError as exc:
        raise _model_error(exc, model_id) from exc
    fingerprint = combine(fingerprint_model(model_id, resolved),
                          fingerprint_folder(adapter) if adapter is not None else None)
    key = cache_key(fingerprint=fingerprint, task=task, split=split, limit=limit)
    directory = eval_cache_dir(settings)
    if use_cache:
        hit = cache_get(directory, key)
        if hit is not None:
            result = EvalResult.model_validate(hit)
            return result.model_copy(update={"cached": True,
                                             "permit_tree_id": permit.tree_id if permit else None})
    try:
        model, tokenizer = load_model(model_id, models_dir=settings.models_dir, task=task, adapter_dir=adapter,
                                      merge=adapter is not None)
    except ModelError as exc:
        raise _model_error(exc, model_id) from exc
    result = evaluate_model(task, model, tokenizer, split=split, limit=limit, batch_size=batch_size,
                            permit=permit, allow_unsafe_code=settings.allow_unsafe_code)
    result = result.model_copy(update={"model_id": model_id, "fingerprint": fingerprint,
                                       "adapter_dir": str(adapter) if adapter is not None else None})
    cache_set(directory, key, result.model_dump(mode="json", exclude={"cached", "permit_tree_id"}))
    return result


def base_score(task: TaskSpec, settings: Settings, *, split: Split = "validation",
               permit: TestSplitPermit | None = None) -> float:
    """The task's base model score on `split`, evaluated once per (task, base model) and cached.

    Raises `EvaluationError` like `evaluate`.
    """
    return evaluate(task, model_id=task.base_model, split=split, settings=settings, permit=permit).score
