"""How a worker's run folder becomes a run outcome for the store (state, score, metrics, artifacts, cost).

Rules (reliability T5, S8 and the worker contract):
- No readable `result.json` -> FAIL `oom` when the log tail shows an out-of-memory error, else `crash`, with
  the exit code or signal in the message and the last <= 50 log lines.
- `status: complete` -> COMPLETE only when `adapter/_COMPLETE` exists (a partial adapter is never reported);
  a run that evaluated (`metric` set) but has no finite score gets score NaN, which the store turns into
  FAIL(`nan_loss`) (the worker writes NaN as null).
- `status: fail` -> FAIL with the worker's kind (unknown kinds read as `crash`) and message.
- Cost: the manager's wall time (else the worker's), device seconds, tokens, train/eval seconds, and the
  orchestration overhead (`wall_s - train_s - eval_s`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tree_store import Failure, FailureKind, State
from trex_mcp.execution.backends.rundir import classify_exit, read_result

__all__ = ["Outcome", "read_outcome"]

_METRIC_KEYS = ("metric", "higher_is_better", "train_loss", "steps", "batch_size", "eval_n", "resumed_from_step",
                "warm_started")


@dataclass
class Outcome:
    """Arguments for `TreeStore.finish_run`."""

    state: State
    score: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None
    cost: dict[str, Any] = field(default_factory=dict)


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def read_outcome(run_dir: Path, *, returncode: int | None, wall_s: float | None, n_devices: int,
                 log_tail: list[str]) -> Outcome:
    """The outcome of the worker that ran in `run_dir` (see the module rules). `wall_s` is the manager's
    measurement (None when it did not watch the end: the worker's own wall time is used)."""
    result = read_result(run_dir)
    tail = "\n".join(log_tail)
    artifacts: dict[str, Any] = {"run_dir": str(run_dir), "log": str(run_dir / "train.log")}
    cost: dict[str, Any] = {}
    if wall_s is None and result is not None:
        wall_s = _number(result.get("wall_s"))
    if wall_s is not None:
        cost["wall_s"] = round(wall_s, 3)
    if result is None:
        kind, message = classify_exit(returncode, log_tail)
        if wall_s is not None:
            cost["device_s"] = round(wall_s * max(1, n_devices), 3)
        return Outcome(State.FAIL, artifacts=artifacts, failure=Failure(FailureKind(kind), message, tail), cost=cost)

    for key in ("train_s", "eval_s", "device_s"):
        if (value := _number(result.get(key))) is not None:
            cost[key] = value
    if (worker_wall := _number(result.get("wall_s"))) is not None:
        cost["worker_wall_s"] = worker_wall
    if isinstance(result.get("tokens"), int):
        cost["tokens"] = result["tokens"]
    if isinstance(result.get("timings"), dict):
        cost["timings"] = {k: v for k, v in result["timings"].items() if _number(v) is not None}
    if isinstance(result.get("device"), str):
        cost["device"] = result["device"]
    if wall_s is not None and "train_s" in cost:
        cost["overhead_s"] = round(max(0.0, wall_s - cost["train_s"] - cost.get("eval_s", 0.0)), 3)
    reported_metrics = result.get("metrics")
    metrics: dict[str, Any] = dict(reported_metrics) if isinstance(reported_metrics, dict) else {}
    metrics.update({k: result[k] for k in _METRIC_KEYS if k in result and _is_json_scalar(result[k])})
    predictions = run_dir / "predictions.jsonl"
    if predictions.is_file():
        artifacts["predictions"] = str(predictions)

    if result.get("status") == "complete":
        adapter = run_dir / "adapter"
        trained = result.get("train", True) is not False  # an evaluation-only baseline run has no adapter
        if trained and not (adapter / "_COMPLETE").is_file():
            failure = Failure(FailureKind.CRASH, "result.json says complete but adapter/_COMPLETE is missing; the "
                              "adapter is incomplete and was not used", tail)
            return Outcome(State.FAIL, metrics=metrics, artifacts=artifacts, failure=failure, cost=cost)
        if trained:
            artifacts["adapter_dir"] = str(adapter)
        score = _number(result.get("score"))
        if score is None and result.get("metric") is not None:
            score = math.nan  # evaluated, but no finite score: the store records FAIL(nan_loss)
        return Outcome(State.COMPLETE, score=score, metrics=metrics, artifacts=artifacts, cost=cost)

    reported = result.get("failure")
    raw: dict[str, Any] = reported if isinstance(reported, dict) else {}
    try:
        kind_enum = FailureKind(raw.get("kind", "crash"))
    except ValueError:
        kind_enum = FailureKind.CRASH
    message = str(raw.get("message") or "the worker reported a failure without a message")
    details = {k: v for k, v in raw.items() if k not in ("kind", "message") and _is_json_scalar(v)}
    if result.get("batch_size") is not None:
        details.setdefault("batch_size", result["batch_size"])
    failure = Failure(kind_enum, message, tail, details)
    return Outcome(State.FAIL, metrics=metrics, artifacts=artifacts, failure=failure, cost=cost)
