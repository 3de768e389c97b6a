"""Metrics: text normalisation, label parsing and every headline metric of an `EvaluationSpec`.

`score_predictions(spec, predictions, references)` is the one entry point the evaluator uses; the single metric
functions are public so tests (and reports) can check them against hand-computed values.

Conventions (each is what a user of scikit-learn, rouge-score and scipy would expect):
- `accuracy`: normalised equality (lowercase, collapsed whitespace, surrounding punctuation and quotes dropped);
  with declared choices, the prediction must normalise to one of them.
- `exact_match`: equality after stripping surrounding whitespace only (case-sensitive).
- `macro_f1`: scikit-learn F1, macro-averaged over the declared labels that occur in the references or the
  predictions; an answer outside the choices counts as a miss for its reference label.
- `multilabel_micro_f1` / `multilabel_macro_f1`: scikit-learn F1 on binarised label sets (labels split on
  `label_separator`); labels outside the choices are dropped (the diagnosis reports them as spurious).
- `rouge1` / `rougeL`: rouge-score F-measure, no stemming; texts with non-ASCII letters (e.g. Chinese) use a
  Unicode tokenizer (one token per CJK character) because rouge-score's default tokenizer drops them.
- `kendall_tau`: scipy's tau-b between the reference order and the predicted order of the reference items;
  items missing from the prediction share the last rank, unknown items are ignored; 0.0 when the prediction
  gives no order at all.

All scores lie in `METRIC_RANGE[metric]`; every metric here is higher-is-better.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftbench.spec import EvaluationSpec

__all__ = [
    "METRIC_RANGE",
    "ROUGE_CORRECT_THRESHOLD",
    "Scored",
    "accuracy",
    "exact_match",
    "kendall_tau",
    "label_f1",
    "macro_f1",
    "multilabel_f1",
    "normalise_text",
    "parse_label",
    "parse_labels",
    "rouge",
    "score_predictions",
    "split_items",
]

#: (worst, best) value of each metric.
METRIC_RANGE: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "exact_match": (0.0, 1.0),
    "macro_f1": (0.0, 1.0),
    "multilabel_macro_f1": (0.0, 1.0),
    "multilabel_micro_f1": (0.0, 1.0),
    "rouge1": (0.0, 1.0),
    "rougeL": (0.0, 1.0),
    "kendall_tau": (-1.0, 1.0),
}

#: A generation counts as "correct" (for diagnosis) when its headline ROUGE F-measure reaches this.
ROUGE_CORRECT_THRESHOLD = 0.5

_STRIP = " \t\r\n.,;:!?\"'`()[]{}<>*"
_INVALID = "\x00invalid"
_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
_UNICODE_TOKEN = re.compile(_CJK + r"|[^\W_]+")


# ------------------------------------------------------------------------------------ normalisation


def normalise_text(text: str) -> str:
    """Lowercase, collapse whitespace, drop surrounding punctuation and quotes."""
    return " ".join(text.lower().split()).strip(_STRIP).strip()


def parse_label(prediction: str, choices: Sequence[str]) -> str | None:
    """The declared choice `prediction` normalises to, or None when it is none of them."""
    key = normalise_text(prediction)
    for choice in choices:
        if normalise_text(choice) == key:
            return choice
    return None


def split_items(text: str, separator: str) -> list[str]:
    """Split a list answer on `separator` (and on its stripped form), normalise items, drop empty ones."""
    sep = separator.strip() or separator
    return [item for item in (normalise_text(part) for part in text.split(sep)) if item]


def parse_labels(prediction: str, choices: Sequence[str], separator: str) -> tuple[list[str], list[str]]:
    """A multi-label answer as (declared labels, in first-seen order, no repeats; items outside the choices)."""
    known: list[str] = []
    unknown: list[str] = []
    for item in split_items(prediction, separator):
        label = parse_label(item, choices)
        if label is None:
            if item not in unknown:
                unknown.append(item)
        elif label not in known:
            known.append(label)
    return known, unknown


# ------------------------------------------------------------------------------------------ metrics


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after `normalise_text`."""
    return _mean([float(normalise_text(p) == normalise_text(r)) for p, r in zip(predictions, references, strict=True)])


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after stripping surrounding whitespace."""
    return _mean([float(p.strip() == r.strip()) for p, r in zip(predictions, references, strict=True)])


def macro_f1(predicted: Sequence[str | None], references: Sequence[str], choices: Sequence[str]) -> float:
    """Macro F1 over the declared labels seen in references or predictions (None = answer outside choices)."""
    return label_f1(predicted, references, choices)["macro_f1"]


def label_f1(predicted: Sequence[str | None], references: Sequence[str],
             choices: Sequence[str]) -> dict[str, float]:
    """Macro F1 and per-label F1 (keys `f1/<label>`) for single-label classification."""
    from sklearn.metrics import f1_score

    y_pred = [p if p is not None else _INVALID for p in predicted]
    labels = [c for c in choices if c in set(references) or c in set(y_pred)]
    if not labels:
        return {"macro_f1": 0.0}
    per_label = f1_score(list(references), y_pred, labels=labels, average=None, zero_division=0)
    out = {"macro_f1": float(sum(per_label) / len(labels))}
    out.update({f"f1/{label}": float(v) for label, v in zip(labels, per_label, strict=True)})
    return out


def multilabel_f1(predicted: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                  choices: Sequence[str], average: str) -> float:
    """Micro or macro F1 over binarised label sets; macro over the labels seen in references or predictions.

    Returns 1.0 when no example has any label, in references or predictions (nothing to get wrong).
    """
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    if average not in ("micro", "macro"):
        raise ValueError(f"average must be 'micro' or 'macro', got {average!r}")
    binarizer = MultiLabelBinarizer(classes=list(choices))
    y_true = binarizer.fit_transform([list(r) for r in references])
    y_pred = binarizer.transform([[p for p in row if p in set(choices)] for row in predicted])
    seen = [i for i in range(len(choices)) if y_true[:, i].any() or y_pred[:, i].any()]
    if not seen:
        return 1.0
    return float(f1_score(y_true[:, seen], y_pred[:, seen], average=average, zero_division=0))


class _UnicodeTokenizer:
    """rouge-score tokenizer for non-ASCII text: one token per CJK character, words elsewhere."""

    def tokenize(self, text: str) -> list[str]:
        return _UNICODE_TOKEN.findall(text.lower())


def _needs_unicode(*texts: str) -> bool:
    return any(ch.isalnum() and not ch.isascii() for text in texts for ch in text)


def rouge(predictions: Sequence[str], references: Sequence[str],
          types: Sequence[str] = ("rouge1", "rouge2", "rougeL")) -> dict[str, list[float]]:
    """Per-example rouge-score F-measures, one list per rouge type."""
    from rouge_score import rouge_scorer

    default = rouge_scorer.RougeScorer(list(types), use_stemmer=False)
    unicode = rouge_scorer.RougeScorer(list(types), use_stemmer=False, tokenizer=_UnicodeTokenizer())
    out: dict[str, list[float]] = {t: [] for t in types}
    for pred, ref in zip(predictions, references, strict=True):
        scorer = unicode if _needs_unicode(pred, ref) else default
        scores = scorer.score(ref, pred)  # rouge-score's order: (target, prediction)
        for t in types:
            out[t].append(float(scores[t].fmeasure))
    return out


def kendall_tau(predicted: Sequence[str], reference: Sequence[str]) -> float:
    """Kendall tau-b between the reference order and the predicted order of the reference items.

    Items are compared after `normalise_text`. Reference items missing from the prediction share the last rank;
    predicted items not in the reference are ignored. Returns 0.0 when the prediction orders nothing (every
    reference item tied) and, for a reference of fewer than two items, 1.0 on an exact match else 0.0.
    """
    from scipy.stats import kendalltau

    ref = list(dict.fromkeys(normalise_text(r) for r in reference))
    pred = [normalise_text(p) for p in predicted]
    if len(ref) < 2:
        return 1.0 if [p for p in pred if p] == ref else 0.0
    ref_set = set(ref)
    position: dict[str, int] = {}
    for item in pred:
        if item in ref_set and item not in position:
            position[item] = len(position)
    ranks = [position.get(item, len(position)) for item in ref]
    if len(set(ranks)) < 2:
        return 0.0
    tau = float(kendalltau(list(range(len(ref))), ranks).statistic)
    return 0.0 if math.isnan(tau) else tau


# ---------------------------------------------------------------------------------------- scoring


@dataclass
class Scored:
    """The outcome of scoring: headline score, auxiliary metrics, and per-example (correct, score)."""

    score: float
    metrics: dict[str, float]
    correct: list[bool]
    example_scores: list[float]
    extra: list[dict[str, Any]] = field(default_factory=list)


def _set_f1(pred: set[str], ref: set[str]) -> float:
    if not pred and not ref:
        return 1.0
    return 2 * len(pred & ref) / (len(pred) + len(ref))


def score_predictions(spec: EvaluationSpec, predictions: Sequence[str], references: Sequence[str]) -> Scored:
    """Score `predictions` against `references` with `spec.metric`; also report related metrics.

    `predictions` are completions already cut at their stop (see `generation.clean_completion`); `references`
    are target texts (lists already joined with `spec.label_separator`). Raises ValueError on length mismatch
    or an empty list.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("nothing to score")
    metric = spec.metric
    metrics: dict[str, float] = {
        "empty_rate": _mean([float(not p.strip()) for p in predictions]),
    }
    if metric in ("multilabel_micro_f1", "multilabel_macro_f1"):
        return _score_multilabel(spec, predictions, references, metrics)
    if metric in ("rouge1", "rougeL"):
        scores = rouge(predictions, references)
        for key, values in scores.items():
            metrics[key] = _mean(values)
        lengths = [len(p.split()) / max(1, len(r.split())) for p, r in zip(predictions, references, strict=True)]
        metrics["length_ratio"] = _mean(lengths)
        per = scores[metric]
        return Scored(metrics[metric], metrics, [s >= ROUGE_CORRECT_THRESHOLD for s in per], per)
    if metric == "kendall_tau":
        sep = spec.label_separator
        taus = [kendall_tau(split_items(p, sep), split_items(r, sep)) for p, r in zip(predictions, references,
                                                                                    strict=True)]
        exact = [split_items(p, sep) == split_items(r, sep) for p, r in zip(predictions, references, strict=True)]
        metrics["kendall_tau"] = _mean(taus)
        metrics["exact_order"] = _mean([float(e) for e in exact])
        return Scored(metrics["kendall_tau"], metrics, exact, taus)
    # accuracy, exact_match, macro_f1: one answer per example
    strict = [p.strip() == r.strip() for p, r in zip(predictions, references, strict=True)]
    metrics["exact_match"] = _mean([float(s) for s in strict])
    if spec.choices:
        choices = spec.choices
        parsed = [parse_label(p, choices) for p in predictions]
        gold = [parse_label(r, choices) or r for r in references]
        loose = [p is not None and p == g for p, g in zip(parsed, gold, strict=True)]
        metrics["accuracy"] = _mean([float(c) for c in loose])
        metrics.update(label_f1(parsed, gold, choices))
        metrics["invalid_rate"] = _mean([float(p is None) for p in parsed])
    else:
        loose = [normalise_text(p) == normalise_text(r) for p, r in zip(predictions, references, strict=True)]
        metrics["accuracy"] = _mean([float(c) for c in loose])
    correct = strict if metric == "exact_match" else loose
    return Scored(metrics[metric], metrics, correct, [float(c) for c in correct])


def _score_multilabel(spec: EvaluationSpec, predictions: Sequence[str], references: Sequence[str],
                      metrics: dict[str, float]) -> Scored:
    choices = spec.choices or []
    sep = spec.label_separator
    pred_sets = [parse_labels(p, choices, sep) for p in predictions]
    ref_sets = [parse_labels(r, choices, sep)[0] for r in references]
    known = [k for k, _ in pred_sets]
    metrics["multilabel_micro_f1"] = multilabel_f1(known, ref_sets, choices, "micro")
    metrics["multilabel_macro_f1"] = multilabel_f1(known, ref_sets, choices, "macro")
    correct = [set(k) == set(r) and not u for (k, u), r in zip(pred_sets, ref_sets, strict=True)]
    metrics["exact_set"] = _mean([float(c) for c in correct])
    metrics["spurious_unknown_rate"] = _mean([float(bool(u)) for _, u in pred_sets])
    per = [_set_f1(set(k), set(r)) for k, r in zip(known, ref_sets, strict=True)]
    return Scored(metrics[spec.metric], metrics, correct, per)
