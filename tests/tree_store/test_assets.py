"""Stores and exports written by earlier versions still load (reliability S10).

The files in assets/ were written by tree_store schema v1 (make_assets.py) and must never be regenerated.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tree_store import FailureKind, InMemoryTreeStore, SQLiteTreeStore, State, TreeStore

ASSETS = Path(__file__).parent / "assets"
TREE_ID = (ASSETS / "v1_tree_id.txt").read_text().strip()


def _check_v1_content(store: TreeStore) -> None:
    tree = store.get_tree(TREE_ID)
    assert (tree.name, tree.task_name, tree.higher_is_better) == ("fixture", "mini/sentiment", True)
    assert (tree.base_score, tree.reference_score, tree.budget["rounds"]) == (0.5, 0.95, 20)
    root, child = store.list_nodes(TREE_ID)
    assert (root.state, root.score, root.pinned, root.note, root.visits) == (
        State.COMPLETE,
        0.7,
        True,
        "the baseline",
        1,
    )
    assert root.diagnosis == {"groups": [{"name": "negation", "count": 3}]}
    assert (child.parent_id, child.state, child.depth, child.number) == (root.id, State.WAITING, 1, 1)
    (run,) = store.list_runs(root.id)
    loss = run.metrics["loss"]
    assert loss[0] == 2.0 and math.isnan(loss[1]) and loss[2] == math.inf
    assert (run.score, run.artifacts) == (0.7, {"adapter_dir": "runs/x/adapter"})
    bad, retry = store.list_runs(child.id)
    assert bad.failure is not None and bad.failure.kind is FailureKind.NAN_LOSS
    assert (retry.retry_of, retry.attempt, retry.state) == (bad.id, 2, State.WAITING)
    (insight,) = store.list_insights(TREE_ID)
    assert (insight.text, insight.evidence, insight.effect) == ("lr 1.0 diverges", [child.id], -1.0)
    best = store.best_node(TREE_ID)
    assert best is not None and best.id == root.id
    # still writable after loading
    store.finish_run(retry.id, State.COMPLETE, score=0.8)
    assert store.add_node(TREE_ID, child.id).number == 2


def test_a_v1_sqlite_store_loads_and_accepts_writes(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    shutil.copy(ASSETS / "v1_store.db", path)  # opening writes WAL files next to it: use a copy
    with SQLiteTreeStore(path) as store:
        _check_v1_content(store)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_v1_json_export_imports_into_every_backend(tmp_path: Path, backend: str) -> None:
    data = json.loads((ASSETS / "v1_export.json").read_text())
    store: TreeStore = InMemoryTreeStore() if backend == "memory" else SQLiteTreeStore(tmp_path / "s.db")
    with store:
        store.import_tree(data)
        _check_v1_content(store)


def test_the_v1_store_and_the_v1_export_hold_the_same_tree(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    shutil.copy(ASSETS / "v1_store.db", path)
    exported = json.loads((ASSETS / "v1_export.json").read_text())
    with SQLiteTreeStore(path) as store:
        assert store.export_tree(TREE_ID) == exported


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_every_backend_exports_the_v1_tree_exactly_as_the_fixture(tmp_path: Path, backend: str) -> None:
    data = json.loads((ASSETS / "v1_export.json").read_text())
    store: TreeStore = InMemoryTreeStore() if backend == "memory" else SQLiteTreeStore(tmp_path / "s.db")
    with store:
        store.import_tree(data)
        assert store.export_tree(TREE_ID) == data
