"""Read one task YAML file into a `TaskSpec`.

What it guarantees: local `path:` entries are resolved against the YAML file's folder (never the current
directory) and stored absolute; every problem is reported as a `TaskSpecError` naming the file, the dotted field
(e.g. 'data.train[0].path') and what is wrong, with pydantic's wording translated into plain sentences.
What it does not do: register the task (see `ftbench.registry`) or open the data files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ftbench.errors import TaskSpecError
from ftbench.spec import TaskSpec

__all__ = ["load_spec_file", "spec_errors"]

# libyaml's loader is about ten times faster; the registry parses every shipped YAML at import.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): (.+)$", re.DOTALL)
_MAX_VALUE_CHARS = 60


def load_spec_file(path: str | Path) -> TaskSpec:
    """Parse and validate the task YAML at `path`.

    Returns the `TaskSpec` with absolute local paths. Raises `TaskSpecError` for a missing or unreadable file,
    bad YAML, a document that is not a mapping, or any invalid field.
    """
    file = Path(path).expanduser().resolve()
    where = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskSpecError(where, [(None, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskSpecError(where, [(None, f"cannot read the file ({exc})")]) from exc
    try:
        raw = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TaskSpecError(where, [(None, f"invalid YAML{at}: {problem}")]) from exc
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else type(raw).__name__
        raise TaskSpecError(where, [(None, f"a task spec must be a YAML mapping of fields, got {kind}")])
    _resolve_local_paths(raw, file.parent)
    try:
        return TaskSpec.model_validate(raw)
    except ValidationError as exc:
        raise TaskSpecError(where, spec_errors(exc)) from None


def _resolve_local_paths(raw: dict[str, Any], base: Path) -> None:
    """Make every local source's relative `path` absolute against `base`, in place. Bad shapes are left to pydantic."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    sources: list[Any] = []
    train = data.get("train")
    if isinstance(train, list):
        sources.extend(train)
    sources.extend([data.get("validation"), data.get("test")])
    for source in sources:
        if not isinstance(source, dict) or source.get("kind") != "local":
            continue
        value = source.get("path")
        if isinstance(value, str) and value:
            candidate = Path(value).expanduser()
            source["path"] = str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def spec_errors(exc: ValidationError) -> list[tuple[str | None, str]]:
    """(dotted field, plain problem) for each pydantic error, in pydantic's order."""
    out: list[tuple[str | None, str]] = []
    for err in exc.errors(include_url=False):
        field = _dotted(err.get("loc", ()))
        problem = _problem(err)
        match = _FIELD_PREFIX.match(problem)
        if err.get("type") == "value_error" and match:
            inner, problem = match.group(1), match.group(2)
            field = f"{field}.{inner}" if field else inner
        out.append((field or None, problem))
    return out


def _dotted(loc: tuple[Any, ...] | list[Any]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _problem(err: Any) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (not part of a task spec; check the spelling)"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}, got {_shown(value)}"
    if kind == "string_pattern_mismatch":
        return f"{_shown(value)} does not have the required form (pattern {ctx.get('pattern', '?')})"
    if kind in {"string_too_short", "too_short"} and (value == "" or value == [] or value is None):
        return "must not be empty"
    return f"{msg[:1].lower()}{msg[1:]}, got {_shown(value)}"
