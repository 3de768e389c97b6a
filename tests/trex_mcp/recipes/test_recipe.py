from __future__ import annotations

from typing import Any

import pytest

from trex_mcp.recipes import DataRecipe, RecipeError, parse_recipe

TASK_SRC = {"kind": "task", "name": "clean"}


@pytest.mark.parametrize(
    ("recipe", "field"),
    [
        ({"sources": [{**TASK_SRC, "weight": 1.0}, {"kind": "task", "name": "noisy"}]}, "sources.1.weight"),
        ({"sources": [{**TASK_SRC, "weight": 0.0}]}, "sources.0.weight"),
        ({"sources": [{**TASK_SRC, "weight": -1}]}, "sources.0.weight"),
        ({"sources": [{**TASK_SRC, "weight": float("inf")}]}, "sources.0.weight"),
        ({"sources": []}, "sources"),
        ({"sources": [TASK_SRC], "mapping": {"prompt": "{input.__class__}"}}, "mapping.prompt"),
        ({"sources": [TASK_SRC], "mapping": {"prompt": "{0}"}}, "mapping.prompt"),
        ({"sources": [TASK_SRC], "mapping": {"completion": "{target"}}, "mapping.completion"),
        ({"sources": [TASK_SRC], "operators": [{"op": "filter_length"}]}, "operators.0"),
        ({"sources": [TASK_SRC], "operators": [{"op": "filter_length", "min": 9, "max": 2}]}, "operators.0"),
        ({"sources": [TASK_SRC], "operators": [{"op": "filter_regex", "pattern": "("}]}, "operators.0.pattern"),
        ({"sources": [TASK_SRC], "operators": [{"op": "sample", "n": 0}]}, "operators.0.n"),
        ({"sources": [TASK_SRC], "operators": [{"op": "explode"}]}, "operators.0"),
        ({"sources": [TASK_SRC], "max_samples": 60_000}, "max_samples"),
        ({"sources": [{"kind": "hub", "id": "not a hub id"}]}, "sources.0.id"),
        ({"sources": [{"kind": "local", "path": ""}]}, "sources.0.path"),
        ({"sources": [TASK_SRC], "surprise": 1}, "surprise"),
    ],
)
def test_parse_recipe_names_the_offending_field(recipe: dict[str, Any], field: str) -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe(recipe)
    assert info.value.field is not None
    assert info.value.field.startswith(f"recipe.{field}"), info.value.field


def test_recipe_refuses_two_sources_with_the_same_label() -> None:
    with pytest.raises(RecipeError, match="label 'clean'"):
        parse_recipe({"sources": [TASK_SRC, TASK_SRC]})


def test_recipe_refuses_options_of_another_format() -> None:
    with pytest.raises(RecipeError, match="messages_column"):
        parse_recipe({"sources": [TASK_SRC], "mapping": {"messages_column": "conv"}})
    with pytest.raises(RecipeError, match="chosen"):
        parse_recipe({"sources": [TASK_SRC], "mapping": {"chosen": "{a}"}})
    with pytest.raises(RecipeError, match="completion"):
        parse_recipe({"sources": [TASK_SRC], "format": "preference", "mapping": {"completion": "{a}"}})


def test_recipe_description_is_not_part_of_the_cache_key() -> None:
    a = DataRecipe.model_validate({"sources": [TASK_SRC], "description": "first try"})
    b = DataRecipe.model_validate({"sources": [TASK_SRC], "description": "same data, other words"})
    assert a.cache_key_data() == b.cache_key_data()


def test_default_labels_come_from_file_stem_hub_id_and_task_source_name() -> None:
    recipe = parse_recipe({"sources": [{"kind": "local", "path": "sub/my data.v2.jsonl"},
                                       {"kind": "hub", "id": "org/sst2"}, TASK_SRC]})
    assert recipe.labels() == ["my_data", "sst2", "clean"]
