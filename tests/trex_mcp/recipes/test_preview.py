from __future__ import annotations

from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.recipes import RecipeError, preview
from trex_mcp.recipes.preview import length_stats
from trex_mcp.settings import Settings


def test_preview_shows_rows_through_the_chat_template_with_token_stats(task: TaskSpec, settings: Settings,
                                                                       word_tokenizer: Any) -> None:
    result = preview({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings, n=2,
                     tokenizer=word_tokenizer, max_length=9)
    assert result.rows == 120 and len(result.examples) == 2 and not result.cache_hit
    ex = result.examples[0]
    assert ex.text == ex.row["prompt"] + ex.row["completion"]
    assert ex.chat is not None and ex.chat.startswith("<|im_start|>user\nReview:")
    assert "<|im_start|>assistant\n" + ex.row["completion"].strip() in ex.chat
    stats = result.token_lengths
    assert stats.measured == 120 and 0 < stats.p50 <= stats.p95 <= stats.max
    assert ex.tokens == len(word_tokenizer(ex.text, add_special_tokens=False)["input_ids"])
    assert stats.over_max_length is not None and stats.over_max_length > 0
    again = preview({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings, n=2,
                    tokenizer=word_tokenizer)
    assert again.cache_hit and again.examples[0].row == ex.row


def test_preview_of_message_rows_measures_the_chat_rendering(task: TaskSpec, settings: Settings,
                                                             word_tokenizer: Any) -> None:
    result = preview({"sources": [{"kind": "task", "name": "clean"}], "format": "messages"}, task=task,
                     settings=settings, n=1, tokenizer=word_tokenizer)
    ex = result.examples[0]
    assert ex.text == ex.chat and ex.text.count("<|im_start|>") == 2


def test_preview_refuses_an_unreasonable_example_count(task: TaskSpec, settings: Settings,
                                                       word_tokenizer: Any) -> None:
    with pytest.raises(RecipeError) as info:
        preview({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings, n=500,
                tokenizer=word_tokenizer)
    assert info.value.field == "n"


def test_length_stats_use_nearest_rank_percentiles() -> None:
    stats = length_stats(list(range(1, 101)), max_length=90)
    assert (stats.p50, stats.p95, stats.max, stats.over_max_length) == (50, 95, 100, 10)
    assert length_stats([]).max == 0


@pytest.mark.slow
def test_preview_loads_the_task_base_model_tokenizer_by_default(session_home: Any) -> None:
    from ftbench.registry import load_task

    task = load_task("mini/sentiment")
    settings = Settings(home=session_home)
    result = preview({"sources": [{"kind": "task", "name": "clean"}], "format": "messages"}, task=task,
                     settings=settings, n=1)
    assert result.rows == 300 and result.examples[0].chat is not None
    assert result.examples[0].chat.rstrip().endswith("<|im_end|>")
    assert 0 < result.token_lengths.p50 <= result.token_lengths.p95 <= result.token_lengths.max
