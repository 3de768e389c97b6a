"""Preview a recipe: a few rows as the trainer will see them, and token-length statistics.

The dataset is materialised first (a cache hit when it exists), so the preview shows the real output of the
operators. Examples are rendered twice: as the text the trainer tokenises (prompt + completion for string rows,
the chat template for message rows) and through the base model's chat template. Token lengths use the base
model's tokenizer on at most `_MAX_MEASURED` rows (an even spread when there are more).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from trex_mcp.recipes.contamination import ContaminationReport
from trex_mcp.recipes.errors import RecipeError
from trex_mcp.recipes.materialize import materialize
from trex_mcp.recipes.operators import OperatorCount
from trex_mcp.recipes.recipe import DataRecipe, FormatName

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec
    from trex_mcp.settings import Settings

__all__ = ["LengthStats", "PreviewExample", "RecipePreview", "length_stats", "preview", "trainer_texts"]

_MAX_MEASURED = 20_000
_MAX_CHARS = 2000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PreviewExample(_Model):
    """One formatted row."""

    row: dict[str, Any] = Field(description="The TRL row as written to data.jsonl.")
    text: str = Field(description="What the trainer tokenises (truncated).")
    chat: str | None = Field(description="The row through the base model's chat template (None without one).")
    tokens: int = Field(ge=0, description="Token length of `text`.")


class LengthStats(_Model):
    """Token-length distribution."""

    measured: int = Field(ge=0, description="Rows measured.")
    p50: int = Field(ge=0, description="Median tokens.")
    p95: int = Field(ge=0, description="95th percentile tokens.")
    max: int = Field(ge=0, description="Longest row in tokens.")
    mean: float = Field(ge=0.0, description="Mean tokens.")
    over_max_length: int | None = Field(default=None, description="Measured rows longer than max_length (when given); "
                                        "they will be truncated.")


class RecipePreview(_Model):
    """What a recipe builds, before training on it."""

    fingerprint: str = Field(description="Dataset content hash.")
    format: FormatName = Field(description="Row format.")
    rows: int = Field(ge=0, description="Rows in the dataset.")
    source_rows: dict[str, int] = Field(description="Rows per source.")
    examples: list[PreviewExample] = Field(description="The first rows (after shuffling).")
    token_lengths: LengthStats = Field(description="Token lengths with the base model's tokenizer.")
    operator_counts: list[OperatorCount] = Field(description="Rows in/out of every build step.")
    contamination: ContaminationReport = Field(description="Overlap with validation/test data.")
    cache_hit: bool = Field(description="True when the dataset already existed.")


def _chat(tokenizer: Any, messages: list[dict[str, str]]) -> str | None:
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        return str(tokenizer.apply_chat_template(messages, tokenize=False))
    except (ValueError, TypeError, KeyError) as exc:  # jinja errors subclass these in practice
        return f"<chat template failed: {exc}>"


def trainer_texts(row: dict[str, Any], tokenizer: Any) -> tuple[str, str | None]:
    """(text the trainer sees, chat-template rendering) of one TRL row."""
    if "messages" in row:
        chat = _chat(tokenizer, row["messages"])
        return chat or "\n".join(m["content"] for m in row["messages"]), chat
    prompt = str(row.get("prompt", ""))
    answer = str(row.get("completion", row.get("chosen", "")))
    text = prompt + answer
    if "rejected" in row:
        text = max(text, prompt + str(row["rejected"]), key=len)
    chat = _chat(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer.strip()}])
    return text, chat


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def length_stats(lengths: list[int], max_length: int | None = None) -> LengthStats:
    """p50/p95/max/mean of token lengths (nearest rank)."""
    values = sorted(lengths)
    return LengthStats(measured=len(values), p50=_percentile(values, 0.5), p95=_percentile(values, 0.95),
                       max=values[-1] if values else 0, mean=round(sum(values) / len(values), 2) if values else 0.0,
                       over_max_length=(sum(v > max_length for v in values) if max_length else None))


def preview(recipe: DataRecipe | dict[str, Any], *, task: TaskSpec, settings: Settings, n: int = 3,
            tokenizer: Any = None, max_length: int | None = None) -> RecipePreview:
    """Materialise `recipe` (cached) and describe it: `n` examples and token-length statistics.

    `tokenizer` defaults to the task's base model tokenizer (`trex_mcp.execution.models.load_tokenizer`).
    Raises `RecipeError` like `materialize`, or when the tokenizer cannot be loaded.
    """
    if not 0 <= n <= 20:
        raise RecipeError(f"n: {n} is out of range", field="n", hint="ask for 0 to 20 examples")
    if tokenizer is None:
        from trex_mcp.errors import TrexError
        from trex_mcp.execution.models import load_tokenizer

        try:
            tokenizer = load_tokenizer(task.base_model, models_dir=settings.models_dir, task=task)
        except TrexError as exc:
            raise RecipeError(f"base_model: cannot load the tokenizer of '{task.base_model}': {exc}",
                              field="base_model", hint="make the base model available, or pass a tokenizer") from exc
    built = materialize(recipe, task=task, settings=settings, tokenizer=tokenizer)
    with built.data_file.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    step = max(1, math.ceil(len(rows) / _MAX_MEASURED))
    measured = rows[::step]
    texts = [trainer_texts(r, tokenizer)[0] for r in measured]
    lengths: list[int] = []
    for start in range(0, len(texts), 4096):
        lengths.extend(len(x) for x in tokenizer(texts[start:start + 4096], add_special_tokens=False)["input_ids"])
    examples = []
    for i, row in enumerate(rows[:n]):
        text, chat = trainer_texts(row, tokenizer)
        examples.append(PreviewExample(row=row, text=text[:_MAX_CHARS], chat=chat[:_MAX_CHARS] if chat else None,
                                       tokens=lengths[i // step] if i % step == 0 else
                                       len(tokenizer(text, add_special_tokens=False)["input_ids"])))
    return RecipePreview(fingerprint=built.fingerprint, format=built.format, rows=built.rows,
                         source_rows=built.source_rows, examples=examples,
                         token_lengths=length_stats(lengths, max_length), operator_counts=built.operator_counts,
                         contamination=built.contamination, cache_hit=built.cache_hit)
