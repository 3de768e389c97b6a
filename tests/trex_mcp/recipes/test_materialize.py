from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.recipes import BuiltDataset, RecipeError, materialize
from trex_mcp.settings import Settings

from .conftest import make_rows, make_task, write_jsonl


def _rows(built: BuiltDataset) -> list[dict[str, Any]]:
    return [json.loads(line) for line in built.data_file.read_text(encoding="utf-8").splitlines()]


def _counts(built: BuiltDataset) -> list[tuple[str, int, int]]:
    return [(c.op, c.rows_in, c.rows_out) for c in built.operator_counts]


def _write_format(path: Path, rows: list[dict[str, Any]], fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        write_jsonl(path, rows)
    elif fmt == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        import pyarrow as pa

        table = pa.Table.from_pylist(rows)
        if fmt == "csv":
            from pyarrow import csv

            csv.write_csv(table, path)
        else:
            from pyarrow import parquet

            parquet.write_table(table, path)
    return path


def _only_final_dirs(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.datasets_dir.iterdir())


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "parquet"])
def test_local_file_of_each_format_builds_prompt_completion_rows(fmt: str, task: TaskSpec, settings: Settings,
                                                                  data_root: Path) -> None:
    rows = make_rows("f", 40, 5, "f")
    _write_format(data_root / f"rows.{fmt}", rows, fmt)
    built = materialize({"sources": [{"kind": "local", "path": f"rows.{fmt}"}], "shuffle": False},
                        task=task, settings=settings)
    out = _rows(built)
    assert built.rows == len(out) == 40 and built.format == "prompt_completion" and not built.cache_hit
    assert out[0] == {"prompt": f"Review: {rows[0]['text']}\nSentiment:", "completion": f" {rows[0]['label']}"}
    assert built.source_rows == {"rows": 40}
    assert built.dir == settings.datasets_dir / built.fingerprint
    assert (built.dir / "_COMPLETE").is_file() and (built.dir / "manifest.json").is_file()
    manifest = json.loads((built.dir / "manifest.json").read_text())
    assert manifest["operator_counts"][0] == {"op": "load", "rows_in": 40, "rows_out": 40, "source": "rows",
                                              "index": None, "note": "local"}


def test_messages_format_builds_chat_rows_from_templates(task: TaskSpec, settings: Settings) -> None:
    built = materialize({"sources": [{"kind": "task", "name": "clean"}], "format": "messages", "shuffle": False,
                         "mapping": {"system": "Classify the review.", "prompt": "{input}"}},
                        task=task, settings=settings)
    first = _rows(built)[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[2]["content"] in ("positive", "negative")  # no leading space in chat turns


def test_messages_format_takes_an_existing_messages_column_and_drops_invalid_rows(
        task: TaskSpec, settings: Settings, data_root: Path) -> None:
    good = {"conv": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad = {"conv": [{"role": "wizard", "content": "x"}]}
    _write_format(data_root / "chat.parquet", [good, good | {"conv": good["conv"][::-1]}, bad], "parquet")
    built = materialize({"sources": [{"kind": "local", "path": "chat.parquet"}], "format": "messages",
                         "mapping": {"messages_column": "conv"}, "operators": [{"op": "dedupe"}]},
                        task=task, settings=settings)
    fmt = next(c for c in built.operator_counts if c.op == "format")
    assert (fmt.rows_in, fmt.rows_out) == (3, 2) and "invalid conv" in fmt.note
    assert built.rows == 2


def test_preference_format_from_columns_and_from_task_choices(task: TaskSpec, settings: Settings,
                                                              data_root: Path) -> None:
    write_jsonl(data_root / "pref.jsonl", [{"q": f"question {i}", "good": "yes", "bad": "no"} for i in range(5)])
    built = materialize({"sources": [{"kind": "local", "path": "pref.jsonl"}], "format": "preference",
                         "mapping": {"prompt": "Q: {q}\nA:", "chosen": " {good}", "rejected": " {bad}"}},
                        task=task, settings=settings)
    assert _rows(built)[0].keys() == {"prompt", "chosen", "rejected"}
    built = materialize({"sources": [{"kind": "task", "name": "clean"}], "format": "preference",
                         "mapping": {"rejected_from_choices": True}}, task=task, settings=settings)
    for row in _rows(built):
        assert {row["chosen"], row["rejected"]} == {" positive", " negative"}


def test_operator_counts_record_every_step(task: TaskSpec, settings: Settings, data_root: Path) -> None:
    rows = [{"text": f"the item number {i} was great", "label": "positive", "lang": "en" if i % 4 else "de"}
            for i in range(40)]
    rows += [dict(rows[1]) for _ in range(5)]  # 5 exact copies
    rows += [{"text": "tiny", "label": "negative", "lang": "en"}] * 2
    write_jsonl(data_root / "ops.jsonl", rows)
    recipe = {"sources": [{"kind": "local", "path": "ops.jsonl"}], "operators": [
        {"op": "filter_length", "field": "text", "unit": "words", "min": 3},
        {"op": "filter_value", "column": "lang", "equals": "en"},
        {"op": "filter_regex", "field": "prompt", "pattern": r"number 3\d", "keep": "no_match"},
        {"op": "dedupe", "method": "exact"},
        {"op": "sample", "n": 12},
    ], "max_samples": 10}
    built = materialize(recipe, task=task, settings=settings)
    assert _counts(built) == [
        ("load", 47, 47), ("format", 47, 47),
        ("filter_length", 47, 45), ("filter_value", 45, 35), ("filter_regex", 35, 27), ("dedupe", 27, 22),
        ("sample", 22, 12), ("cap", 12, 10), ("shuffle", 10, 10),
    ]
    assert built.rows == 10 == len(_rows(built))
    assert [c.index for c in built.operator_counts if c.index is not None] == [0, 1, 2, 3, 4]


def test_near_duplicate_removal_catches_one_word_edits(task: TaskSpec, settings: Settings, data_root: Path) -> None:
    base = [f"review {i}: the {w} widget from store {i * 7} arrived late but works well enough for daily use"
            for i, w in enumerate(["red", "blue", "green", "black", "white", "pink", "gold", "grey"])]
    edited = [t.replace("late", "early") for t in base]
    write_jsonl(data_root / "near.jsonl", [{"text": t, "label": "positive"} for t in base + edited])
    for method in ("ngram", "minhash"):
        built = materialize({"sources": [{"kind": "local", "path": "near.jsonl"}], "operators": [
            {"op": "dedupe", "method": method, "threshold": 0.5, "field": "text"}]}, task=task, settings=settings)
        assert ("dedupe", 16, 8) in _counts(built), method


def test_mixture_weights_draw_sources_in_proportion(data_root: Path, settings: Settings) -> None:
    task = make_task(data_root, train={"a": make_rows("a", 90, 1, "a"), "b": make_rows("b", 40, 2, "b")})
    built = materialize({"sources": [{"kind": "task", "name": "a", "weight": 3},
                                     {"kind": "task", "name": "b", "weight": 1}]}, task=task, settings=settings)
    assert built.source_rows == {"a": 90, "b": 30}
    assert ("mixture", 130, 120) in _counts(built)


def test_a_weighted_source_emptied_by_filters_is_an_error(data_root: Path, settings: Settings) -> None:
    rows_b = [{"id": "b1", "text": "x", "label": "positive"}]
    task = make_task(data_root, train={"a": make_rows("a", 20, 1, "a"), "b": rows_b})
    with pytest.raises(RecipeError) as info:
        materialize({"sources": [{"kind": "task", "name": "a", "weight": 1}, {"kind": "task", "name": "b",
                                                                              "weight": 1}],
                     "operators": [{"op": "filter_length", "field": "text", "min": 3}]}, task=task, settings=settings)
    assert info.value.field == "sources[1].weight"
    assert not settings.datasets_dir.exists() or _only_final_dirs(settings) == []


def test_same_recipe_again_is_a_cache_hit_that_reads_no_source(task: TaskSpec, settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    mat = importlib.import_module("trex_mcp.recipes.materialize")  # the package re-exports a function
    import trex_mcp.recipes.sources as sources

    reads: list[str] = []
    real_read = mat.read_source

    def counting_read(src: Any) -> list[dict[str, Any]]:
        reads.append(src.label)
        rows: list[dict[str, Any]] = real_read(src)
        return rows

    monkeypatch.setattr(mat, "read_source", counting_read)
    recipe = {"sources": [{"kind": "task", "name": "clean"}], "description": "v1"}
    first = materialize(recipe, task=task, settings=settings)
    assert reads == ["clean"] and not first.cache_hit
    sources._HASH_MEMO.clear()  # as in a fresh process: the sha256 comes from the on-disk hash cache
    monkeypatch.setattr(sources, "read_local_file", lambda *a, **k: pytest.fail("a source was read"))
    again = materialize({**recipe, "description": "same data, new words"}, task=task, settings=settings)
    assert again.cache_hit and reads == ["clean"]
    assert again.fingerprint == first.fingerprint and again.operator_counts == first.operator_counts
    assert _only_final_dirs(settings) == [first.fingerprint]


def test_changing_source_content_or_recipe_changes_the_fingerprint(task: TaskSpec, settings: Settings) -> None:
    first = materialize({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings)
    other_seed = materialize({"sources": [{"kind": "task", "name": "clean"}], "seed": 1}, task=task,
                             settings=settings)
    assert other_seed.fingerprint != first.fingerprint
    path = Path(task.data.train[0].path or "")
    write_jsonl(path, make_rows("clean", 50, 99, "c"))
    changed = materialize({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings)
    assert changed.fingerprint != first.fingerprint and changed.rows == 50 and not changed.cache_hit


@pytest.mark.parametrize(
    ("recipe", "field"),
    [
        ({"sources": [{"kind": "task", "name": "clean"}], "mapping": {"prompt": "{question}"}}, "mapping.prompt"),
        ({"sources": [{"kind": "task", "name": "clean", "columns": {"nope": "x"}}]}, "sources[0].columns"),
        ({"sources": [{"kind": "task", "name": "clean"}],
          "operators": [{"op": "filter_regex", "pattern": "^zzz"}]}, "operators[0]"),
        ({"sources": [{"kind": "task", "name": "clean"}],
          "operators": [{"op": "filter_value", "column": "missing_col", "equals": 1}]}, "operators[0].column"),
        ({"sources": [{"kind": "task", "name": "clean"}], "max_samples": 100}, "recipe.max_samples"),
        ({"sources": [{"kind": "task", "name": "clean"}], "learning_rate": 1}, "recipe.learning_rate"),
    ],
)
def test_bad_recipe_fails_naming_the_field_and_leaves_nothing_on_disk(recipe: dict[str, Any], field: str,
                                                                      data_root: Path, settings: Settings) -> None:
    task = make_task(data_root, budget=50)
    with pytest.raises(RecipeError) as info:
        materialize(recipe, task=task, settings=settings)
    assert info.value.field == field, str(info.value)
    assert info.value.hint
    assert not settings.datasets_dir.exists() or _only_final_dirs(settings) == []


def test_missing_column_error_lists_the_columns_the_source_has(task: TaskSpec, settings: Settings) -> None:
    with pytest.raises(RecipeError, match="needs column 'question'.*source 'clean' has columns: id, label, text"):
        materialize({"sources": [{"kind": "task", "name": "clean"}], "mapping": {"prompt": "{question}"}},
                    task=task, settings=settings)


def test_rows_without_a_template_value_are_dropped_and_counted(task: TaskSpec, settings: Settings,
                                                               data_root: Path) -> None:
    write_jsonl(data_root / "holes.jsonl", [{"text": "a fine thing here", "label": "positive"},
                                            {"text": None, "label": "negative"}, {"label": "negative"}])
    built = materialize({"sources": [{"kind": "local", "path": "holes.jsonl"}]}, task=task, settings=settings)
    fmt = next(c for c in built.operator_counts if c.op == "format")
    assert (fmt.rows_in, fmt.rows_out) == (3, 1) and "2 no value for 'input'" in fmt.note


def test_a_failure_while_writing_leaves_no_folder_and_no_temp(task: TaskSpec, settings: Settings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    mat = importlib.import_module("trex_mcp.recipes.materialize")  # the package re-exports a function

    real = mat.fsync_file

    def failing(path: Path) -> None:
        if path.name == "manifest.json":
            raise OSError("disk full")
        real(path)

    monkeypatch.setattr(mat, "fsync_file", failing)
    with pytest.raises(OSError, match="disk full"):
        materialize({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings)
    assert _only_final_dirs(settings) == []
    monkeypatch.setattr(mat, "fsync_file", real)
    built = materialize({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings)
    assert _only_final_dirs(settings) == [built.fingerprint]


def test_temp_folder_of_a_killed_build_is_removed_by_the_next_build(task: TaskSpec, settings: Settings) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = settings.datasets_dir / f".tmp-{'0' * 32}-{dead.stdout.strip()}-deadbeef"
    (stale / "half").mkdir(parents=True)
    (stale / "half" / "data.jsonl").write_text('{"prompt": "half', encoding="utf-8")
    half_final = settings.datasets_dir / ("f" * 32)  # no _COMPLETE: never used
    half_final.mkdir()
    built = materialize({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings)
    assert not stale.exists()
    assert built.fingerprint in _only_final_dirs(settings)
    assert not any(p.name.startswith(".tmp-") for p in settings.datasets_dir.iterdir())
    assert os.path.isdir(half_final)  # untouched (it is not this recipe's folder) but never read


def test_token_length_filter_uses_the_injected_tokenizer(task: TaskSpec, settings: Settings, data_root: Path,
                                                         word_tokenizer: Any) -> None:
    write_jsonl(data_root / "len.jsonl", [{"text": " ".join(["great"] * n), "label": "positive"}
                                          for n in range(1, 11)])
    built = materialize({"sources": [{"kind": "local", "path": "len.jsonl"}],
                         "operators": [{"op": "filter_length", "field": "completion", "unit": "tokens", "max": 1},
                                       {"op": "filter_length", "unit": "tokens", "max": 9}]},
                        task=task, settings=settings, tokenizer=word_tokenizer)
    # "Review : great ... \n Sentiment :" + " positive" -> n + 5 tokens; keep n <= 4
    assert [(c.op, c.rows_in, c.rows_out) for c in built.operator_counts if c.op == "filter_length"] == [
        ("filter_length", 10, 10), ("filter_length", 10, 4)]


def test_two_concurrent_builds_of_one_recipe_leave_one_complete_folder(task: TaskSpec, settings: Settings) -> None:
    import threading

    barrier = threading.Barrier(2, timeout=10)
    results: list[BuiltDataset] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            barrier.wait()
            results.append(materialize({"sources": [{"kind": "task", "name": "clean"}]}, task=task,
                                       settings=settings))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(results) == 2
    assert results[0].fingerprint == results[1].fingerprint
    assert _only_final_dirs(settings) == [results[0].fingerprint]
    assert len(_rows(results[0])) == results[0].rows


def test_unreadable_eval_data_blocks_decontamination_but_can_be_skipped_explicitly(
        data_root: Path, settings: Settings) -> None:
    base = make_task(data_root)
    data = base.data.model_copy(update={"test": base.data.test.model_copy(
        update={"kind": "url", "path": None, "url": "https://example.org/test.jsonl"})})
    task = base.model_copy(update={"data": data})
    with pytest.raises(RecipeError, match="evaluation data") as info:
        materialize({"sources": [{"kind": "task", "name": "clean"}]}, task=task, settings=settings)
    assert info.value.field == "decontaminate" and "decontaminate to false" in (info.value.hint or "")
    built = materialize({"sources": [{"kind": "task", "name": "clean"}], "decontaminate": False}, task=task,
                        settings=settings)
    assert built.contamination.skipped and "not checked" in built.contamination.summary()
