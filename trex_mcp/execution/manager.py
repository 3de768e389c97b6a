"""The job manager: queue, launch, watch, stop, finish, retry and re-attach training runs.

`JobManager` owns every run's life between WAITING and a finished state, on top of the tree store and a
`Backend` (default: `LocalBackend`, one subprocess per run; `RayBackend` when Settings.executor is "ray").

Guarantees:
- `submit` returns at once (it never waits for training). A run becomes RUNNING only through the store's
  `claim_run` compare-and-set, and only while a slot is free: at most `capacity` runs (= visible GPUs, or
  Settings.capacity on CPU) hold a slot, queued runs start in submission order (FIFO). A stopped process keeps
  its slot until it is really gone, so a GPU is never shared with a dying run.
- A monitor thread polls children, relays heartbeats and progress to the store, enforces the wall-clock limit
  (FAIL `timeout`) and the heartbeat grace (2 x heartbeat_s, at least 2 s: FAIL `stale`), and finishes each
  run from its `result.json` as soon as it appears (it is written last; COMPLETE with score, metrics,
  artifacts and cost) or from its exit (FAIL `crash` / `oom` with the last <= 50 log lines). An adapter is
  only reported when its `_COMPLETE` marker exists. A worker still alive `exit_grace_s` after its result is
  stopped.
- `cancel` sends SIGTERM within the call and records PRUNED(`cancelled`) at once; the process group is
  SIGKILLed after the grace period.
- Crashed, stale and server-restart runs are retried as new WAITING runs (`retry_of`) up to Settings.max_retry
  counted attempts; infrastructure kills (server_restart) do not count (reliability J3). A retry resumes from
  the previous attempt's latest complete checkpoint, else starts from scratch; both are recorded in the job
  dict (`resumed_from`, `restart_count`).
- `reconcile` (call once at start-up) leaves no run RUNNING without a live worker: live workers with a fresh
  heartbeat are re-attached, dead ones are finished from their result.json or failed as `server_restart`.
- `close` stops the monitor but never kills running workers (they are re-attached on the next start, J8).
- `on_finish(run)` is called once per finished run, from a dedicated callback thread (a slow callback never
  delays the monitor); its exceptions are logged and swallowed.

Not covered: several live managers on one store (run one server per trex home), and jobs on other machines.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tree_store import Failure, FailureKind, NotFoundError, Run, State, TreeStore, TreeStoreError
from trex_mcp.errors import TrexError
from trex_mcp.execution.backends.base import Backend, BackendError
from trex_mcp.execution.backends.local import LocalBackend, launch_argv
from trex_mcp.execution.backends.outcome import Outcome, read_outcome
from trex_mcp.execution.backends.rundir import (
    ProgressReader,
    heartbeat_time,
    last_sign_of_life,
    link_latest_checkpoint,
    read_result,
)

if TYPE_CHECKING:
    from trex_mcp.execution.spec import RunSpec
    from trex_mcp.settings import Settings

__all__ = ["DEFAULT_WORKER_ARGV", "JobError", "JobHandle", "JobManager", "JobProgress", "JobStatus",
           "ReconcileReport"]

log = logging.getLogger(__name__)

DEFAULT_WORKER_ARGV = (sys.executable, "-m", "trex_mcp.execution.worker")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_RETRYABLE = frozenset({FailureKind.CRASH, FailureKind.STALE, FailureKind.SERVER_RESTART})
# Infrastructure restarts do not count against max_retry, but a run that keeps losing its server is given up
# after this many extra restarts so a crash loop cannot requeue forever.
_MAX_FREE_RESTARTS = 10
_LOG_TAIL = 50


class JobError(TrexError):
    """A job request that cannot be honoured (unknown run, wrong state, bad spec)."""


class JobProgress(BaseModel):
    """Latest training progress read from the worker's progress.jsonl."""

    model_config = ConfigDict(extra="forbid")

    step: int | None = Field(None, description="Last optimizer step reported.")
    total_steps: int | None = Field(None, description="Planned optimizer steps, when the worker reported them.")
    loss: float | None = Field(None, description="Training loss at the last step (may be NaN).")
    tokens_per_s: float | None = Field(None, description="Training throughput at the last step.")
    phase: str | None = Field(None, description="What the worker is doing (preflight, train, eval, ...).")


class JobHandle(BaseModel):
    """What `submit` returns: the run is queued, running, or (bad input) already failed."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(description="The run's id in the tree store (also the job handle).")
    state: str = Field(description="Store state right after submission: WAITING, RUNNING or FAIL.")
    queue_position: int | None = Field(None, ge=1, description="1 = next to start; None when not queued.")
    run_dir: str = Field(description="The run's folder (spec.json, train.log, adapter/, result.json).")


class JobStatus(BaseModel):
    """A run's job as seen by the manager and the store."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(description="The run's id.")
    state: str = Field(description="WAITING, RUNNING, COMPLETE, FAIL or PRUNED.")
    attempt: int = Field(description="Counted attempt (1 = first try; server restarts do not count).")
    restart_count: int = Field(0, description="Earlier attempts of this run, whatever their cause.")
    retry_of: str | None = Field(None, description="The run this one retries.")
    resumed_from: str | None = Field(None, description="Checkpoint this attempt resumed from; None = scratch.")
    queue_position: int | None = Field(None, description="Position in the queue (1 = next); None if not queued.")
    progress: JobProgress = Field(default_factory=JobProgress, description="Latest training progress.")
    elapsed_s: float | None = Field(None, description="Seconds since the worker started (to its end if finished).")
    heartbeat_age_s: float | None = Field(None, description="Seconds since the worker's last heartbeat.")
    score: float | None = Field(None, description="Validation score once COMPLETE.")
    failure_kind: str | None = Field(None, description="Why the run failed or was pruned.")
    failure_message: str | None = Field(None, description="What went wrong and what to do.")


@dataclass
class ReconcileReport:
    """What `reconcile` did to the runs it found RUNNING or queued."""

    reattached: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)


@dataclass
class _Queued:
    run_id: str
    run_dir: Path
    timeout_s: float


@dataclass
class _Active:
    run_id: str
    run_dir: Path
    handle: str
    started_at: float
    deadline: float
    heartbeat_s: float
    devices: list[str]
    progress: ProgressReader
    reattached: bool = False
    last_hb: float | None = None
    last_metrics_at: float = -math.inf
    metrics_step: int | None = None
    draining: bool = False  # finished in the store; the slot is held until the process group is gone
    drain_since: float = 0.0  # when SIGTERM was sent
    term_at: float | None = None  # a worker exiting by itself after its result is SIGTERMed at this time


class JobManager:
    """Runs training jobs for tree-store runs. See the module docstring for the guarantees.

    `clock` stamps every store write and drives timeouts and heartbeat ages (tests inject a fake one).
    `worker_argv` is the command the spec path is appended to. `warm_worker=True` (default backend only) keeps a
    spare worker with torch/TRL imported for the next CPU run. `monitor=False` leaves the monitor thread off
    (tests call `tick()` themselves).
    """

    def __init__(self, store: TreeStore, settings: Settings, backend: Backend | None = None,
                 on_finish: Callable[[Run], Any] | None = None, clock: Callable[[], float] = time.time,
                 worker_argv: list[str] | tuple[str, ...] | None = None, *, grace_s: float = 10.0,
                 poll_s: float = 0.25, startup_grace_s: float = 120.0, metrics_interval_s: float = 2.0,
                 min_stale_grace_s: float = 2.0, exit_grace_s: float = 30.0, warm_worker: bool = False,
                 monitor: bool = True) -> None:
        self.store = store
        self.settings = settings
        if backend is None and settings.executor == "ray":
            from trex_mcp.execution.backends.ray import RayBackend

            backend = RayBackend.from_settings(settings)
        elif backend is None:
            backend = LocalBackend(capacity=settings.capacity,
                                   warm_module=DEFAULT_WORKER_ARGV[2] if warm_worker else None)
        self.backend: Backend = backend
        self.on_finish = on_finish
        self.clock = clock
        self.worker_argv = list(worker_argv) if worker_argv is not None else list(DEFAULT_WORKER_ARGV)
        if not self.worker_argv:
            raise JobError("worker_argv must not be empty", field="worker_argv")
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.startup_grace_s = startup_grace_s
        self.min_stale_grace_s = min_stale_grace_s
        self.exit_grace_s = exit_grace_s
        self.metrics_interval_s = metrics_interval_s
        self._lock = threading.RLock()
        self._queue: OrderedDict[str, _Queued] = OrderedDict()
        self._active: dict[str, _Active] = {}
        self._capacity: int | None = None
        self._stop = threading.Event()
        self._callbacks: queue.Queue[str | None] = queue.Queue()
        self._callback_thread = threading.Thread(target=self._callback_loop, name="trex-jobs-callbacks",
                                                 daemon=True)
        self._callback_thread.start()
        prewarm = getattr(self.backend, "prewarm", None)
        if callable(prewarm):
            prewarm()
        self._monitor: threading.Thread | None = None
        if monitor:
            self._monitor = threading.Thread(target=self._monitor_loop, name="trex-jobs-monitor", daemon=True)
            self._monitor.start()

    # ------------------------------------------------------------------------------------------- public

    @property
    def capacity(self) -> int:
        """Runs that may hold a slot at once (asked of the backend once)."""
        if self._capacity is None:
            self._capacity = max(1, int(self.backend.capacity()))
        return self._capacity

    def submit(self, run_id: str, spec: RunSpec, *, timeout_s: float | None = None) -> JobHandle:
        """Queue the WAITING run `run_id` for training with `spec`; it starts at once if a slot is free.

        Writes `<spec.run_dir>/spec.json`. A spec that cannot work (bad config, missing dataset or model
        folder) finishes the run as FAIL(`invalid_config`) without starting a process. Returns a
        `JobHandle`. Raises `JobError` when the run is unknown, not WAITING, or does not match the spec.
        """
        if not _RUN_ID.match(run_id) or spec.run_id != run_id:
            raise JobError(f"spec.run_id {spec.run_id!r} must equal the submitted run id {run_id!r}",
                           field="run_id")
        try:
            run = self.store.get_run(run_id)
        except NotFoundError as exc:
            raise JobError(f"run {run_id!r} is not in the store", field="run_id",
                           hint="add the run to its node first") from exc
        if run.state is not State.WAITING:
            raise JobError(f"run {run_id!r} is {run.state.value}; only WAITING runs can be submitted",
                           field="run_id", hint="add a new run (or retry) instead")
        run_dir = Path(spec.run_dir).resolve()
        problem = _preflight(spec)
        with self._lock:
            if run_id in self._queue or run_id in self._active:
                raise JobError(f"run {run_id!r} was already submitted", field="run_id")
            spec.write(run_dir / "spec.json")
            now = self.clock()
            job: dict[str, Any] = {
                "backend": type(self.backend).__name__, "run_dir": str(run_dir), "status": "queued",
                "queued_at": now, "restart_count": int(run.job.get("restart_count", 0)),
                "timeout_s": float(timeout_s or self.settings.run_timeout_s)}
            if run.job.get("resume_from_dir"):
                job["resume_from_dir"] = run.job["resume_from_dir"]
            if problem is not None:
                self.store.set_run_job(run_id, {**job, "status": "finished"})
                self._finish(run_id, State.FAIL, now=now, failure=Failure(FailureKind.INVALID_CONFIG, problem),
                             cost={"wall_s": 0.0})
                return JobHandle(run_id=run_id, state=State.FAIL.value, run_dir=str(run_dir))
            self.store.set_run_job(run_id, job)
            self._queue[run_id] = _Queued(run_id, run_dir, job["timeout_s"])
            self._fill_slots()
            position = self._queue_position(run_id)
            state = State.WAITING if position is not None else self.store.get_run(run_id).state
            return JobHandle(run_id=run_id, state=state.value, queue_position=position, run_dir=str(run_dir))

    def status(self, run_id: str) -> JobStatus:
        """The run's state, attempt, progress, elapsed time and queue position. Raises `JobError` if unknown."""
        try:
            run = self.store.get_run(run_id)
        except NotFoundError as exc:
            raise JobError(f"run {run_id!r} is not in the store", field="run_id") from exc
        now = self.clock()
        with self._lock:
            active = self._active.get(run_id)
            position = self._queue_position(run_id)
            reader = active.progress if active is not None else None
            if active is not None and not active.draining:
                active.progress.read_new()
        if reader is not None:
            progress = JobProgress(step=reader.step, total_steps=reader.total_steps, loss=reader.loss,
                                   tokens_per_s=reader.tokens_per_s, phase=reader.phase)
        else:
            stored = run.metrics.get("progress")
            stored = stored if isinstance(stored, dict) else {}
            progress = JobProgress(**{k: stored.get(k) for k in JobProgress.model_fields})
        started = run.started_at
        elapsed = None
        if started is not None:
            elapsed = max(0.0, (run.finished_at if run.finished_at is not None else now) - started)
        hb_age = None
        if run.state is State.RUNNING:
            hb = heartbeat_time(Path(run.job.get("run_dir", self.settings.runs_dir / run_id)))
            hb_age = None if hb is None else max(0.0, now - hb)
        return JobStatus(run_id=run_id, state=run.state.value, attempt=run.attempt,
                         restart_count=int(run.job.get("restart_count", 0)), retry_of=run.retry_of,
                         resumed_from=run.job.get("resumed_from"), queue_position=position, progress=progress,
                         elapsed_s=elapsed, heartbeat_age_s=hb_age, score=run.score,
                         failure_kind=run.failure.kind.value if run.failure else None,
                         failure_message=run.failure.message if run.failure else None)

    def cancel(self, run_id: str) -> JobStatus:
        """Stop the run: a queued one is PRUNED at once; a running one gets SIGTERM now, is recorded
        PRUNED(`cancelled`) now, and is SIGKILLed after the grace period. Finished runs are left as they
        are. Returns the new status. Raises `JobError` if the run is unknown."""
        now = self.clock()
        with self._lock:
            if run_id in self._queue:
                del self._queue[run_id]
                self._finish(run_id, State.PRUNED, now=now, cost={"wall_s": 0.0},
                             failure=Failure(FailureKind.CANCELLED, "cancelled before it started"))
            elif run_id in self._active and not self._active[run_id].draining:
                self._stop_active(self._active[run_id], State.PRUNED, FailureKind.CANCELLED,
                                  "cancelled while running", now)
            else:
                try:
                    run = self.store.get_run(run_id)
                except NotFoundError as exc:
                    raise JobError(f"run {run_id!r} is not in the store", field="run_id") from exc
                if run.state is State.RUNNING and run.job.get("handle") and self.backend.attach(run.job):
                    self.backend.cancel(str(run.job["handle"]), self.grace_s)
                if not run.state.is_finished():
                    self._finish(run_id, State.PRUNED, now=now,
                                 failure=Failure(FailureKind.CANCELLED, f"cancelled while {run.state.value}"))
            self._fill_slots()
        return self.status(run_id)

    def log_tail(self, run_id: str, lines: int = 50) -> list[str]:
        """The last `lines` (1-1000) lines of the run's train.log, secrets redacted. Raises `JobError`."""
        try:
            run = self.store.get_run(run_id)
        except NotFoundError as exc:
            raise JobError(f"run {run_id!r} is not in the store", field="run_id") from exc
        lines = max(1, min(int(lines), 1000))
        return self.backend.logs(self._run_dir(run), lines)

    def reconcile(self) -> ReconcileReport:
        """Bring the store in line with the processes after a (re)start; see the module docstring."""
        report = ReconcileReport()
        now = self.clock()
        with self._lock:
            for run in self.store.find_runs(state=State.RUNNING):
                if run.id not in self._active:
                    self._reconcile_running(run, now, report)
            waiting = [r for r in self.store.find_runs(state=State.WAITING)
                       if r.job.get("status") == "queued" and r.id not in self._queue and r.id not in self._active]
            for run in sorted(waiting, key=lambda r: (float(r.job.get("queued_at", r.created_at)), r.created_at)):
                run_dir = self._run_dir(run)
                if (run_dir / "spec.json").is_file():
                    self._queue[run.id] = _Queued(run.id, run_dir,
                                                  float(run.job.get("timeout_s", self.settings.run_timeout_s)))
                    report.requeued.append(run.id)
            self._fill_slots()
        return report

    def tick(self) -> None:
        """One monitor pass: poll every job, relay progress, enforce limits, start queued runs."""
        now = self.clock()
        with self._lock:
            actives = list(self._active.values())
        for active in actives:
            try:
                with self._lock:
                    if self._active.get(active.run_id) is active:
                        self._check(active, now)
            except (TreeStoreError, OSError, BackendError):
                log.exception("monitoring run %s failed; will retry", active.run_id)
        with self._lock:
            self._fill_slots()

    def running(self) -> list[str]:
        """Runs holding a slot (including stopped ones whose processes are still going away)."""
        with self._lock:
            return list(self._active)

    def queued(self) -> list[str]:
        """Queued runs, next to start first."""
        with self._lock:
            return list(self._queue)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the monitor and callback threads. Running workers keep running (re-attached on the next start);
        processes of runs already finished in the store (cancelled, timed out) are SIGKILLed now."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout_s)
        with self._lock:
            for active in list(self._active.values()):
                if active.draining:
                    self.backend.cancel(active.handle, 0.0)
        self._callbacks.put(None)
        self._callback_thread.join(timeout_s)
        close_backend = getattr(self.backend, "close", None)
        if callable(close_backend):
            close_backend()

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- slots

    def _queue_position(self, run_id: str) -> int | None:
        for index, queued_id in enumerate(self._queue, start=1):
            if queued_id == run_id:
                return index
        return None

    def _free_devices(self) -> list[str]:
        used = {d for a in self._active.values() for d in a.devices}
        return [d for d in self.backend.devices() if d not in used]

    def _fill_slots(self) -> None:
        while self._queue and len(self._active) < self.capacity:
            _, queued_run = self._queue.popitem(last=False)
            self._launch(queued_run)

    def _launch(self, queued_run: _Queued) -> None:
        run_id, run_dir = queued_run.run_id, queued_run.run_dir
        now = self.clock()
        if not self.store.claim_run(run_id, now=now):
            log.info("run %s was not WAITING any more; not launching it", run_id)
            return
        run = self.store.get_run(run_id)
        job = dict(run.job)
        per_run = getattr(self.backend, "gpus_per_run", 1)
        free = self._free_devices()
        devices = free[:per_run] if free else []
        try:
            spec = _read_spec(run_dir)
            if spec.gpus != len(devices):
                spec = spec.model_copy(update={"gpus": len(devices)})
                spec.write(run_dir / "spec.json")
            job.update(self._resume(run_dir, job))
            argv = launch_argv(self.worker_argv, run_dir / "spec.json", len(devices))
            env = {"CUDA_VISIBLE_DEVICES": ",".join(devices)} if devices else {}
            info = self.backend.submit(run_id, argv, run_dir, env)
        except (BackendError, OSError, ValueError) as exc:
            log.warning("could not launch run %s: %s", run_id, exc)
            self.store.set_run_job(run_id, {**job, "status": "finished"})
            self._finish(run_id, State.FAIL, now=now, cost={"wall_s": 0.0},
                         failure=Failure(FailureKind.CRASH, f"the worker could not be started: {exc}"))
            return
        job.update(info.to_job())
        job.update({"status": "running", "argv": argv, "devices": devices, "launched_at": now,
                    "heartbeat_s": spec.heartbeat_s})
        active = _Active(run_id, run_dir, info.handle, now, now + queued_run.timeout_s, spec.heartbeat_s, devices,
                         ProgressReader(run_dir / "progress.jsonl"))
        self._active[run_id] = active
        try:
            self.store.set_run_job(run_id, job)
        except TreeStoreError as exc:  # finished meanwhile (e.g. pruned by the lab): never leave it untracked
            log.info("run %s changed while its worker started (%s); stopping the worker", run_id, exc)
            self._drain(active, now)

    def _resume(self, run_dir: Path, job: dict[str, Any]) -> dict[str, Any]:
        previous = job.get("resume_from_dir")
        if not previous or job.get("resume_checked"):
            return {}
        checkpoint = None
        try:
            checkpoint = link_latest_checkpoint(Path(previous), run_dir)
        except OSError as exc:
            log.warning("could not reuse the checkpoint of %s: %s; starting from scratch", previous, exc)
        return {"resume_checked": True, "resumed_from": str(checkpoint) if checkpoint else None,
                "from_scratch": checkpoint is None}

    # ------------------------------------------------------------------------------------------- monitor

    def _monitor_loop(self) -> None:
        try:
            _warm_imports()
        except ImportError:  # submit will report it
            log.exception("could not import the job submission helpers")
        while not self._stop.wait(self.poll_s):
            try:
                self.tick()
            except Exception:  # the monitor must survive anything; the next tick tries again
                log.exception("job monitor tick failed")

    def _check(self, active: _Active, now: float) -> None:
        status = self.backend.poll(active.handle)
        if active.draining:
            if not status.alive:
                self._release(active)
            elif active.term_at is not None:
                if now >= active.term_at:
                    log.warning("run %s wrote result.json but did not exit within %g s; stopping it",
                                active.run_id, self.exit_grace_s)
                    self._drain(active, now)
            elif now - active.drain_since > self.grace_s + 5:
                self.backend.cancel(active.handle, 0.0)  # the SIGKILL did not take: send it again
            return
        self._relay(active, now)
        if active.draining:  # the store said the run was finished elsewhere
            return
        if not status.alive:
            self._finish_exited(active, status.returncode, now)
            return
        if read_result(active.run_dir) is not None:
            # result.json is written last, so the work is done: finish now. The interpreter may take seconds to
            # exit (torch teardown) or hang; the slot stays held until it is gone (SIGTERM after exit_grace_s).
            self._finish_exited(active, None, now, still_running=True)
            return
        if now >= active.deadline:
            limit = active.deadline - active.started_at
            self._stop_active(active, State.FAIL, FailureKind.TIMEOUT,
                              f"the run exceeded its wall-clock limit of {limit:g} s and was stopped; "
                              "raise run_timeout_s or train fewer steps", now)
            return
        grace = self._stale_grace(active.heartbeat_s)
        if active.last_hb is not None:
            silent, allowed = now - active.last_hb, grace
        else:
            silent, allowed = now - active.started_at, max(grace, self.startup_grace_s)
        if silent > allowed:
            self._stop_active(active, State.FAIL, FailureKind.STALE,
                              f"no heartbeat for {silent:.1f} s (allowed {allowed:g} s); the worker hung", now)

    def _relay(self, active: _Active, now: float) -> None:
        """Heartbeat and progress from the run folder to the store (throttled)."""
        hb = last_sign_of_life(active.run_dir)
        try:
            if hb is not None and hb != active.last_hb:
                active.last_hb = hb
                self.store.heartbeat_run(active.run_id, now=now)
            active.progress.read_new()
            step = active.progress.step
            if step != active.metrics_step and now - active.last_metrics_at >= self.metrics_interval_s:
                active.metrics_step, active.last_metrics_at = step, now
                self.store.record_run_metrics(active.run_id, {"progress": active.progress.snapshot()})
        except TreeStoreError as exc:  # finished by someone else (e.g. pruned by the lab): stop the worker
            log.info("run %s was finished outside the manager (%s); stopping its worker", active.run_id, exc)
            self._drain(active, now)

    def _drain(self, active: _Active, now: float, *, after_s: float | None = None) -> None:
        """Hold the slot until the process is gone: SIGTERM now (SIGKILL after grace_s), or after `after_s`."""
        active.draining = True
        if after_s is not None:
            active.term_at = now + after_s
            return
        active.term_at, active.drain_since = None, now
        self.backend.cancel(active.handle, self.grace_s)

    def _stop_active(self, active: _Active, state: State, kind: FailureKind, message: str, now: float) -> None:
        self._drain(active, now)
        active.progress.read_new()
        tail = "\n".join(self.backend.logs(active.run_dir, _LOG_TAIL))
        wall = max(0.0, now - active.started_at)
        cost = {"wall_s": round(wall, 3), "device_s": round(wall * max(1, len(active.devices)), 3),
                "tokens": active.progress.tokens}
        run = self._finish(active.run_id, state, now=now, failure=Failure(kind, message, tail), cost=cost,
                           metrics={"progress": active.progress.snapshot()}, notify=False)
        if run is not None:
            self._retry(run, now)
            self._notify(run.id)

    def _release(self, active: _Active) -> None:
        self._active.pop(active.run_id, None)
        forget = getattr(self.backend, "forget", None)
        if callable(forget):
            forget(active.handle)

    def _finish_exited(self, active: _Active, returncode: int | None, now: float, *,
                       still_running: bool = False) -> None:
        """The worker exited (or, `still_running`, wrote its result and is exiting): finish the run from its
        result.json, or as a crash/oom."""
        if still_running:
            self._drain(active, now, after_s=self.exit_grace_s)
        else:
            self._release(active)
        active.progress.read_new()
        wall = max(0.0, now - active.started_at)
        out = self._outcome(active.run_dir, returncode, wall, len(active.devices))
        out.metrics = {"progress": active.progress.snapshot(), **out.metrics}
        out.cost.setdefault("tokens", active.progress.tokens)
        run = self._finish(active.run_id, out.state, now=now, score=out.score, metrics=out.metrics,
                           artifacts=out.artifacts, failure=out.failure, cost=out.cost, notify=False)
        if run is not None:
            self._retry(run, now)
            self._notify(run.id)

    def _outcome(self, run_dir: Path, returncode: int | None, wall_s: float | None, n_devices: int) -> Outcome:
        return read_outcome(run_dir, returncode=returncode, wall_s=wall_s, n_devices=n_devices,
                            log_tail=self.backend.logs(run_dir, _LOG_TAIL))

    # ------------------------------------------------------------------------------------------- finishing

    def _finish(self, run_id: str, state: State, *, now: float, score: float | None = None,
                metrics: dict[str, Any] | None = None, artifacts: dict[str, Any] | None = None,
                failure: Failure | None = None, cost: dict[str, Any] | None = None,
                notify: bool = True) -> Run | None:
        """Finish the run in the store (None if it was already finished by someone else)."""
        try:
            run = self.store.finish_run(run_id, state, score=score, metrics=metrics, artifacts=artifacts,
                                        failure=failure, cost=cost, now=now)
        except TreeStoreError as exc:
            log.warning("could not finish run %s as %s: %s", run_id, state.value, exc)
            return None
        if notify:
            self._notify(run_id)
        return run

    def _retry(self, run: Run, now: float) -> str | None:
        """Requeue a crashed / stale / server-restart run as a new WAITING run, within the retry budget."""
        if run.failure is None or run.failure.kind not in _RETRYABLE:
            return None
        restarts = int(run.job.get("restart_count", 0)) + 1
        counted = not run.failure.kind.is_infrastructure()
        if counted and run.attempt > self.settings.max_retry:
            log.info("run %s failed (%s) on attempt %d; retry budget spent", run.id, run.failure.kind.value,
                     run.attempt)
            return None
        if restarts > self.settings.max_retry + _MAX_FREE_RESTARTS:
            log.warning("run %s was restarted %d times; giving up", run.id, restarts - 1)
            return None
        old_dir = self._run_dir(run)
        try:
            spec = _read_spec(old_dir)
            new = self.store.retry_run(run.id, now=now)
        except (TreeStoreError, OSError, ValueError) as exc:
            log.warning("could not retry run %s: %s", run.id, exc)
            return None
        new_dir = (self.settings.runs_dir / new.id).resolve()
        spec = spec.model_copy(update={"run_id": new.id, "run_dir": new_dir})
        spec.write(new_dir / "spec.json")
        job: dict[str, Any] = {
            "backend": type(self.backend).__name__, "run_dir": str(new_dir), "status": "queued", "queued_at": now,
            "restart_count": restarts, "retry_of": run.id, "retry_reason": run.failure.kind.value,
            "resume_from_dir": str(old_dir), "timeout_s": float(run.job.get("timeout_s", self.settings.run_timeout_s))}
        self.store.set_run_job(new.id, job)
        self._queue[new.id] = _Queued(new.id, new_dir, job["timeout_s"])
        log.info("run %s (%s) retried as %s", run.id, run.failure.kind.value, new.id)
        return new.id

    def _notify(self, run_id: str) -> None:
        if self.on_finish is not None:
            self._callbacks.put(run_id)

    def _callback_loop(self) -> None:
        while True:
            run_id = self._callbacks.get()
            if run_id is None:
                return
            if self.on_finish is None:
                continue
            try:
                self.on_finish(self.store.get_run(run_id))
            except Exception:  # a caller's bug must never kill the job machinery
                log.exception("on_finish callback failed for run %s", run_id)

    # ------------------------------------------------------------------------------------------- reconcile

    def _reconcile_running(self, run: Run, now: float, report: ReconcileReport) -> None:
        job = run.job
        run_dir = self._run_dir(run)
        heartbeat_s = float(job.get("heartbeat_s", self.settings.heartbeat_s))
        if job.get("handle") and job.get("pid") and self.backend.attach(job):
            hb = last_sign_of_life(run_dir)
            started = float(job.get("launched_at", job.get("started_at", now)))
            fresh = (now - hb <= self._stale_grace(heartbeat_s)) if hb is not None else (now - started <= self.startup_grace_s)
            fresh = fresh or read_result(run_dir) is not None  # done, still exiting: the monitor finishes it
            active = _Active(run.id, run_dir, str(job["handle"]), started,
                             started + float(job.get("timeout_s", self.settings.run_timeout_s)), heartbeat_s,
                             list(job.get("devices") or []), ProgressReader(run_dir / "progress.jsonl"),
                             reattached=True, last_hb=hb)
            self._active[run.id] = active
            if fresh:
                report.reattached.append(run.id)
                log.info("re-attached run %s (pid %s)", run.id, job.get("pid"))
            else:
                age = "never" if hb is None else f"{now - hb:.1f} s ago"
                self._stop_active(active, State.FAIL, FailureKind.STALE,
                                  f"found alive after a server restart but its last heartbeat was {age}", now)
                report.failed.append(run.id)
            return
        if read_result(run_dir) is not None:  # it finished while nobody was watching
            out = self._outcome(run_dir, None, None, len(job.get("devices") or []))
            finished = self._finish(run.id, out.state, now=now, score=out.score, metrics=out.metrics,
                                    artifacts=out.artifacts, failure=out.failure, cost=out.cost, notify=False)
            if finished is not None:
                report.finished.append(run.id)
                if self._retry(finished, now):
                    report.retried.append(run.id)
                self._notify(run.id)
            return
        tail = "\n".join(self.backend.logs(run_dir, _LOG_TAIL))
        message = ("the server stopped while this run was active and its worker is gone" if job.get("pid") else
                   "the server stopped between claiming this run and starting its worker")
        finished = self._finish(run.id, State.FAIL, now=now, notify=False,
                                failure=Failure(FailureKind.SERVER_RESTART, message, tail))
        if finished is not None:
            report.failed.append(run.id)
            if self._retry(finished, now):
                report.retried.append(run.id)
            self._notify(run.id)

    def _stale_grace(self, heartbeat_s: float) -> float:
        """2 x the heartbeat interval (reliability J1), but never under `min_stale_grace_s`: a worker's heartbeat
        thread can be held up for a moment by a C extension that keeps the GIL (torch import, model load)."""
        return max(2.0 * heartbeat_s, self.min_stale_grace_s)

    def _run_dir(self, run: Run) -> Path:
        return Path(run.job.get("run_dir") or self.settings.runs_dir / run.id)


def _read_spec(run_dir: Path) -> RunSpec:
    from trex_mcp.execution.spec import RunSpec

    return RunSpec.read(run_dir / "spec.json")


def _warm_imports() -> None:
    """Import what `submit` needs ahead of the first call (from the monitor thread), so neither the first submit
    nor the server's start-up pays for it."""
    import trex_mcp.execution.models  # noqa: F401
    import trex_mcp.execution.spec  # noqa: F401
    import trex_mcp.recipes.config  # noqa: F401


def _preflight(spec: RunSpec) -> str | None:
    """Cheap checks that save starting a process for a spec that cannot work; the message names the cause."""
    from trex_mcp.execution.models import TINY_SIZES, is_tiny
    from trex_mcp.recipes.config import parse_train_config
    from trex_mcp.recipes.errors import RecipeError

    try:
        parse_train_config(spec.config)
    except RecipeError as exc:
        return f"invalid training config: {exc}"
    model = spec.base_model
    if is_tiny(model) and model.split(":", 1)[1] not in TINY_SIZES:
        known = ", ".join(f"tiny:{s}" for s in TINY_SIZES)
        return f"base_model: unknown tiny model {model!r}; use one of: {known}"
    if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        return f"base_model: local model folder {model!r} does not exist"
    if model.startswith("-"):
        return f"base_model: {model!r} must not start with '-'"
    if not Path(spec.dataset_file).is_file():
        return f"dataset_file: {str(spec.dataset_file)!r} does not exist; materialise the recipe first"
    if spec.warm_start_adapter is not None and not Path(spec.warm_start_adapter).is_dir():
        return f"warm_start_adapter: folder {str(spec.warm_start_adapter)!r} does not exist"
    return None
