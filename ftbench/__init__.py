"""FT-Bench task specifications, offline mini tasks and their data, and the task registry.

Importing `ftbench` is cheap: the registry (which parses every shipped task YAML) is built when
`ftbench.registry` is first imported, which `load_task` / `list_tasks` here do on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftbench.errors import DataError, FTBenchError, TaskNotFoundError, TaskSpecError

if TYPE_CHECKING:
    from ftbench.registry import list_tasks, load_task

__all__ = ["DataError", "FTBenchError", "TaskNotFoundError", "TaskSpecError", "list_tasks", "load_task"]


def __getattr__(name: str) -> Any:
    if name in ("list_tasks", "load_task"):
        from ftbench import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'ftbench' has no attribute {name!r}")
