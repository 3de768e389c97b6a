"""The task contract: what every registered task must satisfy, checked without network access.

`TaskContract(task).violations()` lists every broken rule (empty when the task is sound); `check()` raises
`ContractError` listing them. Tests run it over `ftbench.registry.list_tasks()`; other parts can run it on a
user's task YAML before a search.

Rules for every task: the spec re-loads from its registry name; the metric is known, with its direction, and an
'external' metric names its scorer; the prompt template can be filled; published scores lie in the metric's
range. Mini tasks additionally: a 'tiny:' base model, every source a local file that exists and parses, row
counts and columns as declared, unique non-empty ids, evaluation targets non-empty and within
`evaluation.choices` (training sources within their `label_vocabulary` when declared), and prompts that format
for every evaluation row. Full tasks: a base and a reference model, well-formed Hub ids or https URLs, and
declared columns for the evaluation splits that include the input and target fields.

What it does not do: download anything, or score a model (the evaluation part's tests do that).
"""

from __future__ import annotations

import string
from typing import Any

from ftbench.data import read_rows
from ftbench.errors import FTBenchError
from ftbench.spec import EXTERNAL_METRIC, METRICS, DataSource, TaskSpec

__all__ = ["ContractError", "TaskContract", "formatted_sample"]

#: Metrics whose scores lie in [0, 1]; kendall_tau lies in [-1, 1].
_UNIT_RANGE = {"accuracy", "exact_match", "macro_f1", "multilabel_macro_f1", "multilabel_micro_f1", "rouge1",
               "rougeL"}


class ContractError(FTBenchError, AssertionError):
    """A task breaks the contract. `violations` lists every broken rule."""

    def __init__(self, task: str, violations: list[str]) -> None:
        self.task = task
        self.violations = violations
        super().__init__(f"task {task} breaks the task contract:\n  - " + "\n  - ".join(violations))


def formatted_sample(task: TaskSpec, split: str = "validation", n: int = 10) -> list[tuple[str, str]]:
    """(prompt, target text) for the first `n` rows of a local split. Raises `DataError` for non-local splits."""
    rows = read_rows(task, split)[:n]
    return [(task.format_prompt(row), task.target_text(row)) for row in rows]


class TaskContract:
    """The contract checks for one task."""

    def __init__(self, task: TaskSpec) -> None:
        self.task = task
        self._problems: list[str] = []

    def check(self) -> None:
        """Raise `ContractError` unless the task satisfies the contract."""
        problems = self.violations()
        if problems:
            raise ContractError(self.task.registry_name, problems)

    def violations(self) -> list[str]:
        """Every broken rule, as sentences naming the source, row or field."""
        self._problems = []
        self._spec()
        if self.task.mini:
            self._mini()
        else:
            self._full()
        return list(self._problems)

    def _fail(self, message: str) -> None:
        self._problems.append(message)

    # ------------------------------------------------------------------------------------------------ shared

    def _spec(self) -> None:
        task = self.task
        from ftbench.registry import load_task

        try:
            again = load_task(task.registry_name)
        except FTBenchError as exc:
            self._fail(f"spec does not load from its registry name: {exc}")
        else:
            if again != task:
                self._fail("spec loaded from the registry differs from the one checked")
        evaluation = task.evaluation
        if evaluation.metric not in METRICS:
            self._fail(f"evaluation.metric '{evaluation.metric}' is not a known metric")
        if evaluation.metric == EXTERNAL_METRIC and not evaluation.scorer:
            self._fail("evaluation.metric is 'external' but evaluation.scorer does not name the scorer")
        if not task.higher_is_better:
            self._fail(f"higher_is_better is false, but metric '{evaluation.metric}' is higher-is-better")
        fields = {name for _, name, _, _ in string.Formatter().parse(task.prompt_template) if name}
        if "input" not in fields:
            self._fail("prompt_template does not use {input}")
        low, high = (-1.0, 1.0) if evaluation.metric == "kendall_tau" else (0.0, 1.0)
        if evaluation.metric in _UNIT_RANGE or evaluation.metric == "kendall_tau":
            for key in ("base", "reference", "best_trex"):
                value = getattr(task.scores, key)
                if value is not None and not low <= value <= high:
                    self._fail(f"scores.{key} = {value} lies outside the metric's range [{low}, {high}]")

    # ------------------------------------------------------------------------------------------------- mini

    def _mini(self) -> None:
        task = self.task
        if not task.base_model.startswith("tiny:"):
            self._fail(f"mini task base_model '{task.base_model}' is not a 'tiny:<size>' model")
        if not task.data.train:
            self._fail("mini task has no training source")
        if task.scores.reference is None:
            self._fail("mini task has no scores.reference target")
        seen_ids: dict[str, str] = {}
        for source in task.all_sources():
            rows = self._rows(source)
            if rows is None:
                continue
            self._columns(source, rows)
            self._ids(source, rows, seen_ids)
            evaluation = source.name in (task.data.validation.name, task.data.test.name)
            self._targets(source, rows, evaluation)
            if evaluation:
                self._prompts(source, rows)

    def _rows(self, source: DataSource) -> list[dict[str, Any]] | None:
        if source.kind != "local":
            self._fail(f"source '{source.name}' of a mini task is not a local file")
            return None
        try:
            rows = read_rows(self.task, source)
        except FTBenchError as exc:
            self._fail(f"source '{source.name}': {exc}")
            return None
        if not rows:
            self._fail(f"source '{source.name}' ({source.path}) has no rows")
            return None
        if source.rows is not None and len(rows) != source.rows:
            self._fail(f"source '{source.name}' declares {source.rows} rows but {source.path} has {len(rows)}")
        return rows

    def _columns(self, source: DataSource, rows: list[dict[str, Any]]) -> None:
        task = self.task
        required = set(source.fields) | {"id", task.input_field, task.target_field}
        if not source.fields:
            self._fail(f"source '{source.name}' declares no fields")
        for number, row in enumerate(rows, 1):
            missing = sorted(required - set(row))
            if missing:
                self._fail(f"source '{source.name}' row {number} lacks field(s) {', '.join(missing)}")
                return
            extra = sorted(set(row) - set(source.fields)) if source.fields else []
            if extra:
                self._fail(f"source '{source.name}' row {number} has undeclared field(s) {', '.join(extra)}")
                return

    def _ids(self, source: DataSource, rows: list[dict[str, Any]], seen: dict[str, str]) -> None:
        for number, row in enumerate(rows, 1):
            row_id = row.get("id")
            if not isinstance(row_id, str) or not row_id:
                self._fail(f"source '{source.name}' row {number} has no string id")
                return
            if row_id in seen:
                self._fail(f"id '{row_id}' of source '{source.name}' is also used in source '{seen[row_id]}'")
                return
            seen[row_id] = source.name

    def _targets(self, source: DataSource, rows: list[dict[str, Any]], evaluation: bool) -> None:
        task = self.task
        allowed = source.label_vocabulary or task.evaluation.choices
        if evaluation and source.label_vocabulary:
            self._fail(f"evaluation source '{source.name}' must use evaluation.choices, not its own label_vocabulary")
            allowed = task.evaluation.choices
        for number, row in enumerate(rows, 1):
            value = row.get(task.target_field)
            labels = [str(v) for v in value] if isinstance(value, list) else [str(value)] if value is not None else []
            if not labels or not all(label.strip() for label in labels) or not task.target_text(row).strip():
                self._fail(f"source '{source.name}' row {number} ({row.get('id')}) has an empty target")
                return
            if isinstance(value, list) and len(set(labels)) != len(labels):
                self._fail(f"source '{source.name}' row {number} ({row.get('id')}) repeats a label")
                return
            if allowed:
                mapping = task.evaluation.label_map or {}
                unknown = sorted({mapping.get(label, label) for label in labels} - set(allowed))
                if unknown:
                    self._fail(f"source '{source.name}' row {number} ({row.get('id')}) has label(s) "
                               f"{', '.join(unknown)} outside {allowed}")
                    return

    def _prompts(self, source: DataSource, rows: list[dict[str, Any]]) -> None:
        for number, row in enumerate(rows, 1):
            try:
                prompt = self.task.format_prompt(row)
            except (KeyError, IndexError, ValueError) as exc:
                self._fail(f"prompt_template cannot be filled for source '{source.name}' row {number}: {exc!r}")
                return
            if not prompt.strip():
                self._fail(f"source '{source.name}' row {number} gives an empty prompt")
                return

    # ------------------------------------------------------------------------------------------------- full

    def _full(self) -> None:
        task = self.task
        if task.base_model.startswith("tiny:"):
            self._fail("a full FT-Bench task must name a real base model, not a tiny one")
        if not task.reference_model:
            self._fail("a full FT-Bench task must name its reference_model")
        for source in task.all_sources():
            if source.kind == "local":
                self._fail(f"source '{source.name}' of a full task is local; full tasks name Hub or URL data")
            if source.kind == "hub" and source.hub_id is None:
                self._fail(f"source '{source.name}' has no hub_id")
            if not source.description and source.kind != "hub":
                self._fail(f"source '{source.name}' needs a description saying what to fetch")
        for source in (task.data.validation, task.data.test):
            if not source.fields:
                self._fail(f"evaluation source '{source.name}' declares no fields")
                continue
            missing = sorted({task.input_field, task.target_field} - set(source.fields))
            if missing:
                self._fail(f"evaluation source '{source.name}' does not declare field(s) {', '.join(missing)} "
                           "named by input_field / target_field")
        if not task.data.train and "find" not in task.description and "synthesise" not in task.description:
            self._fail("task has no training source and its description does not say the agent must find or "
                       "synthesise data")
