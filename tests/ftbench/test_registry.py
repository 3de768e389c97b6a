"""The task registry: listing, name and path resolution, did-you-mean errors, frozen registration."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ftbench import registry
from ftbench.errors import TaskNotFoundError, TaskSpecError
from ftbench.registry import list_tasks, load_task, task_names

MINI = ["mini/hallmarks", "mini/notes", "mini/ordering", "mini/sentiment"]
FULL = ["aci-bench", "cs-bench", "econlogicqa", "gta", "hoc", "lawbench", "omebench", "openfindata", "sst2",
        "tomg-bench"]


def test_list_tasks_returns_every_shipped_task_sorted() -> None:
    names = [t.name for t in list_tasks()]
    assert names == sorted(MINI + FULL)
    assert task_names() == [f"ftbench/{n}" for n in names]


def test_each_shipped_yaml_is_one_registered_task() -> None:
    files = sorted(p for p in registry.TASKS_DIR.rglob("*.yaml"))
    assert len(files) == len(list_tasks())


def test_load_task_accepts_prefixed_and_bare_names() -> None:
    assert load_task("ftbench/mini/sentiment") == load_task("mini/sentiment")
    assert load_task(" ftbench/sst2 ").name == "sst2"


def test_unknown_name_lists_up_to_three_close_matches() -> None:
    with pytest.raises(TaskNotFoundError) as info:
        load_task("ftbench/mini/sentimnt")
    err = info.value
    assert err.suggestions[0] == "ftbench/mini/sentiment"
    assert 1 <= len(err.suggestions) <= 3
    assert "did you mean 'ftbench/mini/sentiment'" in str(err)


def test_misspelt_last_part_alone_still_finds_the_task() -> None:
    with pytest.raises(TaskNotFoundError) as info:
        load_task("halmarks")
    assert "ftbench/mini/hallmarks" in info.value.suggestions


def test_unknown_name_with_nothing_close_says_how_to_list_tasks() -> None:
    with pytest.raises(TaskNotFoundError) as info:
        load_task("zzzzzzzz")
    assert info.value.suggestions == []
    assert "list_tasks()" in str(info.value)


def test_task_not_found_is_a_lookup_error_and_an_ftbench_error() -> None:
    from ftbench.errors import FTBenchError

    with pytest.raises(LookupError):
        load_task("nope")
    assert issubclass(TaskNotFoundError, FTBenchError) and issubclass(TaskSpecError, FTBenchError)


def test_registry_is_frozen_after_import() -> None:
    with pytest.raises(TypeError):
        registry._REGISTRY["mini/new"] = load_task("mini/sentiment")  # type: ignore[index]
    assert not any(hasattr(registry, name) for name in ("register", "register_task", "add_task"))


def test_changing_a_returned_spec_never_changes_the_registry() -> None:
    first = load_task("mini/sentiment")
    first.data.train.clear()
    list_tasks()[0].data.train.clear()
    assert len(load_task("mini/sentiment").data.train) == 3
    assert list_tasks()[0].data.train


def test_yaml_path_is_loaded_on_demand_and_not_registered(write_spec: Callable[..., Path]) -> None:
    path = write_spec()
    spec = load_task(str(path))
    assert spec.name == "tmp/toy"
    with pytest.raises(TaskNotFoundError):
        load_task("ftbench/tmp/toy")
    assert "tmp/toy" not in [t.name for t in list_tasks()]


def test_missing_yaml_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(TaskNotFoundError, match="no task YAML file"):
        load_task(str(tmp_path / "missing.yaml"))


def test_invalid_yaml_path_is_a_spec_error(write_spec: Callable[..., Path]) -> None:
    path = write_spec(lambda spec: spec.update(version=0))
    with pytest.raises(TaskSpecError, match="field 'version'"):
        load_task(str(path))


def test_shipped_yaml_must_be_named_after_its_task(tmp_path: Path, write_spec: Callable[..., Path]) -> None:
    tasks = tmp_path / "tasks"
    (tasks / "mini").mkdir(parents=True)
    spec = write_spec()
    (tasks / "mini" / "other.yaml").write_text(spec.read_text().replace(
        "path: data/", f"path: {spec.parent}/data/"), encoding="utf-8")
    with pytest.raises(TaskSpecError) as info:
        registry._build(tasks)
    assert info.value.field == "name" and "mini/other" in info.value.problem


def test_mini_task_paths_are_absolute_existing_files() -> None:
    for name in MINI:
        for source in load_task(name).all_sources():
            path = Path(source.path or "")
            assert path.is_absolute() and path.is_file(), source
