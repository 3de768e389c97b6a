"""SQLite tree store: one file, WAL mode, the embedded default.

Guarantees, on top of the contract in :mod:`tree_store.base`:

- **Durable acknowledgements.** ``synchronous=FULL``: a method that returned has committed and its
  write is on disk; kill -9 of a writer (or of any process) loses nothing it acknowledged, and the
  store opens cleanly afterwards (SQLite recovers the WAL; its locks are kernel locks, released with
  the process, so the next writer never waits on a stale lock).
- **Multi-process safe.** Every write is a ``BEGIN IMMEDIATE`` transaction; claims are
  ``UPDATE ... WHERE state = 'WAITING'`` checked by row count, so exactly one racer wins. Writers wait
  up to 30 s for the lock (``busy_timeout``).
- **Threads and fork.** Each thread gets its own connection; a forked child opens fresh ones (a
  connection is never used across ``fork``). The store pickles as its path, so it can be handed to
  ``ProcessPoolExecutor`` workers (a custom clock does not travel).
- **Foreign files are refused**, read-only, with ``CorruptStoreError`` (see :mod:`tree_store.sqlite_schema`).

Not covered: network file systems (SQLite locking is unreliable there); high write concurrency (one
writer at a time; fine for a tree search, whose writes are small and rare).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tree_store import _logic as L
from tree_store import codec
from tree_store.base import BackpropMode, JSONDict, TreeStore
from tree_store.errors import InvalidInputError, NotFoundError, TreeStoreError
from tree_store.records import Failure, FailureKind, Insight, Node, Run, State, Tree, TreeStatus
from tree_store.sqlite_conn import Connections
from tree_store.sqlite_rows import (
    BEST_HIGHER,
    BEST_LOWER,
    COLUMNS,
    CRITICAL_FAILURES,
    CRITICAL_GAINS,
    EXISTS,
    INSIGHT_COLS,
    INSIGHT_KINDS,
    NODE_COLS,
    NODE_KINDS,
    RUN_COLS,
    RUN_KINDS,
    derived,
    export_rows,
    failure_in,
    fin,
    fout,
    insight_from_row,
    insight_row,
    jin,
    node_from_row,
    node_row,
    q,
    run_from_row,
    run_row,
    tree_from_row,
    tree_row,
)

__all__ = ["SQLiteTreeStore"]


class SQLiteTreeStore(TreeStore):
    """A tree store in one SQLite file (created if missing). See the module docstring.

    Raises CorruptStoreError if ``path`` exists but is not a trex store, SchemaVersionError if it was
    written by a newer version.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock=clock)
        self.path = Path(path)
        self._db = Connections(self.path)
        self._version = self._db.open()

    def __repr__(self) -> str:
        return f"SQLiteTreeStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SQLiteTreeStore, (str(self.path),))

    @property
    def schema_version(self) -> int:
        return self._version

    def close(self) -> None:
        self._db.close()

    def _conn(self) -> sqlite3.Connection:
        return self._db.get()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.write()

    def _read(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._db.read()

    def _t(self, now: float | None) -> float:
        return L.timestamp(self._now(now))

    # ------------------------------------------------------------------ row helpers

    @staticmethod
    def _get_tree(c: sqlite3.Connection, tree_id: str) -> Tree:
        row = c.execute(q("SELECT {T} FROM trees WHERE id = ?"), (tree_id,)).fetchone()
        if row is None:
            raise NotFoundError("tree", tree_id)
        return tree_from_row(row)

    @staticmethod
    def _tree_exists(c: sqlite3.Connection, tree_id: str) -> None:
        if c.execute("SELECT 1 FROM trees WHERE id = ?", (tree_id,)).fetchone() is None:
            raise NotFoundError("tree", tree_id)

    @staticmethod
    def _get_node(c: sqlite3.Connection, node_id: str) -> Node:
        row = c.execute(q("SELECT {N} FROM nodes WHERE id = ?"), (node_id,)).fetchone()
        if row is None:
            raise NotFoundError("node", node_id)
        return node_from_row(row)

    @staticmethod
    def _node_exists(c: sqlite3.Connection, node_id: str) -> None:
        if c.execute("SELECT 1 FROM nodes WHERE id = ?", (node_id,)).fetchone() is None:
            raise NotFoundError("node", node_id)

    @staticmethod
    def _get_run(c: sqlite3.Connection, run_id: str) -> Run:
        row = c.execute(q("SELECT {R} FROM runs WHERE id = ?"), (run_id,)).fetchone()
        if row is None:
            raise NotFoundError("run", run_id)
        return run_from_row(row)

    def _open_node(self, c: sqlite3.Connection, node_id: str, action: str) -> Node:
        node = self._get_node(c, node_id)
        L.ensure_unfinished("node", node_id, node.state, action)
        return node

    def _open_run(self, c: sqlite3.Connection, run_id: str, action: str) -> Run:
        run = self._get_run(c, run_id)
        L.ensure_unfinished("run", run_id, run.state, action)
        return run

    @staticmethod
    def _set(c: sqlite3.Connection, table: str, record_id: str, values: Mapping[str, Any]) -> None:
        if not values:
            return
        if not set(values) <= COLUMNS[table]:  # names are code constants, never input; check anyway
            raise TreeStoreError(f"internal error: unknown columns {sorted(set(values) - COLUMNS[table])}")
        cols = ", ".join(f"{k} = ?" for k in values)
        c.execute(f"UPDATE {table} SET {cols} WHERE id = ?", (*values.values(), record_id))  # noqa: S608

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
        with self._write() as c:
            c.execute(q("INSERT INTO trees ({T}) VALUES ({T?})"), tree_row(tree))
        return tree

    def get_tree(self, tree_id: str) -> Tree:
        return self._get_tree(self._conn(), tree_id)

    def list_trees(self, *, status: TreeStatus | None = None) -> list[Tree]:
        c = self._conn()
        if status is None:
            rows = c.execute(q("SELECT {T} FROM trees ORDER BY created_at, rowid")).fetchall()
        else:
            L.tree_status(status)
            rows = c.execute(
                q("SELECT {T} FROM trees WHERE status = ? ORDER BY created_at, rowid"), (status,)
            ).fetchall()
        return [tree_from_row(r) for r in rows]

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
        values: dict[str, Any] = {"updated_at": self._t(now)}
        if name is not None:
            values["name"] = L.text(name, "name")
        if status is not None:
            values["status"] = L.tree_status(status)
        if base_score is not None:
            values["base_score"] = fin(L.opt_float(base_score, "base_score"))
        if reference_score is not None:
            values["reference_score"] = fin(L.opt_float(reference_score, "reference_score"))
        if budget is not None:
            values["budget"] = jin(L.json_dict(budget, "budget"), "budget")
        new_meta = L.json_dict(meta, "meta") if meta is not None else None
        with self._write() as c:
            tree = self._get_tree(c, tree_id)
            if new_meta is not None:
                values["meta"] = jin({**tree.meta, **new_meta}, "meta")
            self._set(c, "trees", tree_id, values)
            tree = self._get_tree(c, tree_id)
            if "base_score" in values:  # the root's gain is measured against the base score
                root = c.execute(
                    "SELECT id, score FROM nodes WHERE tree_id = ? AND parent_id IS NULL AND state = 'COMPLETE'",
                    (tree_id,),
                ).fetchone()
                if root is not None:
                    gain = L.gain(fout(root[1]), tree.base_score, tree.higher_is_better)
                    c.execute("UPDATE nodes SET gain = ? WHERE id = ?", (gain, root[0]))
            return tree

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
        with self._write() as c:
            self._tree_exists(c, tree_id)
            last = c.execute("SELECT MAX(number) FROM nodes WHERE tree_id = ?", (tree_id,)).fetchone()[0]
            if parent_id is None:
                if last is not None:
                    raise InvalidInputError(
                        f"tree {tree_id!r} already has a root node; pass parent_id to add a child"
                    )
                depth = 0
            else:
                prow = c.execute("SELECT tree_id, depth FROM nodes WHERE id = ?", (parent_id,)).fetchone()
                if prow is None:
                    raise NotFoundError("node", parent_id)
                if prow[0] != tree_id:
                    raise InvalidInputError(
                        f"parent node {parent_id!r} belongs to tree {prow[0]!r}, not {tree_id!r}"
                    )
                depth = int(prow[1]) + 1
            node = Node(
                id=L.new_id(), tree_id=tree_id, parent_id=parent_id, depth=depth,
                number=0 if last is None else int(last) + 1, state=State.WAITING, strategy_kind=kind,
                plan=plan_d, diagnosis=None, score=None, reward=None, visits=0, value=0.0, cost={},
                pinned=False, vetoed=False, note="", failure=None, meta=meta_d, created_at=t,
                started_at=None, finished_at=None,
            )  # fmt: skip
            self._insert_nodes(c, [node])
        return node

    @staticmethod
    def _insert_nodes(c: sqlite3.Connection, nodes: Iterable[Node]) -> None:
        c.executemany(q("INSERT INTO nodes ({N}) VALUES ({N?})"), (node_row(n) for n in nodes))

    def get_node(self, node_id: str) -> Node:
        return self._get_node(self._conn(), node_id)

    def get_root(self, tree_id: str) -> Node | None:
        with self._read() as c:
            self._tree_exists(c, tree_id)
            row = c.execute(
                q("SELECT {N} FROM nodes WHERE tree_id = ? AND parent_id IS NULL ORDER BY number LIMIT 1"),
                (tree_id,),
            ).fetchone()
            return None if row is None else node_from_row(row)

    def list_nodes(self, tree_id: str, *, state: State | None = None) -> list[Node]:
        with self._read() as c:
            self._tree_exists(c, tree_id)
            if state is None:
                rows = c.execute(q("SELECT {N} FROM nodes WHERE tree_id = ? ORDER BY number"), (tree_id,))
            else:
                rows = c.execute(
                    q("SELECT {N} FROM nodes WHERE tree_id = ? AND state = ? ORDER BY number"),
                    (tree_id, L.state_arg(state).value),
                )
            return [node_from_row(r) for r in rows.fetchall()]

    def children(self, node_id: str) -> list[Node]:
        with self._read() as c:
            rows = c.execute(
                q("SELECT {N} FROM nodes WHERE parent_id = ? ORDER BY number"), (node_id,)
            ).fetchall()
            if not rows:
                self._node_exists(c, node_id)
            return [node_from_row(r) for r in rows]

    def path_to_root(self, node_id: str) -> list[Node]:
        return self._path(self._conn(), node_id)

    @staticmethod
    def _path(c: sqlite3.Connection, node_id: str) -> list[Node]:
        rows = c.execute(
            q("""WITH RECURSIVE up(id, parent_id, lvl) AS (
                    SELECT id, parent_id, 0 FROM nodes WHERE id = ?
                    UNION ALL
                    SELECT n.id, n.parent_id, up.lvl + 1 FROM nodes n JOIN up ON n.id = up.parent_id)
                SELECT {NN} FROM up JOIN nodes n ON n.id = up.id ORDER BY up.lvl DESC"""),
            (node_id,),
        ).fetchall()
        if not rows:
            raise NotFoundError("node", node_id)
        return [node_from_row(r) for r in rows]

    def subtree(self, node_id: str) -> list[Node]:
        rows = (
            self._conn()
            .execute(
                q("""WITH RECURSIVE down(id) AS (
                    SELECT id FROM nodes WHERE id = ?
                    UNION ALL
                    SELECT n.id FROM nodes n JOIN down ON n.parent_id = down.id)
                SELECT {NN} FROM down JOIN nodes n ON n.id = down.id ORDER BY n.number"""),
                (node_id,),
            )
            .fetchall()
        )
        if not rows:
            raise NotFoundError("node", node_id)
        return [node_from_row(r) for r in rows]

    # ------------------------------------------------------------------ nodes: lifecycle

    def claim_node(self, node_id: str, *, now: float | None = None) -> bool:
        t = self._t(now)
        with self._write() as c:
            cur = c.execute(
                "UPDATE nodes SET state = 'RUNNING', started_at = ? WHERE id = ? AND state = 'WAITING'",
                (t, node_id),
            )
            if cur.rowcount == 1:
                return True
            self._node_exists(c, node_id)
            return False

    def update_node(
        self,
        node_id: str,
        *,
        strategy_kind: str | None = None,
        plan: JSONDict | None = None,
        diagnosis: JSONDict | None = None,
        meta: JSONDict | None = None,
    ) -> Node:
        values: dict[str, Any] = {}
        if strategy_kind is not None:
            values["strategy_kind"] = L.text(strategy_kind, "strategy_kind")
        if plan is not None:
            values["plan"] = jin(L.json_dict(plan, "plan"), "plan")
        if diagnosis is not None:
            values["diagnosis"] = jin(L.json_dict(diagnosis, "diagnosis"), "diagnosis")
        new_meta = L.json_dict(meta, "meta") if meta is not None else None
        with self._write() as c:
            node = self._open_node(c, node_id, "update the node")
            if new_meta is not None:
                values["meta"] = jin({**node.meta, **new_meta}, "meta")
            self._set(c, "nodes", node_id, values)
            return self._get_node(c, node_id)

    def record_node_cost(self, node_id: str, cost: JSONDict) -> Node:
        add = L.json_dict(cost, "cost")
        with self._write() as c:
            node = self._open_node(c, node_id, "record cost")
            self._set(c, "nodes", node_id, {"cost": jin({**node.cost, **add}, "cost")})
            return self._get_node(c, node_id)

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
        add = L.json_dict(cost, "cost")
        t = self._t(now)
        st, fl = L.finish_outcome("node", st, sc, fl)
        values: dict[str, Any] = {
            "state": st.value,
            "score": fin(sc),
            "reward": fin(rw),
            "failure": failure_in(fl),
            "finished_at": t,
        }
        if diag is not None:
            values["diagnosis"] = jin(diag, "diagnosis")
        values["failure_kind"] = None if fl is None else fl.kind.value
        with self._write() as c:
            node = self._open_node(c, node_id, "finish the node")
            values["cost"] = jin({**node.cost, **add}, "cost")
            tree = self._get_tree(c, node.tree_id)
            if node.parent_id is None:
                ref = tree.base_score
            else:
                ref = fout(c.execute("SELECT score FROM nodes WHERE id = ?", (node.parent_id,)).fetchone()[0])
            values["gain"] = L.gain(sc, ref, tree.higher_is_better) if st is State.COMPLETE else None
            self._set(c, "nodes", node_id, values)
            # Children finished before this node now have a parent score to gain over.
            kids = c.execute(
                "SELECT id, score FROM nodes WHERE parent_id = ? AND state = 'COMPLETE'", (node_id,)
            ).fetchall()
            c.executemany(
                "UPDATE nodes SET gain = ? WHERE id = ?",
                [(L.gain(fout(score_), sc, tree.higher_is_better), kid) for kid, score_ in kids],
            )
            return self._get_node(c, node_id)

    def set_flags(
        self,
        node_id: str,
        *,
        pinned: bool | None = None,
        vetoed: bool | None = None,
        note: str | None = None,
    ) -> Node:
        values: dict[str, Any] = {}
        if pinned is not None:
            values["pinned"] = int(bool(pinned))
        if vetoed is not None:
            values["vetoed"] = int(bool(vetoed))
        if note is not None:
            values["note"] = L.text(note, "note")
        with self._write() as c:
            self._node_exists(c, node_id)
            self._set(c, "nodes", node_id, values)
            return self._get_node(c, node_id)

    def backpropagate(self, node_id: str, reward: float, *, mode: BackpropMode = "mean") -> list[Node]:
        r = L.reward_arg(reward)
        L.backprop_value(0, 0.0, 0.0, mode)  # validates mode before any change
        with self._write() as c:
            path = self._path(c, node_id)
            updates = []
            for n in path:
                visits, value = L.backprop_value(n.visits, n.value, r, mode)
                updates.append((visits, value, n.id))
            c.executemany("UPDATE nodes SET visits = ?, value = ? WHERE id = ?", updates)
            return self._path(c, node_id)

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
        with self._write() as c:
            node = self._open_node(c, node_id, "add a run")
            return self._new_run(c, node, rec, cfg, meta_d, t, attempt=1, retry_of=None)

    def _new_run(
        self,
        c: sqlite3.Connection,
        node: Node,
        recipe: dict[str, Any],
        config: dict[str, Any],
        meta: dict[str, Any],
        t: float,
        *,
        attempt: int,
        retry_of: str | None,
    ) -> Run:
        last = c.execute("SELECT MAX(number) FROM runs WHERE node_id = ?", (node.id,)).fetchone()[0]
        run = Run(
            id=L.new_id(), node_id=node.id, tree_id=node.tree_id, number=0 if last is None else int(last) + 1,
            state=State.WAITING, recipe=recipe, config=config, job={}, metrics={}, score=None, artifacts={},
            failure=None, cost={}, attempt=attempt, retry_of=retry_of, heartbeat_at=None, meta=meta,
            created_at=t, started_at=None, finished_at=None,
        )  # fmt: skip
        self._insert_runs(c, [run])
        return run

    @staticmethod
    def _insert_runs(c: sqlite3.Connection, runs: Iterable[Run]) -> None:
        c.executemany(q("INSERT INTO runs ({R}) VALUES ({R?})"), (run_row(r) for r in runs))

    def get_run(self, run_id: str) -> Run:
        return self._get_run(self._conn(), run_id)

    def list_runs(self, node_id: str) -> list[Run]:
        with self._read() as c:
            rows = c.execute(
                q("SELECT {R} FROM runs WHERE node_id = ? ORDER BY number"), (node_id,)
            ).fetchall()
            if not rows:
                self._node_exists(c, node_id)
            return [run_from_row(r) for r in rows]

    def find_runs(
        self,
        *,
        state: State | None = None,
        tree_id: str | None = None,
        node_id: str | None = None,
    ) -> list[Run]:
        where: list[str] = []
        args: list[Any] = []
        if state is not None:
            where.append("state = ?")
            args.append(L.state_arg(state).value)
        if tree_id is not None:
            where.append("tree_id = ?")
            args.append(tree_id)
        if node_id is not None:
            where.append("node_id = ?")
            args.append(node_id)
        sql = q("SELECT {R} FROM runs")
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn().execute(sql + " ORDER BY rowid", args).fetchall()
        return [run_from_row(r) for r in rows]

    def claim_run(self, run_id: str, *, now: float | None = None) -> bool:
        t = self._t(now)
        with self._write() as c:
            cur = c.execute(
                "UPDATE runs SET state = 'RUNNING', started_at = ?, heartbeat_at = ? WHERE id = ? AND state = 'WAITING'",
                (t, t, run_id),
            )
            if cur.rowcount == 1:
                return True
            if c.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise NotFoundError("run", run_id)
            return False

    def claim_next_run(self, *, tree_id: str | None = None, now: float | None = None) -> Run | None:
        t = self._t(now)
        with self._write() as c:
            if tree_id is None:
                row = c.execute(
                    "SELECT id FROM runs WHERE state = 'WAITING' ORDER BY rowid LIMIT 1"
                ).fetchone()
            else:
                row = c.execute(
                    "SELECT id FROM runs WHERE state = 'WAITING' AND tree_id = ? ORDER BY rowid LIMIT 1",
                    (tree_id,),
                ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE runs SET state = 'RUNNING', started_at = ?, heartbeat_at = ? WHERE id = ? AND state = 'WAITING'",
                (t, t, row[0]),
            )
            return self._get_run(c, row[0])

    def _merge_run(self, run_id: str, field: str, add: JSONDict, action: str) -> Run:
        d = L.json_dict(add, field)
        with self._write() as c:
            run = self._open_run(c, run_id, action)
            merged = {**getattr(run, field), **d}
            self._set(c, "runs", run_id, {field: jin(merged, field)})
            return self._get_run(c, run_id)

    def set_run_job(self, run_id: str, job: JSONDict) -> Run:
        j = L.json_dict(job, "job")
        with self._write() as c:
            self._open_run(c, run_id, "set the job")
            self._set(c, "runs", run_id, {"job": jin(j, "job")})
            return self._get_run(c, run_id)

    def record_run_metrics(self, run_id: str, metrics: JSONDict) -> Run:
        return self._merge_run(run_id, "metrics", metrics, "record metrics")

    def record_run_artifacts(self, run_id: str, artifacts: JSONDict) -> Run:
        return self._merge_run(run_id, "artifacts", artifacts, "record artifacts")

    def record_run_cost(self, run_id: str, cost: JSONDict) -> Run:
        return self._merge_run(run_id, "cost", cost, "record cost")

    def heartbeat_run(self, run_id: str, *, now: float | None = None) -> None:
        t = self._t(now)
        with self._write() as c:
            cur = c.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE id = ? AND state IN ('WAITING', 'RUNNING')",
                (t, run_id),
            )
            if cur.rowcount != 1:
                self._open_run(c, run_id, "heartbeat")  # raises NotFoundError / UpdateFinishedError

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
        co = L.json_dict(cost, "cost")
        fl = L.failure_arg(failure)
        t = self._t(now)
        st, fl = L.finish_outcome("run", st, sc, fl)
        with self._write() as c:
            run = self._open_run(c, run_id, "finish the run")
            self._set(
                c,
                "runs",
                run_id,
                {
                    "state": st.value,
                    "score": fin(sc),
                    "metrics": jin({**run.metrics, **m}, "metrics"),
                    "artifacts": jin({**run.artifacts, **a}, "artifacts"),
                    "cost": jin({**run.cost, **co}, "cost"),
                    "failure": failure_in(fl),
                    "finished_at": t,
                },
            )
            return self._get_run(c, run_id)

    def retry_run(self, run_id: str, *, now: float | None = None) -> Run:
        t = self._t(now)
        with self._write() as c:
            old = self._get_run(c, run_id)
            if old.state not in (State.FAIL, State.PRUNED):
                raise InvalidInputError(
                    f"run {run_id!r} is {old.state.value}; only FAIL or PRUNED runs can be retried"
                )
            node = self._open_node(c, old.node_id, "retry a run")
            return self._new_run(
                c, node, old.recipe, old.config, old.meta, t, attempt=L.retry_attempt(old), retry_of=old.id
            )

    def fail_stale_runs(
        self, grace_s: float, *, now: float | None = None, tree_id: str | None = None
    ) -> list[Run]:
        t = self._t(now)
        grace = L.opt_float(grace_s, "grace_s")
        if grace is None or grace < 0:
            raise InvalidInputError(f"grace_s must be a number >= 0; got {grace_s!r}")
        sql = "SELECT id, heartbeat_at, started_at FROM runs WHERE state = 'RUNNING'"
        args: tuple[Any, ...] = ()
        if tree_id is not None:
            sql += " AND tree_id = ?"
            args = (tree_id,)
        sql += " ORDER BY rowid"

        def stale(rows: list[Any]) -> list[tuple[str, float | None]]:
            out = []
            for rid, hb, started in rows:
                seen = hb if hb is not None else started
                if seen is None or t - seen > grace:
                    out.append((rid, seen))
            return out

        failed: list[Run] = []
        # Called every heartbeat period: look first without the write lock, so that the common case
        # (nothing stale) never blocks the workers' writes; then re-check under the lock.
        if not stale(self._conn().execute(sql, args).fetchall()):
            return failed
        with self._write() as c:
            for rid, seen in stale(c.execute(sql, args).fetchall()):
                values = {
                    "state": State.FAIL.value,
                    "finished_at": t,
                    "failure": failure_in(L.stale_failure(seen, t, grace)),
                }
                self._set(c, "runs", rid, values)
                failed.append(self._get_run(c, rid))
        return failed

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
        with self._write() as c:
            self._tree_exists(c, tree_id)
            for node_id in ev:
                row = c.execute("SELECT tree_id FROM nodes WHERE id = ?", (node_id,)).fetchone()
                if row is None:
                    raise NotFoundError("node", node_id)
                if row[0] != tree_id:
                    raise InvalidInputError(
                        f"evidence node {node_id!r} belongs to another tree than {tree_id!r}"
                    )
            insight = Insight(
                id=L.new_id(), tree_id=tree_id, text=body, evidence=ev, scope=sc, effect=eff, created_at=t
            )
            c.execute(q("INSERT INTO insights ({I}) VALUES (?, ?, ?, ?, ?, ?, ?)"), insight_row(insight))
        return insight

    def get_insight(self, insight_id: str) -> Insight:
        row = self._conn().execute(q("SELECT {I} FROM insights WHERE id = ?"), (insight_id,)).fetchone()
        if row is None:
            raise NotFoundError("insight", insight_id)
        return insight_from_row(row)

    def list_insights(self, tree_id: str, *, node_id: str | None = None) -> list[Insight]:
        with self._read() as c:
            self._tree_exists(c, tree_id)
            rows = c.execute(
                q("SELECT {I} FROM insights WHERE tree_id = ? ORDER BY rowid"), (tree_id,)
            ).fetchall()
        out = [insight_from_row(r) for r in rows]
        return [i for i in out if node_id is None or node_id in i.evidence]

    # ------------------------------------------------------------------ queries

    def best_node(self, tree_id: str, *, include_vetoed: bool = False) -> Node | None:
        with self._read() as c:
            tree = self._get_tree(c, tree_id)
            # Two constant queries so the (tree_id, state, score) index gives the order directly.
            sql = BEST_HIGHER if tree.higher_is_better else BEST_LOWER
            row = c.execute(sql, (tree_id, int(include_vetoed))).fetchone()
            return None if row is None else self._get_node(c, row[0])

    def critical_nodes(self, tree_id: str, k: int = 5) -> list[Node]:
        if k < 0:
            raise InvalidInputError(f"k must be >= 0; got {k}")
        with self._read() as c:
            self._tree_exists(c, tree_id)
            if k == 0:
                return []
            limit = 2 * k  # enough for pick_critical's slot split after dropping pinned duplicates
            # Rank on ids and numbers only; load the few winners afterwards.
            pinned = [
                r[0]
                for r in c.execute(
                    "SELECT id FROM nodes WHERE tree_id = ? AND pinned = 1 ORDER BY number LIMIT ?",
                    (tree_id, k),
                )
            ]
            gains = [r[0] for r in c.execute(CRITICAL_GAINS, (tree_id, limit))]
            # Most recent failures of each kind (index-ordered, a few rows per kind), merged as in
            # L.order_failures: the newest of each kind first, then the rest, newest first.
            recent: list[tuple[bool, float, int, str, str]] = []
            for kind in FailureKind:
                for node_id, finished, number in c.execute(
                    CRITICAL_FAILURES, (tree_id, kind.value, limit + 1)
                ):
                    recent.append((finished is None, -(finished or 0.0), -number, kind.value, node_id))
            recent.sort()
            seen_kinds: set[str] = set()
            first: list[str] = []
            rest: list[str] = []
            for *_, kind_value, node_id in recent:
                (rest if kind_value in seen_kinds else first).append(node_id)
                seen_kinds.add(kind_value)
            failures = (first + rest)[:limit]
            cache: dict[str, Node] = {}

            def load(ids: list[str]) -> list[Node]:
                for i in ids:
                    if i not in cache:
                        cache[i] = self._get_node(c, i)
                return [cache[i] for i in ids]

            return L.pick_critical(load(pinned), load(gains), load(failures), k)

    # ------------------------------------------------------------------ export / import

    def export_tree(self, tree_id: str) -> dict[str, Any]:
        # Straight from the rows: the stored JSON text already is the export's encoded form, so it is
        # parsed once and never decoded and re-encoded. Equal to L.build_export of the records (tested).
        with self._read() as c:
            tree = self._get_tree(c, tree_id)
            nodes = c.execute(q("SELECT {N} FROM nodes WHERE tree_id = ? ORDER BY number"), (tree_id,))
            node_dicts = export_rows(NODE_COLS, nodes, NODE_KINDS)
            runs = c.execute(
                q("""SELECT {RR} FROM runs r JOIN nodes n ON n.id = r.node_id
                    WHERE r.tree_id = ? ORDER BY n.number, r.number"""),
                (tree_id,),
            )
            run_dicts = export_rows(RUN_COLS, runs, RUN_KINDS)
            insights = c.execute(q("SELECT {I} FROM insights WHERE tree_id = ? ORDER BY rowid"), (tree_id,))
            insight_dicts = export_rows(INSIGHT_COLS, insights, INSIGHT_KINDS)
        return {
            "format": L.EXPORT_FORMAT,
            "version": L.EXPORT_VERSION,
            "tree": codec.tree_to_dict(tree),
            "nodes": node_dicts,
            "runs": run_dicts,
            "insights": insight_dicts,
        }

    def import_tree(self, data: Mapping[str, Any]) -> Tree:
        tree, nodes, runs, insights = L.parse_export(data)
        rows_t = tree_row(tree)  # encode before taking the lock: bad data fails fast
        rows_n = [node_row(n) for n in nodes]
        rows_r = [run_row(r) for r in sorted(runs, key=lambda r: r.created_at)]
        rows_i = [insight_row(i) for i in insights]
        with self._write() as c:
            clash = self._first_existing(c, "trees", [tree.id])
            clash = clash or self._first_existing(c, "nodes", [n.id for n in nodes])
            clash = clash or self._first_existing(c, "runs", [r.id for r in runs])
            clash = clash or self._first_existing(c, "insights", [i.id for i in insights])
            if clash:
                raise InvalidInputError(
                    f"cannot import tree {tree.id!r}: id {clash!r} already exists in this store"
                )
            c.execute(q("INSERT INTO trees ({T}) VALUES ({T?})"), rows_t)
            c.executemany(q("INSERT INTO nodes ({N}) VALUES ({N?})"), rows_n)
            c.executemany("UPDATE nodes SET gain = ?, failure_kind = ? WHERE id = ?", derived(tree, nodes))
            c.executemany(q("INSERT INTO runs ({R}) VALUES ({R?})"), rows_r)
            c.executemany(q("INSERT INTO insights ({I}) VALUES (?, ?, ?, ?, ?, ?, ?)"), rows_i)
        return tree

    @staticmethod
    def _first_existing(c: sqlite3.Connection, table: str, ids: Sequence[str]) -> str | None:
        sql = EXISTS[table]
        for record_id in ids:
            if c.execute(sql, (record_id,)).fetchone() is not None:
                return record_id
        return None
