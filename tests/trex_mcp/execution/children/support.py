"""Helpers shared by the job-manager tests, loaded by path (the folder conftest belongs to the training helper)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tree_store import Run, TreeStore
from trex_mcp.execution.spec import RunSpec

CHILDREN = Path(__file__).parent
FAKE_WORKER = CHILDREN / "fake_worker.py"
FAKE_ARGV = [sys.executable, str(FAKE_WORKER)]


def wait_until(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition",
               tick: Callable[[], None] | None = None) -> Any:
    """Poll `predicate` (calling `tick` first, if given) until it is truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if tick is not None:
            tick()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def kill_children(shared: Path) -> None:
    """Teardown: SIGKILL every process group a fake worker of this test recorded."""
    for pid_file in list(shared.glob("pid-*")) + list(shared.glob("grandchild-*")):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class Lab:
    """A tree with one node in a store, runs on demand, and RunSpecs driving the fake worker."""

    def __init__(self, store: TreeStore, runs_dir: Path, shared: Path, dataset: Path) -> None:
        self.store = store
        self.runs_dir = runs_dir
        self.shared = shared
        self.dataset = dataset
        self.tree = store.create_tree("t", task_name="mini/sentiment", higher_is_better=True)
        self.node = store.add_node(self.tree.id, None, strategy_kind="baseline")

    def run(self) -> Run:
        return self.store.add_run(self.node.id, recipe={"sources": []}, config={"learning_rate": 1e-4})

    def spec(self, run: Run, mode: str, *, heartbeat_s: float = 0.2, **fields: Any) -> RunSpec:
        data: dict[str, Any] = {
            "run_id": run.id, "tree_id": run.tree_id, "node_id": run.node_id, "task_name": f"child:{mode}",
            "base_model": "tiny:100k", "dataset_file": self.dataset, "dataset_format": "prompt_completion",
            "config": {"learning_rate": 1e-4, "max_steps": 3}, "run_dir": self.runs_dir / run.id,
            "models_dir": self.shared, "heartbeat_s": heartbeat_s, "evaluate": False,
        }
        data.update(fields)
        return RunSpec.model_validate(data)

    def pid(self, run_id: str) -> int:
        return int(wait_until(lambda: (self.shared / f"pid-{run_id}").exists() and
                              (self.shared / f"pid-{run_id}").read_text(), what=f"pid of {run_id}"))
