"""Build a recipe's dataset on disk, once per content hash.

Guarantees:
- The folder `<datasets_dir>/<fingerprint>/` (data.jsonl, manifest.json, `_COMPLETE`) is keyed by a hash of the
  recipe (minus its description), the task fields the build depends on, the sample cap, and the fingerprints of
  the sources and of the evaluation data. A local file's fingerprint is its sha256 (cached
  by size and mtime, see `sources`); a Hub source's is id, config, split and revision.
- A cache hit checks `_COMPLETE` right after fingerprinting and reads only the manifest: no source rows are read.
- Writes are atomic: the build goes into a temp folder (`.tmp-<fp>-<pid>-<rand>`), files are fsynced, `_COMPLETE`
  is written last, then the folder is renamed into place. An error removes the temp folder; a crash leaves one
  behind, which the next build removes once its process is gone. A folder without `_COMPLETE` is never used.
- Every step's rows in/out are kept in the manifest and in `BuiltDataset.operator_counts`.

Not guaranteed: a Hub source without a revision can change upstream under the same key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from trex_mcp.atomic import COMPLETE_MARKER, fsync_dir, fsync_file
from trex_mcp.recipes.contamination import ContaminationReport, check_contamination
from trex_mcp.recipes.errors import RecipeError
from trex_mcp.recipes.formatting import Row, format_source, templates_for
from trex_mcp.recipes.operators import (
    OperatorCount,
    TokenCounter,
    apply_mixture,
    apply_operator,
    cap_rows,
    shuffle_rows,
    source_counts,
)
from trex_mcp.recipes.recipe import DataRecipe, FormatName, parse_recipe
from trex_mcp.recipes.sources import eval_fingerprints, read_eval_rows, read_source, resolve_sources

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec
    from trex_mcp.settings import Settings

__all__ = ["MATERIALIZER_VERSION", "BuiltDataset", "materialize", "recipe_fingerprint"]

#: Bump when the build's output for the same inputs changes.
MATERIALIZER_VERSION = 1
_STALE_TMP_S = 24 * 3600


class BuiltDataset(BaseModel):
    """A materialised dataset: where it is, what it holds, how it was built."""

    model_config = ConfigDict(extra="forbid")

    dir: Path = Field(description="Dataset folder.")
    data_file: Path = Field(description="JSONL of TRL rows.")
    fingerprint: str = Field(description="Content hash; the folder name.")
    format: FormatName = Field(description="Row format.")
    rows: int = Field(ge=1, description="Rows in data_file.")
    source_rows: dict[str, int] = Field(default_factory=dict, description="Rows per source label in data_file.")
    operator_counts: list[OperatorCount] = Field(description="Rows in/out of every build step, in order.")
    contamination: ContaminationReport = Field(description="Overlap with the task's validation/test data.")
    cache_hit: bool = Field(description="True when the folder already existed and nothing was built.")
    build_s: float = Field(ge=0.0, description="Seconds the original build took.")
    task: str = Field(description="Task name and version the dataset was built for.")

    def summary(self) -> str:
        """A few lines for a planner: rows, sources, steps that removed rows, contamination."""
        steps = ", ".join(f"{c.op}{'(' + c.source + ')' if c.source else ''} {c.rows_in}->{c.rows_out}"
                          for c in self.operator_counts if c.rows_in != c.rows_out)
        return (f"dataset {self.fingerprint[:12]}: {self.rows} {self.format} rows "
                f"({', '.join(f'{k}: {v}' for k, v in self.source_rows.items())}); "
                f"steps: {steps or 'none removed rows'}; {self.contamination.summary()}")


def _cap(recipe: DataRecipe, task: TaskSpec) -> int:
    budget = task.budgets.max_samples_per_round
    if recipe.max_samples is not None and recipe.max_samples > budget:
        raise RecipeError(f"recipe.max_samples: {recipe.max_samples} is above the task's budget of {budget} "
                          "samples per round", field="recipe.max_samples", hint=f"use at most {budget}")
    return recipe.max_samples or budget


def recipe_fingerprint(recipe: DataRecipe, task: TaskSpec, settings: Settings,
                       source_fps: list[dict[str, Any]]) -> str:
    """The content hash naming the dataset folder (128 bits, hex)."""
    content_fps = [{k: v for k, v in fp.items() if k not in ("path", "mtime_ns")} for fp in source_fps]
    # The evaluation data decides the contamination report (and, when decontaminating, the rows).
    evals = [{k: v for k, v in fp.items() if k not in ("path", "mtime_ns")} for fp in eval_fingerprints(task, settings)]
    key = {
        "materializer": MATERIALIZER_VERSION,
        "recipe": recipe.cache_key_data(),
        "task": {"name": task.name, "version": task.version, "input_field": task.input_field,
                 "target_field": task.target_field, "prompt_template": task.prompt_template,
                 "label_separator": task.evaluation.label_separator, "choices": task.evaluation.choices},
        "cap": _cap(recipe, task),
        "sources": content_fps,
        "eval": evals,
        "tokenizer": task.base_model if recipe.uses_tokens() else None,
    }
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def materialize(recipe: DataRecipe | dict[str, Any], *, task: TaskSpec, settings: Settings,
                tokenizer: Any = None) -> BuiltDataset:
    """Build (or find) the dataset for `recipe` on `task`.

    `tokenizer` is used by token-length filters; by default the task's base model tokenizer is loaded only when
    a filter needs it. Returns a `BuiltDataset` (`cache_hit` True when nothing was built). Raises `RecipeError`
    naming the field for bad sources, missing columns, bad weights, empty results or an unreachable Hub dataset;
    nothing is left on disk when it raises.
    """
    recipe = parse_recipe(recipe)
    resolved = resolve_sources(recipe, task, settings)
    fingerprint = recipe_fingerprint(recipe, task, settings, [r.fingerprint for r in resolved])
    final = settings.datasets_dir / fingerprint
    if (final / "_COMPLETE").is_file():
        return _load(final, cache_hit=True)
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(settings.datasets_dir)
    start = time.perf_counter()
    rows, counts, report = _build_rows(recipe, task, settings, resolved, tokenizer)
    manifest = {
        "fingerprint": fingerprint,
        "format": recipe.format,
        "rows": len(rows),
        "source_rows": source_counts(rows),
        "operator_counts": [c.model_dump(mode="json") for c in counts],
        "contamination": report.model_dump(mode="json"),
        "build_s": round(time.perf_counter() - start, 4),
        "task": f"{task.name}@v{task.version}",
        "recipe": recipe.model_dump(mode="json"),
        "sources": [{"label": r.label, **r.fingerprint} for r in resolved],
        "materializer": MATERIALIZER_VERSION,
        "created_at": time.time(),
    }
    _write_atomic(settings.datasets_dir, final, [r.out for r in rows], manifest)
    return _load(final, cache_hit=False)


def _token_counter(task: TaskSpec, settings: Settings, tokenizer: Any) -> TokenCounter:
    if tokenizer is None:
        try:
            from trex_mcp.execution.models import load_tokenizer
        except ImportError as exc:  # pragma: no cover - the execution package ships with trex_mcp
            raise RecipeError("operators: token lengths need trex_mcp.execution.models", field="operators") from exc
        tokenizer = load_tokenizer(task.base_model, models_dir=settings.models_dir, task=task)

    def count(texts: list[str]) -> list[int]:
        out: list[int] = []
        for start in range(0, len(texts), 4096):
            ids = tokenizer(texts[start:start + 4096], add_special_tokens=False)["input_ids"]
            out.extend(len(x) for x in ids)
        return out

    return count


def _build_rows(recipe: DataRecipe, task: TaskSpec, settings: Settings, resolved: list[Any],
                tokenizer: Any) -> tuple[list[Row], list[OperatorCount], ContaminationReport]:
    counts: list[OperatorCount] = []
    templates = templates_for(recipe, task)
    rows: list[Row] = []
    for src in resolved:
        raw = read_source(src)
        counts.append(OperatorCount(op="load", rows_in=len(raw), rows_out=len(raw), source=src.label,
                                    note=src.kind))
        if not raw:
            raise RecipeError(f"{src.field}: source '{src.label}' has no rows", field=src.field,
                              hint="check the file or split")
        formatted, dropped = format_source(raw, label=src.label, index=src.index, recipe=recipe, task=task,
                                           templates=templates)
        note = "; ".join(f"{n} {reason}" for reason, n in dropped.most_common(5))
        counts.append(OperatorCount(op="format", rows_in=len(raw), rows_out=len(formatted), source=src.label,
                                    note=note))
        if not formatted:
            raise RecipeError(f"mapping: no row of source '{src.label}' could be formatted ({note})",
                              field="mapping", hint="check the templates against the source's columns")
        rows.extend(formatted)
    count_tokens = _token_counter(task, settings, tokenizer) if recipe.uses_tokens() else None
    for i, op in enumerate(recipe.operators):
        rows, count = apply_operator(op, rows, i, recipe, count_tokens)
        counts.append(count)
    cap = _cap(recipe, task)
    skipped = ""
    try:
        eval_data = read_eval_rows(task)
    except RecipeError as exc:
        if recipe.decontaminate:
            raise RecipeError(f"decontaminate: the task's evaluation data is needed for the contamination check "
                              f"and could not be read: {exc}", field="decontaminate",
                              hint="make the evaluation data available, or set decontaminate to false to build "
                                   "without the check (the report will say it was skipped)") from exc
        eval_data, skipped = None, str(exc)[:300]
    if eval_data is None:
        report = ContaminationReport(checked_rows=len(rows), flagged_rows=0, eval_items=0,
                                     threshold=recipe.contamination_threshold, skipped=skipped)
    else:
        report = check_contamination([r.out for r in rows], task, sources=[r.source for r in rows],
                                     threshold=recipe.contamination_threshold, eval_data=eval_data)
    if recipe.decontaminate and report.flagged_rows:
        flagged = set(report.flagged_indices)
        before = len(rows)
        rows = [r for i, r in enumerate(rows) if i not in flagged]
        report.removed_rows = before - len(rows)
        counts.append(OperatorCount(op="decontaminate", rows_in=before, rows_out=len(rows),
                                    note=report.summary()))
        if not rows:
            raise RecipeError("decontaminate: every row overlaps the task's validation/test data",
                              field="sources", hint="use other training data")
    rows, mix = apply_mixture(rows, recipe, cap)
    if mix is not None:
        counts.append(mix)
    rows, count = cap_rows(rows, cap, recipe.seed)
    counts.append(count)
    if recipe.shuffle:
        rows, count = shuffle_rows(rows, recipe.seed)
        counts.append(count)
    return rows, counts, report


# ----------------------------------------------------------------------------------------------- disk


def _write_atomic(parent: Path, final: Path, rows: list[dict[str, Any]], manifest: dict[str, Any]) -> None:
    tmp = parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        with (tmp / "data.jsonl").open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            fh.flush()
            os.fsync(fh.fileno())
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
        fsync_file(tmp / "manifest.json")
        (tmp / COMPLETE_MARKER).write_text(manifest["fingerprint"] + "\n", encoding="utf-8")  # marker last
        fsync_file(tmp / COMPLETE_MARKER)
        fsync_dir(tmp)
        if final.exists() and not (final / "_COMPLETE").is_file():
            shutil.rmtree(final)  # an incomplete folder is never used; only interference can leave one
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "_COMPLETE").is_file():  # not a concurrent build that finished first
                raise
        fsync_dir(parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp(parent: Path) -> None:
    """Remove temp folders left by crashed builds (their process is gone, or they are a day old)."""
    now = time.time()
    for entry in parent.glob(".tmp-*"):
        parts = entry.name.split("-")
        try:
            pid = int(parts[2])
        except (IndexError, ValueError):
            pid = -1
        try:
            old = now - entry.stat().st_mtime > _STALE_TMP_S
        except OSError:
            continue
        if pid == os.getpid() and not old:
            continue  # a build in another thread of this process
        if old or pid <= 0 or not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _load(folder: Path, *, cache_hit: bool) -> BuiltDataset:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return BuiltDataset(
            dir=folder, data_file=folder / "data.jsonl", fingerprint=manifest["fingerprint"],
            format=manifest["format"], rows=manifest["rows"], source_rows=manifest["source_rows"],
            operator_counts=[OperatorCount.model_validate(c) for c in manifest["operator_counts"]],
            contamination=ContaminationReport.model_validate(manifest["contamination"]),
            cache_hit=cache_hit, build_s=manifest["build_s"], task=manifest["task"])
    except (OSError, ValueError, KeyError) as exc:
        raise RecipeError(f"dataset {folder.name}: unreadable manifest ({exc})", field="dataset",
                          hint=f"delete {folder} and build again") from exc
