"""mini/sentiment: binary sentiment of short product and media reviews (the shape of SST-2).

Rows: {"id", "text", "label"} with label 'positive' or 'negative'. A review names a made-up product
("the kalomir headphones") and is plain ("... was really great"), doubled ("great and lovely"), negated
("... was not great" -> negative) or contrastive ("looked great but turned out awful" -> the second word wins).

Sources: clean (correct labels); noisy (web-scraped style: fillers like 'lol', label noise that is partly
systematic -- most negated reviews carry the label of their adjective, ignoring 'not' -- near-duplicates and
planted near-copies of evaluation reviews); offdomain (restaurant and hotel reviews labelled with star ratings
'1 star' .. '5 stars', which map to the task's labels only after relabelling, and '3 stars' rows are ambiguous).
"""

from __future__ import annotations

from typing import Any

from ftbench.generate.build import MiniPlan, Row, build
from ftbench.generate.common import GeneratedTask, Rng

__all__ = ["LABELS", "PLAN", "generate"]

LABELS = ["positive", "negative"]
SEED = 1101

_PRODUCTS = ["phone", "laptop", "headphones", "camera", "movie", "show", "book", "game", "keyboard", "album",
             "charger", "speaker"]
_POS = ["great", "excellent", "wonderful", "amazing", "fantastic", "superb", "lovely", "brilliant", "enjoyable",
        "solid"]
_NEG = ["terrible", "awful", "boring", "horrible", "dreadful", "disappointing", "poor", "bland", "annoying",
        "useless"]
_ADV = ["really", "very", "truly", "quite", "so", ""]
_SWAP = {"really": "very", "very": "really", "truly": "quite", "quite": "truly", "so": "really", "the": "this",
         "this": "the", "was": "is", "is": "was", "honestly": "overall", "overall": "honestly"}
_FILLERS = ["lol", "tbh", "imo", "!!", "ok", "honestly"]

_PLAIN = ["the {name} {item} was {adv} {adj}", "this {name} {item} is {adv} {adj}", "i found the {name} {item} {adj}",
          "honestly the {name} {item} felt {adv} {adj}", "overall the {name} {item} was {adj}"]
_DOUBLE = ["the {name} {item} is {adj} and {adj2}", "this {name} {item} was {adv} {adj} and {adj2}"]
_NEGATED = ["the {name} {item} was not {adj}", "this {name} {item} is not {adv} {adj}",
            "i did not find the {name} {item} {adj}"]
_CONTRAST = ["the {name} {item} looked {adj2} but turned out {adj}", "this {name} {item} seemed {adj2} but was {adj}"]


def _words(text: str) -> str:
    return " ".join(text.split())


def _review(rng: Rng, name: str, label: str) -> tuple[str, str]:
    """(text, form) for a review whose true label is `label`."""
    same, other = (_POS, _NEG) if label == "positive" else (_NEG, _POS)
    item, adv = rng.choice(_PRODUCTS), rng.choice(_ADV)
    roll = rng.random()
    if roll < 0.7:
        form, template, adj, adj2 = "plain", rng.choice(_PLAIN), rng.choice(same), ""
    elif roll < 0.8:
        form, template = "double", rng.choice(_DOUBLE)
        adj, adj2 = rng.sample(same, 2)
    elif roll < 0.92:
        # "not <adj>" means the opposite of <adj>.
        form, template, adj, adj2 = "negated", rng.choice(_NEGATED), rng.choice(other), ""
    else:
        form, template, adj, adj2 = "contrast", rng.choice(_CONTRAST), rng.choice(same), rng.choice(other)
    return _words(template.format(name=name, item=item, adv=adv, adj=adj, adj2=adj2)), form


def make_row(rng: Rng, name: str, i: int) -> Row:
    label = LABELS[i % 2]
    text, _ = _review(rng, name, label)
    return {"text": text, "label": label}


def noisy_row(rng: Rng, name: str, i: int) -> Row:
    label = LABELS[i % 2]
    text, form = _review(rng, name, label)
    flipped = LABELS[1 - LABELS.index(label)]
    if form == "negated" and rng.chance(0.8):
        label = flipped  # the scraper's labeller ignored 'not'
    elif rng.chance(0.19):
        label = flipped
    if rng.chance(0.35):
        text = f"{text} {rng.choice(_FILLERS)}"
    return {"text": text, "label": label}


def duplicate(rng: Rng, row: Row) -> Row:
    text = row["text"]
    roll = rng.random()
    if roll < 0.4:
        text = f"{text} {rng.choice(_FILLERS)}"
    elif roll < 0.7:
        text = text.upper() if rng.chance(0.3) else text.capitalize()
    else:
        text = f"{text} {text.split()[-1]}"
    return {"text": text, "label": row["label"]}


def near_copy(rng: Rng, row: Row) -> Row:
    return {"text": edit_words(rng, row["text"], _SWAP, _FILLERS), "label": row["label"]}


def edit_words(rng: Rng, text: str, swaps: dict[str, str], fillers: list[str]) -> str:
    """The text with one or two words changed: a word swapped for a near-synonym and/or a filler added."""
    words = text.split()
    positions = [i for i, w in enumerate(words) if w in swaps]
    edits = 1 + rng.below(2)
    changed = 0
    for pos in rng.sample(positions, min(edits, len(positions))):
        words[pos] = swaps[words[pos]]
        changed += 1
    if changed < edits:
        words.append(rng.choice(fillers))
    return " ".join(words)


_PLACES = ["pasta", "waiter", "room", "breakfast", "pool", "pizza", "lobby", "soup", "bed", "bar"]
_PLACE_POS = ["tasty", "cozy", "friendly", "clean", "great", "lovely"]
_PLACE_NEG = ["stale", "dirty", "rude", "cold", "awful", "noisy"]
_PLACE_MID = ["fine", "okay", "average", "alright"]


def offdomain_row(rng: Rng, name: str, i: int) -> Row:
    place = rng.choice(["restaurant", "hotel", "cafe", "diner", "inn"])
    thing = rng.choice(_PLACES)
    roll = rng.random()
    if roll < 0.12:
        text, stars = f"the {thing} at {name} {place} was {rng.choice(_PLACE_MID)}", "3 stars"
    elif roll < 0.56:
        adj = rng.choice(_PLACE_POS)
        text, stars = f"the {thing} at {name} {place} was {adj}", rng.choice(["4 stars", "5 stars"])
        if rng.chance(0.2):
            text, stars = f"the {thing} at {name} {place} was not {rng.choice(_PLACE_NEG)}", "4 stars"
    else:
        adj = rng.choice(_PLACE_NEG)
        text, stars = f"the {thing} at {name} {place} was {adj}", rng.choice(["1 star", "2 stars"])
    return {"text": text, "label": stars}


PLAN = MiniPlan(task="mini/sentiment", prefix="sent", seed=SEED, input_field="text", target_field="label",
                make_row=make_row, noisy_row=noisy_row, duplicate=duplicate, near_copy=near_copy,
                offdomain_row=offdomain_row, offdomain_rows=700)


def generate() -> GeneratedTask:
    task = build(PLAN)
    counts: dict[str, Any] = {}
    for row in task.files["train_offdomain.jsonl"]:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    task.manifest["offdomain_labels"] = counts
    return task
