"""The store contract as a test suite: every backend must pass :class:`TreeStoreContract`.

Use it from a test module by subclassing and providing a ``make_store`` fixture that returns a factory
of fresh, empty stores of the backend under test::

    class TestMyBackend(TreeStoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: MyStore(tmp_path / f"{uuid.uuid4().hex}.db")

Tests inject ``now`` instead of sleeping and prove races with threads and barriers, not timing.
Needs pytest (a test dependency, not a runtime one).
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tree_store.base import TreeStore
from tree_store.errors import (
    InvalidInputError,
    NotFoundError,
    SchemaVersionError,
    UpdateFinishedError,
)
from tree_store.records import Failure, FailureKind, Node, State, Tree

__all__ = ["StoreFactory", "TreeStoreContract"]

StoreFactory = Callable[[], TreeStore]
NAN = float("nan")
INF = float("inf")


def _tree(store: TreeStore, *, higher_is_better: bool = True, base: float | None = 0.5) -> Tree:
    return store.create_tree(
        "search",
        task_name="mini/sentiment",
        higher_is_better=higher_is_better,
        task_snapshot={"name": "mini/sentiment", "version": 1},
        base_score=base,
        reference_score=0.9,
        budget={"rounds": 20},
        now=100.0,
    )


def _chain(store: TreeStore, tree: Tree, n: int) -> list[Node]:
    """A root and n - 1 descendants, each the child of the previous one."""
    nodes = [store.add_node(tree.id, None, strategy_kind="baseline", now=101.0)]
    for i in range(1, n):
        nodes.append(store.add_node(tree.id, nodes[-1].id, strategy_kind="refine_data", now=101.0 + i))
    return nodes


def _complete(store: TreeStore, node: Node, score: float, now: float = 200.0) -> Node:
    return store.finish_node(node.id, State.COMPLETE, score=score, reward=score, now=now)


def _fail(store: TreeStore, node: Node, kind: FailureKind, now: float = 200.0) -> Node:
    return store.finish_node(node.id, State.FAIL, failure=Failure(kind, f"{kind.value} happened"), now=now)


def _race(n: int, fn: Callable[[], Any]) -> list[Any]:
    """Run ``fn`` in ``n`` threads released together by a barrier; return the results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    if errors:
        raise errors[0]
    return results


class TreeStoreContract:
    """Behaviour every TreeStore backend must show. Subclass it and provide ``make_store``."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        raise NotImplementedError("subclasses provide a make_store fixture returning a store factory")

    @pytest.fixture
    def store(self, make_store: StoreFactory) -> Iterator[TreeStore]:
        s = make_store()
        yield s
        s.close()

    # ------------------------------------------------------------------ trees

    def test_create_tree_returns_active_tree_with_given_fields(self, store: TreeStore) -> None:
        tree = _tree(store)
        assert tree.status == "active"
        assert tree.task_name == "mini/sentiment"
        assert tree.higher_is_better is True
        assert (tree.base_score, tree.reference_score) == (0.5, 0.9)
        assert tree.budget == {"rounds": 20}
        assert tree.created_at == tree.updated_at == 100.0
        assert store.get_tree(tree.id) == tree

    def test_ids_are_random_uuid4_and_never_sequential(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        ids = [store.add_node(tree.id, root.id).id for _ in range(50)]
        ids += [store.add_run(root.id).id for _ in range(50)]
        assert len(set(ids)) == len(ids)
        for i in ids:
            assert uuid.UUID(hex=i).version == 4

    def test_unknown_tree_raises_not_found_naming_the_id(self, store: TreeStore) -> None:
        with pytest.raises(NotFoundError, match="no-such-tree") as info:
            store.get_tree("no-such-tree")
        assert info.value.id == "no-such-tree"
        with pytest.raises(NotFoundError):
            store.list_nodes("no-such-tree")
        with pytest.raises(NotFoundError):
            store.add_node("no-such-tree", None)

    def test_list_trees_is_oldest_first_and_filters_by_status(self, store: TreeStore) -> None:
        a = store.create_tree("a", task_name="t", higher_is_better=True, now=1.0)
        b = store.create_tree("b", task_name="t", higher_is_better=False, now=2.0)
        store.update_tree(a.id, status="finished", now=3.0)
        assert [t.id for t in store.list_trees()] == [a.id, b.id]
        assert [t.id for t in store.list_trees(status="active")] == [b.id]
        assert [t.id for t in store.list_trees(status="finished")] == [a.id]

    def test_update_tree_changes_given_fields_and_merges_meta(self, store: TreeStore) -> None:
        tree = store.create_tree("t", task_name="x", higher_is_better=True, meta={"a": 1}, now=1.0)
        updated = store.update_tree(tree.id, name="renamed", base_score=0.25, meta={"b": 2}, now=5.0)
        assert updated.name == "renamed"
        assert updated.base_score == 0.25
        assert updated.meta == {"a": 1, "b": 2}
        assert updated.updated_at == 5.0
        assert store.get_tree(tree.id) == updated
        resumed = store.update_tree(store.update_tree(tree.id, status="stopped").id, status="active")
        assert resumed.status == "active"

    def test_update_tree_rejects_unknown_status(self, store: TreeStore) -> None:
        tree = _tree(store)
        with pytest.raises(InvalidInputError, match="status"):
            store.update_tree(tree.id, status="paused")  # type: ignore[arg-type]

    # ------------------------------------------------------------------ nodes: structure

    def test_root_node_is_waiting_with_depth_and_number_zero(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None, strategy_kind="baseline", plan={"direction": "d"}, now=7.0)
        assert (root.depth, root.number, root.parent_id, root.state) == (0, 0, None, State.WAITING)
        assert root.plan == {"direction": "d"}
        assert (root.visits, root.value, root.score, root.failure) == (0, 0.0, None, None)
        assert root.created_at == 7.0
        assert store.get_root(tree.id) == root
        assert store.get_node(root.id) == root

    def test_a_tree_has_at_most_one_root(self, store: TreeStore) -> None:
        tree = _tree(store)
        store.add_node(tree.id, None)
        with pytest.raises(InvalidInputError, match="root"):
            store.add_node(tree.id, None)

    def test_children_get_parent_depth_plus_one_and_per_tree_numbers(self, store: TreeStore) -> None:
        tree, other = _tree(store), _tree(store)
        root = store.add_node(tree.id, None)
        store.add_node(other.id, None)
        a = store.add_node(tree.id, root.id)
        b = store.add_node(tree.id, root.id)
        aa = store.add_node(tree.id, a.id)
        assert [(n.depth, n.number) for n in (a, b, aa)] == [(1, 1), (1, 2), (2, 3)]
        assert store.get_root(other.id) is not None
        assert [n.number for n in store.list_nodes(other.id)] == [0]

    def test_parent_from_another_tree_is_refused(self, store: TreeStore) -> None:
        t1, t2 = _tree(store), _tree(store)
        r1 = store.add_node(t1.id, None)
        store.add_node(t2.id, None)
        with pytest.raises(InvalidInputError, match="belongs to tree"):
            store.add_node(t2.id, r1.id)

    def test_unknown_node_raises_not_found_naming_the_id(self, store: TreeStore) -> None:
        tree = _tree(store)
        for call in (
            lambda: store.get_node("nope-1"),
            lambda: store.children("nope-1"),
            lambda: store.siblings("nope-1"),
            lambda: store.path_to_root("nope-1"),
            lambda: store.subtree("nope-1"),
            lambda: store.claim_node("nope-1"),
            lambda: store.add_node(tree.id, "nope-1"),
            lambda: store.add_run("nope-1"),
            lambda: store.list_runs("nope-1"),
            lambda: store.set_flags("nope-1", pinned=True),
            lambda: store.backpropagate("nope-1", 1.0),
        ):
            with pytest.raises(NotFoundError, match="nope-1"):
                call()

    def test_children_and_siblings_are_ordered_by_number(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        kids = [store.add_node(tree.id, root.id) for _ in range(4)]
        store.add_node(tree.id, kids[0].id)
        assert [n.id for n in store.children(root.id)] == [k.id for k in kids]
        assert [n.id for n in store.siblings(kids[2].id)] == [kids[0].id, kids[1].id, kids[3].id]
        assert store.siblings(root.id) == []
        assert store.children(kids[3].id) == []

    def test_path_to_root_lists_root_first_and_the_node_last(self, store: TreeStore) -> None:
        tree = _tree(store)
        chain = _chain(store, tree, 5)
        store.add_node(tree.id, chain[1].id)
        assert [n.id for n in store.path_to_root(chain[-1].id)] == [n.id for n in chain]
        assert [n.id for n in store.path_to_root(chain[0].id)] == [chain[0].id]

    def test_subtree_holds_the_node_and_all_its_descendants(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        a, b = store.add_node(tree.id, root.id), store.add_node(tree.id, root.id)
        a1 = store.add_node(tree.id, a.id)
        a11 = store.add_node(tree.id, a1.id)
        store.add_node(tree.id, b.id)
        assert [n.id for n in store.subtree(a.id)] == [a.id, a1.id, a11.id]
        assert len(store.subtree(root.id)) == 6

    def test_list_nodes_filters_by_state(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        child = store.add_node(tree.id, root.id)
        store.claim_node(child.id, now=1.0)
        assert [n.id for n in store.list_nodes(tree.id)] == [root.id, child.id]
        assert [n.id for n in store.list_nodes(tree.id, state=State.RUNNING)] == [child.id]
        assert store.get_root(_tree(store).id) is None

    # ------------------------------------------------------------------ nodes: lifecycle

    def test_claim_node_is_compare_and_set(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        assert store.claim_node(root.id, now=5.0) is True
        assert store.claim_node(root.id, now=6.0) is False
        node = store.get_node(root.id)
        assert (node.state, node.started_at) == (State.RUNNING, 5.0)

    def test_racing_threads_claim_a_node_exactly_once(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        assert _race(8, lambda: store.claim_node(root.id)).count(True) == 1

    def test_finish_node_complete_stores_score_reward_and_diagnosis(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        store.claim_node(root.id, now=1.0)
        done = store.finish_node(
            root.id,
            State.COMPLETE,
            score=0.8,
            reward=0.6,
            diagnosis={"groups": []},
            cost={"gpu_s": 3},
            now=9.0,
        )
        assert (done.state, done.score, done.reward, done.finished_at) == (State.COMPLETE, 0.8, 0.6, 9.0)
        assert done.diagnosis == {"groups": []}
        assert done.cost == {"gpu_s": 3}
        assert store.get_node(root.id) == done

    def test_finishing_a_node_complete_with_nan_score_stores_fail(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        done = store.finish_node(root.id, State.COMPLETE, score=NAN)
        assert done.state is State.FAIL
        assert done.failure is not None and done.failure.kind is FailureKind.NAN_LOSS
        assert done.score is not None and math.isnan(done.score)

    def test_finishing_a_node_complete_without_score_stores_fail(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        done = store.finish_node(root.id, State.COMPLETE)
        assert done.state is State.FAIL
        assert done.failure is not None and done.failure.kind is FailureKind.CRASH

    def test_finish_needs_a_finished_state(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        run = store.add_run(root.id)
        with pytest.raises(InvalidInputError, match="COMPLETE, FAIL or PRUNED"):
            store.finish_node(root.id, State.RUNNING)
        with pytest.raises(InvalidInputError):
            store.finish_run(run.id, State.WAITING)
        assert store.get_node(root.id).state is State.WAITING

    def test_finished_node_refuses_every_change_but_flags_and_statistics(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        _complete(store, root, 0.7)
        for call in (
            lambda: store.update_node(root.id, plan={"x": 1}),
            lambda: store.record_node_cost(root.id, {"gpu_s": 1}),
            lambda: store.finish_node(root.id, State.FAIL),
            lambda: store.add_run(root.id),
        ):
            with pytest.raises(UpdateFinishedError, match=root.id):
                call()
        assert store.claim_node(root.id) is False
        flagged = store.set_flags(root.id, pinned=True, vetoed=True, note="look at this")
        assert (flagged.pinned, flagged.vetoed, flagged.note) == (True, True, "look at this")
        assert store.set_flags(root.id, note="").note == ""
        assert store.backpropagate(root.id, 0.5)[0].visits == 1
        assert store.get_node(root.id).score == 0.7

    def test_update_node_replaces_plan_and_merges_meta(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None, plan={"a": 1}, meta={"k": 1})
        updated = store.update_node(root.id, strategy_kind="refine_data", plan={"b": 2}, meta={"j": 2})
        assert (updated.strategy_kind, updated.plan, updated.meta) == (
            "refine_data",
            {"b": 2},
            {"k": 1, "j": 2},
        )
        withcost = store.record_node_cost(root.id, {"llm_tokens": 10})
        assert store.record_node_cost(root.id, {"gpu_s": 2.5}).cost == {"llm_tokens": 10, "gpu_s": 2.5}
        assert withcost.cost == {"llm_tokens": 10}

    def test_backpropagate_mean_updates_every_node_on_the_path(self, store: TreeStore) -> None:
        tree = _tree(store)
        chain = _chain(store, tree, 3)
        side = store.add_node(tree.id, chain[0].id)
        store.backpropagate(chain[2].id, 1.0)
        path = store.backpropagate(side.id, 0.0)
        assert [n.id for n in path] == [chain[0].id, side.id]
        root = store.get_node(chain[0].id)
        assert (root.visits, root.value) == (2, 0.5)
        assert (store.get_node(chain[1].id).visits, store.get_node(chain[1].id).value) == (1, 1.0)
        assert store.get_node(side.id).value == 0.0

    def test_backpropagate_max_keeps_the_largest_reward(self, store: TreeStore) -> None:
        chain = _chain(store, _tree(store), 2)
        for r in (-0.5, 0.25, 0.1):
            store.backpropagate(chain[1].id, r, mode="max")
        root = store.get_node(chain[0].id)
        assert (root.visits, root.value) == (3, 0.25)

    def test_backpropagate_refuses_non_finite_reward_and_unknown_mode(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        with pytest.raises(InvalidInputError, match="finite"):
            store.backpropagate(root.id, NAN)
        with pytest.raises(InvalidInputError, match="mode"):
            store.backpropagate(root.id, 1.0, mode="median")  # type: ignore[arg-type]
        assert store.get_node(root.id).visits == 0

    def test_returned_snapshots_and_passed_dicts_are_not_shared_with_the_store(
        self, store: TreeStore
    ) -> None:
        plan: dict[str, Any] = {"steps": [1, 2]}
        root = store.add_node(_tree(store).id, None, plan=plan)
        plan["steps"].append(3)
        root.plan["steps"].append(4)
        assert store.get_node(root.id).plan == {"steps": [1, 2]}
        with pytest.raises(AttributeError):
            root.score = 1.0  # type: ignore[misc]

    # ------------------------------------------------------------------ runs

    def test_add_run_numbers_runs_within_the_node(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        other = store.add_node(tree.id, root.id)
        runs = store.add_runs(root.id, [({"src": i}, {"lr": 1e-4 * (i + 1)}) for i in range(3)], now=3.0)
        extra = store.add_run(other.id, recipe={"src": "x"})
        assert [r.number for r in runs] == [0, 1, 2]
        assert extra.number == 0
        r = runs[1]
        assert (r.state, r.attempt, r.retry_of, r.tree_id, r.node_id) == (
            State.WAITING,
            1,
            None,
            tree.id,
            root.id,
        )
        assert (r.recipe, r.config, r.created_at) == ({"src": 1}, {"lr": 2e-4}, 3.0)
        assert [x.id for x in store.list_runs(root.id)] == [x.id for x in runs]
        assert store.get_run(r.id) == r

    def test_unknown_run_raises_not_found_naming_the_id(self, store: TreeStore) -> None:
        for call in (
            lambda: store.get_run("run-x"),
            lambda: store.claim_run("run-x"),
            lambda: store.heartbeat_run("run-x"),
            lambda: store.record_run_metrics("run-x", {}),
            lambda: store.finish_run("run-x", State.COMPLETE),
            lambda: store.retry_run("run-x"),
            lambda: store.get_insight("run-x"),
        ):
            with pytest.raises(NotFoundError, match="run-x"):
                call()

    def test_claim_run_is_compare_and_set_and_starts_the_heartbeat(self, store: TreeStore) -> None:
        run = store.add_run(store.add_node(_tree(store).id, None).id)
        assert store.claim_run(run.id, now=10.0) is True
        assert store.claim_run(run.id, now=11.0) is False
        got = store.get_run(run.id)
        assert (got.state, got.started_at, got.heartbeat_at) == (State.RUNNING, 10.0, 10.0)

    def test_racing_threads_claim_each_run_exactly_once(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        ids = {store.add_run(root.id).id for _ in range(5)}
        claimed = _race(8, lambda: store.claim_next_run())
        got = [r.id for r in claimed if r is not None]
        assert sorted(got) == sorted(ids)

    def test_claim_next_run_takes_the_oldest_waiting_run_of_the_tree(self, store: TreeStore) -> None:
        t1, t2 = _tree(store), _tree(store)
        n1, n2 = store.add_node(t1.id, None), store.add_node(t2.id, None)
        a = store.add_run(n1.id)
        b = store.add_run(n2.id)
        c = store.add_run(n1.id)
        first = store.claim_next_run(tree_id=t2.id, now=4.0)
        assert first is not None and first.id == b.id and first.state is State.RUNNING
        assert [store.claim_next_run(), store.claim_next_run()] == [store.get_run(a.id), store.get_run(c.id)]
        assert store.claim_next_run() is None

    def test_run_metrics_merge_and_keep_nan_and_inf_exactly(self, store: TreeStore) -> None:
        run = store.add_run(store.add_node(_tree(store).id, None).id)
        store.record_run_metrics(run.id, {"loss": [1.0, NAN, INF, -INF], "step": 1})
        got = store.record_run_metrics(run.id, {"step": 2, "acc": 0.5}).metrics
        assert got["step"] == 2 and got["acc"] == 0.5
        loss = got["loss"]
        assert loss[0] == 1.0 and math.isnan(loss[1]) and loss[2] == INF and loss[3] == -INF

    def test_run_job_artifacts_and_cost_are_recorded(self, store: TreeStore) -> None:
        run = store.add_run(store.add_node(_tree(store).id, None).id)
        store.set_run_job(run.id, {"backend": "local", "pid": 1})
        store.set_run_job(run.id, {"backend": "local", "pid": 2})
        store.record_run_artifacts(run.id, {"dataset": "abc"})
        store.record_run_artifacts(run.id, {"adapter_dir": "runs/a/adapter"})
        store.record_run_cost(run.id, {"wall_s": 1.5})
        got = store.get_run(run.id)
        assert got.job == {"backend": "local", "pid": 2}
        assert got.artifacts == {"dataset": "abc", "adapter_dir": "runs/a/adapter"}
        assert got.cost == {"wall_s": 1.5}

    def test_finish_run_merges_results_and_stores_the_failure(self, store: TreeStore) -> None:
        run = store.add_run(store.add_node(_tree(store).id, None).id)
        store.claim_run(run.id, now=1.0)
        log = "\n".join(f"line {i}" for i in range(200))
        failure = Failure(FailureKind.OOM, "CUDA out of memory", log_tail=log, details={"batch_size": 16})
        done = store.finish_run(run.id, State.FAIL, metrics={"train_loss": 2.0}, failure=failure, now=5.0)
        assert (done.state, done.finished_at, done.metrics) == (State.FAIL, 5.0, {"train_loss": 2.0})
        assert done.failure is not None
        assert done.failure.kind is FailureKind.OOM and done.failure.details == {"batch_size": 16}
        assert done.failure.log_tail.splitlines() == [f"line {i}" for i in range(150, 200)]
        ok = store.add_run(run.node_id)
        complete = store.finish_run(ok.id, State.COMPLETE, score=0.75, artifacts={"adapter_dir": "a"})
        assert (complete.state, complete.score, complete.failure) == (State.COMPLETE, 0.75, None)

    def test_finishing_a_run_complete_with_non_finite_score_stores_fail(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        for bad in (NAN, INF):
            done = store.finish_run(store.add_run(root.id).id, State.COMPLETE, score=bad)
            assert done.state is State.FAIL
            assert done.failure is not None and done.failure.kind is FailureKind.NAN_LOSS
        no_eval = store.finish_run(store.add_run(root.id).id, State.COMPLETE)
        assert (no_eval.state, no_eval.score) == (State.COMPLETE, None)

    def test_finished_run_refuses_every_change(self, store: TreeStore) -> None:
        run = store.add_run(store.add_node(_tree(store).id, None).id)
        store.finish_run(run.id, State.PRUNED, failure=Failure(FailureKind.CANCELLED, "user cancelled"))
        for call in (
            lambda: store.record_run_metrics(run.id, {"a": 1}),
            lambda: store.record_run_artifacts(run.id, {"a": 1}),
            lambda: store.record_run_cost(run.id, {"a": 1}),
            lambda: store.set_run_job(run.id, {"a": 1}),
            lambda: store.heartbeat_run(run.id),
            lambda: store.finish_run(run.id, State.COMPLETE, score=1.0),
        ):
            with pytest.raises(UpdateFinishedError, match="immutable"):
                call()
        assert store.claim_run(run.id) is False
        assert store.get_run(run.id).state is State.PRUNED

    def test_retry_run_adds_a_new_waiting_run_and_counts_attempts(self, store: TreeStore) -> None:
        root = store.add_node(_tree(store).id, None)
        run = store.add_run(root.id, recipe={"r": 1}, config={"lr": 0.1})
        with pytest.raises(InvalidInputError, match="WAITING"):
            store.retry_run(run.id)
        store.finish_run(run.id, State.FAIL, failure=Failure(FailureKind.CRASH, "segfault"))
        second = store.retry_run(run.id, now=8.0)
        assert (second.state, second.attempt, second.retry_of, second.number) == (State.WAITING, 2, run.id, 1)
        assert (second.recipe, second.config) == ({"r": 1}, {"lr": 0.1})
        store.finish_run(second.id, State.FAIL, failure=Failure(FailureKind.SERVER_RESTART, "server died"))
        assert store.retry_run(second.id).attempt == 2  # infrastructure failures do not count (J3)

    def test_find_runs_filters_by_state_tree_and_node(self, store: TreeStore) -> None:
        t1, t2 = _tree(store), _tree(store)
        n1, n2 = store.add_node(t1.id, None), store.add_node(t2.id, None)
        a, b, c = store.add_run(n1.id), store.add_run(n1.id), store.add_run(n2.id)
        store.claim_run(b.id)
        assert [r.id for r in store.find_runs()] == [a.id, b.id, c.id]
        assert [r.id for r in store.find_runs(state=State.WAITING)] == [a.id, c.id]
        assert [r.id for r in store.find_runs(tree_id=t1.id, state=State.RUNNING)] == [b.id]
        assert [r.id for r in store.find_runs(node_id=n2.id)] == [c.id]

    def test_stale_runs_fail_after_the_grace_period_and_not_before(self, store: TreeStore) -> None:
        # Reliability J1 with a fake clock: heartbeat H = 1 s, grace = 2 s.
        root = store.add_node(_tree(store).id, None)
        run = store.add_run(root.id)
        store.claim_run(run.id, now=0.0)
        assert store.fail_stale_runs(2.0, now=1.9) == []
        store.heartbeat_run(run.id, now=1.0)
        assert store.fail_stale_runs(2.0, now=3.0) == []
        failed = store.fail_stale_runs(2.0, now=3.1)
        assert [r.id for r in failed] == [run.id]
        got = store.get_run(run.id)
        assert got.state is State.FAIL and got.finished_at == 3.1
        assert got.failure is not None and got.failure.kind is FailureKind.STALE
        with pytest.raises(UpdateFinishedError):
            store.heartbeat_run(run.id, now=3.2)

    def test_fail_stale_runs_ignores_waiting_finished_and_other_trees(self, store: TreeStore) -> None:
        t1, t2 = _tree(store), _tree(store)
        n1, n2 = store.add_node(t1.id, None), store.add_node(t2.id, None)
        waiting = store.add_run(n1.id)
        done = store.add_run(n1.id)
        store.claim_run(done.id, now=0.0)
        store.finish_run(done.id, State.COMPLETE, score=1.0, now=0.5)
        elsewhere = store.add_run(n2.id)
        store.claim_run(elsewhere.id, now=0.0)
        assert store.fail_stale_runs(1.0, now=100.0, tree_id=t1.id) == []
        assert store.get_run(waiting.id).state is State.WAITING
        assert store.get_run(done.id).state is State.COMPLETE
        assert [r.id for r in store.fail_stale_runs(1.0, now=100.0)] == [elsewhere.id]

    # ------------------------------------------------------------------ insights

    def test_insights_keep_evidence_and_filter_by_node(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        child = store.add_node(tree.id, root.id)
        a = store.add_insight(
            tree.id, "clean data helps", evidence=[root.id, child.id], scope="data", effect=0.1
        )
        b = store.add_insight(tree.id, "lr 1e-3 diverges", evidence=[child.id], now=3.0)
        assert (a.scope, a.effect, a.evidence) == ("data", 0.1, [root.id, child.id])
        assert store.get_insight(b.id) == b
        assert [i.id for i in store.list_insights(tree.id)] == [a.id, b.id]
        assert [i.id for i in store.list_insights(tree.id, node_id=root.id)] == [a.id]

    def test_insight_input_is_validated(self, store: TreeStore) -> None:
        t1, t2 = _tree(store), _tree(store)
        other = store.add_node(t2.id, None)
        with pytest.raises(InvalidInputError, match="empty"):
            store.add_insight(t1.id, "  ")
        with pytest.raises(InvalidInputError, match="another tree"):
            store.add_insight(t1.id, "x", evidence=[other.id])
        with pytest.raises(NotFoundError, match="ghost"):
            store.add_insight(t1.id, "x", evidence=["ghost"])
        assert store.list_insights(t1.id) == []

    # ------------------------------------------------------------------ search queries

    def test_best_node_follows_the_metric_direction(self, store: TreeStore) -> None:
        for higher, expected in ((True, 0.9), (False, 0.2)):
            tree = _tree(store, higher_is_better=higher)
            root = store.add_node(tree.id, None)
            assert store.best_node(tree.id) is None
            _complete(store, root, 0.5)
            for s in (0.9, 0.2):
                _complete(store, store.add_node(tree.id, root.id), s)
            best = store.best_node(tree.id)
            assert best is not None and best.score == expected

    def test_nan_and_failed_nodes_are_never_best(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        store.finish_node(root.id, State.COMPLETE, score=NAN)
        failed = store.add_node(tree.id, root.id)
        store.finish_node(failed.id, State.FAIL, score=99.0)
        assert store.best_node(tree.id) is None
        ok = _complete(store, store.add_node(tree.id, root.id), 0.1)
        best = store.best_node(tree.id)
        assert best is not None and best.id == ok.id

    def test_best_node_breaks_ties_by_number_and_skips_vetoed(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        _complete(store, root, 0.1)
        a = _complete(store, store.add_node(tree.id, root.id), 0.8)
        b = _complete(store, store.add_node(tree.id, root.id), 0.8)
        best = store.best_node(tree.id)
        assert best is not None and best.id == a.id
        store.set_flags(a.id, vetoed=True)
        best = store.best_node(tree.id)
        assert best is not None and best.id == b.id
        best = store.best_node(tree.id, include_vetoed=True)
        assert best is not None and best.id == a.id

    def test_critical_nodes_rank_gains_over_the_parent_then_failures(self, store: TreeStore) -> None:
        tree = _tree(store, base=0.5)
        root = _complete(store, store.add_node(tree.id, None), 0.6)  # gain 0.1 over base
        small = _complete(store, store.add_node(tree.id, root.id), 0.65)  # gain 0.05
        big = _complete(store, store.add_node(tree.id, root.id), 0.9)  # gain 0.3
        worse = _complete(store, store.add_node(tree.id, big.id), 0.7)  # loss: never critical
        oom = _fail(store, store.add_node(tree.id, big.id), FailureKind.OOM, now=300.0)
        oom2 = _fail(store, store.add_node(tree.id, big.id), FailureKind.OOM, now=400.0)
        nan = _fail(store, store.add_node(tree.id, big.id), FailureKind.NAN_LOSS, now=350.0)
        ids = [n.id for n in store.critical_nodes(tree.id, k=10)]
        assert ids == [big.id, root.id, small.id, oom2.id, nan.id, oom.id]
        assert worse.id not in ids
        assert [n.id for n in store.critical_nodes(tree.id, k=4)] == [big.id, root.id, oom2.id, nan.id]
        assert [n.id for n in store.critical_nodes(tree.id, k=1)] == [big.id]
        assert store.critical_nodes(tree.id, k=0) == []
        with pytest.raises(InvalidInputError):
            store.critical_nodes(tree.id, k=-1)

    def test_critical_nodes_put_pinned_first_and_respect_direction(self, store: TreeStore) -> None:
        tree = _tree(store, higher_is_better=False, base=None)
        root = _complete(store, store.add_node(tree.id, None), 1.0)
        lower = _complete(store, store.add_node(tree.id, root.id), 0.4)
        higher = _complete(store, store.add_node(tree.id, root.id), 1.5)
        store.set_flags(higher.id, pinned=True)
        assert [n.id for n in store.critical_nodes(tree.id, k=5)] == [higher.id, lower.id]
        only_fail = _fail(store, store.add_node(tree.id, root.id), FailureKind.TIMEOUT)
        assert [n.id for n in store.critical_nodes(tree.id, k=2)] == [higher.id, lower.id]
        assert [n.id for n in store.critical_nodes(tree.id, k=3)][-1] == only_fail.id

    def test_critical_nodes_count_gains_whatever_order_nodes_finish_in(self, store: TreeStore) -> None:
        tree = _tree(store, base=None)
        root = store.add_node(tree.id, None)
        child = _complete(store, store.add_node(tree.id, root.id), 0.8)
        assert store.critical_nodes(tree.id) == []  # the parent has no score yet
        _complete(store, root, 0.6)
        assert [n.id for n in store.critical_nodes(tree.id)] == [child.id]
        store.update_tree(tree.id, base_score=0.1)  # now the root gains 0.5 over the base
        assert [n.id for n in store.critical_nodes(tree.id)] == [root.id, child.id]
        store.set_flags(root.id, vetoed=True)
        assert [n.id for n in store.critical_nodes(tree.id)] == [child.id]

    # ------------------------------------------------------------------ export / import

    def _populated(self, store: TreeStore) -> Tree:
        tree = _tree(store)
        root = _complete(store, store.add_node(tree.id, None, plan={"d": "baseline"}), 0.6)
        child = store.add_node(tree.id, root.id, strategy_kind="refine_data", meta={"x": [1, 2]})
        store.claim_node(child.id, now=150.0)
        run = store.add_run(child.id, recipe={"src": "clean"}, config={"lr": 2e-4}, now=151.0)
        store.claim_run(run.id, now=152.0)
        store.record_run_metrics(run.id, {"loss": [NAN, INF], "acc": 0.5})
        store.finish_run(run.id, State.FAIL, failure=Failure(FailureKind.NAN_LOSS, "nan", log_tail="a\nb"))
        store.retry_run(run.id, now=160.0)
        store.set_flags(root.id, pinned=True, note="baseline")
        store.backpropagate(root.id, 0.25)
        store.add_insight(tree.id, "nan at high lr", evidence=[child.id], effect=NAN, now=170.0)
        return tree

    def test_export_is_versioned_strict_json(self, store: TreeStore) -> None:
        data = store.export_tree(self._populated(store).id)
        assert (data["format"], data["version"]) == ("trex-tree", 1)
        assert (len(data["nodes"]), len(data["runs"]), len(data["insights"])) == (2, 2, 1)
        text = json.dumps(data, allow_nan=False)
        assert json.loads(text) == data
        with pytest.raises(NotFoundError):
            store.export_tree("missing")

    def test_export_import_round_trip_is_exact(self, store: TreeStore, make_store: StoreFactory) -> None:
        tree = self._populated(store)
        data = store.export_tree(tree.id)
        fresh = make_store()
        try:
            imported = fresh.import_tree(json.loads(json.dumps(data)))
            assert imported == store.get_tree(tree.id)
            assert fresh.export_tree(tree.id) == data
            for a, b in zip(fresh.list_nodes(tree.id), store.list_nodes(tree.id), strict=True):
                assert repr(a) == repr(b)  # repr: NaN != NaN, but prints the same
            assert len(fresh.find_runs(tree_id=tree.id)) == 2
            new = fresh.add_node(tree.id, fresh.list_nodes(tree.id)[0].id)
            assert new.number == 2  # numbering continues after import
        finally:
            fresh.close()

    def test_import_refuses_existing_ids_and_foreign_data(self, store: TreeStore) -> None:
        data = store.export_tree(self._populated(store).id)
        with pytest.raises(InvalidInputError, match="already exists"):
            store.import_tree(data)
        with pytest.raises(InvalidInputError, match="trex-tree"):
            store.import_tree({"format": "something-else", "version": 1})
        with pytest.raises(SchemaVersionError, match="newer"):
            store.import_tree({**data, "version": 99})
        broken = json.loads(json.dumps(data))
        broken["tree"]["id"] = "other"
        with pytest.raises(InvalidInputError, match="malformed"):
            store.import_tree(broken)
        assert len(store.list_trees()) == 1

    # ------------------------------------------------------------------ input validation

    def test_dict_fields_must_be_json_data(self, store: TreeStore) -> None:
        tree = _tree(store)
        with pytest.raises(InvalidInputError, match="plan.bad"):
            store.add_node(tree.id, None, plan={"bad": {1, 2}})
        with pytest.raises(InvalidInputError, match="keys must be strings"):
            store.add_node(tree.id, None, plan={1: "x"})  # type: ignore[dict-item]
        root = store.add_node(tree.id, None, plan={"t": (1, 2), "$float": "nan"})
        assert store.get_node(root.id).plan == {"t": [1, 2], "$float": "nan"}
        solo = store.add_run(root.id, meta={"$float": "inf"})
        assert store.get_run(solo.id).meta == {"$float": "inf"}

    def test_bad_scalar_arguments_are_refused(self, store: TreeStore) -> None:
        tree = _tree(store)
        root = store.add_node(tree.id, None)
        with pytest.raises(InvalidInputError, match="score"):
            store.finish_node(root.id, State.COMPLETE, score="0.5")  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="now"):
            store.add_node(tree.id, root.id, now=NAN)
        with pytest.raises(InvalidInputError, match="grace_s"):
            store.fail_stale_runs(-1.0)
        with pytest.raises(ValueError, match="failure kind"):
            Failure("disk_full", "x")  # type: ignore[arg-type]
        assert store.get_node(root.id).state is State.WAITING
