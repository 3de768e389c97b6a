"""The FT-Bench task registry.

What it guarantees: the registry is built once, when this module is imported, from the YAML files shipped under
`ftbench/tasks/` (a file `tasks/<name>.yaml` must declare `name: <name>`), and is frozen from then on: it is a
read-only mapping and there is no way to register a task later. A YAML path given to `load_task` is loaded on
demand and never registered. An unknown name is answered with up to three close matches (difflib).
What it does not do: check that data files parse or that Hub datasets exist (see `ftbench.testing`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from ftbench.errors import TaskNotFoundError, TaskSpecError
from ftbench.loader import load_spec_file
from ftbench.spec import TaskSpec

__all__ = ["PREFIX", "TASKS_DIR", "TaskNotFoundError", "TaskSpecError", "list_tasks", "load_task", "task_names"]

#: Registry names carry this prefix; `load_task` also accepts names without it.
PREFIX = "ftbench/"
#: Where the shipped task YAML files live.
TASKS_DIR = Path(__file__).resolve().parent / "tasks"
_YAML_SUFFIXES = (".yaml", ".yml")


def _build(tasks_dir: Path) -> Mapping[str, TaskSpec]:
    found: dict[str, TaskSpec] = {}
    for file in sorted(p for p in tasks_dir.rglob("*") if p.suffix in _YAML_SUFFIXES and p.is_file()):
        spec = load_spec_file(file)
        expected = file.relative_to(tasks_dir).with_suffix("").as_posix()
        if spec.name != expected:
            raise TaskSpecError(str(file), [("name", f"must be '{expected}' to match the file's place under "
                                                     f"{tasks_dir}, got '{spec.name}'")])
        found[spec.name] = spec
    return MappingProxyType(found)


_REGISTRY: Mapping[str, TaskSpec] = _build(TASKS_DIR)


def task_names() -> list[str]:
    """Registry names ('ftbench/<name>'), sorted."""
    return sorted(PREFIX + name for name in _REGISTRY)


def list_tasks() -> list[TaskSpec]:
    """Every registered task, sorted by name (deep copies: changing one never changes the registry)."""
    return [_REGISTRY[name].model_copy(deep=True) for name in sorted(_REGISTRY)]


def _looks_like_path(text: str) -> bool:
    return text.endswith(_YAML_SUFFIXES) or text.startswith((".", "/", "~")) or "\\" in text


def load_task(name_or_path: str) -> TaskSpec:
    """The task called `name_or_path` ('ftbench/mini/sentiment' or 'mini/sentiment'), or the YAML file at that path.

    A path is loaded on demand and not registered. Raises `TaskNotFoundError` (with up to three close matches)
    for an unknown name or a missing file, and `TaskSpecError` for an invalid YAML file.
    """
    text = name_or_path.strip()
    if _looks_like_path(text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise TaskNotFoundError(text, detail=f"no task YAML file at '{path}'")
        return load_spec_file(path)
    short = text.removeprefix(PREFIX)
    spec = _REGISTRY.get(short)
    if spec is not None:
        return spec.model_copy(deep=True)
    raise TaskNotFoundError(text, _suggest(short))


def _suggest(short: str) -> list[str]:
    names = sorted(_REGISTRY)
    close = difflib.get_close_matches(short, names, n=3, cutoff=0.6)
    if len(close) < 3:
        # Also match on the last part, so 'sentimet' finds 'mini/sentiment'.
        tails = {name.rsplit("/", 1)[-1]: name for name in names}
        for tail in difflib.get_close_matches(short.rsplit("/", 1)[-1], list(tails), n=3, cutoff=0.6):
            if tails[tail] not in close:
                close.append(tails[tail])
    return [PREFIX + name for name in close[:3]]
