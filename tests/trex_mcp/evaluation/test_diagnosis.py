"""Diagnosis groups on crafted predictions, the compact text and the JSON form."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ftbench.spec import TaskSpec
from trex_mcp.evaluation import Diagnosis, diagnose


def pred(i: int, prediction: str, reference: str, *, correct: bool | None = None, truncated: bool = False,
         text: str = "some input") -> dict[str, Any]:
    ok = prediction.strip().lower() == reference.lower() if correct is None else correct
    return {"id": f"r{i}", "input": text, "prediction": prediction, "reference": reference, "correct": ok,
            "truncated": truncated}


def test_classification_groups_confusions_invalid_labels_empty_and_truncated(sentiment: TaskSpec) -> None:
    preds = (
        [pred(i, "positive", "positive") for i in range(4)]
        + [pred(10 + i, "positive", "negative") for i in range(5)]
        + [pred(20 + i, "negative", "positive") for i in range(2)]
        + [pred(30, "great movie", "negative"), pred(31, "neutral", "positive")]
        + [pred(40, "", "negative")]
        + [pred(50, "pos pos pos", "positive", truncated=True)]
    )
    d = diagnose(sentiment, preds, max_examples=2)
    assert d.n == 15 and d.n_wrong == 11
    assert d.group_counts() == {"confusion[negative -> positive]": 5, "invalid_label": 2,
                                "confusion[positive -> negative]": 2, "empty": 1, "truncated": 1}
    assert sum(g.count for g in d.groups) == d.n_wrong  # single-label: each wrong case in exactly one group
    top = d.groups[0]
    assert top.kind == "confusion" and top.share == round(5 / 11, 4) and len(top.examples) == 2
    assert top.examples[0].id == "r10" and top.examples[0].reference == '"negative"'
    assert d.predicted_distribution is not None and d.predicted_distribution["positive"] == round(9 / 15, 4)


def test_classification_flags_collapse_onto_one_label(sentiment: TaskSpec) -> None:
    preds = [pred(i, "positive", "positive" if i % 2 else "negative") for i in range(20)]
    d = diagnose(sentiment, preds)
    assert any(note.startswith("collapse: predicts 'positive' for 100%") for note in d.notes)
    assert "collapse" in d.to_text()


def test_multilabel_groups_missed_spurious_and_unknown_labels(sentiment: TaskSpec,
                                                               task_variant: Callable[..., TaskSpec]) -> None:
    task = task_variant(evaluation={"metric": "multilabel_macro_f1", "choices": ["a", "b", "c", "none"]})
    preds = [
        pred(1, "a", "a, b", correct=False),          # missed b
        pred(2, "a, c", "a", correct=False),          # spurious c
        pred(3, "b, zebra", "b", correct=False),      # unknown label
        pred(4, "c", "a, b", correct=False),          # missed a, missed b, spurious c
        pred(5, "a", "a", correct=True),
    ]
    d = diagnose(task, preds)
    assert d.group_counts() == {"missed_label[b]": 2, "spurious_label[c]": 2, "missed_label[a]": 1,
                                "unknown_label": 1}
    assert d.n_wrong == 4 and d.predicted_distribution is None


def test_generation_groups_length_and_repetition_problems(sentiment: TaskSpec,
                                                          task_variant: Callable[..., TaskSpec]) -> None:
    task = task_variant(evaluation={"metric": "rouge1", "choices": None})
    ref = "anna: cough, three days; chest clear; plan rest"
    preds = [
        pred(1, "anna cough", ref, correct=False),
        pred(2, " ".join(["the patient said that"] * 2 + ["many long words here now"] * 3), ref, correct=False),
        pred(3, "plan plan plan plan plan plan plan plan plan plan", ref, correct=False),
        pred(4, "bob: fever, two weeks; ear red; plan drops", ref, correct=False),
        pred(5, "", ref, correct=False),
        pred(6, ref, ref, correct=True),
    ]
    d = diagnose(task, preds)
    assert d.group_counts() == {"too_short": 1, "too_long": 1, "repetitive": 1, "low_overlap": 1, "empty": 1}


def test_orderings_scored_by_exact_match_get_ordering_groups(sentiment: TaskSpec,
                                                             task_variant: Callable[..., TaskSpec]) -> None:
    task = task_variant(evaluation={"metric": "exact_match", "choices": None})
    preds = [
        pred(1, "A, C, B, D", "A, B, C, D"),
        pred(2, "A, B, C", "A, B, C, D"),
        pred(3, "A, B, E, C, D", "A, B, C, D"),
        pred(4, "B, A, C", "A, B, C"),
        pred(5, "A, B, C", "A, B, C"),
    ]
    d = diagnose(task, preds)
    assert d.group_counts() == {"wrong_order": 2, "missing_items": 1, "unknown_items": 1}


def test_free_form_answers_separate_format_only_errors(sentiment: TaskSpec,
                                                       task_variant: Callable[..., TaskSpec]) -> None:
    task = task_variant(evaluation={"metric": "exact_match", "choices": None})
    preds = [pred(1, "Paris.", "paris", correct=False), pred(2, "london", "paris", correct=False)]
    assert diagnose(task, preds).group_counts() == {"format_only": 1, "wrong_answer": 1}


def test_to_text_stays_within_budget_and_shows_the_largest_groups_with_examples(sentiment: TaskSpec) -> None:
    long_input = "word " * 200
    preds = [pred(i, f"label{i % 40} " + "x" * 80, "negative", text=long_input) for i in range(200)]
    d = diagnose(sentiment, preds)  # 200 invalid labels in one group
    confusions = [pred(1000 + i, "positive", "negative", text=long_input) for i in range(30)]
    d = diagnose(sentiment, preds + confusions + [pred(2000, "", "positive")])
    for budget in (200, 400, 1500):
        text = d.to_text(max_chars=budget)
        assert len(text) <= budget
    text = d.to_text()
    assert len(text) <= 1500
    assert "invalid_label: 200" in text and "confusion[negative -> positive]: 30" in text
    assert "[r0]" in text and "[r1000]" in text  # one example under each of the largest groups
    assert "wrong 231/231" in text.splitlines()[0]


def test_diagnosis_is_json_able_and_round_trips(sentiment: TaskSpec) -> None:
    d = diagnose(sentiment, [pred(1, "positive", "negative"), pred(2, "", "positive")], score=0.0)
    data = json.loads(json.dumps(d.to_dict()))
    assert Diagnosis.model_validate(data) == d


def test_diagnosis_compares_with_the_previous_round(sentiment: TaskSpec) -> None:
    before = diagnose(sentiment, [pred(i, "great", "negative") for i in range(6)], score=0.0)
    after = diagnose(sentiment, [pred(i, "positive", "negative") for i in range(2)]
                     + [pred(9, "negative", "negative")] * 4, score=4 / 6, previous=before.to_dict())
    assert after.comparison[0] == "accuracy 0.000 -> 0.667"
    assert "wrong 6 -> 2" in after.comparison
    assert "invalid_label 6 -> 0" in after.comparison
    assert "vs previous:" in after.to_text()


def test_no_wrong_predictions_gives_an_empty_diagnosis(sentiment: TaskSpec) -> None:
    d = diagnose(sentiment, [pred(1, "positive", "positive")], score=1.0)
    assert d.n_wrong == 0 and d.groups == []
    assert d.to_text().startswith("mini/sentiment accuracy=1.000; wrong 0/1")
