"""A real small search tree, written through the tree store, for the report tests.

Shape (number: strategy, state, score):

    #0 establish baseline  COMPLETE 0.62 (3 runs)
    ├── #1 refine data pipeline  COMPLETE 0.74, pinned (2 complete runs, 1 OOM run with a log tail)
    │   ├── #3 construct synthetic data  COMPLETE 0.81  <- best (final test result names it)
    │   │   ├── #5 adjust training scheme  RUNNING (1 running run)
    │   │   └── #6 refine data pipeline  WAITING
    │   └── #4 refine data pipeline  COMPLETE 0.86, vetoed (suspected contamination)
    └── #2 adjust training scheme  FAIL nan_loss (2 failed runs); its plan carries markup that must stay text
        └── #7 adjust training scheme  PRUNED
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tree_store import Failure, FailureKind, InMemoryTreeStore, SQLiteTreeStore, State, TreeStore

T0 = 1_767_225_600.0
MARKUP = '</script><img src=x onerror="window.__pwned=1">'
OOM_LOG = "\n".join([f"step {i} | loss {1.5 - i / 100:.3f}" for i in range(0, 60, 5)]
                    + ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"])


@dataclass
class SmallTree:
    store: TreeStore
    tree_id: str
    ids: dict[int, str]  # node number -> node id


def _recipe(*sources: str, ops: tuple[str, ...] = ()) -> dict[str, object]:
    return {"sources": [{"kind": "task", "name": s} for s in sources], "operators": [{"op": o} for o in ops],
            "format": "prompt_completion"}


def _config(lr: float, **extra: object) -> dict[str, object]:
    return {"method": "sft", "adapter": "lora", "lora_r": 8, "learning_rate": lr, "epochs": 1.0, "batch_size": 8,
            **extra}


def build_small_tree(store: TreeStore, *, final: bool = True) -> SmallTree:
    t = T0
    tree = store.create_tree(
        "sentiment search", task_name="mini/sentiment", higher_is_better=True, base_score=0.5,
        reference_score=0.9, budget={"max_rounds": 20, "max_samples_per_round": 50_000, "runs_per_round": 3},
        task_snapshot={"name": "mini/sentiment", "version": 1, "domain": "sentiment", "base_model": "tiny:2m",
                       "reference_model": "reference-large", "description": "Binary sentiment of short reviews.",
                       "evaluation": {"kind": "generative", "metric": "accuracy"}},
        now=t)
    ids: dict[int, str] = {}

    def node(parent: int | None, strategy: str, direction: str, hypothesis: str) -> str:
        nonlocal t
        t += 60
        n = store.add_node(tree.id, None if parent is None else ids[parent], strategy_kind=strategy,
                           plan={"direction": direction, "hypothesis": hypothesis}, now=t)
        ids[n.number] = n.id
        store.claim_node(n.id, now=t)
        return n.id

    def run(node_id: str, recipe: dict[str, object], config: dict[str, object], *, score: float | None = None,
            failure: Failure | None = None, device_s: float = 120.0) -> None:
        nonlocal t
        r = store.add_run(node_id, recipe=recipe, config=config, now=t)
        store.claim_run(r.id, now=t)
        t += device_s
        cost = {"device_s": device_s, "wall_s": device_s + 5}
        if failure is not None:
            store.finish_run(r.id, State.FAIL, failure=failure, cost=cost, now=t)
        else:
            store.finish_run(r.id, State.COMPLETE, score=score, cost=cost, now=t,
                             metrics={"accuracy": score, "train_loss": 0.4}, artifacts={"rows": 800})

    def complete(node_id: str, score: float, summary: str) -> None:
        store.finish_node(node_id, State.COMPLETE, score=score, reward=(score - 0.5) / 0.4, now=t,
                          diagnosis={"summary": summary, "groups": [{"name": "negation", "count": 7}]})
        store.backpropagate(node_id, (score - 0.5) / 0.4)

    root = node(None, "establish baseline", "train on the clean task data", "a plain LoRA run sets the bar")
    for lr, score in ((1e-4, 0.58), (2e-4, 0.62), (5e-4, 0.6)):
        run(root, _recipe("clean"), _config(lr), score=score)
    complete(root, 0.62, "baseline misses negations")

    n1 = node(0, "refine data pipeline", "drop noisy labels", "label noise hides the signal")
    run(n1, _recipe("clean", "noisy", ops=("dedup", "filter_length")), _config(2e-4), score=0.74)
    run(n1, _recipe("clean", ops=("dedup",)), _config(2e-4), score=0.71)
    run(n1, _recipe("clean", "noisy"), _config(2e-4, batch_size=64),
        failure=Failure(FailureKind.OOM, "CUDA out of memory at batch size 64", OOM_LOG, {"batch_size": 64}))
    complete(n1, 0.74, "noise removal fixed half the negation errors")
    store.set_flags(n1, pinned=True, note="promising: keep exploring data cleaning")

    n2 = node(0, "adjust training scheme", f"raise the learning rate {MARKUP}", "a bigger step size trains faster")
    for lr in (1e-2, 3e-2):
        run(n2, _recipe("clean"), _config(lr),
            failure=Failure(FailureKind.NAN_LOSS, "loss was nan for 3 steps", "step 3 | loss nan\n" * 3))
    store.finish_node(n2, State.FAIL, now=t,
                      failure=Failure(FailureKind.NAN_LOSS, "every run diverged", "loss nan at step 3"))

    n3 = node(1, "construct synthetic data", "paraphrase negated reviews", "more negation examples help")
    run(n3, _recipe("clean", ops=("augment_paraphrase",)), _config(2e-4), score=0.81, device_s=300.0)
    run(n3, _recipe("clean", ops=("augment_paraphrase", "dedup")), _config(1e-4), score=0.79)
    complete(n3, 0.81, "negations mostly fixed; sarcasm remains")

    n4 = node(1, "refine data pipeline", "add the off-domain split", "more data of any kind helps")
    run(n4, _recipe("clean", "offdomain"), _config(2e-4), score=0.86)
    complete(n4, 0.86, "suspiciously high")
    store.set_flags(n4, vetoed=True, note="suspected contamination: off-domain split overlaps validation")

    n5 = node(3, "adjust training scheme", "two epochs on the synthetic mix", "more passes fit negations")
    r5 = store.add_run(n5, recipe=_recipe("clean", ops=("augment_paraphrase",)), config=_config(2e-4, epochs=2.0),
                       now=t)
    store.claim_run(r5.id, now=t)

    t += 60
    n6 = store.add_node(tree.id, ids[3], strategy_kind="refine data pipeline",
                        plan={"direction": "filter sarcasm", "hypothesis": "sarcasm is mislabeled"}, now=t)
    ids[n6.number] = n6.id

    n7 = store.add_node(tree.id, ids[2], strategy_kind="adjust training scheme",
                        plan={"direction": "lower the learning rate again"}, now=t)
    ids[n7.number] = n7.id
    store.finish_node(n7.id, State.PRUNED, now=t)

    store.add_insight(tree.id, "Cleaning label noise helped more than any learning-rate change.",
                      evidence=[ids[1], ids[2]], scope="data", effect=0.12, now=t)
    store.add_insight(tree.id, "Learning rates of 1e-2 and above diverge on this task.", evidence=[ids[2]],
                      scope="training", now=t)
    if final:
        store.update_tree(tree.id, status="finished", now=t, meta={"final": {
            "test_score": 0.8, "normalised_gain": 0.75, "best_node_id": ids[3], "split": "test",
            "base_test_score": 0.52, "n_test": 200}})
    return SmallTree(store=store, tree_id=tree.id, ids=ids)


@pytest.fixture(scope="session")
def build_tree() -> Callable[..., SmallTree]:
    """The builder itself, for tests that need a variant (``final=False``) or another store."""
    return build_small_tree


@pytest.fixture
def small_tree() -> SmallTree:
    return build_small_tree(InMemoryTreeStore())


@pytest.fixture
def sqlite_tree(tmp_path: Path) -> tuple[Path, SmallTree]:
    """The small tree in a SQLite store at a trex home's store path."""
    home = tmp_path / "home"
    home.mkdir()
    store = SQLiteTreeStore(home / "trex.sqlite3")
    tree = build_small_tree(store)
    store.close()
    return home, tree
