"""mini/hallmarks: multi-label classification of short cancer-biology sentences (the shape of HoC).

Rows: {"id", "text", "labels"} where labels is a list drawn from LABELS in that order, or ['none'] when the
sentence names no hallmark, so the target text is never empty. A sentence names a made-up gene and zero, one
or two hallmark cues ("knockdown of kalomir reduced caspase activity and cell migration in lung tumors").

Sources: clean; noisy (labels dropped, added or swapped on about a quarter of the rows -- systematically,
vessel cues are labelled metastasis instead of angiogenesis -- near-duplicates and planted near-copies of
evaluation sentences); offdomain (health-news headlines labelled with topic words such
as 'funding' or 'policy' -- a different task that only looks similar).
"""

from __future__ import annotations

from ftbench.generate.build import MiniPlan, Row, build
from ftbench.generate.common import GeneratedTask, Rng
from ftbench.generate.sentiment import edit_words

__all__ = ["LABELS", "NONE", "PLAN", "generate"]

LABELS = ["proliferation", "apoptosis", "metastasis", "angiogenesis", "immune"]
NONE = "none"
SEED = 2202

_CUES = {
    "proliferation": ["cell division", "growth signaling", "proliferation"],
    "apoptosis": ["caspase activity", "cell death", "apoptosis"],
    "metastasis": ["cell migration", "invasion", "metastasis"],
    "angiogenesis": ["vessel formation", "vegf secretion", "angiogenesis"],
    "immune": ["t cell infiltration", "immune evasion", "macrophage recruitment"],
}
_OPENERS = ["loss of", "knockdown of", "overexpression of"]
_VERBS = ["increased", "reduced", "blocked"]
_TISSUES = ["breast", "lung", "colon", "liver", "skin", "prostate", "brain", "kidney"]
_NEUTRAL = ["we sequenced {gene} in {n} {tissue} tumor samples",
            "{gene} was measured in a cohort of {n} {tissue} patients",
            "the {gene} antibody was validated on {tissue} sections",
            "patients with {tissue} tumors were genotyped for {gene}"]
_SWAP = {"increased": "raised", "reduced": "lowered", "blocked": "inhibited", "tumors": "cancers", "in": "within",
         "of": "for", "was": "is", "the": "this"}
_FILLERS = ["significantly", "markedly", "strongly"]


def _sentence(rng: Rng, gene: str, labels: list[str]) -> str:
    tissue = rng.choice(_TISSUES)
    if not labels:
        return rng.choice(_NEUTRAL).format(gene=gene, n=rng.choice(["twelve", "forty", "ninety", "sixty"]),
                                           tissue=tissue)
    cues = " and ".join(rng.choice(_CUES[label]) for label in labels)
    return f"{rng.choice(_OPENERS)} {gene} {rng.choice(_VERBS)} {cues} in {tissue} tumors"


def _true_labels(rng: Rng, i: int) -> list[str]:
    roll = i % 4  # a quarter none, half one label, a quarter two labels
    if roll == 0:
        return []
    count = 1 if roll in (1, 2) else 2
    picked = rng.sample(LABELS, count)
    return [label for label in LABELS if label in picked]


def _target(labels: list[str]) -> list[str]:
    return labels or [NONE]


def make_row(rng: Rng, name: str, i: int) -> Row:
    labels = _true_labels(rng, i)
    return {"text": _sentence(rng, name, labels), "labels": _target(labels)}


# The weak labeller behind the noisy source reads vessel cues as invasion: a systematic confusion.
_CONFUSED_CUES = ("vessel formation", "vegf secretion")


def noisy_row(rng: Rng, name: str, i: int) -> Row:
    row = make_row(rng, name, i)
    labels = [label for label in row["labels"] if label != NONE]
    roll = rng.random()
    if any(cue in row["text"] for cue in _CONFUSED_CUES) and rng.chance(0.8):
        labels = [label for label in LABELS if (label in labels and label != "angiogenesis") or label == "metastasis"]
    elif roll < 0.07 and labels:
        labels = labels[:-1]  # a label dropped
    elif roll < 0.14:
        extra = rng.choice([label for label in LABELS if label not in labels])
        labels = [label for label in LABELS if label in labels or label == extra]  # a spurious label added
    elif roll < 0.19 and labels:
        wrong = rng.choice([label for label in LABELS if label not in labels])
        labels = [label for label in LABELS if (label in labels[1:]) or label == wrong]  # a label swapped
    text = row["text"]
    if rng.chance(0.3):
        text = text.replace(" in ", f" {rng.choice(_FILLERS)} in ", 1)
    return {"text": text, "labels": _target(labels)}


def duplicate(rng: Rng, row: Row) -> Row:
    text = row["text"]
    if rng.chance(0.5):
        text = text.replace("tumors", "tumours")
    else:
        text = f"{text} ({rng.choice(['abstract', 'figure 2', 'table 1'])})"
    return {"text": text, "labels": list(row["labels"])}


def near_copy(rng: Rng, row: Row) -> Row:
    return {"text": edit_words(rng, row["text"], _SWAP, _FILLERS), "labels": list(row["labels"])}


_TOPICS = ["funding", "policy", "hospital", "research"]
_HEADLINES = {
    "funding": ["{name} foundation pledges new money for cancer clinics", "budget cuts threaten {name} screening grants"],
    "policy": ["ministry backs {name} plan to tax tobacco", "new rules limit {name} drug advertising"],
    "hospital": ["{name} hospital opens a second oncology ward", "nurses at {name} clinic vote to strike"],
    "research": ["{name} institute hires forty cancer biologists", "{name} lab shares tumor atlas with partners"],
}


def offdomain_row(rng: Rng, name: str, i: int) -> Row:
    first = rng.choice(_TOPICS)
    topics = [first]
    text = rng.choice(_HEADLINES[first]).format(name=name)
    if rng.chance(0.25):
        second = rng.choice([t for t in _TOPICS if t != first])
        topics = [t for t in _TOPICS if t in (first, second)]
        text = f"{text} amid {second} debate"
    return {"text": text, "labels": topics}


PLAN = MiniPlan(task="mini/hallmarks", prefix="hoc", seed=SEED, input_field="text", target_field="labels",
                make_row=make_row, noisy_row=noisy_row, duplicate=duplicate, near_copy=near_copy,
                offdomain_row=offdomain_row)


def generate() -> GeneratedTask:
    return build(PLAN)
