"""Every registered task satisfies the task contract; the contract catches broken tasks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ftbench.loader import load_spec_file
from ftbench.registry import list_tasks, load_task
from ftbench.testing import ContractError, TaskContract, formatted_sample


@pytest.mark.parametrize("task", list_tasks(), ids=lambda t: t.registry_name)
def test_registered_task_satisfies_the_contract(task) -> None:  # type: ignore[no-untyped-def]
    TaskContract(task).check()


@pytest.mark.parametrize("name", ["mini/sentiment", "mini/hallmarks", "mini/notes", "mini/ordering"])
def test_mini_task_formats_ten_validation_prompts_with_targets(name: str) -> None:
    task = load_task(name)
    sample = formatted_sample(task, "validation", 10)
    assert len(sample) == 10
    for prompt, target in sample:
        assert prompt.startswith(task.prompt_template.split("{input}")[0]) and target.strip()


def _broken(toy_dir: Path, rows: list[dict[str, object]]) -> None:
    (toy_dir / "data" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.mark.parametrize(("rows", "words"), [
    ([{"id": "v1", "text": "x", "label": "maybe"}, {"id": "v2", "text": "y", "label": "negative"}], "outside"),
    ([{"id": "v1", "text": "x"}, {"id": "v2", "text": "y", "label": "negative"}], "lacks field(s) label"),
    ([{"id": "t1", "text": "x", "label": "positive"}, {"id": "v2", "text": "y", "label": "negative"}],
     "also used in source 'clean'"),
    ([{"id": "v1", "text": "x", "label": ""}, {"id": "v2", "text": "y", "label": "negative"}], "empty target"),
    ([{"id": "v1", "text": "x", "label": "positive"}], "declares 2 rows"),
    ([{"id": "v1", "text": "x", "label": "positive", "extra": 1}, {"id": "v2", "text": "y", "label": "negative"}],
     "undeclared field(s) extra"),
])
def test_contract_names_the_broken_row(toy_dir: Path, write_spec: Callable[..., Path], rows: list[dict[str, object]],
                                       words: str) -> None:
    _broken(toy_dir, rows)
    task = load_spec_file(write_spec())
    problems = TaskContract(task).violations()
    assert any(words in p for p in problems), problems
    with pytest.raises(ContractError, match="breaks the task contract"):
        TaskContract(task).check()


def test_contract_flags_a_missing_data_file(toy_dir: Path, write_spec: Callable[..., Path]) -> None:
    (toy_dir / "data" / "test.jsonl").unlink()
    problems = TaskContract(load_spec_file(write_spec())).violations()
    assert any("source 'test'" in p and "does not exist" in p for p in problems)


def test_contract_flags_a_mini_task_without_a_tiny_model(write_spec: Callable[..., Path]) -> None:
    task = load_spec_file(write_spec(lambda s: s.update(base_model="Qwen/Qwen3-1.7B")))
    assert any("tiny:" in p for p in TaskContract(task).violations())


def test_contract_flags_a_full_task_whose_evaluation_fields_are_undeclared() -> None:
    task = load_task("sst2")
    broken = task.model_copy(update={"input_field": "text"})
    assert any("does not declare field(s) text" in p for p in TaskContract(broken).violations())
