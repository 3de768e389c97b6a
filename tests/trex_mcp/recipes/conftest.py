"""Fixtures for recipe tests: a small sentiment task with local data under a data root, settings, a tokenizer."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.settings import Settings

NAMES = ["alpha", "bravo", "carbo", "delta", "ember", "fjord", "gamma", "hollo", "indra", "jolt", "kappa", "lumen"]
THINGS = ["movie", "phone", "album", "book", "camera", "game", "show", "laptop"]
POS = ["great", "wonderful", "brilliant", "solid", "enjoyable"]
NEG = ["awful", "boring", "terrible", "useless", "poor"]
FRAMES = ["the {name} {thing} was {adj}", "i found the {name} {thing} {adj}", "honestly the {name} {thing} felt {adj}",
          "overall this {name} {thing} is {adj}"]


def sentence(rng: random.Random, name: str) -> tuple[str, str]:
    label = rng.choice(["positive", "negative"])
    adj = rng.choice(POS if label == "positive" else NEG)
    frame = rng.choice(FRAMES)
    return frame.format(name=name, thing=rng.choice(THINGS), adj=adj), label


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_rows(prefix: str, n: int, seed: int, name_prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text, label = sentence(rng, f"{name_prefix}{rng.choice(NAMES)}{i}")
        rows.append({"id": f"{prefix}-{i:04d}", "text": text, "label": label})
    return rows


def make_task(root: Path, *, train: dict[str, list[dict[str, Any]]] | None = None,
              budget: int = 50_000) -> TaskSpec:
    """A sentiment task whose validation/test items carry names no training row uses."""
    val = make_rows("val", 30, 1, "v")
    test = make_rows("test", 30, 2, "t")
    write_jsonl(root / "task" / "validation.jsonl", val)
    write_jsonl(root / "task" / "test.jsonl", test)
    train = train if train is not None else {"clean": make_rows("clean", 120, 3, "c")}
    sources = []
    for name, rows in train.items():
        write_jsonl(root / "task" / f"train_{name}.jsonl", rows)
        sources.append({"name": name, "kind": "local", "path": str(root / "task" / f"train_{name}.jsonl")})
    return TaskSpec.model_validate({
        "name": "test/sentiment", "description": "test task", "domain": "sentiment", "base_model": "tiny:100k",
        "data": {"train": sources,
                 "validation": {"name": "validation", "kind": "local", "path": str(root / "task" / "validation.jsonl")},
                 "test": {"name": "test", "kind": "local", "path": str(root / "task" / "test.jsonl")}},
        "input_field": "text", "target_field": "label", "prompt_template": "Review: {input}\nSentiment:",
        "evaluation": {"kind": "generative", "metric": "accuracy", "choices": ["positive", "negative"]},
        "budgets": {"max_samples_per_round": budget},
    })


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def task(data_root: Path) -> TaskSpec:
    return make_task(data_root)


@pytest.fixture
def settings(trex_home: Path, data_root: Path) -> Settings:
    return Settings(home=trex_home, data_roots=[data_root])


@pytest.fixture(scope="session")
def word_tokenizer() -> Any:
    """A whitespace word-level tokenizer with a ChatML-style chat template (one token per word/punctuation)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [" ".join(NAMES + THINGS + POS + NEG), "review sentiment positive negative the i found honestly",
              "overall this is was felt : user assistant system"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "<pad>", "<|im_start|>",
                                                                               "<|im_end|>"]))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="<pad>", eos_token="<|im_end|>")
    hf.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                        "{% endfor %}")
    return hf
