"""The SQLite and in-memory backends answer the search queries identically after the same history.

Both keep derived indexes (gains over the parent, failures by kind, the best-first ranking) up to date
incrementally; a random history of adds, finishes, flags and base-score changes checks they agree.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from tree_store import Failure, FailureKind, InMemoryTreeStore, Node, SQLiteTreeStore, State, TreeStore


def _numbers(nodes: Sequence[Node]) -> list[int]:
    return [n.number for n in nodes]


def test_backends_agree_on_best_and_critical_nodes_over_a_random_history(tmp_path: Path) -> None:
    rng = random.Random(1234)
    stores: list[TreeStore] = [InMemoryTreeStore(), SQLiteTreeStore(tmp_path / "s.db")]
    higher = rng.random() < 0.5
    trees = [
        s.create_tree("eq", task_name="t", higher_is_better=higher, base_score=0.5, now=0.0) for s in stores
    ]
    ids: list[list[str]] = [[s.add_node(t.id, None, now=0.0).id] for s, t in zip(stores, trees, strict=True)]
    open_nodes = [0]
    for step in range(1, 150):
        roll = rng.random()
        now = float(step)
        if roll < 0.35 or not open_nodes:
            parent = rng.randrange(len(ids[0]))
            for s, t, known in zip(stores, trees, ids, strict=True):
                known.append(s.add_node(t.id, known[parent], now=now).id)
            open_nodes.append(len(ids[0]) - 1)
        elif roll < 0.8:
            idx = open_nodes.pop(rng.randrange(len(open_nodes)))
            kind = rng.random()
            score = rng.choice([rng.random(), rng.random(), rng.random(), float("nan"), None])
            failure = Failure(rng.choice(list(FailureKind)), "x")
            for s, known in zip(stores, ids, strict=True):
                if kind < 0.6:
                    s.finish_node(known[idx], State.COMPLETE, score=score, now=now)
                elif kind < 0.9:
                    s.finish_node(known[idx], State.FAIL, failure=failure, score=score, now=now)
                else:
                    s.finish_node(known[idx], State.PRUNED, now=now)
        elif roll < 0.93:
            idx = rng.randrange(len(ids[0]))
            pinned, vetoed = rng.random() < 0.3, rng.random() < 0.3
            for s, known in zip(stores, ids, strict=True):
                s.set_flags(known[idx], pinned=pinned, vetoed=vetoed)
        else:
            base = rng.random()
            for s, t in zip(stores, trees, strict=True):
                s.update_tree(t.id, base_score=base)
        if step % 10 == 0:
            for k in (1, 3, 6):
                assert _numbers(stores[0].critical_nodes(trees[0].id, k)) == _numbers(
                    stores[1].critical_nodes(trees[1].id, k)
                ), (step, k)
            for veto in (False, True):
                a = stores[0].best_node(trees[0].id, include_vetoed=veto)
                b = stores[1].best_node(trees[1].id, include_vetoed=veto)
                assert (a and a.number) == (b and b.number), step
    for s in stores:
        s.close()
