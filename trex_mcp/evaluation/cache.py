"""The evaluation cache: results keyed by (model artifact fingerprint, evaluation spec, data, split).

Stored in diskcache (SQLite, process-safe) under `settings.cache_dir / "eval"`. A cache handle is opened per
operation, so nothing is held across processes or threads. The key also covers the task's prompt template and
fields, the split's data content hash, the `limit`, and `EVAL_FORMAT`, which is bumped whenever scoring code
changes meaning; a stale entry is therefore never returned for changed data or scoring.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trex_mcp.evaluation.data import data_fingerprint

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec

__all__ = ["EVAL_FORMAT", "cache_get", "cache_key", "cache_set"]

#: Bump when a change to generation, parsing or metrics changes scores.
EVAL_FORMAT = 1


def cache_key(*, fingerprint: str, task: TaskSpec, split: str, limit: int | None) -> str:
    """The sha256 key of one evaluation. Raises `EvaluationError` when the split's data is missing."""
    payload = {
        "format": EVAL_FORMAT,
        "artifact": fingerprint,
        "task": task.name,
        "task_version": task.version,
        "evaluation": task.evaluation.model_dump(mode="json"),
        "prompt_template": task.prompt_template,
        "fields": [task.input_field, task.target_field],
        "higher_is_better": task.higher_is_better,
        "data": data_fingerprint(task, split),
        "split": split,
        "limit": limit,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cache_get(directory: Path, key: str) -> dict[str, Any] | None:
    """The stored result dict for `key`, or None."""
    from diskcache import Cache

    if not Path(directory).is_dir():
        return None
    with Cache(str(directory)) as cache:
        value = cache.get(key, default=None, retry=True)
    return value if isinstance(value, dict) else None


def cache_set(directory: Path, key: str, value: dict[str, Any]) -> None:
    """Store `value` (a JSON-able result dict) under `key`."""
    from diskcache import Cache

    Path(directory).mkdir(parents=True, exist_ok=True)
    with Cache(str(directory)) as cache:
        cache.set(key, value, retry=True)
