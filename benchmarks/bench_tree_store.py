"""Figures for tree_store (reliability B.1): crash safety, claim races, concurrent writers, a 10,000-node tree.

    python benchmarks/bench_tree_store.py [--kills 20] [--nodes 10000] [--seed 0]

Prints one table row per figure with its target, and exits non-zero if any target is missed.
Files live in a temporary folder on the local disk (SQLite is not for network file systems).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tree_store import Failure, FailureKind, InMemoryTreeStore, SQLiteTreeStore, State, TreeStore  # noqa: E402
from tree_store.stress import claim_race, concurrent_writes, kill9_trial, prepare_tree  # noqa: E402

Row = tuple[str, str, str, bool]


def _median_ms(fn: Callable[[Any], object], args: list[Any]) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds per call (CPU shows the cost on a busy machine)."""
    wall, cpu = [], []
    for a in args:
        t0, c0 = time.perf_counter(), time.process_time()
        fn(a)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def _ms(t: tuple[float, float], digits: int) -> str:
    return f"{t[0]:.{digits}f} ms (cpu {t[1]:.{digits}f} ms)"


def bench_kill9(folder: Path, kills: int, rng: random.Random) -> list[Row]:
    path = folder / "kill9.db"
    tree_id, root_id = prepare_tree(path)
    results = [kill9_trial(path, tree_id, root_id, rng=rng, max_acks=60) for _ in range(kills)]
    lost = sum(r.lost for r in results)
    contiguous = sum(r.acked <= r.recovered <= r.acked + 1 for r in results)
    worst_write = max(r.next_write_s for r in results)
    worst_open = max(r.open_s for r in results)
    acked = sum(r.acked for r in results)
    return [
        (f"kill -9 x{kills}: acknowledged writes lost", "0", f"{lost} of {acked}", lost == 0),
        (f"kill -9 x{kills}: store opens, recovered = acked or acked+1", f"{kills}/{kills}",
         f"{contiguous}/{kills} (open max {worst_open * 1000:.0f} ms)", contiguous == kills),
        (f"kill -9 x{kills}: next write after the kill", "< 1 s", f"max {worst_write * 1000:.1f} ms",
         worst_write < 1.0),
    ]  # fmt: skip


def bench_claims(folder: Path) -> list[Row]:
    ids, claims = claim_race(folder / "race.db", processes=10, runs=10)
    flat = [r for worker in claims for r in worker]
    doubles = sum(c - 1 for c in Counter(flat).values())
    ok = sorted(flat) == sorted(ids) and doubles == 0
    workers = sum(1 for w in claims if w)
    return [
        ("10 processes race for 10 WAITING runs", "10 distinct, 0 doubles",
         f"{len(set(flat))} distinct, {doubles} doubles ({workers} workers won)", ok),
    ]  # fmt: skip


def bench_writes(folder: Path) -> list[Row]:
    t0 = time.perf_counter()
    acked, stored, numbers = concurrent_writes(folder / "writes.db", processes=10, writes=200)
    took = time.perf_counter() - t0
    return [
        ("10 processes x 200 writes", "2000 records, all readable",
         f"{stored} stored of {acked} acked, {numbers} distinct numbers ({took:.1f} s)",
         acked == stored == numbers == 2000),
    ]  # fmt: skip


def build_tree(store: TreeStore, n: int, rng: random.Random) -> str:
    """A random recursive tree (each node's parent uniform among earlier nodes), 3 runs per node."""
    tree = store.create_tree(
        "bench", task_name="mini/sentiment", higher_is_better=True, base_score=0.5, now=0.0
    )
    ids = [store.add_node(tree.id, None, strategy_kind="baseline", now=1.0).id]
    for i in range(1, n):
        node = store.add_node(
            tree.id,
            rng.choice(ids),
            strategy_kind="refine_data",
            plan={"direction": f"idea {i}"},
            now=float(i),
        )
        ids.append(node.id)
    kinds = list(FailureKind)
    for i, node_id in enumerate(ids):
        runs = [
            store.add_run(node_id, recipe={"src": "clean"}, config={"lr": 1e-4 * (k + 1)}) for k in range(3)
        ]
        for k, run in enumerate(runs):
            store.finish_run(run.id, State.COMPLETE, score=rng.random(), metrics={"loss": [1.0, 0.5], "k": k})
        roll = rng.random()
        if roll < 0.7:
            store.finish_node(
                node_id, State.COMPLETE, score=rng.random(), reward=rng.random(), now=float(n + i)
            )
        elif roll < 0.9:
            failure = Failure(rng.choice(kinds), "it broke", log_tail="traceback ...")
            store.finish_node(node_id, State.FAIL, failure=failure, now=float(n + i))
    return tree.id


def bench_big_tree(folder: Path, n: int, rng: random.Random) -> list[Row]:
    memory = InMemoryTreeStore()
    tree_id = build_tree(memory, n, rng)
    data = memory.export_tree(tree_id)
    store = SQLiteTreeStore(folder / "big.db")
    t0 = time.perf_counter()
    store.import_tree(data)
    import_s = time.perf_counter() - t0
    nodes = store.list_nodes(tree_id)
    sample = [rng.choice(nodes).id for _ in range(1000)]
    depth = max(x.depth for x in nodes)
    rows: list[Row] = []
    for label, s in (("sqlite", store), ("memory", memory)):
        get = _median_ms(s.get_node, sample)
        path = _median_ms(s.path_to_root, sample)
        kids = _median_ms(s.children, sample)
        best = _median_ms(s.best_node, [tree_id] * 50)
        crit = _median_ms(s.critical_nodes, [tree_id] * 50)
        export = _median_ms(s.export_tree, [tree_id] * 3)
        prefix = f"{n:,}-node tree [{label}]"
        rows += [
            (f"{prefix}: get node (median)", "< 1 ms", _ms(get, 3), get[0] < 1),
            (f"{prefix}: path to root (median, max depth {depth})", "< 1 ms", _ms(path, 3), path[0] < 1),
            (f"{prefix}: children (median)", "< 1 ms", _ms(kids, 3), kids[0] < 1),
            (f"{prefix}: best node (median)", "< 20 ms", _ms(best, 2), best[0] < 20),
            (f"{prefix}: critical nodes k=5 (median)", "< 20 ms", _ms(crit, 2), crit[0] < 20),
            (f"{prefix}: export ({3 * n:,} runs, median of 3)", "< 2 s", f"{export[0] / 1000:.2f} s (cpu {export[1] / 1000:.2f} s)",
             export[0] < 2000),
        ]  # fmt: skip
    rows.append((f"{n:,}-node tree [sqlite]: import ({3 * n:,} runs, one transaction)", "(info)",
                 f"{import_s:.2f} s", True))  # fmt: skip
    store.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-tree-store-") as tmp:
        folder = Path(tmp)
        rows += bench_kill9(folder, args.kills, rng)
        rows += bench_claims(folder)
        rows += bench_writes(folder)
        rows += bench_big_tree(folder, args.nodes, rng)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"tree_store benchmark: {os.cpu_count()} CPUs, load average {load:.1f} at the end (wall times include it)"
    )
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    w2 = max(len(r[2]) for r in rows)
    print(f"{'figure':<{w0}} | {'target':<{w1}} | {'measured':<{w2}} | ok")
    print(f"{'-' * w0}-|-{'-' * w1}-|-{'-' * w2}-|---")
    for name, target, measured, ok in rows:
        print(f"{name:<{w0}} | {target:<{w1}} | {measured:<{w2}} | {'yes' if ok else 'NO'}")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
