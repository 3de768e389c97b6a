"""Fixtures for the evaluation tests: the mini sentiment task, its tiny base model, a really fine-tuned model.

`trained_model_dir` runs a real (short) full-parameter SFT of `tiny:100k` on the task's clean training rows once
per session (80 steps, a few seconds) and saves it as a model folder, the shape `load_model` accepts as
`adapter_dir` for full fine-tunes. `lora_adapter_dir` is an untrained PEFT LoRA adapter on the same base (a valid
adapter whose merge leaves the base unchanged), for the adapter and cache paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.settings import Settings

SENTIMENT = "mini/sentiment"


@pytest.fixture(scope="session")
def sentiment() -> TaskSpec:
    """The shipped mini sentiment task (100 validation rows, labels positive|negative)."""
    from ftbench.registry import load_task

    return load_task(SENTIMENT)


@pytest.fixture(scope="session")
def models_dir(session_home: Path) -> Path:
    """Where this session's tiny models are built (shared by every evaluation test)."""
    return session_home / "models"


@pytest.fixture(scope="session")
def settings(session_home: Path) -> Settings:
    """Settings on the session home; tests that check the cache use `fresh_settings` instead."""
    return Settings(home=session_home)


@pytest.fixture
def fresh_settings(tmp_path: Path, models_dir: Path) -> Settings:
    """Settings with an empty cache, sharing the session's built models through a symlink."""
    home = tmp_path / "home"
    home.mkdir()
    models_dir.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(models_dir, target_is_directory=True)
    return Settings(home=home)


@pytest.fixture
def base_model(sentiment: TaskSpec, models_dir: Path) -> tuple[Any, Any]:
    """A fresh (model, tokenizer) of the task's untrained base model."""
    import torch

    from trex_mcp.execution.models import load_model

    torch.set_num_threads(1)
    return load_model(sentiment.base_model, models_dir=models_dir, task=sentiment)


def sft_rows(task: TaskSpec, source: str) -> list[dict[str, str]]:
    """TRL prompt/completion rows of one training source: completion is ' ' + target."""
    from ftbench.data import read_rows

    return [{"prompt": task.prompt_template.format(**{**r, "input": r[task.input_field]}),
             "completion": " " + str(r[task.target_field])} for r in read_rows(task, task.train_source(source))]


@pytest.fixture(scope="session")
def trained_model_dir(sentiment: TaskSpec, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real fine-tune: full SFT of tiny:100k on the clean rows, saved as a model folder."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trex_mcp.execution.models import load_model, write_adapter_meta

    torch.set_num_threads(1)
    model, tokenizer = load_model(sentiment.base_model, models_dir=models_dir, task=sentiment)
    out = tmp_path_factory.mktemp("trained")
    args = SFTConfig(output_dir=str(out / "trainer"), max_steps=80, per_device_train_batch_size=16,
                     learning_rate=3e-3, lr_scheduler_type="constant", save_strategy="no", report_to="none",
                     use_cpu=True, bf16=False, activation_checkpointing=False, max_length=64, disable_tqdm=True,
                     seed=0, logging_steps=50)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_rows(sentiment, "clean")),
                         processing_class=tokenizer)
    trainer.train()
    folder = out / "model"
    trainer.save_model(str(folder))
    tokenizer.save_pretrained(str(folder))
    write_adapter_meta(folder, base_model=sentiment.base_model, task=sentiment, adapter="full")
    return folder


@pytest.fixture(scope="session")
def lora_adapter_dir(sentiment: TaskSpec, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained LoRA adapter for the task's base model (valid, and a no-op once merged)."""
    from peft import LoraConfig, get_peft_model

    from trex_mcp.execution.models import load_model, write_adapter_meta

    model, _ = load_model(sentiment.base_model, models_dir=models_dir, task=sentiment)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  task_type="CAUSAL_LM"))
    folder = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(str(folder))
    write_adapter_meta(folder, base_model=sentiment.base_model, task=sentiment, adapter="lora")
    return folder


@pytest.fixture
def task_variant(sentiment: TaskSpec, tmp_path: Path) -> Callable[..., TaskSpec]:
    """Factory: the sentiment task with its validation rows replaced (`rows=`) or its spec fields changed."""

    def make(rows: list[dict[str, Any]] | None = None, *, evaluation: dict[str, Any] | None = None,
             **fields: Any) -> TaskSpec:
        data = sentiment.data
        if rows is not None:
            path = tmp_path / f"validation-{len(list(tmp_path.iterdir()))}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            data = data.model_copy(update={"validation": data.validation.model_copy(update={"path": str(path)})})
        update: dict[str, Any] = {"data": data, **fields}
        if evaluation is not None:
            update["evaluation"] = sentiment.evaluation.model_copy(update=evaluation)
        return sentiment.model_copy(update=update)

    return make
