"""Shared fixtures for execution tests: one tiny sentiment model per session, SFT data, run specs.

`tiny_sentiment_model` (session scope) is meant for other test folders too (the jobs tests): it builds
`tiny:100k` for the mini sentiment task once under `session_home/models`, so a `RunSpec` whose `models_dir` is
`tiny_sentiment_model.models_dir` reuses it instead of building again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.execution.spec import RunSpec

SENTIMENT = "ftbench/mini/sentiment"


@dataclass(frozen=True)
class TinyModel:
    """A built tiny model and what it was built for."""

    task: TaskSpec
    model_id: str
    models_dir: Path
    path: Path


@pytest.fixture(scope="session")
def sentiment_task() -> TaskSpec:
    """The shipped mini sentiment task."""
    from ftbench.registry import load_task

    return load_task(SENTIMENT)


@pytest.fixture(scope="session")
def tiny_sentiment_model(session_home: Path, sentiment_task: TaskSpec) -> TinyModel:
    """`tiny:100k` built once per session for the mini sentiment task under `session_home/models`."""
    from trex_mcp.execution.models import resolve_model

    models_dir = session_home / "models"
    path = resolve_model("tiny:100k", models_dir=models_dir, task=sentiment_task)
    return TinyModel(task=sentiment_task, model_id="tiny:100k", models_dir=models_dir, path=Path(path))


def sft_rows(task: TaskSpec, source: str) -> list[dict[str, str]]:
    """Prompt/completion rows of one task source, formatted as the recipes' materialise step does."""
    from ftbench.data import read_rows

    return [{"prompt": task.prompt_template.format(input=r[task.input_field], **r),
             "completion": " " + str(r[task.target_field])} for r in read_rows(task, source)]


@pytest.fixture(scope="session")
def sentiment_sft_file(tmp_path_factory: pytest.TempPathFactory, sentiment_task: TaskSpec) -> Path:
    """JSONL of TRL prompt/completion rows from the sentiment task's 'clean' training source."""
    path = tmp_path_factory.mktemp("sft-data") / "clean.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(sentiment_task, "clean")))
    return path


@pytest.fixture(scope="session")
def run_spec_factory(tiny_sentiment_model: TinyModel, sentiment_sft_file: Path) -> Callable[..., RunSpec]:
    """Factory: `make(run_dir, config=None, **fields)` -> a RunSpec for a short LoRA SFT of the session tiny
    model on the sentiment 'clean' rows; `config` entries are merged into the default config, other keyword
    arguments replace RunSpec fields."""

    def make(run_dir: Path, config: dict[str, Any] | None = None, **fields: Any) -> RunSpec:
        base: dict[str, Any] = {
            "run_id": "run-1", "tree_id": "tree-1", "node_id": "node-1", "task_name": SENTIMENT,
            "base_model": tiny_sentiment_model.model_id, "dataset_file": sentiment_sft_file,
            "dataset_format": "prompt_completion",
            "config": {"learning_rate": 5e-3, "max_steps": 60, "batch_size": 16, "scheduler": "constant",
                       "max_length": 64, "lora_dropout": 0.0, "save_steps": 1000, **(config or {})},
            "run_dir": run_dir, "models_dir": tiny_sentiment_model.models_dir, "heartbeat_s": 0.2,
            "evaluate": False,
        }
        base.update(fields)
        return RunSpec.model_validate(base)

    return make


@pytest.fixture
def make_run_spec(run_spec_factory: Callable[..., RunSpec], tmp_path: Path) -> Callable[..., RunSpec]:
    """`run_spec_factory` with `run_dir` defaulting to `tmp_path / 'run'`."""

    def make(run_dir: Path | None = None, config: dict[str, Any] | None = None, **fields: Any) -> RunSpec:
        return run_spec_factory(run_dir or tmp_path / "run", config, **fields)

    return make
