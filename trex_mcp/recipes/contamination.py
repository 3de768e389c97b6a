"""Contamination check: does training data contain (near-)copies of the task's validation or test items?

Score. For an evaluation text E and a training row T (both as normalised words, see `text.words`), the score is
the weighted share of E's words that an ordered alignment (difflib's matching blocks) finds in T. A word weighs
its squared IDF, computed over the evaluation texts and the rows being checked: template words and label names
that every row carries weigh almost nothing, a rare word (a name, a number, a term) weighs most, so a row that
reuses an evaluation sentence's template with other names stays low while a copy with a word or two changed
stays high. A row is contaminated when its best score reaches the threshold (default 0.8). On the mini
sentiment task the planted near-copies (two words changed in 6-9 word sentences) score 0.9 or more and no other
row scores above about 0.5; plain word overlap cannot separate them (the texts share templates).

Candidates, suited to the text length. Every evaluation text posts its rarest words (3, plus one per 10 words,
at most 10) as anchors; texts of 20-63 words also post their word 5-grams and texts of 64+ words their word
8-grams, which survive a few edits in long texts. A training row is compared only with the texts it shares an
anchor or n-gram with, best first (at most 8), after a cheap unordered bound. Texts under 4 words are flagged
only when the row holds little else (at most 2 more words besides the task's template words and labels),
because short phrases occur everywhere.

The input field of each evaluation row is checked, and its target too when that is 8 words or longer (generation
tasks). Not caught: paraphrases, translations, copies whose rare words were all changed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from trex_mcp.recipes.text import row_text, words

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec

__all__ = ["ContaminationExample", "ContaminationReport", "SourceContamination", "check_contamination"]

METHOD = ("squared-IDF-weighted ordered word overlap with each validation/test text; candidates from rare-word anchors "
          "and word 5-grams (20-63 words) or 8-grams (64+ words)")
_SHORT = 4
_MAX_CANDIDATES = 8
_SNIPPET = 200


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContaminationExample(_Model):
    """One training row found to overlap an evaluation item."""

    source: str = Field(description="Recipe source label the row came from.")
    row: int = Field(ge=0, description="Index of the row among the rows checked.")
    eval_id: str = Field(description="Id of the matched validation/test item.")
    eval_split: str = Field(description="'validation' or 'test'.")
    eval_field: str = Field(description="Field of the evaluation row that matched (input or target).")
    score: float = Field(ge=0.0, le=1.0, description="Share of the item's words found in order in the row.")
    train_text: str = Field(description="The training row's text (truncated).")
    eval_text: str = Field(description="The evaluation item's text (truncated).")


class SourceContamination(_Model):
    """Counts for one source."""

    checked: int = Field(ge=0, description="Rows of this source checked.")
    flagged: int = Field(ge=0, description="Rows of this source above the threshold.")


class ContaminationReport(_Model):
    """What the contamination check found, per source, with a few examples."""

    checked_rows: int = Field(ge=0, description="Training rows checked.")
    flagged_rows: int = Field(ge=0, description="Rows whose overlap reached the threshold.")
    removed_rows: int = Field(default=0, ge=0, description="Flagged rows removed from the dataset.")
    eval_items: int = Field(ge=0, description="Validation + test texts compared against.")
    threshold: float = Field(ge=0.0, le=1.0, description="Overlap share at which a row is flagged.")
    method: str = Field(default=METHOD, description="How overlap is measured.")
    per_source: dict[str, SourceContamination] = Field(default_factory=dict, description="Counts per source.")
    per_split: dict[str, int] = Field(default_factory=dict, description="Flagged rows per evaluation split.")
    examples: list[ContaminationExample] = Field(default_factory=list, description="A few flagged rows.")
    skipped: str | None = Field(default=None, description="Why the check did not run (decontaminate off and the "
                                "evaluation data unreadable), else None.")
    flagged_indices: list[int] = Field(default_factory=list, exclude=True,
                                       description="Indices of flagged rows (not serialised).")

    def summary(self) -> str:
        """One line for a planner or a log."""
        if self.skipped:
            return f"contamination: not checked ({self.skipped})"
        if not self.flagged_rows:
            return f"contamination: 0 of {self.checked_rows} rows overlap validation/test ({self.eval_items} items)"
        by_source = ", ".join(f"{k}: {v.flagged}" for k, v in self.per_source.items() if v.flagged)
        return (f"contamination: {self.flagged_rows} of {self.checked_rows} rows overlap validation/test "
                f"({by_source}); removed {self.removed_rows}")


class _EvalIndex:
    """Candidate index over evaluation texts, with IDF weights over evaluation texts + training rows."""

    def __init__(self, items: list[tuple[str, str, str, list[str]]], train_words: list[list[str]],
                 boiler: frozenset[str]) -> None:
        self.items = items  # (eval_id, split, field, words)
        self.boiler = boiler
        df: dict[str, int] = defaultdict(int)
        for w in [it[3] for it in items] + train_words:
            for x in set(w):
                df[x] += 1
        n_docs = len(items) + len(train_words)
        # squared IDF: a rare word (a name, a number, a term) must match for a row to count as a copy
        self.idf = {x: math.log((n_docs + 1) / (c + 0.5)) ** 2 for x, c in df.items()}
        self.weights: list[float] = []
        self.anchor_weight: list[float] = []
        self.distinct: list[list[tuple[str, float]]] = []
        self.anchors: dict[str, list[int]] = defaultdict(list)
        self.grams: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self.sizes: set[int] = set()
        for idx, (_eid, _split, _field, w) in enumerate(items):
            self.weights.append(sum(self.idf[x] for x in w) or 1.0)
            distinct = sorted(set(w), key=lambda x: (-self.idf[x], x))
            self.distinct.append([(x, self.idf[x]) for x in distinct])
            anchors = distinct[:min(10, 3 + len(w) // 10)]
            self.anchor_weight.append(sum(self.idf[x] for x in anchors))
            for x in anchors:
                self.anchors[x].append(idx)
            n = _ngram_size(len(w))
            if n:
                self.sizes.add(n)
                for g in {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}:
                    self.grams[g].append(idx)

    def score(self, row_words: list[str], idx: int, matcher: SequenceMatcher[str]) -> float:
        """IDF-weighted share of item `idx`'s words found in order in the row (matcher holds the row)."""
        item_words = self.items[idx][3]
        matcher.set_seq2(item_words)
        found = sum(self.idf[item_words[b.b + k]] for b in matcher.get_matching_blocks() for k in range(b.size))
        return found / self.weights[idx]

    def match(self, w: list[str], threshold: float) -> tuple[int, float] | None:
        """(item index, score) of the best item at or above threshold, or None."""
        present = set(w)
        anchor_hits: dict[int, float] = defaultdict(float)
        for x in present:
            for idx in self.anchors.get(x, ()):
                anchor_hits[idx] += self.idf[x]
        candidates = {idx for idx, got in anchor_hits.items()
                      # the anchors a row lacks already cap its score: drop those that cannot reach the threshold
                      if 1.0 - (self.anchor_weight[idx] - got) / self.weights[idx] >= threshold}
        for n in self.sizes:
            for g in {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}:
                candidates.update(self.grams.get(g, ()))
        if not candidates:
            return None
        ranked = []
        for idx in candidates:
            # unordered containment bounds the ordered score from above: skip hopeless candidates cheaply
            bound = sum(weight for x, weight in self.distinct[idx] if x in present) / self.weights[idx]
            if bound >= threshold:
                ranked.append((bound, idx))
        best: tuple[int, float] | None = None
        matcher: SequenceMatcher[str] = SequenceMatcher(None, autojunk=False)
        matcher.set_seq1(w)
        checked = 0
        for _bound, idx in sorted(ranked, reverse=True):
            item_words = self.items[idx][3]
            if len(item_words) < _SHORT and len([x for x in w if x not in self.boiler]) > len(item_words) + 2:
                continue
            score = self.score(w, idx, matcher)
            if score >= threshold and (best is None or score > best[1]):
                best = (idx, score)
            checked += 1
            if checked >= _MAX_CANDIDATES:
                break
        return best


def _boilerplate(task: TaskSpec) -> frozenset[str]:
    """Words every row built from the task's template carries: template text and label names."""
    import string

    literal = " ".join(lit for lit, _name, _spec, _conv in string.Formatter().parse(task.prompt_template))
    labels = " ".join(task.evaluation.choices or [])
    return frozenset(words(literal + " " + labels))


def _ngram_size(length: int) -> int:
    if length < 20:
        return 0
    if length < 64:
        return 5
    return 8


def _as_text(value: Any, separator: str) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return separator.join(str(v) for v in value)
    return str(value)


def _eval_items(task: TaskSpec, eval_data: Sequence[tuple[str, Sequence[dict[str, Any]]]]
                ) -> list[tuple[str, str, str, list[str]]]:
    sep = task.evaluation.label_separator
    items = []
    for split, rows in eval_data:
        for i, row in enumerate(rows):
            eid = str(row.get("id", f"{split}-{i}"))
            items.append((eid, split, "input", words(_as_text(row.get(task.input_field), sep))))
            target = words(_as_text(row.get(task.target_field), sep))
            if len(target) >= 8:
                items.append((eid, split, "target", target))
    return [it for it in items if it[3]]


def check_contamination(rows: Sequence[dict[str, Any] | str], task: TaskSpec, *,
                        sources: Sequence[str] | None = None, threshold: float = 0.8,
                        eval_data: Sequence[tuple[str, Sequence[dict[str, Any]]]] | None = None,
                        max_examples: int = 5) -> ContaminationReport:
    """Compare training rows with the task's validation and test data.

    `rows` are TRL rows (or plain strings); `sources[i]` labels row i (default 'rows'). `eval_data` is
    [(split, rows)]; by default the task's validation and test files are read. Returns a report whose
    `flagged_indices` lists the rows at or above `threshold`; nothing is removed here.
    Raises `RecipeError` when the evaluation data cannot be read.
    """
    if eval_data is None:
        from trex_mcp.recipes.sources import read_eval_rows

        eval_data = read_eval_rows(task)
    texts = [row if isinstance(row, str) else row_text(row) for row in rows]
    train_words = [words(t) for t in texts]
    index = _EvalIndex(_eval_items(task, eval_data), train_words, _boilerplate(task))
    labels = list(sources) if sources is not None else ["rows"] * len(rows)
    per_source: dict[str, SourceContamination] = {}
    per_split: dict[str, int] = {}
    examples: list[ContaminationExample] = []
    flagged: list[int] = []
    for i in range(len(rows)):
        label = labels[i]
        stats = per_source.setdefault(label, SourceContamination(checked=0, flagged=0))
        stats.checked += 1
        text = texts[i]
        found = index.match(train_words[i], threshold) if index.items else None
        if found is None:
            continue
        idx, score = found
        eid, split, fld, item_words = index.items[idx]
        stats.flagged += 1
        per_split[split] = per_split.get(split, 0) + 1
        flagged.append(i)
        if len(examples) < max_examples:
            examples.append(ContaminationExample(
                source=label, row=i, eval_id=eid, eval_split=split, eval_field=fld, score=round(min(score, 1.0), 4),
                train_text=text[:_SNIPPET], eval_text=" ".join(item_words)[:_SNIPPET]))
    return ContaminationReport(checked_rows=len(rows), flagged_rows=len(flagged), eval_items=len(index.items),
                               threshold=threshold, per_source=per_source, per_split=per_split,
                               examples=examples, flagged_indices=flagged)
