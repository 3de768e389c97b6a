"""Fixtures for ftbench tests: a small valid task (YAML + JSONL files) in a temp folder."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

VALID_SPEC: dict[str, Any] = {
    "name": "tmp/toy",
    "version": 1,
    "description": "A toy sentiment task for tests.",
    "domain": "sentiment",
    "base_model": "tiny:100k",
    "data": {
        "train": [{"name": "clean", "kind": "local", "path": "data/train.jsonl", "rows": 2,
                   "fields": ["id", "text", "label"]}],
        "validation": {"name": "validation", "kind": "local", "path": "data/validation.jsonl", "rows": 2,
                       "fields": ["id", "text", "label"]},
        "test": {"name": "test", "kind": "local", "path": "data/test.jsonl", "rows": 2,
                 "fields": ["id", "text", "label"]},
    },
    "input_field": "text",
    "target_field": "label",
    "prompt_template": "Review: {input}\nSentiment:",
    "evaluation": {"kind": "generative", "metric": "accuracy", "choices": ["positive", "negative"]},
    "scores": {"reference": 0.9},
    "mini": True,
}

ROWS = {
    "train": [{"id": "t1", "text": "good film", "label": "positive"}, {"id": "t2", "text": "bad film", "label": "negative"}],
    "validation": [{"id": "v1", "text": "fine book", "label": "positive"},
                   {"id": "v2", "text": "dull book", "label": "negative"}],
    "test": [{"id": "s1", "text": "great show", "label": "positive"}, {"id": "s2", "text": "awful show", "label": "negative"}],
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    """A folder with data/{train,validation,test}.jsonl for VALID_SPEC."""
    root = tmp_path / "toy"
    for split, rows in ROWS.items():
        write_jsonl(root / "data" / f"{split}.jsonl", rows)
    return root


@pytest.fixture
def write_spec(toy_dir: Path) -> Callable[..., Path]:
    """write_spec(mutate=None, name='task.yaml') -> path of a YAML written from VALID_SPEC after `mutate(spec)`."""

    def _write(mutate: Callable[[dict[str, Any]], None] | None = None, name: str = "task.yaml") -> Path:
        spec = copy.deepcopy(VALID_SPEC)
        if mutate is not None:
            mutate(spec)
        path = toy_dir / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path

    return _write
