"""Real processes against one SQLite file: SIGKILL drills, claim races, concurrent writers (S1, S2, S5, S6).

The default suite runs short versions; benchmarks/bench_tree_store.py runs the full figures.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from tree_store import SQLiteTreeStore
from tree_store.stress import claim_race, concurrent_writes, kill9_trial, prepare_tree

pytestmark = pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs POSIX processes")


def test_kill9_of_a_writer_loses_no_acknowledged_write_and_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    tree_id, root_id = prepare_tree(path)
    rng = random.Random(7)
    for _ in range(5):
        result = kill9_trial(path, tree_id, root_id, rng=rng, max_acks=20)
        assert result.lost == 0
        assert result.acked <= result.recovered <= result.acked + 1
        assert result.next_write_s < 1.0
    with SQLiteTreeStore(path) as store:
        assert len(store.children(root_id)) >= 5


def test_ten_processes_racing_claim_ten_runs_exactly_once(tmp_path: Path) -> None:
    ids, claims = claim_race(tmp_path / "store.db", processes=10, runs=10)
    flat = [run_id for worker in claims for run_id in worker]
    assert sorted(flat) == sorted(ids)
    assert max(Counter(flat).values()) == 1
    with SQLiteTreeStore(tmp_path / "store.db") as store:
        assert all(store.get_run(i).state.value == "RUNNING" for i in ids)


def test_ten_processes_writing_at_once_store_every_record(tmp_path: Path) -> None:
    acked, stored, numbers = concurrent_writes(tmp_path / "store.db", processes=10, writes=30)
    assert acked == stored == numbers == 300


@pytest.mark.slow
def test_ten_processes_times_two_hundred_writes_store_exactly_two_thousand(tmp_path: Path) -> None:
    acked, stored, numbers = concurrent_writes(tmp_path / "store.db", processes=10, writes=200)
    assert acked == stored == numbers == 2000
