"""In-memory tree store: the same contract as SQLite, for tests and throwaway searches.

Thread-safe (one lock); nothing survives the process. Records are copied in and out, so callers can
never reach stored state through a returned snapshot.
"""

from __future__ import annotations

import bisect
import copy
import heapq
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from tree_store import _logic as L
from tree_store.base import BackpropMode, JSONDict, TreeStore
from tree_store.errors import InvalidInputError, NotFoundError
from tree_store.records import (
    Failure,
    Insight,
    Node,
    Run,
    State,
    Tree,
    TreeStatus,
    is_valid_score,
)

__all__ = ["InMemoryTreeStore"]

_R = TypeVar("_R")


class InMemoryTreeStore(TreeStore):
    """A tree store held in process memory."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock=clock)
        self._lock = threading.RLock()
        self._trees: dict[str, Tree] = {}
        self._nodes: dict[str, Node] = {}
        self._runs: dict[str, Run] = {}
        self._insights: dict[str, Insight] = {}
        self._tree_nodes: dict[str, list[str]] = {}
        self._children: dict[str, list[str]] = {}
        self._node_runs: dict[str, list[str]] = {}
        self._tree_insights: dict[str, list[str]] = {}
        self._run_order: list[str] = []
        # Derived per-tree indexes for critical_nodes (as SQLite's indexed gain / failure_kind columns):
        # positive gains of COMPLETE nodes over their parent, FAIL nodes with a failure, pinned nodes.
        self._gains: dict[str, dict[str, float]] = {}
        self._failed: dict[str, dict[str, tuple[bool, float, int, str]]] = {}  # id -> L.order_failures key
        self._pinned: dict[str, set[str]] = {}
        # COMPLETE nodes with a finite score, best first: (-score * sign, number, id). Never shrinks,
        # as finished nodes never change state.
        self._ranked: dict[str, list[tuple[float, int, str]]] = {}
        self._ranked_ids: set[str] = set()

    def __repr__(self) -> str:
        return "InMemoryTreeStore()"

    @property
    def schema_version(self) -> int:
        return L.SCHEMA_VERSION

    def _t(self, now: float | None) -> float:
        return L.timestamp(self._now(now))

    # ------------------------------------------------------------------ lookups (lock held)

    @staticmethod
    def _out(record: _R) -> _R:
        return copy.deepcopy(record)

    def _tree(self, tree_id: str) -> Tree:
        try:
            return self._trees[tree_id]
        except (KeyError, TypeError):
            raise NotFoundError("tree", tree_id) from None

    def _node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except (KeyError, TypeError):
            raise NotFoundError("node", node_id) from None

    def _run(self, run_id: str) -> Run:
        try:
            return self._runs[run_id]
        except (KeyError, TypeError):
            raise NotFoundError("run", run_id) from None

    def _open_node(self, node_id: str, action: str) -> Node:
        node = self._node(node_id)
        L.ensure_unfinished("node", node_id, node.state, action)
        return node

    def _open_run(self, run_id: str, action: str) -> Run:
        run = self._run(run_id)
        L.ensure_unfinished("run", run_id, run.state, action)
        return run

    # ------------------------------------------------------------------ trees

    def create_tree(
        self,
        name: str,
        *,
        task_name: str,
        higher_is_better: bool,
        task_snapshot: JSONDict | None = None,
        base_score: float | None = None,
        reference_score: float | None = None,
        budget: JSONDict | None = None,
        meta: JSONDict | None = None,
        now: float | None = None,
    ) -> Tree:
        t = self._t(now)
        tree = Tree(
            id=L.new_id(),
            name=L.text(name, "name"),
            task_name=L.text(task_name, "task_name"),
            task_snapshot=L.json_dict(task_snapshot, "task_snapshot"),
            higher_is_better=bool(higher_is_better),
            base_score=L.opt_float(base_score, "base_score"),
            reference_score=L.opt_float(reference_score, "reference_score"),
            budget=L.json_dict(budget, "budget"),
            status="active",
            meta=L.json_dict(meta, "meta"),
            created_at=t,
            updated_at=t,
        )
        with self._lock:
            self._add_tree(tree)
        return self._out(tree)

    def _add_tree(self, tree: Tree) -> None:
        self._trees[tree.id] = tree
        self._tree_nodes[tree.id] = []
        self._tree_insights[tree.id] = []
        self._gains[tree.id] = {}
        self._failed[tree.id] = {}
        self._pinned[tree.id] = set()
        self._ranked[tree.id] = []

    def _index(self, node: Node) -> None:
        """Refresh the derived indexes of one node (lock held)."""
        tree = self._trees[node.tree_id]
        gains = self._gains[node.tree_id]
        gains.pop(node.id, None)
        if node.state is State.COMPLETE and is_valid_score(node.score) and node.id not in self._ranked_ids:
            assert node.score is not None
            sign = 1.0 if tree.higher_is_better else -1.0
            bisect.insort(self._ranked[node.tree_id], (-node.score * sign, node.number, node.id))
            self._ranked_ids.add(node.id)
        if node.state is State.COMPLETE:
            ref = tree.base_score if node.parent_id is None else self._nodes[node.parent_id].score
            g = L.gain(node.score, ref, tree.higher_is_better)
            if g is not None and g > 0:
                gains[node.id] = g
        if node.state is State.FAIL and node.failure is not None:
            f = node.finished_at
            self._failed[node.tree_id][node.id] = (
                f is None,
                -(f or 0.0),
                -node.number,
                node.failure.kind.value,
            )
        if node.pinned:
            self._pinned[node.tree_id].add(node.id)
        else:
            self._pinned[node.tree_id].discard(node.id)

    def get_tree(self, tree_id: str) -> Tree:
        with self._lock:
            return self._out(self._tree(tree_id))

    def list_trees(self, *, status: TreeStatus | None = None) -> list[Tree]:
        if status is not None:
            L.tree_status(status)
        with self._lock:
            trees = [t for t in self._trees.values() if status is None or t.status == status]
            return self._out(sorted(trees, key=lambda t: t.created_at))

    def update_tree(
        self,
        tree_id: str,
        *,
        name: str | None = None,
        status: TreeStatus | None = None,
        base_score: float | None = None,
        reference_score: float | None = None,
        budget: JSONDict | None = None,
        meta: JSONDict | None = None,
        now: float | None = None,
    ) -> Tree:
        changes: dict[str, Any] = {"updated_at": self._t(now)}
        if name is not None:
            changes["name"] = L.text(name, "name")
        if status is not None:
            changes["status"] = L.tree_status(status)
        if base_score is not None:
            changes["base_score"] = L.opt_float(base_score, "base_score")
        if reference_score is not None:
            changes["reference_score"] = L.opt_float(reference_score, "reference_score")
        if budget is not None:
            changes["budget"] = L.json_dict(budget, "budget")
        new_meta = L.json_dict(meta, "meta") if meta is not None else None
        with self._lock:
            tree = self._tree(tree_id)
            if new_meta is not None:
                changes["meta"] = {**tree.meta, **new_meta}
            tree = replace(tree, **changes)
            self._trees[tree_id] = tree
            if "base_score" in changes and self._tree_nodes[tree_id]:
                self._index(self._nodes[self._tree_nodes[tree_id][0]])
            return self._out(tree)

    # ------------------------------------------------------------------ nodes: structure

    def add_node(
        self,
        tree_id: str,
        parent_id: str | None,
        *,
        strategy_kind: str = "",
        plan: JSONDict | None = None,
        meta: JSONDict | None = None,
        now: float | None = None,
    ) -> Node:
        t = self._t(now)
        kind = L.text(strategy_kind, "strategy_kind")
        plan_d = L.json_dict(plan, "plan")
        meta_d = L.json_dict(meta, "meta")
        with self._lock:
            self._tree(tree_id)
            ids = self._tree_nodes[tree_id]
            if parent_id is None:
                if ids:
                    raise InvalidInputError(
                        f"tree {tree_id!r} already has a root node; pass parent_id to add a child"
                    )
                depth = 0
            else:
                parent = self._node(parent_id)
                if parent.tree_id != tree_id:
                    raise InvalidInputError(
                        f"parent node {parent_id!r} belongs to tree {parent.tree_id!r}, not {tree_id!r}"
                    )
                depth = parent.depth + 1
            number = self._nodes[ids[-1]].number + 1 if ids else 0
            node = Node(
                id=L.new_id(), tree_id=tree_id, parent_id=parent_id, depth=depth, number=number,
                state=State.WAITING, strategy_kind=kind, plan=plan_d, diagnosis=None, score=None,
                reward=None, visits=0, value=0.0, cost={}, pinned=False, vetoed=False, note="",
                failure=None, meta=meta_d, created_at=t, started_at=None, finished_at=None,
            )  # fmt: skip
            self._insert_node(node)
            return self._out(node)

    def _insert_node(self, node: Node) -> None:
        self._nodes[node.id] = node
        self._tree_nodes[node.tree_id].append(node.id)
        self._children.setdefault(node.id, [])
        self._node_runs.setdefault(node.id, [])
        if node.parent_id is not None:
            self._children[node.parent_id].append(node.id)

    def get_node(self, node_id: str) -> Node:
        with self._lock:
            return self._out(self._node(node_id))

    def get_root(self, tree_id: str) -> Node | None:
        with self._lock:
            self._tree(tree_id)
            ids = self._tree_nodes[tree_id]
            return self._out(self._nodes[ids[0]]) if ids else None

    def list_nodes(self, tree_id: str, *, state: State | None = None) -> list[Node]:
        st = None if state is None else L.state_arg(state)
        with self._lock:
            self._tree(tree_id)
            nodes = [self._nodes[i] for i in self._tree_nodes[tree_id]]
            return self._out([n for n in nodes if st is None or n.state is st])

    def children(self, node_id: str) -> list[Node]:
        with self._lock:
            self._node(node_id)
            return self._out([self._nodes[i] for i in self._children[node_id]])

    def path_to_root(self, node_id: str) -> list[Node]:
        with self._lock:
            return self._out(self._path(node_id))

    def _path(self, node_id: str) -> list[Node]:
        path = [self._node(node_id)]
        while path[-1].parent_id is not None:
            path.append(self._nodes[path[-1].parent_id])
        path.reverse()
        return path

    def subtree(self, node_id: str) -> list[Node]:
        with self._lock:
            out = [self._node(node_id)]
            i = 0
            while i < len(out):
                out.extend(self._nodes[c] for c in self._children[out[i].id])
                i += 1
            return self._out(sorted(out, key=lambda n: n.number))

    # ------------------------------------------------------------------ nodes: lifecycle

    def claim_node(self, node_id: str, *, now: float | None = None) -> bool:
        t = self._t(now)
        with self._lock:
            node = self._node(node_id)
            if node.state is not State.WAITING:
                return False
            self._nodes[node_id] = replace(node, state=State.RUNNING, started_at=t)
            return True

    def update_node(
        self,
        node_id: str,
        *,
        strategy_kind: str | None = None,
        plan: JSONDict | None = None,
        diagnosis: JSONDict | None = None,
        meta: JSONDict | None = None,
    ) -> Node:
        changes: dict[str, Any] = {}
        if strategy_kind is not None:
            changes["strategy_kind"] = L.text(strategy_kind, "strategy_kind")
        if plan is not None:
            changes["plan"] = L.json_dict(plan, "plan")
        if diagnosis is not None:
            changes["diagnosis"] = L.json_dict(diagnosis, "diagnosis")
        new_meta = L.json_dict(meta, "meta") if meta is not None else None
        with self._lock:
            node = self._open_node(node_id, "update the node")
            if new_meta is not None:
                changes["meta"] = {**node.meta, **new_meta}
            node = replace(node, **changes)
            self._nodes[node_id] = node
            return self._out(node)

    def record_node_cost(self, node_id: str, cost: JSONDict) -> Node:
        c = L.json_dict(cost, "cost")
        with self._lock:
            node = self._open_node(node_id, "record cost")
            node = replace(node, cost={**node.cost, **c})
            self._nodes[node_id] = node
            return self._out(node)

    def finish_node(
        self,
        node_id: str,
        state: State,
        *,
        score: float | None = None,
        reward: float | None = None,
        diagnosis: JSONDict | None = None,
        failure: Failure | None = None,
        cost: JSONDict | None = None,
        now: float | None = None,
    ) -> Node:
        st = L.finished_state(state)
        sc = L.opt_float(score, "score")
        rw = L.opt_float(reward, "reward")
        diag = L.json_dict(diagnosis, "diagnosis") if diagnosis is not None else None
        fl = L.failure_arg(failure)
        c = L.json_dict(cost, "cost")
        t = self._t(now)
        st, fl = L.finish_outcome("node", st, sc, fl)
        with self._lock:
            node = self._open_node(node_id, "finish the node")
            node = replace(
                node,
                state=st,
                score=sc,
                reward=rw,
                diagnosis=diag if diag is not None else node.diagnosis,
                failure=copy.deepcopy(fl),
                cost={**node.cost, **c},
                finished_at=t,
            )
            self._nodes[node_id] = node
            self._index(node)
            for child in self._children[node_id]:  # they now have a parent score to gain over
                self._index(self._nodes[child])
            return self._out(node)

    def set_flags(
        self,
        node_id: str,
        *,
        pinned: bool | None = None,
        vetoed: bool | None = None,
        note: str | None = None,
    ) -> Node:
        changes: dict[str, Any] = {}
        if pinned is not None:
            changes["pinned"] = bool(pinned)
        if vetoed is not None:
            changes["vetoed"] = bool(vetoed)
        if note is not None:
            changes["note"] = L.text(note, "note")
        with self._lock:
            node = replace(self._node(node_id), **changes)
            self._nodes[node_id] = node
            self._index(node)
            return self._out(node)

    def backpropagate(self, node_id: str, reward: float, *, mode: BackpropMode = "mean") -> list[Node]:
        r = L.reward_arg(reward)
        L.backprop_value(0, 0.0, 0.0, mode)  # validates mode before any change
        with self._lock:
            path = []
            for node in self._path(node_id):
                visits, value = L.backprop_value(node.visits, node.value, r, mode)
                node = replace(node, visits=visits, value=value)
                self._nodes[node.id] = node
                path.append(node)
            return self._out(path)

    # ------------------------------------------------------------------ runs

    def add_run(
        self,
        node_id: str,
        *,
        recipe: JSONDict | None = None,
        config: JSONDict | None = None,
        meta: JSONDict | None = None,
        now: float | None = None,
    ) -> Run:
        t = self._t(now)
        rec = L.json_dict(recipe, "recipe")
        cfg = L.json_dict(config, "config")
        meta_d = L.json_dict(meta, "meta")
        with self._lock:
            node = self._open_node(node_id, "add a run")
            return self._out(self._new_run(node, rec, cfg, meta_d, t, attempt=1, retry_of=None))

    def _new_run(
        self,
        node: Node,
        recipe: dict[str, Any],
        config: dict[str, Any],
        meta: dict[str, Any],
        t: float,
        *,
        attempt: int,
        retry_of: str | None,
    ) -> Run:
        ids = self._node_runs[node.id]
        run = Run(
            id=L.new_id(), node_id=node.id, tree_id=node.tree_id,
            number=self._runs[ids[-1]].number + 1 if ids else 0, state=State.WAITING, recipe=recipe,
            config=config, job={}, metrics={}, score=None, artifacts={}, failure=None, cost={},
            attempt=attempt, retry_of=retry_of, heartbeat_at=None, meta=meta, created_at=t,
            started_at=None, finished_at=None,
        )  # fmt: skip
        self._insert_run(run)
        return run

    def _insert_run(self, run: Run) -> None:
        self._runs[run.id] = run
        self._node_runs[run.node_id].append(run.id)
        self._run_order.append(run.id)

    def get_run(self, run_id: str) -> Run:
        with self._lock:
            return self._out(self._run(run_id))

    def list_runs(self, node_id: str) -> list[Run]:
        with self._lock:
            self._node(node_id)
            return self._out(
                sorted((self._runs[i] for i in self._node_runs[node_id]), key=lambda r: r.number)
            )

    def find_runs(
        self,
        *,
        state: State | None = None,
        tree_id: str | None = None,
        node_id: str | None = None,
    ) -> list[Run]:
        st = None if state is None else L.state_arg(state)
        with self._lock:
            runs = (self._runs[i] for i in self._run_order)
            out = [
                r
                for r in runs
                if (st is None or r.state is st)
                and (tree_id is None or r.tree_id == tree_id)
                and (node_id is None or r.node_id == node_id)
            ]
            return self._out(out)

    def claim_run(self, run_id: str, *, now: float | None = None) -> bool:
        t = self._t(now)
        with self._lock:
            run = self._run(run_id)
            if run.state is not State.WAITING:
                return False
            self._runs[run_id] = replace(run, state=State.RUNNING, started_at=t, heartbeat_at=t)
            return True

    def claim_next_run(self, *, tree_id: str | None = None, now: float | None = None) -> Run | None:
        t = self._t(now)
        with self._lock:
            for rid in self._run_order:
                run = self._runs[rid]
                if run.state is State.WAITING and (tree_id is None or run.tree_id == tree_id):
                    run = replace(run, state=State.RUNNING, started_at=t, heartbeat_at=t)
                    self._runs[rid] = run
                    return self._out(run)
            return None

    def _update_run(self, run_id: str, action: str, fn: Callable[[Run], Run]) -> Run:
        with self._lock:
            run = fn(self._open_run(run_id, action))
            self._runs[run_id] = run
            return self._out(run)

    def set_run_job(self, run_id: str, job: JSONDict) -> Run:
        j = L.json_dict(job, "job")
        return self._update_run(run_id, "set the job", lambda r: replace(r, job=j))

    def record_run_metrics(self, run_id: str, metrics: JSONDict) -> Run:
        m = L.json_dict(metrics, "metrics")
        return self._update_run(run_id, "record metrics", lambda r: replace(r, metrics={**r.metrics, **m}))

    def record_run_artifacts(self, run_id: str, artifacts: JSONDict) -> Run:
        a = L.json_dict(artifacts, "artifacts")
        return self._update_run(
            run_id, "record artifacts", lambda r: replace(r, artifacts={**r.artifacts, **a})
        )

    def record_run_cost(self, run_id: str, cost: JSONDict) -> Run:
        c = L.json_dict(cost, "cost")
        return self._update_run(run_id, "record cost", lambda r: replace(r, cost={**r.cost, **c}))

    def heartbeat_run(self, run_id: str, *, now: float | None = None) -> None:
        t = self._t(now)
        self._update_run(run_id, "heartbeat", lambda r: replace(r, heartbeat_at=t))

    def finish_run(
        self,
        run_id: str,
        state: State,
        *,
        score: float | None = None,
        metrics: JSONDict | None = None,
        artifacts: JSONDict | None = None,
        failure: Failure | None = None,
        cost: JSONDict | None = None,
        now: float | None = None,
    ) -> Run:
        st = L.finished_state(state)
        sc = L.opt_float(score, "score")
        m = L.json_dict(metrics, "metrics")
        a = L.json_dict(artifacts, "artifacts")
        c = L.json_dict(cost, "cost")
        fl = L.failure_arg(failure)
        t = self._t(now)
        st, fl = L.finish_outcome("run", st, sc, fl)
        failure_copy = copy.deepcopy(fl)
        return self._update_run(
            run_id,
            "finish the run",
            lambda r: replace(
                r,
                state=st,
                score=sc,
                metrics={**r.metrics, **m},
                artifacts={**r.artifacts, **a},
                cost={**r.cost, **c},
                failure=failure_copy,
                finished_at=t,
            ),
        )

    def retry_run(self, run_id: str, *, now: float | None = None) -> Run:
        t = self._t(now)
        with self._lock:
            old = self._run(run_id)
            if old.state not in (State.FAIL, State.PRUNED):
                raise InvalidInputError(
                    f"run {run_id!r} is {old.state.value}; only FAIL or PRUNED runs can be retried"
                )
            node = self._open_node(old.node_id, "retry a run")
            run = self._new_run(
                node,
                copy.deepcopy(old.recipe),
                copy.deepcopy(old.config),
                copy.deepcopy(old.meta),
                t,
                attempt=L.retry_attempt(old),
                retry_of=old.id,
            )
            return self._out(run)

    def fail_stale_runs(
        self, grace_s: float, *, now: float | None = None, tree_id: str | None = None
    ) -> list[Run]:
        t = self._t(now)
        grace = L.opt_float(grace_s, "grace_s")
        if grace is None or grace < 0:
            raise InvalidInputError(f"grace_s must be a number >= 0; got {grace_s!r}")
        failed: list[Run] = []
        with self._lock:
            for rid in self._run_order:
                run = self._runs[rid]
                if run.state is not State.RUNNING or (tree_id is not None and run.tree_id != tree_id):
                    continue
                seen = run.heartbeat_at if run.heartbeat_at is not None else run.started_at
                if seen is None or t - seen > grace:
                    run = replace(
                        run, state=State.FAIL, finished_at=t, failure=L.stale_failure(seen, t, grace)
                    )
                    self._runs[rid] = run
                    failed.append(run)
            return self._out(failed)

    # ------------------------------------------------------------------ insights

    def add_insight(
        self,
        tree_id: str,
        text: str,
        *,
        evidence: Iterable[str] = (),
        scope: str = "tree",
        effect: float | None = None,
        now: float | None = None,
    ) -> Insight:
        t = self._t(now)
        body = L.text(text, "text", allow_empty=False)
        sc = L.text(scope, "scope")
        eff = L.opt_float(effect, "effect")
        ev = L.evidence_arg(evidence)
        with self._lock:
            self._tree(tree_id)
            for node_id in ev:
                if self._node(node_id).tree_id != tree_id:
                    raise InvalidInputError(
                        f"evidence node {node_id!r} belongs to another tree than {tree_id!r}"
                    )
            insight = Insight(
                id=L.new_id(), tree_id=tree_id, text=body, evidence=ev, scope=sc, effect=eff, created_at=t
            )
            self._insights[insight.id] = insight
            self._tree_insights[tree_id].append(insight.id)
            return self._out(insight)

    def get_insight(self, insight_id: str) -> Insight:
        with self._lock:
            try:
                return self._out(self._insights[insight_id])
            except (KeyError, TypeError):
                raise NotFoundError("insight", insight_id) from None

    def list_insights(self, tree_id: str, *, node_id: str | None = None) -> list[Insight]:
        with self._lock:
            self._tree(tree_id)
            out = [self._insights[i] for i in self._tree_insights[tree_id]]
            return self._out([i for i in out if node_id is None or node_id in i.evidence])

    # ------------------------------------------------------------------ queries

    def best_node(self, tree_id: str, *, include_vetoed: bool = False) -> Node | None:
        with self._lock:
            self._tree(tree_id)
            for _, _, node_id in self._ranked[tree_id]:
                node = self._nodes[node_id]
                if include_vetoed or not node.vetoed:
                    return self._out(node)
            return None

    def critical_nodes(self, tree_id: str, k: int = 5) -> list[Node]:
        if k < 0:
            raise InvalidInputError(f"k must be >= 0; got {k}")
        with self._lock:
            self._tree(tree_id)
            nodes = self._nodes
            pinned = sorted((nodes[i] for i in self._pinned[tree_id]), key=lambda n: n.number)[:k]
            scored = (
                (-g, nodes[i].number, i) for i, g in self._gains[tree_id].items() if not nodes[i].vetoed
            )
            gains = [nodes[i] for _, _, i in heapq.nsmallest(2 * k, scored)]
            # L.order_failures on precomputed keys: newest of each kind first, then the rest, newest first.
            first: list[Node] = []
            rest: list[Node] = []
            kinds: set[str] = set()
            for key, node_id in sorted((key, i) for i, key in self._failed[tree_id].items()):
                (rest if key[3] in kinds else first).append(nodes[node_id])
                kinds.add(key[3])
            failures = first + rest
            return self._out(L.pick_critical(pinned, gains, failures[: 2 * k], k))

    # ------------------------------------------------------------------ export / import

    def export_tree(self, tree_id: str) -> dict[str, Any]:
        with self._lock:
            tree = self._tree(tree_id)
            nodes = [self._nodes[i] for i in self._tree_nodes[tree_id]]
            runs = [
                run
                for n in nodes
                for run in sorted((self._runs[r] for r in self._node_runs[n.id]), key=lambda r: r.number)
            ]
            insights = [self._insights[i] for i in self._tree_insights[tree_id]]
            return L.build_export(tree, nodes, runs, insights)

    def import_tree(self, data: Mapping[str, Any]) -> Tree:
        tree, nodes, runs, insights = L.parse_export(data)
        with self._lock:
            clash = (
                [tree.id]
                if tree.id in self._trees
                else [n.id for n in nodes if n.id in self._nodes]
                + [r.id for r in runs if r.id in self._runs]
                + [i.id for i in insights if i.id in self._insights]
            )
            if clash:
                raise InvalidInputError(
                    f"cannot import tree {tree.id!r}: id {clash[0]!r} already exists in this store"
                )
            self._add_tree(tree)
            for n in nodes:
                self._insert_node(n)
            for n in nodes:
                self._index(n)
            for r in sorted(runs, key=lambda r: r.created_at):
                self._insert_run(r)
            for i in insights:
                self._insights[i.id] = i
                self._tree_insights[tree.id].append(i.id)
            return self._out(tree)
