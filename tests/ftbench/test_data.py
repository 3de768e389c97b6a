"""Reading local task data: formats, errors that name the file and line, refusal of remote sources."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ftbench.data import hub_load_kwargs, read_file, read_rows
from ftbench.errors import DataError
from ftbench.loader import load_spec_file
from ftbench.registry import load_task
from ftbench.spec import DataSource


def test_read_rows_accepts_a_source_or_its_name(write_spec: Callable[..., Path]) -> None:
    task = load_spec_file(write_spec())
    assert read_rows(task, task.data.train[0]) == read_rows(task, "clean")
    assert [r["id"] for r in read_rows(task, "validation")] == ["v1", "v2"]
    assert [r["id"] for r in read_rows(task, "test")] == ["s1", "s2"]


def test_unknown_source_name_is_a_data_error_listing_known_names(write_spec: Callable[..., Path]) -> None:
    task = load_spec_file(write_spec())
    with pytest.raises(DataError, match="known: clean, validation, test"):
        read_rows(task, "noisy")


def test_bad_json_line_names_file_and_line(toy_dir: Path, write_spec: Callable[..., Path]) -> None:
    task = load_spec_file(write_spec())
    path = toy_dir / "data" / "train.jsonl"
    path.write_text('{"id": "a", "text": "x", "label": "positive"}\n\n{"id": "b", "text": \n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_rows(task, "clean")
    assert info.value.file == str(path.resolve()) and info.value.line == 3
    assert f"{path.resolve()}, line 3: invalid JSON" in str(info.value)


def test_non_object_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n["not", "an", "object"]\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: each line must be a JSON object, got list"):
        read_file(path)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('\n{"id": "a"}\n   \n{"id": "b"}\n', encoding="utf-8")
    assert [r["id"] for r in read_file(path)] == ["a", "b"]


def test_missing_file_says_how_to_regenerate(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="python -m ftbench.generate"):
        read_file(tmp_path / "gone.jsonl")


def test_json_csv_and_parquet_files_read_as_dicts(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]
    (tmp_path / "r.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "r.csv").write_text("id,text\na,x\nb,y\n", encoding="utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "r.parquet")
    for name in ("r.json", "r.csv", "r.parquet"):
        assert read_file(tmp_path / name) == rows


def test_json_file_that_is_not_a_list_of_objects_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text('{"id": "a"}', encoding="utf-8")
    with pytest.raises(DataError, match="list of objects"):
        read_file(tmp_path / "r.json")


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported format"):
        read_file(tmp_path / "r.txt")


def test_hub_sources_are_never_fetched_here() -> None:
    task = load_task("sst2")
    with pytest.raises(DataError, match="stanfordnlp/sst2"):
        read_rows(task, "validation")


def test_hub_load_kwargs_carry_id_config_split_revision_and_files() -> None:
    source = DataSource(name="x", kind="hub", hub_id="org/data", config="c", split="train[:10]", revision="abc",
                        data_files=["a.json"])
    assert hub_load_kwargs(source) == {"path": "org/data", "name": "c", "split": "train[:10]", "revision": "abc",
                                       "data_files": ["a.json"]}
    assert hub_load_kwargs(DataSource(name="y", kind="hub", hub_id="org/d")) == {"path": "org/d", "split": "train"}
    with pytest.raises(DataError):
        hub_load_kwargs(DataSource(name="z", kind="url", url="https://example.com/x.zip"))


def test_mini_task_sources_read_with_declared_row_counts() -> None:
    task = load_task("mini/sentiment")
    for source in task.all_sources():
        assert len(read_rows(task, source)) == source.rows
