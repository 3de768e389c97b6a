"""The end of a search: mark the tree finished, score its best node once on the test split, write the report.

The test split is reachable only here: the tree is marked finished first, and only a finished tree can mint the
evaluation permit for the test split. The base model is scored on the same test split so that the reported
normalised gain compares like with like.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ftbench.spec import TaskSpec
from tree_store import Tree, TreeStore
from trex_mcp.errors import TrexError
from trex_mcp.rounds import best_run
from trex_mcp.settings import Settings

log = logging.getLogger(__name__)


def finalize_tree(store: TreeStore, settings: Settings, tree: Tree) -> dict[str, Any]:
    """Finish `tree`, evaluate its best node on the test split, record `meta["final"]`, write the report.

    Returns the final record. Raises TrexError when the tree has no scored node.
    """
    from trex_mcp.evaluation import evaluate, normalised_gain
    from trex_mcp.evaluation.permit import mint_test_split_permit

    if tree.meta.get("final"):
        return dict(tree.meta["final"])
    best = store.best_node(tree.id)
    if best is None:
        raise TrexError(f"tree {tree.id} has no scored round to finalise", field="tree_id",
                        hint="run at least the baseline round to completion")
    run = best_run(store.list_runs(best.id), tree.higher_is_better)
    adapter = None if run is None or best.parent_id is None else run.artifacts.get("adapter_dir")
    task = TaskSpec.model_validate(tree.task_snapshot)
    finished = store.update_tree(tree.id, status="finished")
    permit = mint_test_split_permit(finished)
    tuned = evaluate(task, model_id=task.base_model, adapter_dir=Path(adapter) if adapter else None,
                     split="test", settings=settings, permit=permit)
    base = evaluate(task, model_id=task.base_model, adapter_dir=None, split="test", settings=settings, permit=permit)
    gain = normalised_gain(tuned.score, base=base.score, reference=tree.reference_score,
                           higher_is_better=tree.higher_is_better)
    final: dict[str, Any] = {
        "split": "test",
        "best_node_id": best.id,
        "best_node_number": best.number,
        "best_run_id": None if run is None else run.id,
        "validation_score": best.score,
        "test_score": tuned.score,
        "base_test_score": base.score,
        "reference_score": tree.reference_score,
        "normalised_gain": gain,
        "metric": tuned.metric,
        "n_test": tuned.n,
    }
    store.update_tree(tree.id, meta={"final": final})
    try:
        from trex_mcp.report.html import write_report

        path = write_report(store, tree.id, settings.reports_dir / f"{tree.id}.html")
        final["report"] = str(path)
        store.update_tree(tree.id, meta={"final": final})
    except Exception:  # the score is recorded; a report failure must not lose it
        log.exception("writing the report of tree %s failed", tree.id)
    return final
