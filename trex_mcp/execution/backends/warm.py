"""A spare worker process with the heavy libraries already imported, handed the next CPU job.

Importing torch, transformers and TRL takes 5-15 s on a CPU machine, which dwarfs a `tiny:` training run. A
`WarmSpare` starts a Python process in its own session that imports those modules and then blocks on its
stdin. `handoff` writes one JSON line (module, args, log file, working folder, extra environment) to it; the
spare redirects its stdout/stderr to the log, changes folder, updates its environment and runs the module as
`__main__`, exactly as `python -m <module> <args>` would. The spare then *is* the job: same pid, same process
group, killed and re-attached like any other.

What it does not cover: GPU jobs. A process that imported torch may already have initialised CUDA, after which a
new CUDA_VISIBLE_DEVICES is ignored, so jobs that need device pinning always start cold. A spare whose parent
dies reads EOF on stdin and exits.
"""

from __future__ import annotations

import contextlib
import json
import select
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_PRELOAD", "WarmSpare"]

DEFAULT_PRELOAD = ("torch", "transformers", "trl.trainer.sft_trainer", "trl.trainer.dpo_trainer", "peft", "datasets",
                   "trex_mcp.execution.worker", "trex_mcp.evaluation", "ftbench.registry")

# argv: python -c BOOT <marker> <comma-separated modules>. The marker makes the process identifiable in
# /proc/<pid>/cmdline (attach after a restart checks it).
_BOOT = r"""
import json, os, runpy, sys, threading
# Import at idle CPU priority so a spare never slows the job that is training next to it; the job's arrival
# restores normal priority at once (an unprivileged process may go back from SCHED_IDLE to SCHED_OTHER).
_main_tid = threading.get_native_id()
def _priority(policy):
    try:
        os.sched_setscheduler(_main_tid, policy, os.sched_param(0))
    except (AttributeError, OSError):
        pass
_priority(getattr(os, "SCHED_IDLE", -1))
_box = []
_arrived = threading.Event()
def _read():
    _box.append(sys.stdin.readline())
    _priority(getattr(os, "SCHED_OTHER", -1))
    _arrived.set()
threading.Thread(target=_read, daemon=True).start()
for _name in filter(None, sys.argv[2].split(",")):
    if _arrived.is_set():
        break  # the job is waiting: it imports what it still needs itself
    try:
        __import__(_name)
    except Exception:
        pass
else:
    os.write(1, b"ready\n")  # tells the parent (WarmSpare.ready) that the imports are done
_arrived.wait()
_priority(getattr(os, "SCHED_OTHER", -1))
if not _box[0]:
    sys.exit(0)
_job = json.loads(_box[0])
sys.stdout.flush(); sys.stderr.flush()
_fd = os.open(_job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(_fd, 1); os.dup2(_fd, 2); os.close(_fd)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0); os.close(_null)
os.chdir(_job["cwd"])
os.environ.update(_job["env"])
sys.path[0] = _job["cwd"]
sys.argv = [_job["module"], *_job["args"]]
runpy.run_module(_job["module"], run_name="__main__", alter_sys=True)
"""


class WarmSpare:
    """At most one pre-imported spare process; `take` hands it a job or returns None (then start cold)."""

    def __init__(self, preload: tuple[str, ...] = DEFAULT_PRELOAD) -> None:
        self.preload = preload
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False
        self.marker = ""

    def spawn(self, env: dict[str, str]) -> None:
        """Start a spare unless a live one exists (never raises: a failed spawn just means cold starts)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        marker = f"trex-warm-{uuid.uuid4().hex}"
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _BOOT, marker, ",".join(self.preload)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, cwd="/", env=env, start_new_session=True,
                                          close_fds=True)
            self.marker, self._ready = marker, False
        except OSError:
            self._proc = None

    def ready(self, timeout_s: float = 0.0) -> bool:
        """True once the live spare has finished its imports (waits up to `timeout_s`)."""
        proc = self._proc
        if proc is None or proc.stdout is None or proc.poll() is not None:
            return False
        if self._ready:
            return True
        readable, _, _ = select.select([proc.stdout], [], [], max(0.0, timeout_s))
        self._ready = bool(readable) and proc.stdout.readline() == b"ready\n"
        return self._ready

    def take(self, module: str, args: list[str], run_dir: Path, log: Path, env: dict[str, str]
             ) -> tuple[subprocess.Popen[bytes], str] | None:
        """Hand the spare a job; returns (process, cmdline marker), or None when no live spare was ready."""
        proc, marker = self._proc, self.marker
        self._proc, self._ready = None, False
        if proc is None or proc.poll() is not None or proc.stdin is None:
            return None
        job: dict[str, Any] = {"module": module, "args": args, "cwd": str(run_dir), "log": str(log), "env": env}
        try:
            proc.stdin.write((json.dumps(job) + "\n").encode())
            proc.stdin.close()
        except OSError:  # it died between the poll and the write
            with contextlib.suppress(OSError):
                proc.kill()
            return None
        return proc, marker

    def close(self) -> None:
        """Stop the spare (it holds no job) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
            proc.kill()  # idle or still importing: nothing to lose
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
