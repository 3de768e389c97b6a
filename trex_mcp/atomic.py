"""Atomic file and folder writes.

Guarantees: `atomic_write_text` leaves either the old file or the complete new one (temp file in the same folder,
fsync, `os.replace`, folder fsync); a failure mid-write leaves no temp file behind. `publish_dir` renames a fully
written temp folder into place with its `_COMPLETE` marker already inside, so a folder at the final path that has
the marker is complete. Not covered: network filesystems without atomic rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["COMPLETE_MARKER", "atomic_write_json", "atomic_write_text", "fsync_dir", "fsync_file", "is_complete", "new_tmp_dir",
           "publish_dir"]

COMPLETE_MARKER = "_COMPLETE"


def fsync_file(path: Path) -> None:
    """fsync an existing file's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """fsync a folder so a rename inside it is durable (best effort on filesystems that refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (temp file + fsync + os.replace). Raises OSError."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    """`atomic_write_text` of `data` as indented JSON (NaN and inf become null)."""
    atomic_write_text(Path(path), json.dumps(_finite(data), indent=2, sort_keys=True, default=str) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def new_tmp_dir(final: Path) -> Path:
    """A fresh temp folder next to `final` (same filesystem, so the rename is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))


def is_complete(folder: Path) -> bool:
    """True when `folder` holds its `_COMPLETE` marker."""
    return (Path(folder) / COMPLETE_MARKER).is_file()


def publish_dir(tmp: Path, final: Path) -> None:
    """Write `_COMPLETE` into the fully written `tmp`, then rename it to `final`.

    An older `final` (e.g. from an earlier attempt) is moved aside first and removed after the rename.
    """
    marker = tmp / COMPLETE_MARKER
    with marker.open("w") as fh:
        fh.write("ok\n")
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    old: Path | None = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
        os.replace(final, old / final.name)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
