"""Crash and concurrency drills for the SQLite store, shared by the tests and the benchmark.

- :func:`kill9_trial`: a child process adds nodes in a tight loop and prints each id after the write
  returned (an acknowledgement); the parent SIGKILLs it at a random moment, reopens the store and checks
  that every acknowledged node is there (reliability S1) and that the next write is quick (S2).
- :func:`claim_race`: processes released together by a barrier each try to claim every WAITING run (S5).
- :func:`concurrent_writes`: processes each add ``writes`` nodes at once (S6).

The child writer runs as ``python -m tree_store.stress writer <path> <tree_id> <parent_id>``.
POSIX only (SIGKILL, fork).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tree_store.records import State
from tree_store.sqlite import SQLiteTreeStore

__all__ = ["Kill9Result", "claim_race", "concurrent_writes", "kill9_trial", "prepare_tree"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Kill9Result:
    acked: int  # writes the child acknowledged before it died
    recovered: int  # writes found after reopening
    lost: int  # acknowledged writes missing after reopening (must be 0)
    open_s: float  # time to reopen the store after the kill
    next_write_s: float  # time of the first write after the kill (S2: < 1 s)


def prepare_tree(path: Path) -> tuple[str, str]:
    """Create a tree with a root in the store at ``path``; return (tree_id, root_id)."""
    with SQLiteTreeStore(path) as store:
        tree = store.create_tree("drill", task_name="drill", higher_is_better=True)
        root = store.add_node(tree.id, None)
        return tree.id, root.id


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def kill9_trial(
    path: Path, tree_id: str, parent_id: str, *, rng: random.Random, max_acks: int = 40
) -> Kill9Result:
    """One SIGKILL drill against the store at ``path`` (see the module docstring)."""
    with SQLiteTreeStore(path) as store:
        before = {n.id for n in store.children(parent_id)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tree_store.stress", "writer", str(path), tree_id, parent_id],
        stdout=subprocess.PIPE,
        env=_child_env(),
        text=True,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    target = rng.randint(1, max_acks)
    try:
        while len(acked) < target:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"writer exited early with code {proc.wait()}")
            acked.append(line.strip())
        time.sleep(rng.random() * 0.005)  # land somewhere inside the next write
        proc.send_signal(signal.SIGKILL)
        acked.extend(line.strip() for line in proc.stdout if line.strip())  # printed before death
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    start = time.perf_counter()
    store = SQLiteTreeStore(path)
    opened = time.perf_counter()
    try:
        after = {n.id for n in store.children(parent_id)} - before
        lost = len(set(acked) - after)
        t0 = time.perf_counter()
        store.add_node(tree_id, parent_id)
        next_write = time.perf_counter() - t0
    finally:
        store.close()
    return Kill9Result(
        acked=len(acked), recovered=len(after), lost=lost, open_s=opened - start, next_write_s=next_write
    )


_barrier: Any = None


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _claim_all(path: str, tree_id: str, run_ids: list[str]) -> list[str]:
    store = SQLiteTreeStore(path)
    try:
        _barrier.wait(timeout=60)
        # Every worker tries every run, in the same order: each run is contended by all workers at once.
        claimed = [run_id for run_id in run_ids if store.claim_run(run_id)]
        if store.claim_next_run(tree_id=tree_id) is not None:
            raise AssertionError("a run was still WAITING after every worker tried every run")
        return claimed
    finally:
        store.close()


def _write_many(path: str, tree_id: str, parent_id: str, writes: int) -> list[str]:
    store = SQLiteTreeStore(path)
    try:
        _barrier.wait(timeout=60)
        return [store.add_node(tree_id, parent_id, meta={"pid": os.getpid()}).id for _ in range(writes)]
    finally:
        store.close()


def _pool(processes: int) -> ProcessPoolExecutor:
    ctx = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    barrier = ctx.Barrier(processes)
    return ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_worker, initargs=(barrier,))


def claim_race(path: Path, *, processes: int = 10, runs: int = 10) -> tuple[list[str], list[list[str]]]:
    """``processes`` workers race to claim ``runs`` WAITING runs.

    Returns (the run ids, what each worker claimed). Exactly-once means the claims, flattened, are a
    permutation of the run ids.
    """
    with SQLiteTreeStore(path) as store:
        tree = store.create_tree("race", task_name="race", higher_is_better=True)
        node = store.add_node(tree.id, None)
        ids = [store.add_run(node.id).id for _ in range(runs)]
    with _pool(processes) as pool:
        futures = [pool.submit(_claim_all, str(path), tree.id, ids) for _ in range(processes)]
        claims = [f.result(timeout=120) for f in futures]
    return ids, claims


def concurrent_writes(path: Path, *, processes: int = 10, writes: int = 200) -> tuple[int, int, int]:
    """``processes`` workers each add ``writes`` nodes at once.

    Returns (acknowledged, stored and readable, distinct node numbers).
    """
    tree_id, root_id = prepare_tree(path)
    with _pool(processes) as pool:
        futures = [pool.submit(_write_many, str(path), tree_id, root_id, writes) for _ in range(processes)]
        acked = [i for f in futures for i in f.result(timeout=300)]
    with SQLiteTreeStore(path) as store:
        nodes = [n for n in store.list_nodes(tree_id) if n.parent_id == root_id and n.state is State.WAITING]
        stored = {n.id for n in nodes} & set(acked)
        return len(acked), len(stored), len({n.number for n in nodes})


def _writer(argv: Sequence[str]) -> None:
    path, tree_id, parent_id = argv
    store = SQLiteTreeStore(path)
    for i in range(1_000_000):
        node = store.add_node(tree_id, parent_id, plan={"i": i, "pad": "x" * (i % 300)})
        sys.stdout.write(node.id + "\n")  # acknowledged: add_node returned, so it committed
        sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "writer":
        _writer(sys.argv[2:])
    else:
        sys.exit("usage: python -m tree_store.stress writer <path> <tree_id> <parent_id>")
