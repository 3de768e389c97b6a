"""The contract between the job manager and whatever actually runs a training process.

A backend starts one worker process per run, tells whether it is still alive, stops it (SIGTERM, a grace
period, then SIGKILL) and reads its log. It knows nothing about the tree store, retries or queues: the
`JobManager` owns those. A backend must be safe to call from the manager's monitor thread and from callers'
threads at the same time.

What a backend promises:
- `submit` returns at once with a handle; the process has started (or `BackendError` was raised).
- `poll` never blocks; `cancel` sends the first signal before it returns and never waits for the grace period.
- `attach` re-adopts a process started by an earlier server (after a restart) only if it is provably the same
  process (pid, process group and start time), so a recycled pid is never mistaken for a worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from trex_mcp.errors import TrexError

__all__ = ["Backend", "BackendError", "JobInfo", "ProcessStatus"]


class BackendError(TrexError):
    """A job could not be started, or a handle is unknown to the backend."""


@dataclass(frozen=True)
class JobInfo:
    """What a backend returns for a started job. `identity` is what `attach` needs to re-adopt it later.

    Everything here is safe to store in the run's job dict (no environment, no secrets).
    """

    handle: str
    pid: int
    pgid: int
    started_at: float
    identity: dict[str, Any] = field(default_factory=dict)

    def to_job(self) -> dict[str, Any]:
        """The fields the manager copies into the run's job dict."""
        return {"handle": self.handle, "pid": self.pid, "pgid": self.pgid, "started_at": self.started_at,
                **self.identity}


@dataclass(frozen=True)
class ProcessStatus:
    """The result of `Backend.poll`: is the job's process alive, and its exit code when known.

    `returncode` is None while alive, and also for a re-attached process (not our child: its exit code is
    not observable); negative values are signal numbers, as in `subprocess`.
    """

    alive: bool
    returncode: int | None = None


@runtime_checkable
class Backend(Protocol):
    """Runs worker processes. See the module docstring for the guarantees."""

    def submit(self, run_id: str, argv: list[str], run_dir: Path, env: dict[str, str]) -> JobInfo:
        """Start `argv` for `run_id` with output to `<run_dir>/train.log`; `env` is added to a scrubbed
        copy of the server environment. Raises `BackendError` if the process cannot start."""
        ...

    def poll(self, handle: str) -> ProcessStatus:
        """Whether the job is alive. An unknown handle reads as not alive."""
        ...

    def cancel(self, handle: str, grace_s: float) -> None:
        """Send SIGTERM to the job's whole process group now; SIGKILL it if still alive after `grace_s`."""
        ...

    def logs(self, run_dir: Path, lines: int = 50) -> list[str]:
        """The last `lines` lines of the job's log (secrets redacted)."""
        ...

    def attach(self, job: dict[str, Any]) -> bool:
        """Re-adopt the process described by a stored job dict; True if it is alive and provably the same
        process, after which `poll`/`cancel` accept `job["handle"]`."""
        ...

    def capacity(self) -> int:
        """How many jobs may run at once."""
        ...

    def devices(self) -> list[str]:
        """Accelerator ids a job can be pinned to (CUDA_VISIBLE_DEVICES entries); empty on CPU."""
        ...
