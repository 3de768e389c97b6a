"""Every metric against values computed by hand on small cases."""

from __future__ import annotations

import pytest

from ftbench.spec import EvaluationSpec
from trex_mcp.evaluation.generation import clean_completion
from trex_mcp.evaluation.metrics import (
    accuracy,
    exact_match,
    kendall_tau,
    label_f1,
    macro_f1,
    multilabel_f1,
    normalise_text,
    parse_label,
    parse_labels,
    rouge,
    score_predictions,
    split_items,
)

CHOICES = ["positive", "negative"]


def spec(**kw: object) -> EvaluationSpec:
    return EvaluationSpec.model_validate({"kind": "generative", **kw})


def test_normalisation_lowercases_collapses_space_and_drops_surrounding_punctuation() -> None:
    assert normalise_text("  Positive. ") == "positive"
    assert normalise_text('"New   York"!') == "new york"
    assert parse_label(" NEGATIVE.", CHOICES) == "negative"
    assert parse_label("positive review", CHOICES) is None


def test_completion_is_cut_at_the_first_newline_only_for_single_line_answers() -> None:
    assert clean_completion(" positive\nReview: more", stop_at_newline=True) == "positive"
    assert clean_completion("\npositive", stop_at_newline=True) == ""
    assert clean_completion(" a\nb ", stop_at_newline=False) == "a\nb"


def test_accuracy_normalises_but_exact_match_only_strips() -> None:
    preds, refs = ["Positive", " negative ", "neutral"], ["positive", "negative", "negative"]
    assert accuracy(preds, refs) == pytest.approx(2 / 3)
    assert exact_match(preds, refs) == pytest.approx(1 / 3)


def test_macro_f1_matches_a_hand_computed_value() -> None:
    # positive: tp 1, fp 0, fn 1 -> P 1, R 1/2, F1 2/3; negative: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 4/5
    preds = ["positive", "negative", "negative", "negative"]
    refs = ["positive", "positive", "negative", "negative"]
    assert macro_f1(preds, refs, CHOICES) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_macro_f1_counts_an_answer_outside_the_choices_as_a_miss() -> None:
    # positive: tp 1, fn 1 -> P 1, R 1/2, F1 2/3; negative: tp 1, fp 0, fn 1 -> 2/3  => macro 2/3
    preds = ["positive", None, "negative", None]
    refs = ["positive", "positive", "negative", "negative"]
    out = label_f1(preds, refs, CHOICES)
    assert out["macro_f1"] == pytest.approx(2 / 3)
    assert out["f1/positive"] == pytest.approx(2 / 3)


def test_macro_f1_ignores_declared_labels_that_never_occur() -> None:
    assert macro_f1(["a", "b"], ["a", "b"], ["a", "b", "c"]) == pytest.approx(1.0)


def test_multilabel_f1_micro_and_macro_match_hand_computed_values() -> None:
    refs = [["a", "b"], ["a"], ["c"]]
    preds = [["a"], ["a", "c"], ["c"]]
    # micro: tp = a,a,c = 3; fp = c(row 2) = 1; fn = b = 1 -> P 3/4, R 3/4, F1 0.75
    assert multilabel_f1(preds, refs, ["a", "b", "c"], "micro") == pytest.approx(0.75)
    # macro: a: tp2 -> 1.0; b: fn1 -> 0; c: tp1 fp1 -> P 1/2 R 1 F1 2/3 ; mean = (1 + 0 + 2/3) / 3
    assert multilabel_f1(preds, refs, ["a", "b", "c"], "macro") == pytest.approx((1 + 0 + 2 / 3) / 3)


def test_multilabel_parsing_splits_on_the_separator_and_keeps_unknown_labels_apart() -> None:
    assert parse_labels("Apoptosis, immune,apoptosis, fun", ["apoptosis", "immune"], ", ") == (
        ["apoptosis", "immune"], ["fun"])
    assert split_items("B, D,C ,A", ", ") == ["b", "d", "c", "a"]


def test_rouge_matches_hand_computed_f_measures() -> None:
    # 5 of 6 reference unigrams, all 5 predicted ones match: P 1, R 5/6 -> F 10/11; LCS is 5 as well
    scores = rouge(["the cat on the mat"], ["the cat sat on the mat"])
    assert scores["rouge1"][0] == pytest.approx(10 / 11)
    assert scores["rougeL"][0] == pytest.approx(10 / 11)
    reversed_ = rouge(["d c b a"], ["a b c d"])
    assert reversed_["rouge1"][0] == pytest.approx(1.0)
    assert reversed_["rougeL"][0] == pytest.approx(0.25)


def test_rouge_scores_chinese_text_per_character() -> None:
    scores = rouge(["头痛三天"], ["头痛两天"])
    assert scores["rouge1"][0] == pytest.approx(0.75)  # 3 of 4 characters shared


@pytest.mark.parametrize(("pred", "ref", "tau"), [
    (["a", "b", "c"], ["a", "b", "c"], 1.0),
    (["c", "b", "a"], ["a", "b", "c"], -1.0),
    (["b", "a", "c"], ["a", "b", "c"], 1 / 3),  # pairs: (a,b) discordant, (a,c) and (b,c) concordant
    ([], ["a", "b", "c"], 0.0),
    (["x", "y"], ["a", "b"], 0.0),
    (["a"], ["a"], 1.0),
])
def test_kendall_tau_matches_hand_computed_values(pred: list[str], ref: list[str], tau: float) -> None:
    assert kendall_tau(pred, ref) == pytest.approx(tau)


def test_kendall_tau_ties_missing_items_at_the_end() -> None:
    # ranks of (a, b, c) = (0, 1, 1): 2 concordant pairs, 1 tie -> tau-b = 2 / sqrt(3 * 2)
    assert kendall_tau(["a"], ["a", "b", "c"]) == pytest.approx(2 / 6 ** 0.5)


def test_score_predictions_reports_headline_and_related_metrics_for_labels() -> None:
    s = spec(metric="accuracy", choices=CHOICES)
    out = score_predictions(s, ["positive", "Negative.", "maybe", ""], ["positive", "negative", "negative",
                                                                          "positive"])
    assert out.score == pytest.approx(0.5)
    assert out.correct == [True, True, False, False]
    assert out.metrics["invalid_rate"] == pytest.approx(0.5)
    assert out.metrics["empty_rate"] == pytest.approx(0.25)
    assert out.metrics["exact_match"] == pytest.approx(0.25)


def test_score_predictions_uses_the_declared_metric_as_headline() -> None:
    preds, refs = ["positive", "positive", "negative"], ["positive", "negative", "negative"]
    assert score_predictions(spec(metric="macro_f1", choices=CHOICES), preds, refs).score == pytest.approx(
        (2 / 3 + 2 / 3) / 2)
    out = score_predictions(spec(metric="exact_match"), ["A, D, C, B", "a, b"], ["A, D, C, B", "A, B"])
    assert out.score == pytest.approx(0.5) and out.metrics["accuracy"] == pytest.approx(1.0)
    ml = score_predictions(spec(metric="multilabel_micro_f1", choices=["a", "b", "c"]),
                           ["a", "a, c", "c, zzz"], ["a, b", "a", "c"])
    assert ml.score == pytest.approx(0.75)
    assert ml.correct == [False, False, False]  # the unknown 'zzz' makes the last one wrong
    tau = score_predictions(spec(metric="kendall_tau"), ["b, a, c", "a, b, c"], ["a, b, c", "a, b, c"])
    assert tau.score == pytest.approx((1 / 3 + 1) / 2) and tau.correct == [False, True]
    gen = score_predictions(spec(metric="rougeL"), ["the cat on the mat"], ["the cat sat on the mat"])
    assert gen.score == pytest.approx(10 / 11) and gen.correct == [True]


def test_score_predictions_refuses_mismatched_or_empty_inputs() -> None:
    with pytest.raises(ValueError, match="predictions"):
        score_predictions(spec(metric="accuracy"), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="nothing"):
        score_predictions(spec(metric="accuracy"), [], [])
