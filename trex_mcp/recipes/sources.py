"""Resolve, confine, fingerprint and read recipe sources.

Confinement (reliability V2): a local path is refused when it holds a NUL byte, a Windows drive or
backslashes, or a '..' part; otherwise it is resolved (following symlinks) and must lie under one of
`Settings.allowed_data_roots()` by `Path.is_relative_to` on resolved paths, so symlink escapes and prefix
siblings ('/data-evil' vs '/data') are refused. The check is point-in-time: a path swapped for a symlink after
the check is not caught (the data roots are operator-controlled folders, not shared scratch space).

Fingerprints: a local file is identified by size, mtime and the sha256 of its content; the sha256 is cached
(in memory and under `<cache_dir>/recipes/file-sha256/`) keyed by path, size, mtime and inode, so an unchanged
file is never re-read to be fingerprinted. A Hub source is identified by id, config, split and revision, with
no network access; without a revision the key cannot notice upstream changes.

Evaluation data is never a training source: a source that is the task's validation or test file (same file,
or same content) or the same Hub split is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trex_mcp.recipes.errors import RecipeError
from trex_mcp.recipes.recipe import DataRecipe, HubSource, LocalSource, TaskSource

if TYPE_CHECKING:
    from ftbench.spec import DataSource, TaskSpec
    from trex_mcp.settings import Settings

__all__ = [
    "ResolvedSource",
    "confine_path",
    "file_sha256",
    "read_eval_rows",
    "read_local_file",
    "read_source",
    "resolve_sources",
]

_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet",
            ".pq": "parquet"}
_HASH_MEMO: dict[tuple[str, int, int, int], str] = {}


@dataclass(frozen=True)
class ResolvedSource:
    """A recipe source after validation: where to read it and what identifies its content."""

    index: int
    label: str
    kind: str  # "local" or "hub" (task sources resolve to one of these)
    field: str  # recipe field to name in errors, e.g. "sources[0].path"
    path: Path | None = None
    file_format: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    hub_split: str | None = None
    hub_revision: str | None = None
    hub_data_files: tuple[str, ...] | None = None
    max_rows: int | None = None
    columns: dict[str, str] = dc_field(default_factory=dict)
    fingerprint: dict[str, Any] = dc_field(default_factory=dict)


def confine_path(raw: str, roots: list[Path], *, field: str) -> Path:
    """Resolve `raw` to an existing file under one of `roots`.

    Relative paths are tried against each root in order. Raises `RecipeError` (naming `field`) for NUL bytes,
    drive letters, backslashes, '..' parts, paths outside every root (after resolving symlinks) and missing files.
    """
    where = ", ".join(str(r) for r in roots)
    hint = f"put the file under one of the data roots ({where}) or add its folder to Settings.data_roots"
    if "\x00" in raw:
        raise RecipeError(f"{field}: the path contains a NUL byte", field=field, hint=hint)
    if "\\" in raw or re.match(r"^[A-Za-z]:", raw):
        raise RecipeError(f"{field}: Windows-style paths are not accepted: {raw!r}", field=field, hint=hint)
    given = Path(raw).expanduser()
    if ".." in given.parts:
        raise RecipeError(f"{field}: '..' is not allowed in data paths: {raw!r}", field=field, hint=hint)
    resolved_roots = [r.resolve() for r in roots]
    candidates = [given] if given.is_absolute() else [root / given for root in resolved_roots]
    for candidate in candidates:
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if not any(resolved.is_relative_to(root) for root in resolved_roots):
            raise RecipeError(f"{field}: {raw!r} resolves outside the data roots", field=field, hint=hint)
        if not resolved.is_file():
            raise RecipeError(f"{field}: {raw!r} is not a regular file", field=field, hint=hint)
        return resolved
    raise RecipeError(f"{field}: file not found: {raw!r}", field=field, hint=hint)


def _detect_format(path: Path, declared: str, field: str) -> str:
    if declared != "auto":
        return declared
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise RecipeError(f"{field}: cannot tell the format of {path.name!r} from its extension",
                          field=field, hint="use .json, .jsonl, .csv or .parquet, or set file_format")
    return fmt


def file_sha256(path: Path, cache_dir: Path | None = None) -> tuple[int, int, str]:
    """(size, mtime_ns, sha256) of a file; the hash is cached by path, size, mtime and inode."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _HASH_MEMO.get(key)
    disk: Path | None = None
    if digest is None and cache_dir is not None:
        disk = cache_dir / "recipes" / "file-sha256" / (hashlib.sha1(str(path).encode()).hexdigest() + ".json")  # noqa: S324
        try:
            saved = json.loads(disk.read_text(encoding="utf-8"))
            if [saved.get("size"), saved.get("mtime_ns"), saved.get("ino")] == [st.st_size, st.st_mtime_ns,
                                                                                st.st_ino]:
                digest = str(saved["sha256"])
        except (OSError, ValueError, KeyError):
            digest = None
    if digest is None:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        if disk is not None:
            _write_json_atomic(disk, {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                      "ino": st.st_ino, "sha256": digest})
    if len(_HASH_MEMO) > 10_000:
        _HASH_MEMO.clear()
    _HASH_MEMO[key] = digest
    return st.st_size, st.st_mtime_ns, digest


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass  # the hash cache is an optimisation; a read-only cache dir only costs a re-hash


def _eval_sources(task: TaskSpec) -> list[tuple[str, DataSource]]:
    return [("validation", task.data.validation), ("test", task.data.test)]


def _local_fingerprint(path: Path, fmt: str, settings: Settings) -> dict[str, Any]:
    size, mtime_ns, digest = file_sha256(path, settings.cache_dir)
    return {"kind": "local", "path": str(path), "format": fmt, "size": size, "mtime_ns": mtime_ns, "sha256": digest}


def _hub_fingerprint(hub_id: str, config: str | None, split: str | None, revision: str | None,
                     data_files: list[str] | None = None) -> dict[str, Any]:
    fp: dict[str, Any] = {"kind": "hub", "id": hub_id, "config": config, "split": split, "revision": revision}
    if data_files:
        fp["data_files"] = list(data_files)
    return fp


def _url_refused(src: DataSource, fld: str) -> RecipeError:
    return RecipeError(f"{fld}: source '{src.name}' is a URL ({src.url}); URLs are not fetched by recipes",
                       field=fld, hint="download the file into a data root and use a local source")


def eval_fingerprints(task: TaskSpec, settings: Settings) -> list[dict[str, Any]]:
    """Fingerprints of the task's validation and test data (they decide what decontamination removes)."""
    out: list[dict[str, Any]] = []
    for split, src in _eval_sources(task):
        if src.kind == "local":
            path = task.local_path(src)
            fp = _local_fingerprint(path, _detect_format(path, "auto", f"task.{split}"), settings)
        elif src.kind == "hub":
            fp = _hub_fingerprint(src.hub_id or "", src.config, src.split, src.revision, src.data_files)
        else:
            fp = {"kind": src.kind, "url": src.url}
        out.append({"split": split, **fp})
    return out


def _refuse_eval(resolved: ResolvedSource, task: TaskSpec, settings: Settings) -> None:
    for split, src in _eval_sources(task):
        same = False
        if resolved.kind == "local" and src.kind == "local" and resolved.path is not None:
            eval_path = task.local_path(src)
            if eval_path.exists():
                same = resolved.path == eval_path.resolve() or os.path.samefile(resolved.path, eval_path)
                if not same and resolved.fingerprint.get("size") == eval_path.stat().st_size:
                    same = resolved.fingerprint.get("sha256") == file_sha256(eval_path, settings.cache_dir)[2]
        elif resolved.kind == "hub" and src.kind == "hub":
            same = (resolved.hub_id, resolved.hub_config, resolved.hub_split or "train") == (
                src.hub_id, src.config, src.split or "train")
        if same:
            raise RecipeError(f"{resolved.field}: source '{resolved.label}' is the task's {split} data; training on "
                              "evaluation data is never allowed", field=resolved.field,
                              hint="use a training source (e.g. a task source by name) or other data")


def resolve_sources(recipe: DataRecipe, task: TaskSpec, settings: Settings) -> list[ResolvedSource]:
    """Validate every source against the task and the data roots, and fingerprint it (no rows are read).

    Raises `RecipeError` for unknown task sources, confinement violations, missing files and evaluation data.
    """
    roots = settings.allowed_data_roots()
    out: list[ResolvedSource] = []
    for i, (spec, label) in enumerate(zip(recipe.sources, recipe.labels(), strict=True)):
        common: dict[str, Any] = {"index": i, "label": label, "max_rows": spec.max_rows,
                                  "columns": dict(spec.columns)}
        if isinstance(spec, LocalSource):
            fld = f"sources[{i}].path"
            path = confine_path(spec.path, roots, field=fld)
            fmt = _detect_format(path, spec.file_format, fld)
            res = ResolvedSource(kind="local", field=fld, path=path, file_format=fmt,
                                 fingerprint=_local_fingerprint(path, fmt, settings), **common)
        elif isinstance(spec, HubSource):
            if Path(spec.id).exists():  # datasets.load_dataset would read this local folder, unconfined
                raise RecipeError(f"sources[{i}].id: '{spec.id}' names a local folder, not only a Hub dataset",
                                  field=f"sources[{i}].id", hint="use a local source for local files")
            res = ResolvedSource(kind="hub", field=f"sources[{i}]", hub_id=spec.id, hub_config=spec.config,
                                 hub_split=spec.split, hub_revision=spec.revision,
                                 fingerprint=_hub_fingerprint(spec.id, spec.config, spec.split, spec.revision),
                                 **common)
        else:
            res = _resolve_task_source(spec, i, task, settings, common)
        _refuse_eval(res, task, settings)
        out.append(res)
    return out


def _resolve_task_source(spec: TaskSource, i: int, task: TaskSpec, settings: Settings,
                         common: dict[str, Any]) -> ResolvedSource:
    fld = f"sources[{i}].name"
    if spec.name in (task.data.validation.name, task.data.test.name):
        raise RecipeError(f"{fld}: '{spec.name}' is the task's evaluation data; training on it is never allowed",
                          field=fld, hint="pick one of the task's training sources")
    try:
        src = task.train_source(spec.name)
    except KeyError as exc:
        raise RecipeError(f"{fld}: {exc.args[0]}", field=fld, hint="use one of the known names") from exc
    if src.kind == "hub":
        files = tuple(src.data_files) if src.data_files else None
        return ResolvedSource(kind="hub", field=fld, hub_id=src.hub_id, hub_config=src.config,
                              hub_split=src.split or "train", hub_revision=src.revision, hub_data_files=files,
                              fingerprint=_hub_fingerprint(src.hub_id or "", src.config, src.split, src.revision,
                                                           src.data_files), **common)
    if src.kind != "local":
        raise _url_refused(src, fld)
    # Task files come from the operator's task spec, not from the agent, so they are not confined to data roots.
    path = task.local_path(src)
    if not path.is_file():
        raise RecipeError(f"{fld}: task source '{spec.name}' points at a missing file {path}", field=fld,
                          hint="reinstall the task data or fix the task YAML")
    fmt = _detect_format(path, "auto", fld)
    return ResolvedSource(kind="local", field=fld, path=path.resolve(), file_format=fmt,
                          fingerprint=_local_fingerprint(path.resolve(), fmt, settings), **common)


# ------------------------------------------------------------------------------------------------ reading


def read_local_file(path: Path, fmt: str, *, field: str, max_rows: int | None = None) -> list[dict[str, Any]]:
    """Rows of a JSON, JSONL, CSV or Parquet file as plain dicts. Raises `RecipeError` naming `field`."""
    try:
        if fmt == "jsonl":
            rows: list[Any] = []
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise RecipeError(f"{field}: line {lineno} of {path.name} is not valid JSON ({exc.msg})",
                                          field=field, hint="fix or remove that line") from exc
                    if max_rows is not None and len(rows) >= max_rows:
                        break
        elif fmt == "json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                lists = [v for v in data.values() if isinstance(v, list)]
                if len(lists) != 1:
                    raise RecipeError(f"{field}: {path.name} must hold a list of objects (or one object with a "
                                      "single list of objects)", field=field, hint="or save it as JSONL")
                data = lists[0]
            if not isinstance(data, list):
                raise RecipeError(f"{field}: {path.name} must hold a list of objects", field=field,
                                  hint="or save it as JSONL")
            rows = data
        elif fmt == "csv":
            from pyarrow import csv as pa_csv

            rows = pa_csv.read_csv(path).to_pylist()
        elif fmt == "parquet":
            from pyarrow import parquet as pq

            rows = pq.read_table(path).to_pylist()
        else:
            raise RecipeError(f"{field}: unknown file format {fmt!r}", field=field,
                              hint="use json, jsonl, csv or parquet")
    except RecipeError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pyarrow errors subclass these
        raise RecipeError(f"{field}: cannot read {path.name} as {fmt}: {exc}", field=field,
                          hint="check the file and its format") from exc
    if max_rows is not None:
        rows = rows[:max_rows]
    for n, row in enumerate(rows[:1000]):
        if not isinstance(row, dict):
            raise RecipeError(f"{field}: row {n} of {path.name} is a {type(row).__name__}, not an object",
                              field=field, hint="each row must be a JSON object with named columns")
    return rows


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def read_hub(hub_id: str, config: str | None, split: str, revision: str | None, *, field: str, label: str,
             max_rows: int | None = None, data_files: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a Hub dataset split via `datasets.load_dataset`. Raises `RecipeError` when it cannot be loaded."""
    import datasets

    extra: dict[str, Any] = {"data_files": data_files} if data_files else {}
    try:
        ds = datasets.load_dataset(hub_id, config, split=split, revision=revision, **extra)
    except Exception as exc:  # noqa: BLE001 - datasets raises many unrelated types for "not reachable"
        offline = " while offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set)" if _offline() else ""
        raise RecipeError(
            f"{field}: Hub dataset '{hub_id}' (config={config}, split={split}, revision={revision}) for source "
            f"'{label}' could not be loaded{offline}: {type(exc).__name__}: {str(exc)[:300]}", field=field,
            hint="run with network access, or pre-cache it (datasets.load_dataset with the same arguments on a "
                 "machine with network, then copy HF_HOME), or use a local file") from exc
    if max_rows is not None and len(ds) > max_rows:
        ds = ds.select(range(max_rows))
    return list(ds.to_list())


def read_source(src: ResolvedSource) -> list[dict[str, Any]]:
    """All rows of a resolved source, with its column renames applied."""
    if src.kind == "local":
        assert src.path is not None and src.file_format is not None
        rows = read_local_file(src.path, src.file_format, field=src.field, max_rows=src.max_rows)
    else:
        rows = read_hub(src.hub_id or "", src.hub_config, src.hub_split or "train", src.hub_revision,
                        field=src.field, label=src.label, max_rows=src.max_rows,
                        data_files=list(src.hub_data_files) if src.hub_data_files else None)
    if src.columns:
        present = set().union(*(r.keys() for r in rows[:1000])) if rows else set()
        missing = [c for c in src.columns if c not in present]
        if missing:
            raise RecipeError(f"sources[{src.index}].columns: source '{src.label}' has no column '{missing[0]}'; "
                              f"columns: {', '.join(sorted(map(str, present))) or 'none'}",
                              field=f"sources[{src.index}].columns", hint="rename an existing column")
        rows = [{src.columns.get(k, k): v for k, v in r.items()} for r in rows]
    return rows


def read_eval_rows(task: TaskSpec) -> list[tuple[str, list[dict[str, Any]]]]:
    """[(split, rows)] of the task's validation and test data."""
    out = []
    for split, src in _eval_sources(task):
        fld = f"task.data.{split}"
        if src.kind == "local":
            path = task.local_path(src)
            rows = read_local_file(path, _detect_format(path, "auto", fld), field=fld)
        elif src.kind == "hub":
            rows = read_hub(src.hub_id or "", src.config, src.split or split, src.revision, field=fld,
                            label=src.name, data_files=src.data_files)
        else:
            raise _url_refused(src, fld)
        out.append((split, rows))
    return out
