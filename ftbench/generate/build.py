"""The shape every mini task shares: evaluation splits, a clean source, a noisy source, an off-domain source.

`build(plan)` turns a `MiniPlan` (the task-specific row makers) into a `GeneratedTask`:

- validation and test (100 rows each) use names reserved for evaluation, so no training row shares their
  distinguishing detail, except the planted near-copies;
- clean (300 rows): correct targets, same distribution as evaluation;
- noisy (3,000 rows): about a quarter of the targets wrong (the plan decides how, possibly systematically),
  about a fifth near-duplicates of other noisy rows, and 10 near-copies of evaluation rows (one or two words
  changed, correct targets) that a contamination check must catch;
- offdomain: another domain or another label vocabulary, decided by the plan.

Each part draws from its own seeded `Rng`, so changing one part never changes another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftbench.generate.common import GeneratedTask, Rng, make_names, word_distance

__all__ = ["MiniPlan", "build"]

Row = dict[str, Any]

RESERVED_NAMES = 400


@dataclass(frozen=True)
class MiniPlan:
    """Task-specific pieces. Every maker returns a row without 'id'; `input_field` is what near-copies edit."""

    task: str
    prefix: str
    seed: int
    input_field: str
    target_field: str
    make_row: Callable[[Rng, str, int], Row]
    noisy_row: Callable[[Rng, str, int], Row]
    duplicate: Callable[[Rng, Row], Row]
    near_copy: Callable[[Rng, Row], Row]
    offdomain_row: Callable[[Rng, str, int], Row]
    clean_rows: int = 300
    noisy_rows: int = 3000
    offdomain_rows: int = 600
    eval_rows: int = 100
    duplicate_rate: float = 0.2
    planted: int = 10


def _with_id(row_id: str, row: Row) -> Row:
    return {"id": row_id, **row}


def _unique_rows(rng: Rng, count: int, maker: Callable[[Rng, int], Row], key: str, seen: set[str]) -> list[Row]:
    rows: list[Row] = []
    i = 0
    while len(rows) < count:
        row = maker(rng, i)
        i += 1
        text = row[key]
        if text in seen:
            continue
        seen.add(text)
        rows.append(row)
    return rows


def build(plan: MiniPlan) -> GeneratedTask:
    names = make_names(plan.seed)
    reserved, pool = names[:RESERVED_NAMES], names[RESERVED_NAMES:]
    key = plan.input_field
    seen: set[str] = set()

    rng = Rng(plan.seed + 1)
    evaluation = _unique_rows(rng, 2 * plan.eval_rows, lambda r, i: plan.make_row(r, reserved[i], i), key, seen)
    validation, test = evaluation[: plan.eval_rows], evaluation[plan.eval_rows:]
    rng.shuffle(validation)
    rng.shuffle(test)

    rng = Rng(plan.seed + 2)
    clean = _unique_rows(rng, plan.clean_rows, lambda r, i: plan.make_row(r, r.choice(pool), i), key, seen)

    validation_rows = [_with_id(f"{plan.prefix}-val-{i + 1:04d}", row) for i, row in enumerate(validation)]
    test_rows = [_with_id(f"{plan.prefix}-test-{i + 1:04d}", row) for i, row in enumerate(test)]
    noisy_rows, noisy_facts = _noisy(plan, pool, validation_rows, test_rows)

    rng = Rng(plan.seed + 4)
    offdomain = [plan.offdomain_row(rng, rng.choice(pool), i) for i in range(plan.offdomain_rows)]

    task = GeneratedTask(name=plan.task)
    task.files = {
        "train_clean.jsonl": [_with_id(f"{plan.prefix}-clean-{i + 1:04d}", r) for i, r in enumerate(clean)],
        "train_noisy.jsonl": noisy_rows,
        "train_offdomain.jsonl": [_with_id(f"{plan.prefix}-off-{i + 1:04d}", r) for i, r in enumerate(offdomain)],
        "validation.jsonl": validation_rows,
        "test.jsonl": test_rows,
    }
    task.manifest = {
        "task": plan.task,
        "seed": plan.seed,
        "regenerate": "python -m ftbench.generate",
        "rows": {name: len(rows) for name, rows in task.files.items()},
        "noisy": noisy_facts,
        "reserved_names": "validation and test rows carry made-up names that no training row uses, except the "
                          "planted near-copies in train_noisy.jsonl",
    }
    return task


def _noisy(plan: MiniPlan, pool: list[str], validation: list[Row], test: list[Row]) -> tuple[list[Row], dict[str, Any]]:
    rng = Rng(plan.seed + 3)
    n_dup = round(plan.duplicate_rate * plan.noisy_rows)
    n_base = plan.noisy_rows - n_dup - plan.planted
    # (row, true target) pairs; the true target is what a clean annotator would have written.
    base: list[tuple[Row, Any]] = []
    for i in range(n_base):
        name = rng.choice(pool)
        truth = plan.make_row(Rng(plan.seed * 1_000_003 + i), name, i)
        row = plan.noisy_row(Rng(plan.seed * 1_000_003 + i), name, i)
        base.append((row, truth[plan.target_field]))
    items: list[tuple[Row, Any, str | None]] = [(row, truth, None) for row, truth in base]
    for _ in range(n_dup):
        row, truth = base[rng.below(len(base))]
        items.append((plan.duplicate(rng, row), truth, None))
    targets = [("validation", r) for r in rng.sample(validation, plan.planted // 2)]
    targets += [("test", r) for r in rng.sample(test, plan.planted - plan.planted // 2)]
    for split, eval_row in targets:
        copy = plan.near_copy(rng, {k: v for k, v in eval_row.items() if k != "id"})
        items.append((copy, eval_row[plan.target_field], f"{split}:{eval_row['id']}"))
    rng.shuffle(items)

    rows: list[Row] = []
    planted: list[dict[str, Any]] = []
    wrong = 0
    eval_by_id = {r["id"]: r for r in (*validation, *test)}
    for i, (row, truth, origin) in enumerate(items):
        row_id = f"{plan.prefix}-noisy-{i + 1:04d}"
        rows.append(_with_id(row_id, row))
        wrong += row[plan.target_field] != truth
        if origin is not None:
            split, eval_id = origin.split(":", 1)
            edits = word_distance(row[plan.input_field], eval_by_id[eval_id][plan.input_field])
            planted.append({"train_id": row_id, "eval_split": split, "eval_id": eval_id, "word_edits": edits})
    facts = {
        "rows_with_wrong_target": wrong,
        "wrong_target_rate": round(wrong / len(rows), 4),
        "near_duplicates": n_dup,
        "planted_near_copies": planted,
    }
    return rows, facts
