"""Reading what a worker leaves in its run folder: result, progress, heartbeat, checkpoints, exit cause.

The worker writes (see contracts): `spec.json` (by the manager), `progress.jsonl` (one JSON object per line,
appended), `heartbeat` (content = unix time, mtime touched), `train.log`, `checkpoints/checkpoint-N/`,
`adapter/` (with `_COMPLETE` last) and `result.json` LAST. Every reader here tolerates a half-written or
missing file (a worker may be killed at any instruction): it returns None / nothing rather than raising.

`link_latest_checkpoint` gives a retry the latest complete checkpoint of an earlier attempt by hard-linking its
files (a copy where links are impossible), so the earlier folder is never modified.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ProgressReader", "classify_exit", "heartbeat_time", "last_sign_of_life", "latest_complete_checkpoint",
           "link_latest_checkpoint", "read_result"]

RESULT_NAME = "result.json"
HEARTBEAT_NAME = "heartbeat"
PROGRESS_NAME = "progress.jsonl"
CHECKPOINTS_NAME = "checkpoints"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# The HF Trainer writes trainer_state.json last: the worker treats a checkpoint without it as incomplete.
_CHECKPOINT_DONE = ("trainer_state.json",)

_OOM_PATTERNS = (
    "CUDA out of memory",
    "OutOfMemoryError",
    "DefaultCPUAllocator: can't allocate memory",
    "MemoryError",
    "HIP out of memory",
    "MPS backend out of memory",
    "Cannot allocate memory",
)


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The parsed `result.json`, or None when it is missing, unreadable or not a JSON object."""
    try:
        data = json.loads((run_dir / RESULT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def heartbeat_time(run_dir: Path) -> float | None:
    """When the worker last signalled life: the heartbeat file's content (unix time), else its mtime."""
    path = run_dir / HEARTBEAT_NAME
    try:
        text = path.read_text(encoding="utf-8").strip()
        mtime = path.stat().st_mtime
    except OSError:
        return None
    try:
        value = float(text)
    except ValueError:
        return mtime
    return value if math.isfinite(value) else mtime


def last_sign_of_life(run_dir: Path) -> float | None:
    """The latest of the heartbeat time and the progress file's mtime: a worker that just wrote a progress line
    is alive even when its heartbeat thread was held up (a loaded machine, a C call holding the GIL)."""
    times = [t for t in (heartbeat_time(run_dir), _mtime(run_dir / PROGRESS_NAME)) if t is not None]
    return max(times) if times else None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@dataclass
class ProgressReader:
    """Tails `progress.jsonl` incrementally (only complete lines), keeping the latest step and phase."""

    path: Path
    offset: int = 0
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    tokens: int = 0
    phase: str | None = None
    updated_at: float | None = None
    events: int = 0
    last: dict[str, Any] = field(default_factory=dict)

    def read_new(self) -> int:
        """Consume newly appended complete lines; returns how many events were read."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return 0
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0
        self.offset += end + 1
        count = 0
        for raw in chunk[:end].splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                self._apply(event)
                count += 1
        self.events += count
        return count

    def _apply(self, event: dict[str, Any]) -> None:
        for key in ("total_steps", "max_steps"):
            value = event.get(key)
            if isinstance(value, int) and value > 0:
                self.total_steps = value
        if isinstance(event.get("phase"), str):
            self.phase = event["phase"]
        elif isinstance(event.get("event"), str) and event["event"] not in ("step", "phase"):
            self.phase = event["event"]
        if isinstance(event.get("t"), int | float):
            self.updated_at = float(event["t"])
        if event.get("event") == "step" and isinstance(event.get("step"), int):
            self.step = event["step"]
            self.loss = _as_float(event.get("loss"))
            self.lr = _as_float(event.get("lr"))
            self.tokens_per_s = _as_float(event.get("tokens_per_s"))
            if isinstance(event.get("tokens"), int):
                self.tokens += event["tokens"]
            self.phase = "train"
            self.last = event

    def snapshot(self) -> dict[str, Any]:
        """The latest progress as JSON data (for the store's run metrics)."""
        return {"step": self.step, "total_steps": self.total_steps, "loss": self.loss, "lr": self.lr,
                "tokens_per_s": self.tokens_per_s, "tokens": self.tokens, "phase": self.phase,
                "updated_at": self.updated_at}


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)  # the worker writes 'nan' / 'inf' as strings
    return None


def classify_exit(returncode: int | None, log_tail: list[str]) -> tuple[str, str]:
    """(failure kind, message) for a worker that exited without a result.json: `oom` when the log shows an
    out-of-memory error, else `crash` with the exit code or signal named."""
    text = "\n".join(log_tail)
    oom = next((p for p in _OOM_PATTERNS if p in text), None)
    if returncode is None:
        how = "the worker process ended while the server was not watching"
    elif returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        how = f"the worker was killed by {name}"
        if returncode == -signal.SIGKILL and oom is None:
            how += " (possibly the kernel's out-of-memory killer)"
    else:
        how = f"the worker exited with code {returncode}"
    if oom is not None:
        return "oom", f"{how} after running out of memory ({oom!r} in its log); lower batch_size or max_length"
    return "crash", f"{how} without writing result.json; see the log tail"


def _is_complete_checkpoint(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in _CHECKPOINT_DONE)


def latest_complete_checkpoint(run_dir: Path) -> Path | None:
    """The complete `checkpoints/checkpoint-N` with the highest N, or None (half-written ones are skipped)."""
    root = run_dir / CHECKPOINTS_NAME
    try:
        entries = list(root.iterdir())
    except OSError:
        return None
    found: list[tuple[int, Path]] = []
    for entry in entries:
        match = _CHECKPOINT.match(entry.name)
        if match and _is_complete_checkpoint(entry):
            found.append((int(match.group(1)), entry))
    return max(found)[1] if found else None


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_latest_checkpoint(previous_run_dir: Path, run_dir: Path) -> Path | None:
    """Put the previous attempt's latest complete checkpoint into `run_dir/checkpoints/` (hard links, a copy
    across filesystems); returns the new checkpoint folder, or None when there was none to resume from.

    The copy goes to a temp folder renamed into place, so a kill mid-copy leaves no half checkpoint behind.
    """
    source = latest_complete_checkpoint(previous_run_dir)
    if source is None:
        return None
    target_root = run_dir / CHECKPOINTS_NAME
    target_root.mkdir(parents=True, exist_ok=True)
    final = target_root / source.name
    if _is_complete_checkpoint(final):
        return final
    tmp = target_root / f".tmp-{source.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=_link_or_copy)
    os.replace(tmp, final)
    return final
