"""What every tool module shares: the lab accessor, error translation and id/limit types.

Expected failures (a `TrexError`, an FT-Bench look-up error, a store not-found or finished-record error, a
pydantic validation error on nested input) become tool errors carrying their actionable message. Anything else
propagates: the SDK logs it with its traceback on the server and answers the client with a short generic
"Error executing tool <name>", so no path or secret leaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from ftbench.errors import FTBenchError
from tree_store import InvalidInputError, NotFoundError, UpdateFinishedError
from trex_mcp.errors import TrexError
from trex_mcp.lab import Lab

LabGetter = Callable[[], Lab]

Id = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$",
                          description="An id returned by an earlier call (tree, node or run).")]
TaskName = Annotated[str, Field(min_length=1, max_length=300,
                                description="FT-Bench task, e.g. 'ftbench/mini/sentiment' (see list_tasks), "
                                "or the path of a task YAML file.")]

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
READ_WORLD = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
WRITE_IDEMPOTENT = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                   open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


@contextmanager
def expected_errors() -> Iterator[None]:
    """Turn expected failures into tool errors with their message; let anything else propagate."""
    try:
        yield
    except TrexError as exc:
        raise ToolError(str(exc)) from exc
    except FTBenchError as exc:
        raise ToolError(str(exc)) from exc
    except NotFoundError as exc:
        raise ToolError(f"{exc} (check the id: list_trees and get_tree show valid ones)") from exc
    except UpdateFinishedError as exc:
        raise ToolError(f"{exc} (finished records cannot change)") from exc
    except InvalidInputError as exc:
        raise ToolError(str(exc)) from exc
    except ValidationError as exc:
        raise ToolError(_validation_text(exc)) from exc


def as_dict(value: Any) -> dict[str, Any]:
    """`jsonable` for values that are objects (records, models, dicts): the structured result of a tool."""
    out = jsonable(value)
    if not isinstance(out, dict):
        raise TypeError(f"expected an object, got {type(out).__name__}")
    return out


def jsonable(value: Any) -> Any:
    """Records and models as plain JSON data."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and value.__class__.__module__.startswith("tree_store"):
        return value.value
    if isinstance(value, float) and value != value:
        return None
    return value
