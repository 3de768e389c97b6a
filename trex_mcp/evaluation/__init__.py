"""Evaluation: metrics, generation, the lm-eval bridge, normalised gain and bad-case diagnosis.

Public surface (heavy libraries are imported only inside the functions that need them):
- `evaluate_model(task, model, tokenizer, split=...)` and `evaluate(task, model_id=..., settings=...)` ->
  `EvalResult`; `base_score(task, settings)`.
- `normalised_gain(score, base=..., reference=..., higher_is_better=...)`; `task_gain(task, score, base=...)`.
- `diagnose(task, predictions)` -> `Diagnosis` (`.to_text(max_chars)`, `.to_dict()`).
- `TestSplitPermit` / `mint_test_split_permit(tree)`: the only way to score the test split.
- `EvaluationError`: every expected failure.
"""

from trex_mcp.evaluation.diagnosis import Diagnosis, DiagnosisExample, DiagnosisGroup, diagnose
from trex_mcp.evaluation.errors import EvaluationError
from trex_mcp.evaluation.evaluate import base_score, eval_cache_dir, evaluate, evaluate_model
from trex_mcp.evaluation.gain import best_possible, normalised_gain, task_gain
from trex_mcp.evaluation.metrics import METRIC_RANGE, score_predictions
from trex_mcp.evaluation.permit import TestSplitPermit, mint_test_split_permit
from trex_mcp.evaluation.result import EvalResult, Prediction

__all__ = [
    "METRIC_RANGE",
    "Diagnosis",
    "DiagnosisExample",
    "DiagnosisGroup",
    "EvalResult",
    "EvaluationError",
    "Prediction",
    "TestSplitPermit",
    "base_score",
    "best_possible",
    "diagnose",
    "eval_cache_dir",
    "evaluate",
    "evaluate_model",
    "mint_test_split_permit",
    "normalised_gain",
    "score_predictions",
    "task_gain",
]
