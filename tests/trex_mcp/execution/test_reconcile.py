"""Reconciliation after a server restart (reliability J2, J3, J8): re-attach, fail, retry, never a stranger."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tree_store import FailureKind, InMemoryTreeStore, SQLiteTreeStore, State, TreeStore
from trex_mcp.execution.backends.local import LocalBackend
from trex_mcp.execution.manager import JobManager
from trex_mcp.settings import Settings

_spec = importlib.util.spec_from_file_location("trex_jobs_support", Path(__file__).parent / "children" / "support.py")
assert _spec is not None and _spec.loader is not None
support = sys.modules.get("trex_jobs_support") or importlib.util.module_from_spec(_spec)
if "trex_jobs_support" not in sys.modules:
    sys.modules["trex_jobs_support"] = support
    _spec.loader.exec_module(support)

SERVER = Path(__file__).parent / "children" / "server.py"
wait_until = support.wait_until


@pytest.fixture
def env(tmp_path: Path, trex_home: Path) -> Iterator[dict[str, Any]]:
    settings = Settings(home=trex_home, capacity=3, max_retry=3, run_timeout_s=120, heartbeat_s=0.2)
    settings.ensure_dirs()
    shared = tmp_path / "shared"
    shared.mkdir()
    dataset = tmp_path / "data.jsonl"
    dataset.write_text('{"prompt": "p", "completion": " c"}\n')
    managers: list[JobManager] = []

    def make(store: TreeStore, **kwargs: Any) -> JobManager:
        kwargs.setdefault("worker_argv", support.FAKE_ARGV)
        kwargs.setdefault("grace_s", 0.5)
        kwargs.setdefault("poll_s", 0.02)
        kwargs.setdefault("backend", LocalBackend(capacity=kwargs.pop("capacity", 3), devices=[]))
        manager = JobManager(store, settings, **kwargs)
        managers.append(manager)
        return manager

    yield {"settings": settings, "shared": shared, "dataset": dataset, "make": make, "tmp": tmp_path}
    for manager in managers:
        manager.close(timeout_s=2)
    support.kill_children(shared)


def read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, f"server printed nothing within {timeout_s} s"
    line = proc.stdout.readline()
    assert line, f"server exited early with {proc.poll()}"
    return json.loads(line)


def test_kill_9_of_the_server_leaves_no_run_running_without_a_live_worker(env: dict[str, Any]) -> None:
    db = env["tmp"] / "store.db"
    repo = Path(__file__).resolve().parents[3]
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen([sys.executable, str(SERVER), str(db), str(env["settings"].home), str(env["shared"]),
                               str(env["dataset"])], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=child_env, cwd=repo)
    try:
        info = read_line(server, 30)
        assert "error" not in info
        os.kill(server.pid, signal.SIGKILL)  # the server dies mid-training
        server.wait(5)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)
    runs = info["runs"]
    shared = env["shared"]
    alive_pid = int((shared / f"pid-{runs['alive']}").read_text())
    doomed_pid = int((shared / f"pid-{runs['doomed']}").read_text())
    assert support.pid_alive(alive_pid), "workers live in their own process group and survive the server"
    os.killpg(doomed_pid, signal.SIGKILL)  # this worker dies too while no server is watching
    wait_until(lambda: not support.pid_alive(doomed_pid), 5, "doomed worker gone")

    store = SQLiteTreeStore(db)
    before_done = store.get_run(runs["done"])
    manager = env["make"](store)
    report = manager.reconcile()

    assert report.reattached == [runs["alive"]]
    assert report.failed == [runs["doomed"]] and report.retried == [runs["doomed"]]
    doomed = store.get_run(runs["doomed"])
    assert doomed.state is State.FAIL and doomed.failure is not None
    assert doomed.failure.kind is FailureKind.SERVER_RESTART
    # 0 runs RUNNING without a live worker: every RUNNING run's recorded process is alive and ours
    for run in store.find_runs(state=State.RUNNING):
        assert LocalBackend(devices=[]).attach(run.job), f"run {run.id} is RUNNING without a live worker"
    assert store.get_run(runs["done"]) == before_done  # completed runs untouched
    retry = next(r for r in store.find_runs(node_id=info["node"]) if r.retry_of == runs["doomed"])
    assert retry.attempt == 1 and retry.job["restart_count"] == 1  # J3: server restarts do not count

    (shared / "release").write_text("go")  # let the re-attached worker and the retry finish
    alive = wait_until(lambda: (r := store.get_run(runs["alive"])).state.is_finished() and r, 15, "re-attached run")
    assert alive.state is State.COMPLETE and alive.score == 0.75
    assert alive.cost["wall_s"] > 0
    retried = wait_until(lambda: (r := store.get_run(retry.id)).state.is_finished() and r, 15, "retry")
    assert retried.state is State.COMPLETE
    store.close()


def test_a_live_worker_with_a_stale_heartbeat_is_failed_stale_and_its_group_killed(env: dict[str, Any]) -> None:
    store = InMemoryTreeStore()
    lab = support.Lab(store, env["settings"].runs_dir, env["shared"], env["dataset"])
    first = env["make"](store)
    run = lab.run()
    first.submit(run.id, lab.spec(run, "loop"))
    pid = lab.pid(run.id)
    wait_until(lambda: (env["shared"] / f"ready-{run.id}").exists(), what="worker ready")
    first.close()
    later = time.time() + 100  # the worker's heartbeat is now 100 s old by the new manager's clock
    second = env["make"](store, clock=lambda: later, monitor=False)
    report = second.reconcile()
    assert report.failed == [run.id]
    done = store.get_run(run.id)
    assert done.failure is not None and done.failure.kind is FailureKind.STALE
    wait_until(lambda: not support.group_members(pid), 5, "stale worker killed", tick=second.tick)
    retry = next(r for r in store.find_runs(node_id=lab.node.id) if r.retry_of == run.id)
    assert retry.attempt == 2  # a stale run counts against the retry budget
    second.cancel(retry.id)


def test_a_recycled_pid_is_never_mistaken_for_the_worker(env: dict[str, Any]) -> None:
    store = InMemoryTreeStore()
    lab = support.Lab(store, env["settings"].runs_dir, env["shared"], env["dataset"])
    run = lab.run()
    lab.spec(run, "ok").write()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        assert store.claim_run(run.id)
        store.set_run_job(run.id, {"handle": "local-old", "pid": stranger.pid, "pgid": stranger.pid,
                                   "start_ticks": 1, "cmd_marker": str(lab.runs_dir / run.id / "spec.json"),
                                   "run_dir": str(lab.runs_dir / run.id), "status": "running"})
        manager = env["make"](store)
        report = manager.reconcile()
        assert report.failed == [run.id] and report.reattached == []
        failure = store.get_run(run.id).failure
        assert failure is not None and failure.kind is FailureKind.SERVER_RESTART
        assert stranger.poll() is None, "the unrelated process must not be signalled"
        retry = next(r for r in store.find_runs(node_id=lab.node.id) if r.retry_of == run.id)
        assert wait_until(lambda: store.get_run(retry.id).state.is_finished(), 10, "retry") and \
            store.get_run(retry.id).state is State.COMPLETE
    finally:
        stranger.kill()
        stranger.wait(5)


def test_queued_runs_survive_a_restart_and_start_in_order(env: dict[str, Any]) -> None:
    store = InMemoryTreeStore()
    lab = support.Lab(store, env["settings"].runs_dir, env["shared"], env["dataset"])
    first = env["make"](store, capacity=1)
    running, queued_a, queued_b = lab.run(), lab.run(), lab.run()
    first.submit(running.id, lab.spec(running, "loop"))
    first.submit(queued_a.id, lab.spec(queued_a, "exclusive"))
    first.submit(queued_b.id, lab.spec(queued_b, "exclusive"))
    first.close()
    second = env["make"](store, capacity=1)
    report = second.reconcile()
    assert report.reattached == [running.id] and report.requeued == [queued_a.id, queued_b.id]
    assert second.status(queued_b.id).queue_position == 2
    second.cancel(running.id)
    for run in (queued_a, queued_b):
        wait_until(lambda r=run: store.get_run(r.id).state is State.COMPLETE, 10, "queued run completes")
    order = [line.split()[1] for line in (env["shared"] / "order").read_text().splitlines()]
    assert order == [queued_a.id, queued_a.id, queued_b.id, queued_b.id]


def test_a_run_that_finished_while_the_server_was_down_is_completed_from_its_result(env: dict[str, Any]) -> None:
    store = InMemoryTreeStore()
    lab = support.Lab(store, env["settings"].runs_dir, env["shared"], env["dataset"])
    first = env["make"](store, monitor=False)
    run = lab.run()
    first.submit(run.id, lab.spec(run, "ok"))
    run_dir = Path(store.get_run(run.id).job["run_dir"])
    wait_until(lambda: (run_dir / "result.json").exists(), what="result.json")
    pid = lab.pid(run.id)
    wait_until(lambda: not support.pid_alive(pid), what="worker exit")
    first.close()
    second = env["make"](store)
    report = second.reconcile()
    assert report.finished == [run.id]
    done = store.get_run(run.id)
    assert done.state is State.COMPLETE and done.score == 0.75 and done.cost["wall_s"] > 0


def test_a_run_claimed_but_never_launched_is_failed_server_restart_and_retried(env: dict[str, Any]) -> None:
    store = InMemoryTreeStore()
    lab = support.Lab(store, env["settings"].runs_dir, env["shared"], env["dataset"])
    run = lab.run()
    lab.spec(run, "ok").write()
    assert store.claim_run(run.id)
    manager = env["make"](store)
    report = manager.reconcile()
    assert report.failed == [run.id] and report.retried == [run.id]
    failure = store.get_run(run.id).failure
    assert failure is not None and "between claiming" in failure.message
    retry = next(r for r in store.find_runs(node_id=lab.node.id) if r.retry_of == run.id)
    wait_until(lambda: store.get_run(retry.id).state is State.COMPLETE, 10, "retry completes")
