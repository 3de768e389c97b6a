"""Writes the schema-version fixtures in this folder. Run once per schema version, then commit the files.

    python tests/tree_store/assets/make_assets.py v1

Never regenerate an existing version's files: they stand for stores users already have on disk.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tree_store import Failure, FailureKind, SQLiteTreeStore, State, TreeStore

HERE = Path(__file__).parent


def populate(store: TreeStore) -> str:
    tree = store.create_tree(
        "fixture",
        task_name="mini/sentiment",
        higher_is_better=True,
        task_snapshot={"name": "mini/sentiment", "version": 1, "metric": "accuracy"},
        base_score=0.5,
        reference_score=0.95,
        budget={"rounds": 20, "samples_per_round": 50000},
        meta={"principal": "local"},
        now=1_700_000_000.0,
    )
    root = store.add_node(
        tree.id, None, strategy_kind="baseline", plan={"direction": "baseline"}, now=1_700_000_001.0
    )
    store.claim_node(root.id, now=1_700_000_002.0)
    run = store.add_run(
        root.id,
        recipe={"sources": [{"kind": "task", "name": "clean"}]},
        config={"lr": 2e-4},
        now=1_700_000_003.0,
    )
    store.claim_run(run.id, now=1_700_000_004.0)
    store.record_run_metrics(run.id, {"loss": [2.0, float("nan"), float("inf")], "accuracy": 0.7})
    store.finish_run(
        run.id, State.COMPLETE, score=0.7, artifacts={"adapter_dir": "runs/x/adapter"}, now=1_700_000_010.0
    )
    store.finish_node(
        root.id,
        State.COMPLETE,
        score=0.7,
        reward=0.4444,
        diagnosis={"groups": [{"name": "negation", "count": 3}]},
        now=1_700_000_011.0,
    )
    child = store.add_node(
        tree.id, root.id, strategy_kind="refine_data", plan={"direction": "dedupe"}, now=1_700_000_012.0
    )
    bad = store.add_run(child.id, config={"lr": 1.0}, now=1_700_000_013.0)
    store.claim_run(bad.id, now=1_700_000_014.0)
    store.finish_run(
        bad.id,
        State.FAIL,
        failure=Failure(FailureKind.NAN_LOSS, "loss was nan 3 times", log_tail="step 1 nan\nstep 2 nan"),
        now=1_700_000_020.0,
    )
    store.retry_run(bad.id, now=1_700_000_021.0)
    store.set_flags(root.id, pinned=True, note="the baseline")
    store.backpropagate(root.id, 0.4444)
    store.add_insight(
        tree.id, "lr 1.0 diverges", evidence=[child.id], scope="training", effect=-1.0, now=1_700_000_030.0
    )
    return tree.id


def main(version: str) -> None:
    db = HERE / f"{version}_store.db"
    export = HERE / f"{version}_export.json"
    if db.exists() or export.exists():
        sys.exit(f"{db.name} / {export.name} exist; fixtures of a released version must not change")
    with SQLiteTreeStore(db) as store:
        tree_id = populate(store)
        data = store.export_tree(tree_id)
    export.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    (HERE / f"{version}_tree_id.txt").write_text(tree_id + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "v1")
