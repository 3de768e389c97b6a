from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.recipes import RecipeError, materialize
from trex_mcp.recipes.sources import confine_path, file_sha256
from trex_mcp.settings import Settings

from .conftest import make_rows, write_jsonl


def _nothing_written(settings: Settings) -> bool:
    return not settings.datasets_dir.exists() or not any(settings.datasets_dir.iterdir())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path: Path = write_jsonl(tmp_path / "outside" / "rows.jsonl", make_rows("o", 5, 9, "o"))
    return path


@pytest.mark.parametrize(
    "case",
    ["dotdot", "balanced_dotdot", "absolute_outside", "nul", "windows_drive", "backslash", "symlink_escape",
     "prefix_sibling", "missing", "directory"],
)
def test_local_source_outside_the_data_roots_is_refused(case: str, task: TaskSpec, settings: Settings,
                                                        data_root: Path, outside: Path) -> None:
    sibling = data_root.parent / (data_root.name + "-evil")
    write_jsonl(sibling / "rows.jsonl", make_rows("s", 5, 9, "s"))
    (data_root / "sub").mkdir()
    os.symlink(outside, data_root / "link.jsonl")
    paths = {
        "dotdot": "../outside/rows.jsonl",
        "balanced_dotdot": "sub/../../outside/rows.jsonl",
        "absolute_outside": str(outside),
        "nul": "rows\x00.jsonl",
        "windows_drive": "C:/data/rows.jsonl",
        "backslash": "sub\\..\\..\\outside\\rows.jsonl",
        "symlink_escape": "link.jsonl",
        "prefix_sibling": str(sibling / "rows.jsonl"),
        "missing": "nope.jsonl",
        "directory": "sub",
    }
    with pytest.raises(RecipeError) as info:
        materialize({"sources": [{"kind": "local", "path": paths[case]}]}, task=task, settings=settings)
    assert info.value.field == "sources[0].path"
    assert info.value.hint and "data root" in info.value.hint
    assert _nothing_written(settings)


def test_relative_path_is_found_under_a_data_root(data_root: Path) -> None:
    target = write_jsonl(data_root / "sub" / "rows.jsonl", make_rows("r", 3, 1, "r"))
    assert confine_path("sub/rows.jsonl", [data_root], field="f") == target.resolve()


def test_symlink_inside_the_roots_is_followed(data_root: Path) -> None:
    target = write_jsonl(data_root / "real.jsonl", make_rows("r", 3, 1, "r"))
    os.symlink(target, data_root / "alias.jsonl")
    assert confine_path("alias.jsonl", [data_root], field="f") == target.resolve()


def test_source_pointing_at_the_task_validation_file_is_refused(task: TaskSpec, settings: Settings,
                                                              data_root: Path) -> None:
    val = Path(task.data.validation.path or "")
    with pytest.raises(RecipeError, match="validation data") as info:
        materialize({"sources": [{"kind": "local", "path": str(val)}]}, task=task, settings=settings)
    assert info.value.field == "sources[0].path"
    copy = data_root / "innocent_name.jsonl"
    shutil.copy(Path(task.data.test.path or ""), copy)
    with pytest.raises(RecipeError, match="test data"):
        materialize({"sources": [{"kind": "local", "path": str(copy)}]}, task=task, settings=settings)
    with pytest.raises(RecipeError, match="evaluation data") as info:
        materialize({"sources": [{"kind": "task", "name": "validation"}]}, task=task, settings=settings)
    assert info.value.field == "sources[0].name"
    assert _nothing_written(settings)


def test_unknown_task_source_lists_the_known_names(task: TaskSpec, settings: Settings) -> None:
    with pytest.raises(RecipeError, match="known: clean") as info:
        materialize({"sources": [{"kind": "task", "name": "nosuch"}]}, task=task, settings=settings)
    assert info.value.field == "sources[0].name"


def test_hub_source_while_offline_says_which_source_and_what_to_do(task: TaskSpec, settings: Settings) -> None:
    recipe = {"sources": [{"kind": "hub", "id": "nobody/not-cached-anywhere", "split": "train",
                           "revision": "main"}]}
    with pytest.raises(RecipeError) as info:
        materialize(recipe, task=task, settings=settings)
    message = str(info.value)
    assert info.value.field == "sources[0]"
    assert "nobody/not-cached-anywhere" in message and "offline" in message
    assert "network" in (info.value.hint or "") and "pre-cache" in (info.value.hint or "")
    assert _nothing_written(settings)


def test_file_hash_is_computed_once_per_content_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trex_mcp.recipes.sources as sources

    path = write_jsonl(tmp_path / "a.jsonl", make_rows("a", 4, 1, "a"))
    cache = tmp_path / "cache"
    first = file_sha256(path, cache)
    sources._HASH_MEMO.clear()  # a new process: only the on-disk cache is left
    opened: list[Path] = []
    real_open = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self == path:
            opened.append(self)
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", counting_open)
    assert file_sha256(path, cache) == first
    assert opened == []
    write_jsonl(path, make_rows("a", 5, 1, "a"))
    assert file_sha256(path, cache)[2] != first[2]


def test_hub_id_that_names_a_local_folder_is_refused(task: TaskSpec, settings: Settings, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "org" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError, match="local folder") as info:
        materialize({"sources": [{"kind": "hub", "id": "org/name"}]}, task=task, settings=settings)
    assert info.value.field == "sources[0].id"
