"""mini/ordering: put three or four events in their logical order (the shape of EconLogicQA).

Rows: {"id", "events", "order"}: events like "kalomir loan: approve, apply, repay, review" and the order as a
list of the same events, ["apply", "review", "approve", "repay"]. Each item comes from one of six business
processes, each with four steps in a fixed order (a loan is applied for, reviewed, approved, repaid), shown
shuffled, sometimes with one step left out; the process is named by the noun after the made-up name. The answer
lists events rather than letters (EconLogicQA answers 'B, D, A, C'): a tiny model learns to order words in a
few hundred steps but needs several times longer to map letters back to events, which would measure step
count more than recipes.

Sources: clean; noisy (about a quarter of the orders wrong -- systematically, loans are 'approved' before they
are 'reviewed' -- plus random swaps and reversals, near-duplicates and planted near-copies of evaluation items);
offdomain (cooking steps in the same format: the right answer format, another domain).
"""

from __future__ import annotations

from ftbench.generate.build import MiniPlan, Row, build
from ftbench.generate.common import GeneratedTask, Rng
from ftbench.generate.sentiment import edit_words

__all__ = ["PLAN", "PROCESSES", "generate"]

SEED = 4404
#: noun -> its four steps, in order.
PROCESSES = {
    "product": ["design", "build", "test", "launch"],
    "loan": ["apply", "review", "approve", "repay"],
    "hiring": ["post", "interview", "offer", "onboard"],
    "export": ["order", "ship", "clear", "deliver"],
    "startup": ["pitch", "raise", "hire", "grow"],
    "store": ["lease", "stock", "open", "expand"],
}
RECIPES = {
    "soup": ["buy", "chop", "boil", "serve"],
    "bread": ["mix", "knead", "bake", "slice"],
    "salad": ["wash", "cut", "toss", "serve"],
}
_SYNONYMS = {"product:": "gadget:", "loan:": "credit:", "hiring:": "recruiting:", "export:": "shipment:",
             "startup:": "venture:", "store:": "shop:"}
_FILLERS = ["events", "steps", "today"]


def _item(rng: Rng, name: str, processes: dict[str, list[str]]) -> tuple[str, list[str]]:
    noun = rng.choice(sorted(processes))
    steps = processes[noun]
    if rng.chance(0.3):
        left_out = rng.below(len(steps))
        steps = [s for k, s in enumerate(steps) if k != left_out]
    shown = rng.sample(steps, len(steps))
    return f"{name} {noun}: {', '.join(shown)}", list(steps)


def make_row(rng: Rng, name: str, i: int) -> Row:
    text, order = _item(rng, name, PROCESSES)
    return {"events": text, "order": order}


def _wrong(rng: Rng, order: list[str]) -> list[str]:
    roll = rng.random()
    if roll < 0.6:
        k = rng.below(len(order) - 1)
        out = list(order)
        out[k], out[k + 1] = out[k + 1], out[k]
        return out
    if roll < 0.8:
        return list(reversed(order))
    out = list(order)
    while out == order:
        rng.shuffle(out)
    return out


def noisy_row(rng: Rng, name: str, i: int) -> Row:
    row = make_row(rng, name, i)
    order = list(row["order"])
    if "review" in order and "approve" in order and rng.chance(0.8):
        # The noisy source's annotators put 'approve' before 'review': a systematic error.
        a, b = order.index("review"), order.index("approve")
        order[a], order[b] = order[b], order[a]
    elif rng.chance(0.2):
        order = _wrong(rng, order)
    return {"events": row["events"], "order": order}


def duplicate(rng: Rng, row: Row) -> Row:
    text = row["events"]
    text = text.replace(", ", " ; ") if rng.chance(0.5) else text + "."
    return {"events": text, "order": list(row["order"])}


def near_copy(rng: Rng, row: Row) -> Row:
    return {"events": edit_words(rng, row["events"], _SYNONYMS, _FILLERS), "order": list(row["order"])}


def offdomain_row(rng: Rng, name: str, i: int) -> Row:
    text, order = _item(rng, name, RECIPES)
    return {"events": text, "order": order}


PLAN = MiniPlan(task="mini/ordering", prefix="ord", seed=SEED, input_field="events", target_field="order",
                make_row=make_row, noisy_row=noisy_row, duplicate=duplicate, near_copy=near_copy,
                offdomain_row=offdomain_row)


def generate() -> GeneratedTask:
    return build(PLAN)
