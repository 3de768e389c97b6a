"""Recipe operators (filters, dedupe, sample), the mixture, the cap and the shuffle.

Every step reports rows in and out; a step that leaves no rows raises `RecipeError` naming it, so an empty
dataset is never written. Random steps use `random.Random` seeded from the recipe, so a recipe always builds
the same rows.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trex_mcp.recipes.dedupe import exact_duplicates, near_duplicates
from trex_mcp.recipes.errors import RecipeError
from trex_mcp.recipes.formatting import Row
from trex_mcp.recipes.recipe import (
    OUTPUT_FIELDS,
    DataRecipe,
    Dedupe,
    FilterLength,
    FilterRegex,
    FilterValue,
    Operator,
    Sample,
)
from trex_mcp.recipes.text import row_text

__all__ = ["OperatorCount", "apply_mixture", "apply_operator", "cap_rows", "shuffle_rows"]

TokenCounter = Callable[[list[str]], list[int]]


class OperatorCount(BaseModel):
    """Rows into and out of one step of a build."""

    model_config = ConfigDict(extra="forbid")

    op: str = Field(description="Step: load, format, an operator name, decontaminate, mixture, cap, shuffle.")
    rows_in: int = Field(ge=0, description="Rows before the step.")
    rows_out: int = Field(ge=0, description="Rows after the step.")
    source: str | None = Field(default=None, description="Source label for per-source steps.")
    index: int | None = Field(default=None, description="Position in recipe.operators, for operators.")
    note: str = Field(default="", description="Details, e.g. why rows were dropped.")


def _field_values(rows: list[Row], fld: str, where: str) -> list[Any]:
    if fld == "formatted":
        return [row_text(r.out) for r in rows]
    if fld in OUTPUT_FIELDS and any(fld in r.out for r in rows[:100]):
        return [r.out.get(fld) if fld != "messages" else row_text(r.out) for r in rows]
    if not any(fld in r.raw for r in rows):
        columns = sorted(set().union(*(r.raw.keys() for r in rows[:1000]))) if rows else []
        raise RecipeError(f"{where}: no row has a field or column '{fld}'; available: 'formatted', row fields "
                          f"{', '.join(k for k in OUTPUT_FIELDS[1:] if rows and k in rows[0].out)}, columns "
                          f"{', '.join(map(str, columns)) or 'none'}", field=where,
                          hint="use one of the available names")
    return [r.raw.get(fld) for r in rows]


def _lengths(values: list[Any], unit: str, count_tokens: TokenCounter | None, where: str) -> list[int]:
    texts = ["" if v is None else str(v) for v in values]
    if unit == "chars":
        return [len(t) for t in texts]
    if unit == "words":
        return [len(t.split()) for t in texts]
    if count_tokens is None:
        raise RecipeError(f"{where}: counting tokens needs the base model's tokenizer, which is unavailable",
                          field=where, hint="use unit 'chars' or 'words', or make the base model loadable")
    return count_tokens(texts)


def apply_operator(op: Operator, rows: list[Row], index: int, recipe: DataRecipe,
                   count_tokens: TokenCounter | None = None) -> tuple[list[Row], OperatorCount]:
    """Apply one operator. Raises `RecipeError` naming `operators[index]` for bad fields or an empty result."""
    where = f"operators[{index}]"
    note = ""
    if isinstance(op, FilterLength):
        lengths = _lengths(_field_values(rows, op.field, f"{where}.field"), op.unit, count_tokens, where)
        lo, hi = op.min if op.min is not None else 0, op.max if op.max is not None else math.inf
        kept = [r for r, n in zip(rows, lengths, strict=True) if lo <= n <= hi]
        note = f"{op.field} {op.unit} in [{lo}, {hi}]"
    elif isinstance(op, FilterValue):
        values = _field_values(rows, op.column, f"{where}.column")
        wanted = [op.equals] if op.one_of is None else list(op.one_of)
        kept = [r for r, v in zip(rows, values, strict=True) if (v in wanted) != op.negate]
        note = f"{op.column} {'not ' if op.negate else ''}in {wanted[:5]}"
    elif isinstance(op, FilterRegex):
        values = _field_values(rows, op.field, f"{where}.field")
        rx = re.compile(op.pattern, re.IGNORECASE if op.ignore_case else 0)
        want = op.keep == "match"
        kept = [r for r, v in zip(rows, values, strict=True) if (v is not None and rx.search(str(v)) is not None)
                == want]
        note = f"{op.field} {'matches' if want else 'does not match'} /{op.pattern}/"
    elif isinstance(op, Dedupe):
        texts = ["" if v is None else str(v) for v in _field_values(rows, op.field, f"{where}.field")]
        if op.method == "exact":
            keep = exact_duplicates(texts)
        else:
            keep = near_duplicates(texts, threshold=op.threshold, ngram=op.ngram, num_perm=op.num_perm,
                                   estimate=op.method == "minhash")
        kept = [r for r, k in zip(rows, keep, strict=True) if k]
        note = f"{op.method} on {op.field}" + ("" if op.method == "exact" else f", Jaccard >= {op.threshold}")
    elif isinstance(op, Sample):
        rng = random.Random(op.seed if op.seed is not None else f"{recipe.seed}:sample:{index}")  # noqa: S311
        kept = rows if op.n >= len(rows) else [rows[i] for i in sorted(rng.sample(range(len(rows)), op.n))]
        note = f"n={op.n}"
    else:  # pragma: no cover - the discriminated union admits nothing else
        raise RecipeError(f"{where}: unknown operator", field=where)
    count = OperatorCount(op=op.op, rows_in=len(rows), rows_out=len(kept), index=index, note=note)
    if not kept:
        raise RecipeError(f"{where} ({op.op}: {note}) removed every row ({len(rows)} -> 0)", field=where,
                          hint="loosen or remove this operator")
    return kept, count


def apply_mixture(rows: list[Row], recipe: DataRecipe, cap: int) -> tuple[list[Row], OperatorCount | None]:
    """Draw rows from each source in proportion to its weight, as many as the scarcest source allows (at most
    `cap`). Returns the rows unchanged when the recipe gives no weights."""
    if recipe.sources[0].weight is None:
        return rows, None
    labels = recipe.labels()
    weights = [float(s.weight or 0.0) for s in recipe.sources]
    total_w = sum(weights)
    shares = [w / total_w for w in weights]
    by_source: dict[str, list[Row]] = {label: [] for label in labels}
    for r in rows:
        by_source[r.source].append(r)
    for i, label in enumerate(labels):
        if not by_source[label]:
            raise RecipeError(f"sources[{i}].weight: source '{label}' has weight {weights[i]} but no rows are left "
                              "after formatting and operators", field=f"sources[{i}].weight",
                              hint="drop the source, loosen the operators, or remove its weight")
    total = min(cap, min(math.floor(len(by_source[lb]) / s) for lb, s in zip(labels, shares, strict=True)))
    exact = [s * total for s in shares]
    targets = [min(math.floor(x), len(by_source[lb])) for x, lb in zip(exact, labels, strict=True)]
    # hand the rounding remainder to the largest fractional parts, never beyond a source's rows
    for i in sorted(range(len(labels)), key=lambda k: exact[k] - math.floor(exact[k]), reverse=True):
        if sum(targets) >= total:
            break
        if targets[i] < len(by_source[labels[i]]):
            targets[i] += 1
    out: list[Row] = []
    notes = []
    for label, target in zip(labels, targets, strict=True):
        pool = by_source[label]
        rng = random.Random(f"{recipe.seed}:mixture:{label}")  # noqa: S311
        pick = pool if target >= len(pool) else [pool[i] for i in sorted(rng.sample(range(len(pool)), target))]
        out.extend(pick)
        notes.append(f"{label}: {len(pool)}->{len(pick)}")
    if not out:
        raise RecipeError("sources: the mixture weights leave no rows", field="sources",
                          hint="check the weights against the rows each source has")
    return out, OperatorCount(op="mixture", rows_in=len(rows), rows_out=len(out), note="; ".join(notes))


def cap_rows(rows: list[Row], cap: int, seed: int) -> tuple[list[Row], OperatorCount]:
    """A seeded random subset of at most `cap` rows (order kept)."""
    if len(rows) <= cap:
        return rows, OperatorCount(op="cap", rows_in=len(rows), rows_out=len(rows), note=f"cap {cap}")
    rng = random.Random(f"{seed}:cap")  # noqa: S311
    kept = [rows[i] for i in sorted(rng.sample(range(len(rows)), cap))]
    return kept, OperatorCount(op="cap", rows_in=len(rows), rows_out=len(kept), note=f"cap {cap}")


def shuffle_rows(rows: list[Row], seed: int) -> tuple[list[Row], OperatorCount]:
    """The rows in a seeded random order."""
    out = list(rows)
    random.Random(f"{seed}:shuffle").shuffle(out)  # noqa: S311
    return out, OperatorCount(op="shuffle", rows_in=len(rows), rows_out=len(out), note=f"seed {seed}")


def source_counts(rows: list[Row]) -> dict[str, int]:
    """Rows per source label."""
    return dict(Counter(r.source for r in rows))
