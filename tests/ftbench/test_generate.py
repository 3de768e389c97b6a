"""The mini task generator: exact reproduction of the shipped files, and the data properties the search relies on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftbench.generate import DEFAULT_OUT, GENERATORS, compare, hallmarks, notes, ordering, render, sentiment
from ftbench.generate.__main__ import main
from ftbench.generate.build import RESERVED_NAMES
from ftbench.generate.common import Rng, make_names, word_distance

PLANS = {"sentiment": sentiment.PLAN, "hallmarks": hallmarks.PLAN, "notes": notes.PLAN, "ordering": ordering.PLAN}
TRAIN = ("train_clean.jsonl", "train_noisy.jsonl", "train_offdomain.jsonl")
EVAL = ("validation.jsonl", "test.jsonl")


@pytest.fixture(scope="module")
def rendered() -> dict[str, bytes]:
    return render()


def _rows(rendered: dict[str, bytes], task: str, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in rendered[f"{task}/{name}"].decode("utf-8").splitlines()]


def test_regenerating_into_a_temp_dir_reproduces_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    shipped = sorted(p.relative_to(DEFAULT_OUT) for p in DEFAULT_OUT.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert fresh == shipped
    for rel in shipped:
        assert (tmp_path / rel).read_bytes() == (DEFAULT_OUT / rel).read_bytes(), rel
    assert compare(DEFAULT_OUT) == []


def test_check_mode_reports_a_changed_file(tmp_path: Path) -> None:
    main(["--out", str(tmp_path), "--task", "ordering"])
    (tmp_path / "ordering" / "test.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "ordering" / "stray.txt").write_text("x", encoding="utf-8")
    assert main(["--out", str(tmp_path), "--task", "ordering", "--check"]) == 1
    problems = compare(tmp_path, ["ordering"])
    assert any("differs" in p and "test.jsonl" in p for p in problems)
    assert any("unexpected" in p and "stray.txt" in p for p in problems)


def test_rng_draws_only_from_random_and_is_seeded() -> None:
    a, b = Rng(7), Rng(7)
    draws = [a.below(10) for _ in range(20)], [b.below(10) for _ in range(20)]
    assert draws[0] == draws[1] and all(0 <= d < 10 for d in draws[0])
    items = list(range(10))
    Rng(3).shuffle(items)
    assert sorted(items) == list(range(10)) and items != list(range(10))


def test_word_distance_counts_word_edits() -> None:
    assert word_distance("a b c", "a b c") == 0
    assert word_distance("a b c", "a x c") == 1
    assert word_distance("a b c", "a b c d") == 1
    assert word_distance("a b c", "b c") == 1


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_sources_have_the_planned_sizes_and_unique_ids(rendered: dict[str, bytes], task: str) -> None:
    sizes = {name: len(_rows(rendered, task, name)) for name in TRAIN + EVAL}
    assert sizes["train_clean.jsonl"] == 300 and sizes["train_noisy.jsonl"] == 3000
    assert sizes["validation.jsonl"] == 100 and sizes["test.jsonl"] == 100
    assert sizes["train_offdomain.jsonl"] >= 500
    ids = [row["id"] for name in TRAIN + EVAL for row in _rows(rendered, task, name)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_noisy_source_has_a_quarter_wrong_targets_and_planted_near_copies(rendered: dict[str, bytes],
                                                                          task: str) -> None:
    plan = PLANS[task]
    manifest = json.loads(rendered[f"{task}/manifest.json"])
    assert 0.25 <= manifest["noisy"]["wrong_target_rate"] <= 0.30
    planted = manifest["noisy"]["planted_near_copies"]
    assert 8 <= len(planted) <= 12
    noisy = {row["id"]: row for row in _rows(rendered, task, "train_noisy.jsonl")}
    evaluation = {row["id"]: row for name in EVAL for row in _rows(rendered, task, name)}
    for item in planted:
        copy, original = noisy[item["train_id"]], evaluation[item["eval_id"]]
        assert 1 <= word_distance(copy[plan.input_field], original[plan.input_field]) <= 2
        assert copy[plan.target_field] == original[plan.target_field]


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_evaluation_items_share_their_made_up_name_only_with_planted_copies(rendered: dict[str, bytes],
                                                                           task: str) -> None:
    plan = PLANS[task]
    reserved = set(make_names(plan.seed)[:RESERVED_NAMES])
    planted = {p["train_id"] for p in json.loads(rendered[f"{task}/manifest.json"])["noisy"]["planted_near_copies"]}
    eval_inputs = {row[plan.input_field] for name in EVAL for row in _rows(rendered, task, name)}
    for name in TRAIN:
        for row in _rows(rendered, task, name):
            text = row[plan.input_field]
            assert text not in eval_inputs, (name, row["id"])
            words = {w.strip(".,:;?") for w in text.split()}
            if row["id"] not in planted:
                assert not words & reserved, (name, row["id"])


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_clean_and_evaluation_inputs_are_short(rendered: dict[str, bytes], task: str) -> None:
    plan = PLANS[task]
    for name in ("train_clean.jsonl", *EVAL):
        for row in _rows(rendered, task, name):
            assert len(row[plan.input_field].split()) <= 20, row


def test_notes_targets_are_at_most_twelve_words(rendered: dict[str, bytes]) -> None:
    for name in ("train_clean.jsonl", *EVAL):
        for row in _rows(rendered, "notes", name):
            assert len(row["note"].split()) <= 12, row


def test_sentiment_clean_and_evaluation_labels_are_balanced(rendered: dict[str, bytes]) -> None:
    for name in ("train_clean.jsonl", *EVAL):
        labels = [row["label"] for row in _rows(rendered, "sentiment", name)]
        assert labels.count("positive") == labels.count("negative"), name


def test_sentiment_noisy_labels_ignore_most_negations(rendered: dict[str, bytes]) -> None:
    """The noisy source's error is systematic: a model trained on it learns that 'not great' is positive."""
    negated = [r for r in _rows(rendered, "sentiment", "train_noisy.jsonl") if " not " in r["text"]]
    wrong = [r for r in negated if any(w in r["text"].split() for w in sentiment._POS) == (r["label"] == "positive")]
    assert len(wrong) / len(negated) > 0.6


def test_hallmarks_targets_follow_the_label_order_and_use_none_alone(rendered: dict[str, bytes]) -> None:
    order = hallmarks.LABELS + [hallmarks.NONE]
    for name in ("train_clean.jsonl", "train_noisy.jsonl", *EVAL):
        for row in _rows(rendered, "hallmarks", name):
            labels = row["labels"]
            assert labels == sorted(labels, key=order.index) and labels
            assert hallmarks.NONE not in labels or labels == [hallmarks.NONE]


def test_ordering_targets_are_the_shown_events_in_process_order(rendered: dict[str, bytes]) -> None:
    for name in ("train_clean.jsonl", *EVAL):
        for row in _rows(rendered, "ordering", name):
            head, shown = row["events"].split(": ", 1)
            steps = ordering.PROCESSES[head.split()[-1]]
            assert sorted(shown.split(", ")) == sorted(row["order"])
            assert row["order"] == [s for s in steps if s in row["order"]]


def test_offdomain_sources_use_their_own_label_vocabulary(rendered: dict[str, bytes]) -> None:
    stars = {r["label"] for r in _rows(rendered, "sentiment", "train_offdomain.jsonl")}
    assert stars == {"1 star", "2 stars", "3 stars", "4 stars", "5 stars"}
    topics = {t for r in _rows(rendered, "hallmarks", "train_offdomain.jsonl") for t in r["labels"]}
    assert topics == {"funding", "policy", "hospital", "research"}
