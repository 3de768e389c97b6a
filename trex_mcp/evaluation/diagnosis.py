"""Bad-case diagnosis: wrong predictions grouped by what went wrong, small enough for a planner's prompt.

Groups (each with a count, its share of the wrong predictions, a likely cause and a few examples):
- every task: `empty` (no answer), `truncated` (hit the token limit without an end token);
- single-label classification: `invalid_label` (answer outside the declared choices: wrong format),
  `confusion` (one group per expected -> predicted pair);
- multi-label classification: `missed_label` and `spurious_label` (one group per label), `unknown_label`
  (labels outside the choices);
- generation (ROUGE): `repetitive`, `too_long` / `too_short` (vs the reference's length), `low_overlap`;
- orderings: `missing_items`, `unknown_items`, `wrong_order`;
- free-form answers: `format_only` (right after normalisation, wrong as written), `too_long`, `wrong_answer`.
For single-answer tasks every wrong prediction lands in exactly one group (precedence in the order above);
multi-label groups count examples per label, so one example can appear in several.

Classification diagnoses also carry the predicted vs reference label distribution and flag a collapse onto one
label. `diagnose(..., previous=...)` adds a comparison with an earlier round's diagnosis.
`Diagnosis.to_text(max_chars)` never exceeds `max_chars`; `Diagnosis.to_dict()` is JSON-able.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from trex_mcp.evaluation.metrics import normalise_text, parse_label, parse_labels, split_items

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec

__all__ = ["CAUSES", "Diagnosis", "DiagnosisExample", "DiagnosisGroup", "diagnose"]

#: Likely cause (and what to try) per group kind; shown to the planner.
CAUSES: dict[str, str] = {
    "empty": "stops at once (end token or newline first): answer format not learned, or prompt mismatch",
    "truncated": "never emits the end token: train completions ending with eos, or shorten targets",
    "invalid_label": "answer is not one of the labels: teach the exact label strings, clean noisy labels",
    "confusion": "classes confused: add clean, contrasting examples; check class balance and label noise",
    "missed_label": "label under-predicted: add examples that carry it",
    "spurious_label": "label over-predicted: add examples without it; check label noise",
    "unknown_label": "labels outside the set: teach the exact label vocabulary and separator",
    "repetitive": "degenerate repetition: under-trained; more steps or more in-domain data",
    "too_long": "much longer than the reference: train on concise targets, stop at the end token",
    "too_short": "much shorter than the reference: train on complete targets",
    "low_overlap": "content differs from the reference: more or better in-domain data",
    "missing_items": "items left out: teach outputs that list every item",
    "unknown_items": "items not in the input: teach copying the given items exactly",
    "wrong_order": "all items present, order wrong: more ordering examples, clearer cues",
    "format_only": "right answer, wrong form (case, spacing, punctuation): match the reference format",
    "wrong_answer": "wrong content: more or better in-domain data",
}

_SINGLE = {"accuracy", "exact_match", "macro_f1"}
_MULTI = {"multilabel_macro_f1", "multilabel_micro_f1"}


class DiagnosisExample(BaseModel):
    """One wrong prediction, shortened for display."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Example id.")
    input: str = Field(description="Input text (shortened).")
    prediction: str = Field(description="Model answer (shortened).")
    reference: str = Field(description="Reference answer (shortened).")


class DiagnosisGroup(BaseModel):
    """Wrong predictions that share one failure."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="Failure kind, e.g. 'confusion' or 'invalid_label'.")
    key: str = Field(default="", description="What the group is about, e.g. 'negative -> positive' or a label.")
    count: int = Field(ge=1, description="Examples in the group.")
    share: float = Field(ge=0, le=1, description="count / wrong predictions.")
    cause: str = Field(description="Likely cause and what to try.")
    examples: list[DiagnosisExample] = Field(default_factory=list, description="A few examples.")

    @property
    def name(self) -> str:
        """`kind` or `kind[key]`."""
        return f"{self.kind}[{self.key}]" if self.key else self.kind


class Diagnosis(BaseModel):
    """Grouped bad cases of one evaluation."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="Task name.")
    metric: str = Field(description="Headline metric.")
    score: float | None = Field(default=None, description="Headline score, when known.")
    n: int = Field(ge=0, description="Evaluated examples.")
    n_wrong: int = Field(ge=0, description="Wrong examples.")
    groups: list[DiagnosisGroup] = Field(default_factory=list, description="Failure groups, largest first.")
    predicted_distribution: dict[str, float] | None = Field(default=None, description="Share of each predicted label.")
    reference_distribution: dict[str, float] | None = Field(default=None, description="Share of each reference label.")
    notes: list[str] = Field(default_factory=list, description="Whole-set findings (e.g. label collapse).")
    comparison: list[str] = Field(default_factory=list, description="Changes against the previous diagnosis.")
    budget_chars: int = Field(default=1500, ge=200, description="Default size of `to_text`.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return self.model_dump(mode="json")

    def group_counts(self) -> dict[str, int]:
        """Count per group name (`kind` or `kind[key]`)."""
        return {g.name: g.count for g in self.groups}

    def to_text(self, max_chars: int | None = None) -> str:
        """A compact, planner-readable summary of at most `max_chars` characters (default `budget_chars`)."""
        budget = max_chars if max_chars is not None else self.budget_chars
        score = f"{self.metric}={self.score:.3f}" if self.score is not None else self.metric
        lines = [f"{self.task} {score}; wrong {self.n_wrong}/{self.n}"]
        if self.predicted_distribution is not None:
            line = "predicted: " + _shares(self.predicted_distribution)
            if self.reference_distribution:
                line += " | reference: " + _shares(self.reference_distribution)
            lines.append(line)
        lines += [f"! {note}" for note in self.notes]
        if self.comparison:
            lines.append("vs previous: " + "; ".join(self.comparison))
        return _fit(lines, self.groups, budget)


def _shares(dist: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in sorted(dist.items(), key=lambda kv: -kv[1]))


def _fit(head: list[str], groups: Sequence[DiagnosisGroup], budget: int) -> str:
    """Header, then lines in priority order while they fit within `budget`.

    Priority: the three largest groups with one example each, then the other groups' lines, then further
    examples breadth-first. An example is shown only under its group's line; hidden groups are summarised.
    """
    group_lines = [f"- {g.name}: {g.count} ({g.share:.0%}); {g.cause}" for g in groups]
    example_lines = [[f"    [{e.id}] {e.input} -> {e.prediction} (want {e.reference})" for e in g.examples]
                     for g in groups]
    units: list[tuple[int, int]] = []  # (group, -1 for its line | example rank)
    for i in range(min(3, len(groups))):
        units += [(i, -1)] + ([(i, 0)] if example_lines[i] else [])
    units += [(i, -1) for i in range(3, len(groups))]
    depth = max((len(e) for e in example_lines), default=0)
    units += [(i, r) for r in range(depth) for i in range(len(groups)) if r < len(example_lines[i])
              and (i >= 3 or r > 0)]
    reserve = 48 if len(groups) > 1 else 0  # room for the "... more groups" line
    total = len("\n".join(head))
    chosen: dict[int, int] = {}  # group -> examples shown
    for group, rank in units:
        if rank == -1:
            if total + 1 + len(group_lines[group]) + reserve <= budget:
                total += 1 + len(group_lines[group])
                chosen[group] = 0
        elif group in chosen and chosen[group] == rank:
            line = example_lines[group][rank]
            if total + 1 + len(line) + reserve <= budget:
                total += 1 + len(line)
                chosen[group] += 1
    lines = list(head)
    for group in range(len(groups)):
        if group in chosen:
            lines.append(group_lines[group])
            lines += example_lines[group][: chosen[group]]
    hidden = [g for i, g in enumerate(groups) if i not in chosen]
    if hidden:
        lines.append(f"... {len(hidden)} more groups ({sum(g.count for g in hidden)} cases)")
    text = "\n".join(lines)
    return text if len(text) <= budget else text[: max(0, budget - 3)] + "..."


def _clip(text: str, limit: int) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted if len(quoted) <= limit else quoted[: limit - 4] + '..."'


def _example(pred: Mapping[str, Any]) -> DiagnosisExample:
    return DiagnosisExample(id=str(pred.get("id", "?"))[:24], input=_clip(str(pred.get("input", "")), 70),
                            prediction=_clip(str(pred.get("prediction", "")), 50),
                            reference=_clip(str(pred.get("reference", "")), 50))


def _family(task: TaskSpec) -> str:
    spec = task.evaluation
    if spec.metric in _MULTI:
        return "multilabel"
    if spec.metric in ("rouge1", "rougeL"):
        return "generation"
    if spec.metric == "kendall_tau":
        return "ordering"
    if spec.choices and (spec.metric in _SINGLE or spec.kind == "multiple_choice"):
        return "label"
    return "text"


def _looks_like_lists(references: Sequence[str], separator: str) -> bool:
    """True when nearly every reference is a list of short items (an ordering scored by exact match)."""
    if not references:
        return False
    lists = [split_items(r, separator) for r in references]
    hits = sum(1 for items in lists if len(items) >= 2 and all(len(i.split()) <= 3 for i in items))
    return hits >= 0.9 * len(references)


def _is_repetitive(text: str) -> bool:
    words = text.split()
    if len(words) < 8:
        return False
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    return len(set(grams)) / len(grams) < 0.5


def _length_kind(pred: str, ref: str) -> str | None:
    p, r = len(pred.split()), max(1, len(ref.split()))
    if p > 2 * r + 2:
        return "too_long"
    if p * 2 < r:
        return "too_short"
    return None


def _classify(family: str, task: TaskSpec, pred: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (kind, key) groups of one wrong prediction."""
    text, ref = str(pred.get("prediction", "")), str(pred.get("reference", ""))
    if not text.strip():
        return [("empty", "")]
    if pred.get("truncated"):
        return [("truncated", "")]
    spec = task.evaluation
    choices = spec.choices or []
    if family == "label":
        label = parse_label(text, choices)
        if label is None:
            return [("invalid_label", "")]
        gold = parse_label(ref, choices) or ref
        return [("confusion", f"{gold} -> {label}")]
    if family == "multilabel":
        known, unknown = parse_labels(text, choices, spec.label_separator)
        gold_labels, _ = parse_labels(ref, choices, spec.label_separator)
        out = [("missed_label", x) for x in gold_labels if x not in known]
        out += [("spurious_label", x) for x in known if x not in gold_labels]
        if unknown:
            out.append(("unknown_label", ""))
        return out
    if family == "generation":
        if _is_repetitive(text):
            return [("repetitive", "")]
        return [(_length_kind(text, ref) or "low_overlap", "")]
    if family == "ordering":
        items, gold_items = split_items(text, spec.label_separator), split_items(ref, spec.label_separator)
        if set(gold_items) - set(items):
            return [("missing_items", "")]
        if set(items) - set(gold_items):
            return [("unknown_items", "")]
        return [("wrong_order", "")]
    if normalise_text(text) == normalise_text(ref):
        return [("format_only", "")]
    return [(_length_kind(text, ref) or "wrong_answer", "")]


def _distribution(values: Sequence[str]) -> dict[str, float]:
    counts = Counter(values)
    return {k: round(v / len(values), 4) for k, v in counts.most_common()} if values else {}


def diagnose(task: TaskSpec, predictions: Sequence[Mapping[str, Any]], *, max_examples: int = 3,
             budget_chars: int = 1500, score: float | None = None,
             previous: Diagnosis | Mapping[str, Any] | None = None) -> Diagnosis:
    """Group the wrong predictions of one evaluation (see the module docstring).

    `predictions` are `Prediction` dicts (from `EvalResult.predictions` or a predictions.jsonl file); `previous`
    is an earlier diagnosis (object or `to_dict()`) to compare with. Returns a `Diagnosis`.
    """
    family = _family(task)
    if family == "text" and _looks_like_lists([str(p.get("reference", "")) for p in predictions],
                                              task.evaluation.label_separator):
        family = "ordering"
    wrong = [p for p in predictions if not p.get("correct")]
    buckets: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for pred in wrong:
        for group in _classify(family, task, pred):
            buckets.setdefault(group, []).append(pred)
    n_wrong = len(wrong)
    groups = [DiagnosisGroup(kind=kind, key=key, count=len(items), share=round(len(items) / n_wrong, 4),
                             cause=CAUSES[kind], examples=[_example(p) for p in items[:max_examples]])
              for (kind, key), items in buckets.items()]
    groups.sort(key=lambda g: (-g.count, g.kind, g.key))
    diagnosis = Diagnosis(task=task.name, metric=task.evaluation.metric, score=score, n=len(predictions),
                          n_wrong=n_wrong, groups=groups, budget_chars=max(200, budget_chars))
    if family == "label" and predictions:
        _label_notes(diagnosis, task, predictions)
    if predictions and n_wrong == len(predictions) and all(not str(p.get("prediction", "")).strip()
                                                           for p in predictions):
        diagnosis.notes.append("every answer is empty: the model ends its answer at once")
    if previous is not None:
        diagnosis.comparison = _compare(diagnosis, previous)
    return diagnosis


def _label_notes(diagnosis: Diagnosis, task: TaskSpec, predictions: Sequence[Mapping[str, Any]]) -> None:
    choices = task.evaluation.choices or []
    predicted = [parse_label(str(p.get("prediction", "")), choices) or "<invalid>" for p in predictions]
    reference = [parse_label(str(p.get("reference", "")), choices) or str(p.get("reference", ""))
                 for p in predictions]
    diagnosis.predicted_distribution = _distribution(predicted)
    diagnosis.reference_distribution = _distribution(reference)
    top, share = next(iter(diagnosis.predicted_distribution.items()))
    ref_share = diagnosis.reference_distribution.get(top, 0.0)
    if top != "<invalid>" and share >= 0.8 and ref_share <= 0.6:
        diagnosis.notes.append(f"collapse: predicts '{top}' for {share:.0%} of examples "
                               f"(reference share {ref_share:.0%}); balance classes or clean labels")


def _compare(current: Diagnosis, previous: Diagnosis | Mapping[str, Any]) -> list[str]:
    prev = previous if isinstance(previous, Diagnosis) else Diagnosis.model_validate(dict(previous))
    out: list[str] = []
    if prev.score is not None and current.score is not None:
        out.append(f"{current.metric} {prev.score:.3f} -> {current.score:.3f}")
    out.append(f"wrong {prev.n_wrong} -> {current.n_wrong}")
    before, after = prev.group_counts(), current.group_counts()
    changes = sorted(set(before) | set(after), key=lambda k: -abs(after.get(k, 0) - before.get(k, 0)))
    for name in changes[:4]:
        if after.get(name, 0) != before.get(name, 0):
            out.append(f"{name} {before.get(name, 0)} -> {after.get(name, 0)}")
    return out
