"""Evaluation examples: rows of a task's validation or test split turned into (id, prompt, reference).

What this module guarantees: every example it returns has an id, a prompt built with the task's
`prompt_template` and a reference text; for classification tasks every reference label is one of the declared
choices. Anything else (a missing or unreadable split, a missing field, a label outside the choices, an empty
split) raises `EvaluationError` naming the split, the row and the field.

What it does not do: it never reads the test split on its own initiative; callers check the permit first.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trex_mcp.evaluation.errors import EvaluationError
from trex_mcp.evaluation.metrics import parse_label

if TYPE_CHECKING:
    from ftbench.spec import DataSource, TaskSpec

__all__ = ["EvalExample", "data_fingerprint", "load_examples", "split_source", "target_text"]

_SINGLE_LABEL = {"accuracy", "exact_match", "macro_f1"}
_MULTI_LABEL = {"multilabel_macro_f1", "multilabel_micro_f1"}


@dataclass(frozen=True)
class EvalExample:
    """One evaluation row: its id, the raw input, the prompt given to the model and the reference text."""

    id: str
    input: str
    prompt: str
    reference: str


def split_source(task: TaskSpec, split: str) -> DataSource:
    """The data source of `split` ('validation' or 'test'). Raises `EvaluationError` for any other name."""
    if split == "validation":
        return task.data.validation
    if split == "test":
        return task.data.test
    raise EvaluationError(f"unknown split '{split}'", field="split", hint="use 'validation' or 'test'")


def target_text(value: Any, separator: str) -> str:
    """The reference text of a target value: lists are joined with the task's label separator."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return separator.join(str(v) for v in value)
    return str(value)


def _read_local(task: TaskSpec, source: DataSource, split: str) -> list[dict[str, Any]]:
    path = task.local_path(source)
    if not path.is_file():
        raise EvaluationError(f"the {split} split of task {task.name} is missing: {path} does not exist",
                              field="split", hint="restore the task's data files or fix data.{split}.path")
    try:
        from ftbench.data import read_rows
        from ftbench.errors import FTBenchError
    except ImportError:  # pragma: no cover - ftbench.data is optional in a stripped install
        return _read_jsonl(path, task, split)
    try:
        return [dict(row) for row in read_rows(task, source)]
    except (FTBenchError, OSError, ValueError, KeyError) as exc:
        raise EvaluationError(f"cannot read the {split} split of task {task.name} ({path}): {exc}",
                              field="split", hint="fix the data file") from exc


def _read_jsonl(path: Path, task: TaskSpec, split: str) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise EvaluationError(f"{path}:{number} is not JSON ({exc})", field="split") from exc
    return rows


def _read_hub(task: TaskSpec, source: DataSource, split: str) -> list[dict[str, Any]]:
    try:
        from datasets import load_dataset

        ds = load_dataset(source.hub_id, source.config, split=source.split or split, revision=source.revision)
    except Exception as exc:  # datasets raises many unrelated types (ConnectionError, FileNotFoundError, ...)
        raise EvaluationError(f"the {split} split of task {task.name} (Hub dataset '{source.hub_id}') is not "
                              f"available: {exc}", field="split",
                              hint="go online once to cache it, or evaluate a task that ships its data") from exc
    return [dict(row) for row in ds]


def _prompt(task: TaskSpec, row: dict[str, Any], row_id: str, split: str) -> str:
    values = {**row, "input": row[task.input_field]}
    try:
        return task.prompt_template.format(**values)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise EvaluationError(f"task {task.name}: prompt_template cannot be filled for {split} row '{row_id}': "
                              f"{exc!r}", field="prompt_template",
                              hint="the template may only name columns of the evaluation data") from exc


def _check_labels(task: TaskSpec, value: Any, reference: str, row_id: str, split: str) -> None:
    spec = task.evaluation
    if not spec.choices:
        return
    if spec.metric in _MULTI_LABEL:
        labels = [str(v) for v in value] if isinstance(value, list | tuple) else \
            [p for p in (x.strip() for x in reference.split(spec.label_separator.strip() or spec.label_separator)) if p]
    elif spec.metric in _SINGLE_LABEL or spec.kind == "multiple_choice":
        labels = [reference]
    else:
        return
    for label in labels:
        if parse_label(label, spec.choices) is None:
            raise EvaluationError(f"{split} row '{row_id}' of task {task.name} has label '{label}', which is not "
                                  f"one of the declared choices {spec.choices}", field=task.target_field,
                                  hint="fix the data or add the label to evaluation.choices")


def load_examples(task: TaskSpec, split: str, *, limit: int | None = None) -> list[EvalExample]:
    """The first `limit` (default all) examples of `split`, validated.

    Raises `EvaluationError` for a missing or unreadable split, a row without the input or target field, a
    reference label outside the declared choices, or an empty result.
    """
    source = split_source(task, split)
    if limit is not None and limit < 1:
        raise EvaluationError(f"limit must be at least 1, got {limit}", field="limit")
    rows = _read_local(task, source, split) if source.kind == "local" else _read_hub(task, source, split)
    examples: list[EvalExample] = []
    for number, row in enumerate(rows):
        row_id = str(row.get("id", f"{split}-{number}"))
        for name in (task.input_field, task.target_field):
            if name not in row or row[name] is None:
                raise EvaluationError(f"{split} row '{row_id}' of task {task.name} has no '{name}' field",
                                      field=name, hint=f"every evaluation row needs '{task.input_field}' "
                                      f"and '{task.target_field}'")
        reference = target_text(row[task.target_field], task.evaluation.label_separator)
        _check_labels(task, row[task.target_field], reference, row_id, split)
        if limit is None or len(examples) < limit:
            examples.append(EvalExample(id=row_id, input=target_text(row[task.input_field], " "),
                                        prompt=_prompt(task, row, row_id, split), reference=reference))
    if not examples:
        raise EvaluationError(f"the {split} split of task {task.name} is empty; nothing to evaluate",
                              field="split", hint="add rows to the split's data file")
    return examples


def data_fingerprint(task: TaskSpec, split: str) -> str:
    """A content hash of `split`'s data (file bytes for local data, id + revision for Hub data)."""
    source = split_source(task, split)
    if source.kind != "local":
        return f"hub:{source.hub_id}:{source.config}:{source.split}:{source.revision}"
    path = task.local_path(source)
    if not path.is_file():
        raise EvaluationError(f"the {split} split of task {task.name} is missing: {path} does not exist",
                              field="split", hint="restore the task's data files")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
