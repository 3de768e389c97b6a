"""Turn source rows into TRL training rows with the recipe's templates.

Templates are Python format strings over a row's columns plus two virtual columns: `{input}` (the task's input
field) and `{target}` (the task's target text: lists joined with the label separator, as the evaluator expects).
A template that names a column no row of a source has is an error naming the template and the source. Rows
that lack a value for one template field are dropped and counted by reason, never rendered as 'None'.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trex_mcp.recipes.errors import RecipeError
from trex_mcp.recipes.recipe import DataRecipe, template_fields

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec

__all__ = ["Row", "Templates", "format_source", "templates_for"]

_ROLES = {"system", "user", "assistant"}


@dataclass
class Row:
    """A row in flight: its source label, its (renamed) source columns and its TRL fields."""

    source: str
    raw: dict[str, Any]
    out: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Templates:
    """The templates in effect for a recipe and task (defaults filled in)."""

    prompt: str | None
    completion: str | None
    system: str | None
    chosen: str | None
    rejected: str | None
    messages_column: str | None
    rejected_from_choices: bool

    def named(self) -> dict[str, str]:
        """{mapping field: template} for every template in use."""
        pairs = {"prompt": self.prompt, "completion": self.completion, "system": self.system,
                 "chosen": self.chosen, "rejected": self.rejected}
        return {k: v for k, v in pairs.items() if v is not None}


def templates_for(recipe: DataRecipe, task: TaskSpec) -> Templates:
    """The templates a recipe uses with a task, defaults included."""
    m = recipe.mapping
    if recipe.format == "messages" and m.messages_column:
        return Templates(None, None, None, None, None, m.messages_column, False)
    prompt = m.prompt or task.prompt_template
    if recipe.format == "preference":
        if m.rejected_from_choices and not task.evaluation.choices:
            raise RecipeError("mapping.rejected_from_choices: the task declares no label choices",
                              field="mapping.rejected_from_choices", hint="give a 'rejected' template instead")
        chosen = m.chosen or (" {target}" if m.rejected_from_choices else "{chosen}")
        rejected = None if m.rejected_from_choices else (m.rejected or "{rejected}")
        return Templates(prompt, None, None, chosen, rejected, None, m.rejected_from_choices)
    completion = m.completion or (" {target}" if recipe.format == "prompt_completion" else "{target}")
    return Templates(prompt, completion, m.system, None, None, None, False)


def _text(value: Any, separator: str) -> str:
    if isinstance(value, list | tuple):
        return separator.join(str(v) for v in value)
    return str(value)


def _context(raw: dict[str, Any], task: TaskSpec) -> dict[str, Any]:
    sep = task.evaluation.label_separator
    ctx = {k: (_text(v, sep) if isinstance(v, list | tuple) else v) for k, v in raw.items()}
    if raw.get(task.input_field) is not None:
        ctx["input"] = _text(raw[task.input_field], sep)
    if raw.get(task.target_field) is not None:
        ctx["target"] = _text(raw[task.target_field], sep)
    return ctx


def _check_columns(templates: Templates, rows: list[dict[str, Any]], task: TaskSpec, label: str,
                   index: int) -> None:
    present: set[str] = set().union(*(r.keys() for r in rows[:1000])) if rows else set()
    virtual = {"input": task.input_field, "target": task.target_field}
    available = present | {v for v, col in virtual.items() if col in present}
    if templates.messages_column and templates.messages_column not in present:
        raise RecipeError(f"mapping.messages_column: source '{label}' has no column "
                          f"'{templates.messages_column}'; columns: {', '.join(sorted(present)) or 'none'}",
                          field="mapping.messages_column", hint=f"rename a column with sources[{index}].columns")
    for which, template in templates.named().items():
        for name in template_fields(template):
            if name in available:
                continue
            extra = (f" ('{{{name}}}' is the task's {name} field '{virtual[name]}')" if name in virtual else "")
            raise RecipeError(
                f"mapping.{which}: template {template!r} needs column '{name}'{extra}, but source '{label}' has "
                f"columns: {', '.join(sorted(present)) or 'none'}", field=f"mapping.{which}",
                hint=f"rename a column with sources[{index}].columns, or change the template")


def _render(template: str, ctx: dict[str, Any]) -> str:
    # Safe: `template_fields` admitted only plain names (no attribute or index access, no nested specs).
    return template.format_map(ctx)


def _valid_messages(value: Any) -> list[dict[str, str]] | None:
    if not isinstance(value, list) or not value:
        return None
    out = []
    for msg in value:
        if not isinstance(msg, dict) or msg.get("role") not in _ROLES or not isinstance(msg.get("content"), str):
            return None
        out.append({"role": str(msg["role"]), "content": str(msg["content"])})
    if not any(m["role"] == "assistant" for m in out):
        return None
    return out


def format_source(rows: list[dict[str, Any]], *, label: str, index: int, recipe: DataRecipe, task: TaskSpec,
                  templates: Templates) -> tuple[list[Row], Counter[str]]:
    """TRL rows for one source's rows, and the count of dropped rows by reason.

    Raises `RecipeError` when a template needs a column that the source does not have at all.
    """
    _check_columns(templates, rows, task, label, index)
    dropped: Counter[str] = Counter()
    out: list[Row] = []
    choices = list(task.evaluation.choices or [])
    rng = random.Random(f"{recipe.seed}:{label}")  # noqa: S311 - data sampling, not security
    needed = {which: template_fields(t) for which, t in templates.named().items()}
    for raw in rows:
        if templates.messages_column:
            messages = _valid_messages(raw.get(templates.messages_column))
            if messages is None:
                dropped[f"invalid {templates.messages_column}"] += 1
            else:
                out.append(Row(label, raw, {"messages": messages}))
            continue
        ctx = _context(raw, task)
        missing = next((n for names in needed.values() for n in names if ctx.get(n) is None), None)
        if missing is not None:
            dropped[f"no value for '{missing}'"] += 1
            continue
        rendered = {which: _render(t, ctx) for which, t in templates.named().items()}
        if templates.rejected_from_choices:
            others = [c for c in choices if c != ctx.get("target")]
            if not others:
                dropped["target has no other label to reject"] += 1
                continue
            rendered["rejected"] = " " + rng.choice(others)
        blank = next((k for k in ("prompt", "completion", "chosen", "rejected") if k in rendered
                      and not rendered[k].strip()), None)
        if blank is not None:
            dropped[f"empty {blank}"] += 1
            continue
        if recipe.format == "messages":
            messages = []
            if "system" in rendered:
                messages.append({"role": "system", "content": rendered["system"]})
            messages.append({"role": "user", "content": rendered["prompt"]})
            messages.append({"role": "assistant", "content": rendered["completion"]})
            out.append(Row(label, raw, {"messages": messages}))
        elif recipe.format == "preference":
            out.append(Row(label, raw, {"prompt": rendered["prompt"], "chosen": rendered["chosen"],
                                        "rejected": rendered["rejected"]}))
        else:
            out.append(Row(label, raw, {"prompt": rendered["prompt"], "completion": rendered["completion"]}))
    return out, dropped
