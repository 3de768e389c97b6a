"""kill -9 of the autonomous driver, then `--resume`: finished rounds are never re-run, the search completes.

The process boundary is the point here, so the driver runs as a real `trex-mcp --autonomous` subprocess. The
test waits (bounded) by polling the SQLite store read-only until the round to interrupt is RUNNING, SIGKILLs
the driver (its training workers live in their own process groups and either finish on their own or are
reconciled by the resumed server), then runs `trex-mcp --autonomous --resume <tree>` to completion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tree_store import Node, Run, State, TreeStore, open_store

TASK = "ftbench/mini/sentiment"


@dataclass(frozen=True)
class RunSnapshot:
    id: str
    state: State
    score: float | None
    finished_at: float | None
    attempt: int


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trex_mcp.cli", "--autonomous", *args]


def _wait_for(store_path: Path, proc: subprocess.Popen[bytes], predicate, *, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    """Poll the store (read-only use) until `predicate(store, tree_id)` is truthy; bounded by `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    store: TreeStore | None = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the driver exited with {proc.returncode} before {what}")
            if store is None and store_path.exists():
                store = open_store(store_path)
            if store is not None:
                trees = store.list_trees()
                if trees:
                    found = predicate(store, trees[0].id)
                    if found:
                        return trees[0].id, found
            time.sleep(0.25)  # polling another process: there is no event to wait on
    finally:
        if store is not None:
            store.close()
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _node_running(number: int):  # type: ignore[no-untyped-def]
    def predicate(store: TreeStore, tree_id: str) -> list[Node] | None:
        nodes = store.list_nodes(tree_id)
        hit = [n for n in nodes if n.number == number and n.state == State.RUNNING]
        # Wait until the runs are in the job manager too (the kill should hit a round that is really training).
        if hit and all(r.job for r in store.list_runs(hit[0].id)):
            return nodes
        return None
    return predicate


def _snapshot(store: TreeStore, node: Node) -> list[RunSnapshot]:
    return [RunSnapshot(r.id, r.state, r.score, r.finished_at, r.attempt) for r in store.list_runs(node.id)]


def _home(tmp_path: Path, shared: Path) -> Path:
    """A fresh home whose built tiny models are shared with the folder's other searches (built once)."""
    home = tmp_path / "home"
    home.mkdir()
    (shared / "models").mkdir(exist_ok=True)
    (home / "models").symlink_to(shared / "models", target_is_directory=True)
    return home


def _kill_and_resume(home: Path, *, rounds: int, runs: int, kill_at_round: int, timeout_s: float) -> tuple[
        str, dict[str, list[RunSnapshot]], subprocess.CompletedProcess[str]]:
    store_path = home / "trex.sqlite3"
    log = (home.parent / "first.log").open("wb")
    proc = subprocess.Popen(_cli("--task", TASK, "--rounds", str(rounds), "--runs-per-round", str(runs),
                                 "--home", str(home)), stdout=log, stderr=subprocess.STDOUT)
    try:
        tree_id, _ = _wait_for(store_path, proc, _node_running(kill_at_round), timeout_s=timeout_s,
                               what=f"round #{kill_at_round} to be RUNNING")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    store = open_store(store_path)
    try:
        finished = {n.id: _snapshot(store, n) for n in store.list_nodes(tree_id) if n.state.is_finished()}
    finally:
        store.close()
    resumed = subprocess.run(_cli("--resume", tree_id, "--rounds", str(rounds), "--home", str(home)),
                             capture_output=True, text=True, timeout=timeout_s)
    return tree_id, finished, resumed


def _assert_finished_search(home: Path, tree_id: str, finished_before: dict[str, list[RunSnapshot]],
                            resumed: subprocess.CompletedProcess[str], *, rounds: int) -> list[Run]:
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "normalised gain" in resumed.stdout
    store = open_store(home / "trex.sqlite3")
    try:
        tree = store.get_tree(tree_id)
        nodes = store.list_nodes(tree_id)
        # One node per round number: nothing proposed twice, nothing lost.
        assert sorted(n.number for n in nodes) == list(range(rounds + 1)), [(n.number, n.state) for n in nodes]
        assert all(n.state.is_finished() for n in nodes)
        # No finished round was re-run: same runs, same states, same scores, same finish times.
        for node_id, runs in finished_before.items():
            assert _snapshot(store, store.get_node(node_id)) == runs
        all_runs = store.find_runs(tree_id=tree_id)
        assert not [r for r in all_runs if not r.state.is_finished()], "a run was left unfinished"
        assert tree.status == "finished"
        final = tree.meta.get("final") or {}
        assert isinstance(final.get("test_score"), float) and isinstance(final.get("base_test_score"), float)
        return all_runs
    finally:
        store.close()


@pytest.mark.slow  # a whole search in a subprocess / through the LLM planner: CI runs it in its slow stage
@pytest.mark.timeout(900)
def test_a_driver_killed_during_the_baseline_resumes_to_a_finished_search(tmp_path: Path, agents_home: Path) -> None:
    home = _home(tmp_path, agents_home)
    tree_id, finished, resumed = _kill_and_resume(home, rounds=1, runs=1, kill_at_round=0, timeout_s=400)
    assert finished == {}  # killed while the baseline ran: nothing was finished yet
    runs = _assert_finished_search(home, tree_id, finished, resumed, rounds=1)
    assert "resuming tree" in resumed.stderr and "round #0 (resumed)" in resumed.stderr
    assert sum(1 for r in runs if r.meta.get("baseline") and r.state == State.COMPLETE) == 1


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_driver_killed_mid_round_resumes_without_rerunning_finished_rounds(tmp_path: Path, agents_home: Path) -> None:
    home = _home(tmp_path, agents_home)
    tree_id, finished, resumed = _kill_and_resume(home, rounds=2, runs=2, kill_at_round=1, timeout_s=900)
    assert len(finished) == 1  # the baseline had finished; round 1 was running
    _assert_finished_search(home, tree_id, finished, resumed, rounds=2)
    assert "round #1 (resumed)" in resumed.stderr and "round 2/2" in resumed.stderr
