"""TaskSpec validation: every field's bad value is reported with the file, the dotted field and the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftbench.errors import TaskSpecError
from ftbench.loader import load_spec_file
from ftbench.spec import TaskSpec


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets the dotted `path` (list items as [i]) to `value`."""

    def mutate(spec: dict[str, Any]) -> None:
        node: Any = spec
        parts = path.replace("[", ".").replace("]", "").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        node: Any = spec
        parts = path.replace("[", ".").replace("]", "").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[parts[-1]]

    return mutate


def _chain(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        for m in mutations:
            m(spec)

    return mutate


HUB = {"name": "extra", "kind": "hub", "hub_id": "org/data"}

# (mutation, dotted field the error must name, words the problem must contain)
BAD_VALUES = [
    (_set("name", "Bad Name!"), "name", "required form"),
    (_drop("name"), "name", "required field is missing"),
    (_set("version", 0), "version", "greater than or equal to 1"),
    (_set("version", "two"), "version", "integer"),
    (_set("description", ""), "description", "must not be empty"),
    (_set("domain", ""), "domain", "must not be empty"),
    (_set("base_model", ""), "base_model", "must not be empty"),
    (_drop("data"), "data", "required field is missing"),
    (_set("data.train", "clean"), "data.train", "list"),
    (_set("data.train[0].name", "Clean Source"), "data.train[0].name", "required form"),
    (_set("data.train[0].kind", "ftp"), "data.train[0].kind", "must be one of"),
    (_drop("data.train[0].path"), "data.train[0].path", "needs 'path'"),
    (_set("data.train[0]", {"name": "extra", "kind": "hub"}), "data.train[0].hub_id", "needs 'hub_id'"),
    (_set("data.train[0]", {**HUB, "hub_id": "not-an-id"}), "data.train[0].hub_id", "required form"),
    (_set("data.train[0]", {"name": "extra", "kind": "url"}), "data.train[0].url", "needs 'url'"),
    (_set("data.train[0]", {"name": "extra", "kind": "url", "url": "http://example.com/x"}), "data.train[0].url",
     "required form"),
    (_set("data.train[0].rows", -1), "data.train[0].rows", "greater than or equal to 0"),
    (_set("data.train[0].fields", ["id", "id"]), "data.train[0].fields", "unique"),
    (_set("data.train[0].label_vocabulary", []), "data.train[0].label_vocabulary", "must not be empty"),
    (_set("data.train[0].gated", "maybe"), "data.train[0].gated", "boolean"),
    (_set("data.train[0].colour", "red"), "data.train[0].colour", "unknown field"),
    (_set("data.train[0].name", "validation"), "data.train", "repeated: validation"),
    (_drop("data.validation"), "data.validation", "required field is missing"),
    (_drop("data.test"), "data.test", "required field is missing"),
    (_set("input_field", ""), "input_field", "must not be empty"),
    (_set("target_field", ""), "target_field", "must not be empty"),
    (_set("prompt_template", "no placeholder"), "prompt_template", "{input}"),
    (_set("evaluation.kind", "vibes"), "evaluation.kind", "must be one of"),
    (_set("evaluation.metric", "bleu"), "evaluation.metric", "must be one of"),
    (_chain(_set("evaluation.metric", "macro_f1"), _drop("evaluation.choices")), "evaluation.choices",
     "needs the label set"),
    (_set("evaluation.choices", ["a", "a"]), "evaluation.choices", "unique"),
    (_set("evaluation.choices", ["only"]), "evaluation.choices", "at least 2"),
    (_set("evaluation.label_separator", ""), "evaluation.label_separator", "must not be empty"),
    (_set("evaluation.max_new_tokens", 0), "evaluation.max_new_tokens", "greater than or equal to 1"),
    (_set("evaluation.metric", "external"), "evaluation.scorer", "needs 'scorer'"),
    (_set("evaluation.label_map", {"1": "neutral"}), "evaluation.label_map", "outside choices: neutral"),
    (_set("higher_is_better", "maybe"), "higher_is_better", "boolean"),
    (_set("scores.base", float("inf")), "scores.base", "finite"),
    (_set("scores.reference", "high"), "scores.reference", "number"),
    (_set("scores.best_trex", float("nan")), "scores.best_trex", "finite"),
    (_set("budgets", {"max_rounds": 21}), "budgets.max_rounds", "less than or equal to 20"),
    (_set("budgets", {"max_samples_per_round": 50_001}), "budgets.max_samples_per_round", "less than or equal"),
    (_set("budgets", {"runs_per_round": 6}), "budgets.runs_per_round", "less than or equal to 5"),
    (_set("data.train", [HUB]), "mini", "not local"),
    (_set("unsafe_code", "yes please"), "unsafe_code", "boolean"),
    (_set("references", "https://example.com"), "references", "list"),
    (_set("colour", "blue"), "colour", "unknown field"),
]


@pytest.mark.parametrize(("mutate", "field", "words"), BAD_VALUES, ids=[f"{f}-{i}" for i, (_, f, _) in
                                                                          enumerate(BAD_VALUES)])
def test_bad_field_value_names_file_field_and_problem(write_spec: Callable[..., Path], mutate: Any, field: str,
                                                      words: str) -> None:
    path = write_spec(mutate)
    with pytest.raises(TaskSpecError) as info:
        load_spec_file(path)
    err = info.value
    assert err.file == str(path.resolve())
    assert err.field == field, err.errors
    assert words in err.problem, err.problem
    message = str(err)
    assert str(path.resolve()) in message and f"field '{field}'" in message and words in message


def test_valid_spec_loads(write_spec: Callable[..., Path]) -> None:
    spec = load_spec_file(write_spec())
    assert isinstance(spec, TaskSpec) and spec.name == "tmp/toy" and spec.registry_name == "ftbench/tmp/toy"


def test_several_bad_fields_are_all_reported(write_spec: Callable[..., Path]) -> None:
    path = write_spec(_chain(_set("version", 0), _set("domain", ""), _set("budgets", {"runs_per_round": 9})))
    with pytest.raises(TaskSpecError) as info:
        load_spec_file(path)
    assert [f for f, _ in info.value.errors] == ["version", "domain", "budgets.runs_per_round"]
    assert "3 problems" in str(info.value)


def test_relative_paths_resolve_against_the_yaml_file_not_the_cwd(write_spec: Callable[..., Path], toy_dir: Path,
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    path = write_spec()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_spec_file(path)
    for source in spec.all_sources():
        assert Path(source.path or "").is_absolute()
        assert Path(source.path or "").is_file()
    assert spec.local_path(spec.data.validation) == (toy_dir / "data" / "validation.jsonl").resolve()


def test_absolute_paths_are_kept(write_spec: Callable[..., Path], toy_dir: Path) -> None:
    absolute = str((toy_dir / "data" / "train.jsonl").resolve())
    spec = load_spec_file(write_spec(_set("data.train[0].path", absolute)))
    assert spec.data.train[0].path == absolute


def test_invalid_yaml_syntax_names_file_and_line(toy_dir: Path) -> None:
    path = toy_dir / "broken.yaml"
    path.write_text("name: x\ndescription: a: b: c\n", encoding="utf-8")
    with pytest.raises(TaskSpecError) as info:
        load_spec_file(path)
    assert info.value.field is None
    assert "line 2" in str(info.value) and str(path.resolve()) in str(info.value)


@pytest.mark.parametrize(("text", "words"), [("", "got empty"), ("- a\n- b\n", "got list"), ("just text\n", "got str")])
def test_yaml_that_is_not_a_mapping_is_refused(toy_dir: Path, text: str, words: str) -> None:
    path = toy_dir / "odd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TaskSpecError, match=words):
        load_spec_file(path)


def test_missing_yaml_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(TaskSpecError, match="file not found"):
        load_spec_file(tmp_path / "nope.yaml")


def test_target_text_maps_codes_and_joins_lists(write_spec: Callable[..., Path]) -> None:
    spec = load_spec_file(write_spec(_set("evaluation.label_map", {"0": "negative", "1": "positive"})))
    assert spec.target_text({"label": 1}) == "positive"
    assert spec.target_text({"label": "negative"}) == "negative"
    assert spec.target_text({"label": [0, 1]}) == "negative, positive"


def test_format_prompt_fills_input_and_other_columns(write_spec: Callable[..., Path]) -> None:
    spec = load_spec_file(write_spec(_set("prompt_template", "[{lang}] {input}")))
    assert spec.format_prompt({"text": "hello", "lang": "en", "input": "ignored"}) == "[en] hello"


def test_source_lookup_knows_split_aliases_and_lists_known_names(write_spec: Callable[..., Path]) -> None:
    spec = load_spec_file(write_spec())
    assert spec.source("validation").name == "validation"
    assert spec.source("clean") is spec.data.train[0]
    with pytest.raises(KeyError, match="known: clean, validation, test"):
        spec.source("nope")
    with pytest.raises(KeyError, match="known: clean"):
        spec.train_source("validation")
