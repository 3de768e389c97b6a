"""mini/notes: turn a short doctor-patient exchange into a one-line visit note (the shape of ACI-Bench).

Rows: {"id", "dialogue", "note"}. Dialogues are at most 20 words and name a made-up patient; the note copies
the facts into a fixed form of at most 12 words: "<symptom>, <duration>; <finding>; plan <plan>".

Sources: clean; noisy (about a quarter of the notes are wrong: a duration that is not in the dialogue, a
missing plan, or a long chatty note; disfluent dialogues, near-duplicates and planted near-copies of evaluation
dialogues); offdomain (meeting snippets summarised as action items -- the same copy-the-facts skill in another
domain, in another format).
"""

from __future__ import annotations

from ftbench.generate.build import MiniPlan, Row, build
from ftbench.generate.common import GeneratedTask, Rng
from ftbench.generate.sentiment import edit_words

__all__ = ["PLAN", "generate"]

SEED = 3303

_SYMPTOMS = ["cough", "headache", "sore throat", "back pain", "fever", "rash", "dizziness", "ear pain", "nausea",
             "knee pain"]
_DURATIONS = ["one day", "two days", "three days", "five days", "a week", "two weeks"]
_FINDINGS = ["lungs clear", "throat red", "ear inflamed", "knee swollen", "skin irritated", "pressure high",
             "temperature normal", "abdomen soft"]
_PLANS = ["rest", "fluids", "ibuprofen", "antibiotics", "ice packs", "blood tests", "x ray", "follow up"]
_DIALOGUES = [
    "patient {name}: {symptom} for {duration}. doctor: {finding}. plan {plan}.",
    "doctor: hello {name}, what brings you in? patient: {symptom}, {duration}. doctor: {finding}. plan {plan}.",
    "doctor: {name}, how long the {symptom}? patient: {duration}. doctor: {finding}, so {plan}.",
]
_SWAP = {"hello": "hi", "doctor:": "dr:", "patient:": "pt:", "plan": "plan:", "so": "then", "brings": "bring",
         "long": "long,"}
_FILLERS = ["okay", "thanks", "um"]


def _facts(rng: Rng) -> dict[str, str]:
    return {"symptom": rng.choice(_SYMPTOMS), "duration": rng.choice(_DURATIONS), "finding": rng.choice(_FINDINGS),
            "plan": rng.choice(_PLANS)}


def _note(facts: dict[str, str]) -> str:
    return f"{facts['symptom']}, {facts['duration']}; {facts['finding']}; plan {facts['plan']}"


def make_row(rng: Rng, name: str, i: int) -> Row:
    facts = _facts(rng)
    dialogue = rng.choice(_DIALOGUES).format(name=name, **facts)
    return {"dialogue": dialogue, "note": _note(facts)}


def noisy_row(rng: Rng, name: str, i: int) -> Row:
    row = make_row(rng, name, i)
    facts = _facts(rng)  # drawn after the true row, so the truth is unchanged
    note = row["note"]
    roll = rng.random()
    if roll < 0.09:
        note = note.replace(row["note"].split(", ", 1)[1].split(";", 1)[0],
                            rng.choice([d for d in _DURATIONS if d not in row["note"]]), 1)
    elif roll < 0.18:
        note = note.rsplit("; plan", 1)[0]
    elif roll < 0.27:
        note = (f"the patient {name} came in today complaining of {facts['symptom']} and we talked about "
                "how things have been going")
    dialogue = row["dialogue"]
    if rng.chance(0.3):
        dialogue = dialogue.replace("patient", "patient um", 1)
    return {"dialogue": dialogue, "note": note}


def duplicate(rng: Rng, row: Row) -> Row:
    dialogue = row["dialogue"]
    dialogue = dialogue.replace("doctor:", "doc:") if rng.chance(0.5) else dialogue.rstrip(".") + " ..."
    return {"dialogue": dialogue, "note": row["note"]}


def near_copy(rng: Rng, row: Row) -> Row:
    return {"dialogue": edit_words(rng, row["dialogue"], _SWAP, _FILLERS), "note": row["note"]}


_TASKS = [("send the budget", "send budget"), ("book the room", "book room"), ("call the supplier", "call supplier"),
          ("fix the printer", "fix printer"), ("draft the report", "draft report"), ("order more paper", "order paper")]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


def offdomain_row(rng: Rng, name: str, i: int) -> Row:
    action, short = rng.choice(_TASKS)
    day = rng.choice(_DAYS)
    reply = rng.choice(["will do.", "sure.", "on it."])
    return {"dialogue": f"manager: {name}, please {action} by {day}. staff: {reply}",
            "note": f"{name}: {short}, due {day}"}


PLAN = MiniPlan(task="mini/notes", prefix="note", seed=SEED, input_field="dialogue", target_field="note",
                make_row=make_row, noisy_row=noisy_row, duplicate=duplicate, near_copy=near_copy,
                offdomain_row=offdomain_row)


def generate() -> GeneratedTask:
    return build(PLAN)
