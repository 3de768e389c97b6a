"""Run each training job as a local subprocess in its own process group.

Guarantees:
- argv lists only, never a shell; the child's stdin is /dev/null and its stdout+stderr go to
  `<run_dir>/train.log` (never to the server's stdout, which may be the MCP wire).
- Each job is the leader of a new session and process group (`start_new_session=True`), so it survives the
  server (re-attached on the next start) and `cancel` reaches every process it spawned: SIGTERM to the group,
  SIGKILL after the grace period, and leftovers of a group whose leader exited are SIGKILLed on the next poll.
- The child environment is the server's minus anything that looks like a secret (`*_TOKEN`, `*_KEY`,
  `*SECRET*`, passwords, credentials...). `HF_TOKEN` is kept only when the server has it. Log tails returned
  by `logs` have secret values redacted.
- `attach` re-adopts a process only when pid, process group, kernel start time, boot id and command line all
  match what was recorded at launch (Linux /proc); elsewhere it falls back to pid + process group.

Not covered: resource limits (memory, CPU) per job, and jobs on other machines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trex_mcp.execution.backends.base import BackendError, JobInfo, ProcessStatus
from trex_mcp.execution.backends.warm import DEFAULT_PRELOAD, WarmSpare

__all__ = ["LocalBackend", "detect_devices", "launch_argv", "redact", "scrub_env", "tail_lines"]

log = logging.getLogger(__name__)

LOG_NAME = "train.log"
_KEEP_SECRETS = frozenset({"HF_TOKEN"})
_SECRET_SEGMENTS = frozenset({"TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PAT", "KEY", "APIKEY",
                              "CREDENTIAL", "CREDENTIALS", "AUTH", "COOKIE", "PRIVATE", "SESSION", "SIGNATURE"})
_SECRET_SUFFIXES = ("TOKEN", "SECRET", "PASSWORD", "APIKEY", "_KEY")
_PROC = Path("/proc")


def _is_secret_name(name: str) -> bool:
    upper = name.upper()
    if upper in _KEEP_SECRETS:
        return False
    segments = [s for s in re.split(r"[^A-Z0-9]+", upper) if s]
    return any(s in _SECRET_SEGMENTS for s in segments) or upper.endswith(_SECRET_SUFFIXES)


def scrub_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `environ` (default: the server's) without secret-looking variables; HF_TOKEN is kept."""
    source = dict(os.environ if environ is None else environ)
    return {k: v for k, v in source.items() if not _is_secret_name(k)}


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """`text` with the value of every secret-looking variable of the server (HF_TOKEN included) masked."""
    source = os.environ if environ is None else environ
    for name, value in source.items():
        if len(value) >= 6 and (name.upper() in _KEEP_SECRETS or _is_secret_name(name)) and value in text:
            text = text.replace(value, "***")
    return text


def tail_lines(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a text file (reads from the end; missing file -> [])."""
    if lines <= 0:
        return []
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            block, data = 8192, b""
            while end > 0 and data.count(b"\n") <= lines:
                step = min(block, end)
                end -= step
                fh.seek(end)
                data = fh.read(step) + data
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def detect_devices(environ: dict[str, str] | None = None) -> list[str]:
    """Visible accelerator ids without importing torch: CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`.

    Returns the ids to put in a child's CUDA_VISIBLE_DEVICES (indices, or the UUIDs the operator gave);
    [] on a CPU machine.
    """
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        # CUDA stops at the first invalid entry, "-1" being the customary way to hide all devices.
        valid: list[str] = []
        for part in ids:
            if part.startswith("-"):
                break
            valid.append(part)
        return valid
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    count = sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    return [str(i) for i in range(count)]


def launch_argv(worker_argv: list[str], spec_path: Path, num_devices: int) -> list[str]:
    """The argv that runs the worker on `spec_path`: the plain worker for 0-1 devices, `accelerate launch`
    (one process per device) for more. Raises `BackendError` if the spec path could read as an option."""
    arg = str(spec_path)
    if arg.startswith("-") or "\x00" in arg:
        raise BackendError(f"spec path {arg!r} must not start with '-' or contain NUL", field="run_dir")
    if num_devices <= 1:
        return [*worker_argv, arg]
    python, rest = worker_argv[0], worker_argv[1:]
    return [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1",
            "--num_processes", str(num_devices), *rest, arg]


def _boot_id() -> str | None:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgrp, start ticks) of a live pid from /proc, or None."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    try:
        return fields[0], int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _proc_cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace")
    except OSError:
        return ""


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class _Job:
    pid: int
    pgid: int
    identity: dict[str, Any]
    proc: subprocess.Popen[bytes] | None  # None when re-attached (not our child)
    leftovers_killed: bool = False


class LocalBackend:
    """Subprocess backend for one machine. `capacity` is the operator's setting (Settings.capacity);
    `devices` overrides accelerator detection (tests); `gpus_per_run` > 1 launches through accelerate.

    `warm_module` (e.g. "trex_mcp.execution.worker") keeps one spare process with the heavy libraries imported
    (see `warm.py`) and hands it the next CPU job whose argv is `[python, "-m", warm_module, arg]`, which saves
    the 5-15 s import of torch/transformers/TRL per run. Off by default (the spare holds memory while idle).
    """

    def __init__(self, *, capacity: int | None = None, devices: list[str] | None = None,
                 gpus_per_run: int = 1, warm_module: str | None = None,
                 preload: tuple[str, ...] = DEFAULT_PRELOAD) -> None:
        if gpus_per_run < 1:
            raise BackendError("gpus_per_run must be at least 1", field="gpus_per_run")
        self._configured_capacity = capacity
        self._devices = list(devices) if devices is not None else None
        self.gpus_per_run = gpus_per_run
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._boot_id = _boot_id()
        self.warm_module = warm_module
        self._spare = WarmSpare(preload) if warm_module else None

    # -- capacity ----------------------------------------------------------------------------------------

    def devices(self) -> list[str]:
        """Visible accelerator ids, detected once on first use (never at import)."""
        if self._devices is None:
            self._devices = detect_devices()
        return list(self._devices)

    def capacity(self) -> int:
        """Visible GPUs / gpus_per_run (never oversubscribed, capped by the setting), else the setting or 1."""
        devices = self.devices()
        if devices:
            slots = max(1, len(devices) // self.gpus_per_run)
            if self._configured_capacity is not None and self._configured_capacity > slots:
                log.warning("capacity %d exceeds %d GPU slot(s); using %d", self._configured_capacity, slots,
                            slots)
            return min(slots, self._configured_capacity or slots)
        return self._configured_capacity or 1

    # -- lifecycle ---------------------------------------------------------------------------------------

    @staticmethod
    def _base_env() -> dict[str, str]:
        return {**scrub_env(), "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}

    def prewarm(self) -> None:
        """Start the spare process now (no-op without `warm_module`)."""
        if self._spare is not None:
            self._spare.spawn(self._base_env())

    def warm_ready(self, timeout_s: float = 0.0) -> bool:
        """True when a spare with its imports done is waiting for the next job (waits up to `timeout_s`)."""
        return self._spare is not None and self._spare.ready(timeout_s)

    def close(self) -> None:
        """Stop the spare process, if any. Jobs are left running."""
        if self._spare is not None:
            self._spare.close()

    def _take_spare(self, argv: list[str], run_dir: Path, env: dict[str, str]
                    ) -> tuple[subprocess.Popen[bytes], str] | None:
        spare = self._spare
        if (spare is None or "CUDA_VISIBLE_DEVICES" in env or len(argv) < 3 or argv[0] != sys.executable
                or argv[1] != "-m" or argv[2] != self.warm_module):
            return None
        taken = spare.take(argv[2], argv[3:], run_dir, run_dir / LOG_NAME, env)
        spare.spawn(self._base_env())  # ready for the next job while this one runs
        return taken

    def submit(self, run_id: str, argv: list[str], run_dir: Path, env: dict[str, str]) -> JobInfo:
        """Start the job; see `Backend.submit`."""
        if not argv or not all(isinstance(a, str) and "\x00" not in a for a in argv):
            raise BackendError("argv must be a non-empty list of strings without NUL bytes", field="argv")
        run_dir.mkdir(parents=True, exist_ok=True)
        taken = self._take_spare(argv, run_dir, env)
        if taken is not None:
            proc, marker = taken
        else:
            marker = argv[-1]
            try:
                with (run_dir / LOG_NAME).open("ab") as log_fh:
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fh,
                                            stderr=subprocess.STDOUT, cwd=run_dir, env={**self._base_env(), **env},
                                            start_new_session=True, close_fds=True)
            except OSError as exc:
                raise BackendError(f"could not start the worker for run {run_id}: {exc.strerror or exc}",
                                   hint="check the worker command and the run folder") from exc
        started_at = time.time()
        identity: dict[str, Any] = {"host": os.uname().nodename, "boot_id": self._boot_id, "cmd_marker": marker,
                                    "warm": taken is not None}
        stat = _proc_stat(proc.pid)
        if stat is not None:
            identity["start_ticks"] = stat[2]
        handle = f"local-{uuid.uuid4().hex}"
        with self._lock:
            self._jobs[handle] = _Job(proc.pid, proc.pid, identity, proc)
        return JobInfo(handle=handle, pid=proc.pid, pgid=proc.pid, started_at=started_at, identity=identity)

    def _same_process(self, job: _Job) -> bool:
        """True while the recorded leader is alive and is the very process that was launched."""
        if sys.platform.startswith("linux") and _PROC.exists():
            stat = _proc_stat(job.pid)
            if stat is None or stat[0] in ("Z", "X", "x"):
                return False
            if stat[1] != job.pgid:
                return False
            ticks = job.identity.get("start_ticks")
            return ticks is None or ticks == stat[2]
        try:
            os.kill(job.pid, 0)
            return os.getpgid(job.pid) == job.pgid
        except (ProcessLookupError, PermissionError):
            return False

    def poll(self, handle: str) -> ProcessStatus:
        """See `Backend.poll`. When the leader has exited, leftover processes of its group are SIGKILLed."""
        with self._lock:
            job = self._jobs.get(handle)
        if job is None:
            return ProcessStatus(alive=False)
        if job.proc is not None:
            rc = job.proc.poll()
            alive = rc is None
        else:
            rc, alive = None, self._same_process(job)
        if not alive and not job.leftovers_killed:
            job.leftovers_killed = True
            if _group_exists(job.pgid):
                log.info("killing leftover processes of job %s (group %d)", handle, job.pgid)
                _signal_group(job.pgid, signal.SIGKILL)
        return ProcessStatus(alive=alive, returncode=rc)

    def cancel(self, handle: str, grace_s: float) -> None:
        """SIGTERM to the process group now; SIGKILL after `grace_s` (from a timer thread) if still alive."""
        with self._lock:
            job = self._jobs.get(handle)
        if job is None:
            return
        if job.proc is not None and job.proc.poll() is not None:
            self.poll(handle)  # already exited: just clean up leftovers
            return
        if job.proc is None and not self._same_process(job):
            return  # the recorded pid no longer belongs to our job: never signal a stranger
        _signal_group(job.pgid, signal.SIGTERM)
        timer = threading.Timer(max(0.0, grace_s), self.kill, args=(handle,))
        timer.daemon = True
        timer.start()

    def kill(self, handle: str) -> None:
        """SIGKILL the job's process group now (no-op when it is gone)."""
        with self._lock:
            job = self._jobs.get(handle)
        if job is None:
            return
        leader_alive = job.proc.poll() is None if job.proc is not None else self._same_process(job)
        if leader_alive or _group_exists(job.pgid):
            _signal_group(job.pgid, signal.SIGKILL)
        if job.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.proc.wait(timeout=1.0)

    def forget(self, handle: str) -> None:
        """Drop a finished job's bookkeeping."""
        with self._lock:
            self._jobs.pop(handle, None)

    def logs(self, run_dir: Path, lines: int = 50) -> list[str]:
        """The last `lines` lines of `<run_dir>/train.log`, secrets redacted."""
        return [redact(line) for line in tail_lines(run_dir / LOG_NAME, lines)]

    def attach(self, job: dict[str, Any]) -> bool:
        """See `Backend.attach`: pid, group, start ticks, boot id and command line must all match."""
        try:
            handle, pid, pgid = str(job["handle"]), int(job["pid"]), int(job["pgid"])
        except (KeyError, TypeError, ValueError):
            return False
        identity: dict[str, Any] = {k: job.get(k) for k in ("host", "boot_id", "cmd_marker", "start_ticks") if k in job}
        if identity.get("host") not in (None, os.uname().nodename):
            return False
        if identity.get("boot_id") not in (None, self._boot_id):
            return False
        candidate = _Job(pid, pgid, identity, None)
        if not self._same_process(candidate):
            return False
        marker = identity.get("cmd_marker")
        if marker and _PROC.exists() and str(marker) not in _proc_cmdline(pid):
            return False
        with self._lock:
            self._jobs[handle] = candidate
        return True
