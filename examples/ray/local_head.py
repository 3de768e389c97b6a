"""A throwaway single-node Ray cluster on loopback, for trying `trex-mcp --executor ray` and for the tests.

    python examples/ray/local_head.py [--num-cpus 2] [--num-gpus N]

prints the dashboard address to pass as `--ray-address`, and stops the cluster on Ctrl-C. Everything binds to
127.0.0.1 on free ports, with usage stats off and Ray's files under a fresh short temp folder.

`LocalHead` is the same thing as a context manager (`with LocalHead(num_cpus=2) as head: head.address`). It
stops only the processes it started: `ray start --block` runs in its own process group, and stopping sends
SIGTERM, then SIGKILL, to that group. (`ray stop` would also stop every other Ray cluster of the same user on
the machine.) Job entry points run in their own sessions; Ray kills them within about a second of their
supervisor going away.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["LocalHead", "free_port"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ray_cli() -> str:
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.exists() else (shutil.which("ray") or "ray")


class LocalHead:
    """A Ray head on loopback (see the module docstring). `start()` returns at once; `wait_ready()` waits for the
    job API; `stop()` ends every process of the head."""

    def __init__(self, *, num_cpus: int = 2, num_gpus: int | None = None, object_store_mb: int = 100,
                 env: dict[str, str] | None = None) -> None:
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.object_store_mb = object_store_mb
        self.dashboard_port = free_port()
        self.gcs_port = free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        # Ray's unix sockets live under the temp dir and their paths must stay under ~107 bytes: keep it short.
        # (mkdtemp makes a private 0700 folder with a random name, so a shared /tmp is safe here.)
        short = len(tempfile.gettempdir()) <= 40 or not os.path.isdir("/tmp")  # noqa: S108
        self.temp_dir = Path(tempfile.mkdtemp(prefix="trex-ray-", dir=None if short else "/tmp"))  # noqa: S108
        self.env = {**os.environ, **(env or {}), "RAY_USAGE_STATS_ENABLED": "0",
                    # On Linux Ray swaps 127.0.0.1 for the machine's address unless "clusters" are off.
                    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The `ray start` command line."""
        cmd = [_ray_cli(), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
               f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
               f"--num-cpus={self.num_cpus}", f"--object-store-memory={self.object_store_mb * 1024 * 1024}",
               "--include-dashboard=true", "--include-log-monitor=false", "--disable-usage-stats",
               f"--temp-dir={self.temp_dir}", "--log-style=record"]
        if self.num_gpus is not None:
            cmd.append(f"--num-gpus={self.num_gpus}")
        return cmd

    def start(self) -> LocalHead:
        """Launch the head in the background (its output goes to <temp_dir>/head.log)."""
        with (self.temp_dir / "head.log").open("ab") as out:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float = 120.0) -> str:
        """Wait until the job API answers; returns the dashboard address. Raises RuntimeError with the head's
        log tail when it exits or does not answer in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the Ray head exited early:\n{self.log_tail()}")
            url = f"{self.address}/api/jobs/"
            with contextlib.suppress(OSError, urllib.error.URLError), \
                    urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http on loopback)
                if response.status == 200:
                    return self.address
            time.sleep(0.25)
        raise RuntimeError(f"the Ray head did not answer within {timeout_s:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the head's own output."""
        with contextlib.suppress(OSError):
            return "\n".join((self.temp_dir / "head.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the head's process group, SIGKILL it after `grace_s`, and remove the temp folder."""
        if self.proc is not None:
            pgid = self.proc.pid  # the group leader: start_new_session made its pid the group id
            # Ray workers and job entry points may leave the group (new sessions): remember every descendant.
            family = _descendants(pgid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and _group_alive(pgid):
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.proc = None
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and any(_start_ticks(p) == t for p, t in family.items()):
                time.sleep(0.1)
            for pid, ticks in family.items():
                if _start_ticks(pid) == ticks:  # still the very process we started, never a recycled pid
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalHead:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_ticks(pid: int) -> str | None:
    """The kernel start time of a live, non-zombie pid (tells a recycled pid apart), or None."""
    fields = _stat(pid)
    if fields is None or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _descendants(root: int) -> dict[int, str]:
    """{pid: start ticks} of every live descendant of `root` (Linux /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None and len(fields) > 1:
            parents[int(entry.name)] = int(fields[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found and (ticks := _start_ticks(pid)) is not None:
                found[pid] = ticks
                frontier.append(pid)
    return found


def _group_alive(pgid: int) -> bool:
    """True while any process of the group is alive and not a zombie."""
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--num-gpus", type=int, default=None)
    args = parser.parse_args()
    head = LocalHead(num_cpus=args.num_cpus, num_gpus=args.num_gpus).start()
    try:
        print(f"starting a Ray head (log: {head.temp_dir / 'head.log'}) ...", file=sys.stderr)
        address = head.wait_ready()
        print(f"Ray head ready. Serve trex-mcp against it with:\n  trex-mcp serve --executor ray --ray-address "
              f"{address}\nCtrl-C stops the head.", flush=True)
        while head.proc is not None and head.proc.poll() is None:
            time.sleep(1)
        print(f"the Ray head exited:\n{head.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        head.stop()


if __name__ == "__main__":
    raise SystemExit(main())
