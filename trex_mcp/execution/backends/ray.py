"""Run each training job as a Ray job on a cluster the operator already runs (the Ray Jobs API).

`RayBackend` implements the `Backend` protocol on top of `ray.job_submission.JobSubmissionClient`: `submit` is
`submit_job`, `poll` reads `get_job_info`, `cancel` is `stop_job`, `attach` asks the cluster about a stored
submission id, and `capacity`/`devices` come from the cluster's resources (Ray's state API). The entry point is
the same worker as on one machine; it runs inside a thin wrapper (this module run with `-m`) that copies its
output both to Ray's job log and to `<run_dir>/train.log`.

Guarantees:
- The run folder is shared: the server writes `spec.json` and reads `progress.jsonl`, `heartbeat`,
  `result.json` and `adapter/` from the same path the worker writes them to. On one machine that is trivially
  so; on several, the trex home must be mounted at the same path on the server and every Ray node. A worker
  that cannot see its run folder exits at once with a message saying so (visible through `logs`).
- Each job asks Ray for `cpus_per_run` CPUs and, on a GPU cluster, the GPUs the manager gave it; Ray sets
  CUDA_VISIBLE_DEVICES. `capacity` is (cluster GPUs // gpus_per_run) on a GPU cluster, else the configured CPU
  slots (default 1), both capped by what the cluster can actually run at once, so the manager never queues
  more concurrent runs on Ray than the cluster holds.
- `poll` never blocks: a background thread refreshes job states over HTTP, and every HTTP call made by a
  caller (`submit`, `cancel`, `attach`, `capacity`, a log fallback) is bounded by `request_timeout_s`.
  A cluster that does not answer reads as "still alive": the manager's heartbeat check (the heartbeat file is
  in the shared run folder) is what fails a run whose cluster disappeared.
- `cancel` asks Ray to stop the job: Ray sends SIGTERM to the entry point and every process under it, then
  SIGKILL after `stop_grace_s` (fixed per job at submission through RAY_JOB_STOP_WAIT_TIME_S; the manager's
  `grace_s` argument cannot change it later).
- Environment: the job gets only the variables passed by the manager (minus CUDA_VISIBLE_DEVICES, which Ray
  owns) and a short allow-list of non-secret offline/tokenizer switches from the server. Nothing that looks
  like a secret is sent: runtime_env is visible in the Ray dashboard. HF_TOKEN, if needed, must be set on the
  cluster nodes themselves.
- `attach` re-adopts a job only if the stored submission id is PENDING or RUNNING on the same cluster address
  and its entry point names the same spec file.

Not covered: run folders on object stores (s3:// and the like), per-node path mapping, clusters whose GPU count
changes after the first submission (the manager asks for capacity once), and Ray Client (ray://) addresses.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

from trex_mcp.execution.backends.base import BackendError, JobInfo, ProcessStatus
from trex_mcp.execution.backends.local import LOG_NAME, redact, scrub_env, tail_lines

if TYPE_CHECKING:
    from trex_mcp.settings import Settings

__all__ = ["DEFAULT_ADDRESS", "RayBackend", "normalise_address"]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
_INSTALL_HINT = "install Ray on the server: pip install 'trex-mcp[ray]' (or pip install 'ray[default]>=2.40')"
_PENDING, _RUNNING = "PENDING", "RUNNING"
_ALIVE = frozenset({_PENDING, _RUNNING})
# Non-secret switches worth forwarding from the server to the job (offline mode, tokenizer threads, verbosity).
_FORWARD_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
                "TOKENIZERS_PARALLELISM", "TRANSFORMERS_VERBOSITY", "DO_NOT_TRACK")
_SAFE_ID = re.compile(r"[^A-Za-z0-9_-]+")
_T = TypeVar("_T")


def normalise_address(address: str | None) -> str:
    """The dashboard URL of a Ray cluster: `address`, else $RAY_ADDRESS, else http://127.0.0.1:8265.

    `host:port` gets `http://`. Raises `BackendError` for a Ray Client address (`ray://`), which the job API
    does not speak.
    """
    value = (address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS).strip()
    if value.startswith("ray://"):
        raise BackendError(f"ray_address {value!r} is a Ray Client address; the job API needs the dashboard address",
                           field="ray_address", hint="use http://<head-node>:8265")
    if "://" not in value:
        value = f"http://{value}"
    return value.rstrip("/")


def _bounded(fn: Callable[[], _T], timeout_s: float, what: str) -> _T:
    """`fn()` in a daemon thread, waiting at most `timeout_s`. Raises `TimeoutError` (the thread is left to finish
    on its own), or whatever `fn` raised. The Ray SDK's HTTP calls have no timeout of their own."""
    box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)

    def target() -> None:
        try:
            box.put((True, fn()))
        except BaseException as exc:  # handed to the caller, re-raised there
            box.put((False, exc))

    threading.Thread(target=target, name=f"trex-ray-{what}", daemon=True).start()
    try:
        ok, value = box.get(timeout=timeout_s)
    except queue.Empty:
        raise TimeoutError(f"{what} did not answer within {timeout_s:g} s") from None
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


_SDK_LOCK = threading.Lock()
_SDK: Any = None


def _ray_sdk() -> Any:
    """The two Ray entry points used here (`JobSubmissionClient`, `list_nodes`), imported once under a lock: Ray's
    package imports are circular, and two threads importing parts of it at once can fail half-way."""
    global _SDK
    with _SDK_LOCK:
        if _SDK is None:
            try:
                from ray.job_submission import JobSubmissionClient
                from ray.util.state import list_nodes
            except ImportError as exc:
                raise BackendError("executor 'ray' needs Ray's job SDK and state API, which are not installed",
                                   field="executor", hint=_INSTALL_HINT) from exc
            _SDK = SimpleNamespace(JobSubmissionClient=JobSubmissionClient, list_nodes=list_nodes)
        return _SDK


@dataclass
class _Job:
    run_dir: Path
    status: str | None = None  # None until the first refresh
    returncode: int | None = None
    message: str = ""
    terminal: bool = False


def _returncode(status: str, exit_code: Any) -> int | None:
    """Ray's state and driver exit code as a `subprocess`-style return code (negative = signal number)."""
    if isinstance(exit_code, int) and not isinstance(exit_code, bool):
        return -(exit_code - 128) if 128 < exit_code < 160 else exit_code  # the wrapper's shell convention
    if status == "SUCCEEDED":
        return 0
    if status == "STOPPED":
        return -signal.SIGTERM
    return None


class RayBackend:
    """Runs workers as Ray jobs on the cluster at `address` (its dashboard URL). See the module docstring.

    `capacity`: CPU slots when the cluster has no GPUs (default 1), and an upper bound on GPU slots.
    `gpus_per_run` GPUs and `cpus_per_run` CPUs are requested per job. `python` replaces the interpreter of the
    worker command (default: the server's own, right when the cluster runs the same environment).
    `client` injects a ready JobSubmissionClient (tests); otherwise one is made on first use. `resources` fixes
    the cluster's totals ({"CPU": n, "GPU": m}) instead of asking Ray's state API.
    """

    def __init__(self, address: str | None = None, *, capacity: int | None = None, gpus_per_run: int = 1,
                 cpus_per_run: float = 1.0, stop_grace_s: float = 10.0, python: str | None = None,
                 request_timeout_s: float = 30.0, refresh_s: float = 0.5, client: Any = None,
                 resources: dict[str, float] | None = None) -> None:
        if gpus_per_run < 1:
            raise BackendError("gpus_per_run must be at least 1", field="gpus_per_run")
        if cpus_per_run < 0:
            raise BackendError("cpus_per_run must not be negative", field="cpus_per_run")
        if python is not None and (not python or python.startswith("-")):
            raise BackendError(f"python {python!r} must be an interpreter path", field="python")
        self.address = normalise_address(address)
        self.gpus_per_run = gpus_per_run
        self.cpus_per_run = cpus_per_run
        self.stop_grace_s = stop_grace_s
        self.python = python
        self.request_timeout_s = request_timeout_s
        self.refresh_s = refresh_s
        self._configured_capacity = capacity
        self._client = client
        self._resources: dict[str, float] | None = dict(resources) if resources is not None else None
        self._jobs: dict[str, _Job] = {}
        self._by_dir: dict[Path, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._last_error_log = -math.inf
        self._probe_failed_at = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> RayBackend:
        """The backend for `Settings(executor="ray", ray_address=..., capacity=...)`. Raises `BackendError` when
        Ray is not installed (checked without importing it)."""
        import importlib.util

        if kwargs.get("client") is None and importlib.util.find_spec("ray") is None:
            raise BackendError("executor 'ray' needs Ray, which is not installed", field="executor",
                               hint=_INSTALL_HINT)
        return cls(settings.ray_address, capacity=settings.capacity, **kwargs)

    # -- the cluster -------------------------------------------------------------------------------------

    def client(self) -> Any:
        """The JobSubmissionClient (created on first use; creating it checks the connection)."""
        with self._lock:
            if self._client is not None:
                return self._client
        sdk = _ray_sdk()
        try:
            made = _bounded(lambda: sdk.JobSubmissionClient(self.address), self.request_timeout_s, "connect")
        except (TimeoutError, ConnectionError, RuntimeError, OSError) as exc:
            raise BackendError(f"cannot reach the Ray cluster at {self.address}: {exc}", field="ray_address",
                               hint="start the head with --dashboard-host and --dashboard-port, and pass its "
                               "dashboard URL (http://<head>:8265)") from exc
        with self._lock:
            if self._client is None:
                self._client = made
            return self._client

    def _cluster_resources(self, *, retry: bool = False) -> dict[str, float] | None:
        """Total resources of the alive nodes (cached after the first answer); None when the cluster is
        unreachable (not cached: a later call asks again, at once with `retry`, else after request_timeout_s)."""
        if self._resources is not None:
            return self._resources
        if not retry and time.monotonic() - self._probe_failed_at < self.request_timeout_s:
            return None  # asked moments ago and got no answer: do not hold the manager up again
        sdk = _ray_sdk()
        try:
            nodes = _bounded(lambda: sdk.list_nodes(address=self.address, filters=[("state", "=", "ALIVE")],
                                                detail=True, timeout=int(max(1, self.request_timeout_s)),
                                                raise_on_missing_output=False),
                             self.request_timeout_s + 1, "list-nodes")
        except Exception as exc:  # any failure of the state API means "unknown", never a crash of the manager
            log.warning("cannot read the resources of the Ray cluster at %s: %s", self.address, exc)
            self._probe_failed_at = time.monotonic()
            return None
        total: dict[str, float] = {}
        for node in nodes:
            resources = getattr(node, "resources_total", None) or {}
            for key in ("CPU", "GPU"):
                total[key] = total.get(key, 0.0) + float(resources.get(key, 0.0))
        if total.get("CPU", 0.0) <= 0 and total.get("GPU", 0.0) <= 0:
            return None  # a head that has not reported its resources yet: ask again next time
        self._resources = total
        return total

    def devices(self) -> list[str]:
        """One placeholder id per cluster GPU ("ray-gpu-<i>"), so the manager's slot accounting counts GPUs;
        [] on a CPU cluster. Ray, not the manager, picks the physical devices."""
        resources = self._cluster_resources() or {}
        return [f"ray-gpu-{i}" for i in range(int(resources.get("GPU", 0.0)))]

    def capacity(self) -> int:
        """Runs the cluster can hold at once (see the module docstring); the configured value (or 1) when the
        cluster cannot be asked."""
        resources = self._cluster_resources(retry=True)  # asked once per manager: always really ask
        configured = self._configured_capacity
        if resources is None:
            return configured or 1
        cpu_slots = int(resources.get("CPU", 0.0) // self.cpus_per_run) if self.cpus_per_run > 0 else 64
        gpus = int(resources.get("GPU", 0.0))
        if gpus >= self.gpus_per_run:
            slots = gpus // self.gpus_per_run
            if configured is not None and configured > slots:
                log.warning("capacity %d exceeds the cluster's %d GPU slot(s); using %d", configured, slots, slots)
            slots = min(slots, configured or slots)
        else:
            slots = configured or 1
        if cpu_slots < slots:
            log.warning("the Ray cluster has CPUs for %d run(s) at %g CPU each; capacity lowered to that",
                        cpu_slots, self.cpus_per_run)
        return max(1, min(slots, cpu_slots))

    # -- lifecycle ---------------------------------------------------------------------------------------

    def submit(self, run_id: str, argv: list[str], run_dir: Path, env: dict[str, str]) -> JobInfo:
        """Submit the worker as a Ray job; see `Backend.submit`. Raises `BackendError` when the cluster refuses
        or cannot be reached."""
        if not argv or not all(isinstance(a, str) and a and "\x00" not in a for a in argv):
            raise BackendError("argv must be a non-empty list of non-empty strings without NUL bytes", field="argv")
        run_dir = run_dir.resolve()
        if str(run_dir).startswith("-"):
            raise BackendError(f"run folder {str(run_dir)!r} must not start with '-'", field="run_dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = [self.python or argv[0], *argv[1:]]
        gpus = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        env_vars = {k: os.environ[k] for k in _FORWARD_ENV if k in os.environ}
        env_vars.update({k: v for k, v in env.items() if k != "CUDA_VISIBLE_DEVICES"})
        env_vars = {k: v for k, v in scrub_env(env_vars).items() if k != "HF_TOKEN"}
        env_vars.update({"PYTHONUNBUFFERED": "1", "RAY_JOB_STOP_WAIT_TIME_S": str(math.ceil(self.stop_grace_s))})
        entrypoint = shlex.join([argv[0], "-m", __name__, "--run-dir", str(run_dir), "--", *argv])
        submission_id = f"trex-{_SAFE_ID.sub('_', run_id)[:80]}-{uuid.uuid4().hex[:12]}"
        options: dict[str, Any] = {
            "entrypoint": entrypoint, "submission_id": submission_id, "runtime_env": {"env_vars": env_vars},
            "metadata": {"trex_run_id": run_id, "trex_run_dir": str(run_dir)},
            "entrypoint_num_cpus": self.cpus_per_run}
        if gpus:
            options["entrypoint_num_gpus"] = len(gpus)
        client = self.client()
        try:
            _bounded(lambda: client.submit_job(**options), self.request_timeout_s, "submit")
        except TimeoutError as exc:
            self._stop_quietly(submission_id)  # it may have been accepted after all: never leave it running
            raise BackendError(f"the Ray cluster at {self.address} did not accept run {run_id} in time: {exc}",
                               hint="check the cluster's dashboard") from exc
        except (RuntimeError, ValueError, OSError) as exc:
            raise BackendError(f"the Ray cluster at {self.address} refused run {run_id}: {exc}",
                               hint="check the cluster's resources and the job's runtime_env") from exc
        started_at = time.time()
        self._track(submission_id, run_dir)
        identity: dict[str, Any] = {"executor": "ray", "host": f"ray:{self.address}", "ray_address": self.address,
                                    "submission_id": submission_id, "cmd_marker": argv[-1],
                                    "ray_gpus": len(gpus), "ray_cpus": self.cpus_per_run}
        # Not a local process: pid/pgid are -1, which the local backend's attach never matches and which no
        # signal call can turn into "every process" (killpg(-1) is EINVAL).
        return JobInfo(handle=submission_id, pid=-1, pgid=-1, started_at=started_at, identity=identity)

    def poll(self, handle: str) -> ProcessStatus:
        """See `Backend.poll`: the latest state the refresher saw (alive until the cluster says otherwise)."""
        with self._lock:
            job = self._jobs.get(handle)
        if job is None:
            return ProcessStatus(alive=False)
        if job.status is None or job.status in _ALIVE:
            return ProcessStatus(alive=True)
        return ProcessStatus(alive=False, returncode=job.returncode)

    def cancel(self, handle: str, grace_s: float) -> None:
        """`stop_job`: Ray sends SIGTERM now and SIGKILL after `stop_grace_s` (`grace_s` is ignored; see the
        module docstring). Unknown or finished jobs are left alone."""
        with self._lock:
            job = self._jobs.get(handle)
        if job is None or job.terminal:
            return
        try:
            _bounded(lambda: self.client().stop_job(handle), self.request_timeout_s, "stop")
        except (TimeoutError, BackendError, RuntimeError, OSError) as exc:
            log.warning("could not stop Ray job %s: %s", handle, exc)
        self._wake.set()

    def forget(self, handle: str) -> None:
        """Drop a finished job's bookkeeping."""
        with self._lock:
            job = self._jobs.pop(handle, None)
            if job is not None and self._by_dir.get(job.run_dir) == handle:
                del self._by_dir[job.run_dir]

    def logs(self, run_dir: Path, lines: int = 50) -> list[str]:
        """The last `lines` lines of `<run_dir>/train.log` (the wrapper writes it), secrets redacted. When that
        file is missing (the job never started, or this machine does not share the run folder), Ray's own job
        log is asked instead; a failed job's reason from Ray is added as the last line."""
        found = tail_lines(run_dir / LOG_NAME, lines)
        with self._lock:
            handle = self._by_dir.get(run_dir.resolve())
            job = self._jobs.get(handle) if handle else None
        if handle is not None and not found:
            try:
                text = _bounded(lambda: str(self.client().get_job_logs(handle)), self.request_timeout_s, "logs")
                found = text.splitlines()[-lines:]
            except (TimeoutError, BackendError, RuntimeError, OSError) as exc:
                found = [f"[ray] could not read the log of job {handle}: {exc}"]
        if job is not None and job.terminal and job.status != "SUCCEEDED" and job.message:
            found = [*found, f"[ray] job {handle} {job.status}: {job.message.splitlines()[0]}"][-lines:]
        return [redact(line) for line in found]

    def attach(self, job: dict[str, Any]) -> bool:
        """See `Backend.attach`: the stored submission id must be PENDING or RUNNING on this cluster, with an
        entry point naming the same spec file."""
        if job.get("executor") != "ray" or not job.get("handle"):
            return False
        handle = str(job["handle"])
        if job.get("ray_address") not in (None, self.address):
            log.info("job %s ran on %s, not on %s; not re-attaching it", handle, job.get("ray_address"),
                     self.address)
            return False
        try:
            info = _bounded(lambda: self.client().get_job_info(handle), self.request_timeout_s, "attach")
        except (TimeoutError, BackendError, RuntimeError, OSError) as exc:
            log.warning("cannot ask the Ray cluster about job %s: %s", handle, exc)
            return False
        status = _status_name(getattr(info, "status", None))
        marker = str(job.get("cmd_marker") or "")
        entrypoint = str(getattr(info, "entrypoint", ""))
        if status not in _ALIVE or (marker and marker not in entrypoint and shlex.quote(marker) not in entrypoint):
            return False
        run_dir = Path(str(job.get("run_dir") or (getattr(info, "metadata", None) or {}).get("trex_run_dir", "")))
        self._track(handle, run_dir, status=status)
        return True

    def prewarm(self) -> None:
        """Import the Ray SDK, connect and read the cluster's resources in a background thread (never blocks), so
        the first submission does not wait for them (about 2-6 s on a loaded machine)."""
        def warm() -> None:
            try:
                self.client()
                self._cluster_resources()
            except Exception as exc:  # the first real call reports the problem to the caller
                log.info("could not prepare the Ray backend in advance: %s", exc)

        threading.Thread(target=warm, name="trex-ray-prewarm", daemon=True).start()

    def close(self) -> None:
        """Stop the refresher thread (jobs keep running on the cluster)."""
        self._stop.set()
        self._wake.set()

    # -- status refresh ----------------------------------------------------------------------------------

    def _track(self, handle: str, run_dir: Path, *, status: str | None = None) -> None:
        with self._lock:
            self._jobs[handle] = _Job(run_dir.resolve(), status=status)
            self._by_dir[run_dir.resolve()] = handle
            if self._refresher is None or not self._refresher.is_alive():
                self._stop.clear()
                self._refresher = threading.Thread(target=self._refresh_loop, name="trex-ray-refresh", daemon=True)
                self._refresher.start()
        self._wake.set()

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.refresh_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                handles = [h for h, j in self._jobs.items() if not j.terminal]
            for handle in handles:
                self._refresh(handle)

    def _refresh(self, handle: str) -> None:
        try:
            info = _bounded(lambda: self.client().get_job_info(handle), self.request_timeout_s, "status")
        except Exception as exc:  # unreachable or unknown: keep the last state (see the module docstring)
            text = str(exc)
            gone = isinstance(exc, RuntimeError) and ("status code 404" in text or "does not exist" in text)
            if gone:
                status, code, message = "LOST", None, f"the cluster no longer knows job {handle}"
            else:
                now = time.monotonic()
                if now - self._last_error_log > 60:
                    self._last_error_log = now
                    log.warning("cannot read the state of Ray job %s: %s", handle, exc)
                return
        else:
            status = _status_name(getattr(info, "status", None)) or "PENDING"
            code = getattr(info, "driver_exit_code", None)
            message = str(getattr(info, "message", "") or "")
        with self._lock:
            job = self._jobs.get(handle)
            if job is None:
                return
            job.status, job.message = status, message
            job.terminal = status not in _ALIVE
            job.returncode = _returncode(status, code) if job.terminal else None
        if job.terminal:
            log.info("Ray job %s is %s (exit code %s): %s", handle, status, code, message[:200])

    def _stop_quietly(self, submission_id: str) -> None:
        def stop() -> None:
            with contextlib.suppress(Exception):
                self.client().stop_job(submission_id)

        threading.Thread(target=stop, name="trex-ray-stop", daemon=True).start()


def _status_name(status: Any) -> str | None:
    if status is None:
        return None
    return str(getattr(status, "value", status))


# --------------------------------------------------------------------------------------- job entry point


def _entry(args: list[str]) -> int:
    """The wrapper Ray runs: `python -m trex_mcp.execution.backends.ray --run-dir DIR -- <worker argv>`.

    Runs the worker in DIR with its output appended to DIR/train.log and copied to stdout (Ray's job log), and
    exits with the worker's code (128 + N when signal N killed it). SIGTERM/SIGINT do not stop the wrapper: Ray
    signals the worker directly, and the wrapper keeps copying its last words until it exits.
    """
    parser = argparse.ArgumentParser(prog="trex-ray-entry")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    ns = parser.parse_args(args)
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    if not argv:
        print("trex ray entry: no worker command given", file=sys.stderr)
        return 2
    if not ns.run_dir.is_dir():
        print(f"trex ray entry: the run folder {ns.run_dir} does not exist on node {os.uname().nodename}; the trex "
              "home must be on a filesystem shared by the server and every Ray node, mounted at the same path",
              file=sys.stderr, flush=True)
        return 3
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)  # a handler, not SIG_IGN: the worker must not inherit it
    out = sys.stdout.buffer
    with (ns.run_dir / LOG_NAME).open("ab") as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=ns.run_dir, close_fds=True)
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 65536):
            log_file.write(chunk)
            log_file.flush()
            with contextlib.suppress(OSError):
                out.write(chunk)
                out.flush()
        code = proc.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(_entry(sys.argv[1:]))
