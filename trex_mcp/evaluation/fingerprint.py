"""Fingerprints of model artifacts, the first part of an evaluation cache key.

- A folder (an adapter, a fine-tuned model, a built tiny model): the sorted relative names and sizes of its
  files, plus the sha256 of every weight file and of every small file (configs, tokenizer). Hidden files,
  lock files and checkpoint sub-folders are left out.
- A base model id: the id plus the fingerprint of the folder it resolves to (a `tiny:` id or a local folder).
  A Hub id that is not a local folder is fingerprinted by its id alone: an upstream change under the same id is
  not detected (pin a revision, or evaluate a local snapshot, when that matters).

File hashes are memoised per (path, size, mtime) within a process, so a big base model is read once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

__all__ = ["combine", "fingerprint_folder", "fingerprint_model"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
_SMALL_FILE = 16 * 1024 * 1024
_SKIP_DIRS = {"checkpoints", "__pycache__"}
_memo: dict[tuple[str, int, int], str] = {}
_memo_lock = threading.Lock()


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _memo_lock:
        if key in _memo:
            return _memo[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    with _memo_lock:
        _memo[key] = value
    return value


def fingerprint_folder(folder: Path) -> str:
    """sha256 over the folder's file names, sizes and content hashes (see the module docstring)."""
    folder = Path(folder)
    entries: list[list[object]] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") or part in _SKIP_DIRS for part in rel.parts):
            continue
        if path.suffix == ".lock":
            continue
        size = path.stat().st_size
        content = _file_sha256(path) if path.suffix in _WEIGHT_SUFFIXES or size <= _SMALL_FILE else None
        entries.append([rel.as_posix(), size, content])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def combine(*parts: str | None) -> str:
    """One sha256 over several fingerprints (None parts included as null)."""
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()


def fingerprint_model(model_id: str, resolved: str) -> str:
    """Fingerprint of base model `model_id`, which `resolve_model` turned into `resolved`."""
    path = Path(resolved)
    folder = fingerprint_folder(path) if path.is_dir() else None
    return combine("model", model_id, folder)
