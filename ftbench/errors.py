"""ftbench's errors. `FTBenchError` is the root; every expected failure in this package is one of its subclasses.

Each message says what was wrong, where (file, field, line) and what to do, so a tool can hand it to a user
unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DataError", "FTBenchError", "TaskNotFoundError", "TaskSpecError"]


class FTBenchError(Exception):
    """Root of ftbench's expected errors."""


class TaskNotFoundError(FTBenchError, LookupError):
    """No task of that name is registered (or the YAML path does not exist).

    `suggestions` holds up to three registry names close to what was asked, best first.
    """

    def __init__(self, name: str, suggestions: Sequence[str] = (), *, detail: str | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions)[:3]
        if detail is None:
            detail = f"unknown task '{name}'"
        if self.suggestions:
            detail += "; did you mean " + ", ".join(f"'{s}'" for s in self.suggestions) + "?"
        else:
            detail += "; list the known tasks with ftbench.registry.list_tasks()"
        super().__init__(detail)


class TaskSpecError(FTBenchError, ValueError):
    """A task YAML file is invalid.

    `file` is the YAML file, `field` the dotted path of the first offending field (None for file-level problems
    such as bad YAML syntax), `problem` what is wrong with it, and `errors` every (field, problem) pair found.
    """

    def __init__(self, file: str, errors: Sequence[tuple[str | None, str]]) -> None:
        if not errors:
            errors = [(None, "invalid task spec")]
        self.file = file
        self.errors = list(errors)
        self.field, self.problem = self.errors[0]
        lines = [_describe(file, f, p) for f, p in self.errors]
        if len(lines) > 1:
            message = f"{file}: {len(lines)} problems in the task spec:\n  " + "\n  ".join(lines)
        else:
            message = lines[0]
        super().__init__(message)


def _describe(file: str, field: str | None, problem: str) -> str:
    if field:
        return f"{file}: field '{field}': {problem}"
    return f"{file}: {problem}"


class DataError(FTBenchError, ValueError):
    """A task's data file is missing or malformed, or a source cannot be read locally.

    `file` and `line` (1-based, None when not about one line) say where.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        super().__init__(message)
