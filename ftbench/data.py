"""Read the rows of a task's local data sources.

What it guarantees: `read_rows` returns a list of plain dicts, one per row, in file order, for JSONL (blank lines
skipped), JSON (a list of objects), CSV (header row) and Parquet files; any problem raises `DataError` naming the
file and, for JSONL, the 1-based line. Hub and URL sources are never fetched here: `read_rows` refuses them and
`hub_load_kwargs` gives the arguments for `datasets.load_dataset`.
What it does not do: validate fields or labels (see `ftbench.testing.TaskContract`) or cache rows.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ftbench.errors import DataError
from ftbench.spec import DataSource, TaskSpec

__all__ = ["hub_load_kwargs", "read_file", "read_rows"]


def read_rows(task: TaskSpec, source: DataSource | str) -> list[dict[str, Any]]:
    """Rows of a local source of `task` (a `DataSource` or a source name; 'validation'/'test' work too).

    Raises `DataError` for an unknown name, a Hub or URL source, a missing file or a malformed row.
    """
    if isinstance(source, str):
        try:
            source = task.source(source)
        except KeyError as exc:
            raise DataError(str(exc.args[0])) from None
    if source.kind != "local" or source.path is None:
        where = source.hub_id or source.url or "?"
        raise DataError(f"task {task.name}: source '{source.name}' is a {source.kind} source ({where}), not a "
                        "local file; load Hub data with datasets.load_dataset(**ftbench.data.hub_load_kwargs(source))"
                        " on a machine with network access")
    return read_file(Path(source.path))


def read_file(path: Path) -> list[dict[str, Any]]:
    """Rows of one JSONL, JSON, CSV or Parquet file (format from the suffix). Raises `DataError`."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; regenerate mini task data with "
                        "'python -m ftbench.generate' or fix the source's path", file=str(path))
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in {".parquet", ".pq"}:
        return _read_parquet(path)
    raise DataError(f"data file {path}: unsupported format '{suffix}' (use .jsonl, .json, .csv or .parquet)",
                    file=str(path))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"data file {path}, line {number}: invalid JSON ({exc.msg} at column "
                                    f"{exc.colno})", file=str(path), line=number) from None
                if not isinstance(row, dict):
                    raise DataError(f"data file {path}, line {number}: each line must be a JSON object, got "
                                    f"{type(row).__name__}", file=str(path), line=number)
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise DataError(f"data file {path}: not UTF-8 text ({exc.reason})", file=str(path)) from None
    except OSError as exc:
        raise DataError(f"data file {path}: cannot be read ({exc})", file=str(path)) from None
    return rows


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"data file {path}, line {exc.lineno}: invalid JSON ({exc.msg})", file=str(path),
                        line=exc.lineno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"data file {path}: cannot be read ({exc})", file=str(path)) from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise DataError(f"data file {path}: a .json data file must hold a list of objects", file=str(path))
    return data


def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return [dict(row) for row in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"data file {path}: cannot be read as CSV ({exc})", file=str(path)) from None


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with datasets
        raise DataError(f"data file {path}: reading Parquet needs pyarrow", file=str(path)) from None
    try:
        return list(pq.read_table(path).to_pylist())
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError family
        raise DataError(f"data file {path}: cannot be read as Parquet ({exc})", file=str(path)) from None


def hub_load_kwargs(source: DataSource) -> dict[str, Any]:
    """Keyword arguments for `datasets.load_dataset` that load a Hub source. Raises `DataError` for other kinds."""
    if source.kind != "hub" or source.hub_id is None:
        raise DataError(f"source '{source.name}' is a {source.kind} source, not a Hub dataset")
    kwargs: dict[str, Any] = {"path": source.hub_id, "split": source.split or "train"}
    if source.config:
        kwargs["name"] = source.config
    if source.revision:
        kwargs["revision"] = source.revision
    if source.data_files:
        kwargs["data_files"] = list(source.data_files)
    return kwargs
