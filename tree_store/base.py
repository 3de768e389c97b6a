"""The store contract: every operation the rest of trex needs on the experiment tree, and its guarantees.

Every backend implements :class:`TreeStore` and passes the contract suite in :mod:`tree_store.testing`.

Guarantees (all backends):

- **Snapshots.** Reads return frozen records; mutating a returned dict never changes the store.
  Dict fields must be JSON data (str keys; str, int, float, bool, None, lists, dicts). NaN and +-inf
  floats are stored exactly; tuples come back as lists; anything else raises ``InvalidInputError``.
- **Ids** are random (uuid4, 122 random bits), never sequential. Nodes also get a per-tree ``number``
  (root = 0) and runs a per-node ``number``, for people.
- **Claims are compare-and-set.** ``claim_node`` / ``claim_run`` move WAITING -> RUNNING and return
  True for exactly one of any number of racing callers (threads or processes, for durable backends).
- **Finished records are immutable.** Once COMPLETE, FAIL or PRUNED, a node or run refuses any change
  with ``UpdateFinishedError``, except a node's human flags (``set_flags``) and tree-policy statistics
  (``backpropagate``), which are allowed in any state. Children may be added under any node.
- **A score that is not a finite number never completes.** ``finish_node`` / ``finish_run`` with state
  COMPLETE and a NaN or +-inf score stores FAIL with a ``nan_loss`` failure; a node finished COMPLETE
  without a score stores FAIL with a ``crash`` failure (a run may complete without a score, e.g. when
  evaluation was off).
- **Unknown ids** raise ``NotFoundError`` naming the id.
- **Atomicity.** Each method is one transaction: it happens entirely or not at all. For durable
  backends a method that returned has been committed (acknowledged writes survive kill -9).
- **Time.** Every method that stamps a time takes ``now`` (unix seconds); when omitted the store's
  clock is used. Tests inject ``now`` instead of sleeping.

Not covered: access control (callers key trees by principal themselves), and enforcement of tree-policy
rules such as "do not expand a vetoed node" (the policy reads the flags; the store only keeps them).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal

from tree_store.records import Failure, Insight, Node, Run, State, Tree, TreeStatus

__all__ = ["BackpropMode", "TreeStore"]

BackpropMode = Literal["mean", "max"]
JSONDict = Mapping[str, Any]


class TreeStore(abc.ABC):
    """The durable experiment tree. See the module docstring for the guarantees."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self._clock: Callable[[], float] = clock or time.time

    def _now(self, now: float | None) -> float:
        return float(now) if now is not None else float(self._clock())

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for stores without resources
        """Release connections and files. The store must not be used afterwards."""

    def __enter__(self) -> TreeStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version of the stored data (after any migration on open)."""

    # ------------------------------------------------------------------ trees

    @abc.abstractmethod
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
        """Create an empty, ``active`` tree and return it. Raises InvalidInputError on bad values."""

    @abc.abstractmethod
    def get_tree(self, tree_id: str) -> Tree:
        """Return the tree. Raises NotFoundError."""

    @abc.abstractmethod
    def list_trees(self, *, status: TreeStatus | None = None) -> list[Tree]:
        """All trees (optionally only those with ``status``), oldest first."""

    @abc.abstractmethod
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
        """Change the given fields (None = leave as is; ``meta`` is merged key by key) and return the tree.

        Trees have no finished state: a ``finished`` or ``stopped`` tree may be set ``active`` again
        (resume). Raises NotFoundError, InvalidInputError (unknown status).
        """

    # ------------------------------------------------------------------ nodes: structure

    @abc.abstractmethod
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
        """Add a WAITING node under ``parent_id`` (None for the root) and return it.

        ``depth`` is the parent's plus one and ``number`` the next in the tree (root = 0). A tree has one
        root. Raises NotFoundError (tree or parent), InvalidInputError (parent in another tree, second root).
        """

    @abc.abstractmethod
    def get_node(self, node_id: str) -> Node:
        """Return the node. Raises NotFoundError."""

    @abc.abstractmethod
    def get_root(self, tree_id: str) -> Node | None:
        """The tree's root node, or None while it has none. Raises NotFoundError (tree)."""

    @abc.abstractmethod
    def list_nodes(self, tree_id: str, *, state: State | None = None) -> list[Node]:
        """The tree's nodes (optionally only in ``state``), by number. Raises NotFoundError (tree)."""

    @abc.abstractmethod
    def children(self, node_id: str) -> list[Node]:
        """The node's children, by number. Raises NotFoundError."""

    def siblings(self, node_id: str) -> list[Node]:
        """The other children of the node's parent, by number (empty for the root). Raises NotFoundError."""
        node = self.get_node(node_id)
        if node.parent_id is None:
            return []
        return [n for n in self.children(node.parent_id) if n.id != node_id]

    @abc.abstractmethod
    def path_to_root(self, node_id: str) -> list[Node]:
        """The path between the root and the node: root first, the node itself last. Raises NotFoundError."""

    @abc.abstractmethod
    def subtree(self, node_id: str) -> list[Node]:
        """The node and all its descendants, by number (the node first). Raises NotFoundError."""

    # ------------------------------------------------------------------ nodes: lifecycle

    @abc.abstractmethod
    def claim_node(self, node_id: str, *, now: float | None = None) -> bool:
        """Compare-and-set WAITING -> RUNNING (stamps ``started_at``).

        Returns True for exactly one caller; False when the node is not WAITING (already claimed or
        finished). Raises NotFoundError.
        """

    @abc.abstractmethod
    def update_node(
        self,
        node_id: str,
        *,
        strategy_kind: str | None = None,
        plan: JSONDict | None = None,
        diagnosis: JSONDict | None = None,
        meta: JSONDict | None = None,
    ) -> Node:
        """Replace ``strategy_kind`` / ``plan`` / ``diagnosis`` and merge ``meta`` (None = leave as is).

        Raises NotFoundError, UpdateFinishedError.
        """

    @abc.abstractmethod
    def record_node_cost(self, node_id: str, cost: JSONDict) -> Node:
        """Merge ``cost`` into the node's cost dict key by key. Raises NotFoundError, UpdateFinishedError."""

    @abc.abstractmethod
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
        """Finish the node (COMPLETE, FAIL or PRUNED) with its final score, reward, diagnosis, failure.

        ``diagnosis`` replaces and ``cost`` merges when given. COMPLETE needs a finite score: NaN/inf
        stores FAIL(nan_loss), None stores FAIL(crash). Returns the finished node. Raises NotFoundError,
        UpdateFinishedError (already finished), InvalidInputError (``state`` not a finished state).
        """

    @abc.abstractmethod
    def set_flags(
        self,
        node_id: str,
        *,
        pinned: bool | None = None,
        vetoed: bool | None = None,
        note: str | None = None,
    ) -> Node:
        """Set human flags (None = leave as is; ``note=""`` clears the note). Allowed in any state.

        Raises NotFoundError.
        """

    @abc.abstractmethod
    def backpropagate(self, node_id: str, reward: float, *, mode: BackpropMode = "mean") -> list[Node]:
        """Add one visit with ``reward`` to every node on the path root -> node, atomically.

        ``mean``: value becomes the running mean of the rewards seen; ``max``: the largest reward seen.
        Allowed in any state. Returns the updated path, root first. Raises NotFoundError,
        InvalidInputError (reward not finite, unknown mode).
        """

    # ------------------------------------------------------------------ runs

    @abc.abstractmethod
    def add_run(
        self,
        node_id: str,
        *,
        recipe: JSONDict | None = None,
        config: JSONDict | None = None,
        meta: JSONDict | None = None,
        now: float | None = None,
    ) -> Run:
        """Add a WAITING run (attempt 1) to the node and return it.

        Raises NotFoundError, UpdateFinishedError (the node is finished).
        """

    def add_runs(
        self,
        node_id: str,
        variants: Iterable[tuple[JSONDict, JSONDict]],
        *,
        now: float | None = None,
    ) -> list[Run]:
        """Add one run per ``(recipe, config)`` pair, in order. Same errors as :meth:`add_run`."""
        return [self.add_run(node_id, recipe=r, config=c, now=now) for r, c in variants]

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run:
        """Return the run. Raises NotFoundError."""

    @abc.abstractmethod
    def list_runs(self, node_id: str) -> list[Run]:
        """The node's runs, by number. Raises NotFoundError (node)."""

    @abc.abstractmethod
    def find_runs(
        self,
        *,
        state: State | None = None,
        tree_id: str | None = None,
        node_id: str | None = None,
    ) -> list[Run]:
        """Runs matching every given filter, oldest first (all runs when no filter is given)."""

    @abc.abstractmethod
    def claim_run(self, run_id: str, *, now: float | None = None) -> bool:
        """Compare-and-set WAITING -> RUNNING (stamps ``started_at`` and ``heartbeat_at``).

        Returns True for exactly one caller; False when the run is not WAITING. Raises NotFoundError.
        """

    @abc.abstractmethod
    def claim_next_run(self, *, tree_id: str | None = None, now: float | None = None) -> Run | None:
        """Claim the oldest WAITING run (of ``tree_id`` if given) and return it claimed, or None if none."""

    @abc.abstractmethod
    def set_run_job(self, run_id: str, job: JSONDict) -> Run:
        """Replace the run's job handle (backend, pid, run_dir, ...). Raises NotFoundError, UpdateFinishedError."""

    @abc.abstractmethod
    def record_run_metrics(self, run_id: str, metrics: JSONDict) -> Run:
        """Merge ``metrics`` key by key (NaN/inf kept exactly). Raises NotFoundError, UpdateFinishedError."""

    @abc.abstractmethod
    def record_run_artifacts(self, run_id: str, artifacts: JSONDict) -> Run:
        """Merge ``artifacts`` (dataset fingerprint, adapter dir, ...). Raises NotFoundError, UpdateFinishedError."""

    @abc.abstractmethod
    def record_run_cost(self, run_id: str, cost: JSONDict) -> Run:
        """Merge ``cost`` (wall_s, device_s, tokens, ...). Raises NotFoundError, UpdateFinishedError."""

    @abc.abstractmethod
    def heartbeat_run(self, run_id: str, *, now: float | None = None) -> None:
        """Stamp ``heartbeat_at``. Raises NotFoundError, UpdateFinishedError.

        A worker whose heartbeat raises UpdateFinishedError has been failed (e.g. as stale) and should stop.
        """

    @abc.abstractmethod
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
        """Finish the run (COMPLETE, FAIL or PRUNED); ``metrics``/``artifacts``/``cost`` merge when given.

        COMPLETE with a NaN/inf score stores FAIL(nan_loss). A run may finish after its node did (e.g.
        the runs of a pruned node). Returns the finished run. Raises NotFoundError, UpdateFinishedError,
        InvalidInputError (``state`` not a finished state).
        """

    @abc.abstractmethod
    def retry_run(self, run_id: str, *, now: float | None = None) -> Run:
        """Add a new WAITING run to the same node with the same recipe and config, ``retry_of=run_id``.

        ``attempt`` is the old attempt plus one, unless the old run failed for an infrastructure reason
        (server_restart, cancelled: reliability J3), which keeps the attempt. Raises NotFoundError,
        InvalidInputError (the run is not FAIL or PRUNED), UpdateFinishedError (the node is finished).
        """

    @abc.abstractmethod
    def fail_stale_runs(
        self, grace_s: float, *, now: float | None = None, tree_id: str | None = None
    ) -> list[Run]:
        """Fail every RUNNING run whose last sign of life is more than ``grace_s`` seconds old.

        The last sign of life is ``heartbeat_at`` (set by the claim and every heartbeat). A run is failed
        with kind ``stale`` exactly when ``now - heartbeat_at > grace_s`` (never before the grace period).
        Returns the runs failed by this call.
        """

    # ------------------------------------------------------------------ insights

    @abc.abstractmethod
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
        """Record a lesson. Evidence node ids must belong to the tree.

        Raises NotFoundError (tree or evidence node), InvalidInputError (node of another tree, empty text).
        """

    @abc.abstractmethod
    def get_insight(self, insight_id: str) -> Insight:
        """Return the insight. Raises NotFoundError."""

    @abc.abstractmethod
    def list_insights(self, tree_id: str, *, node_id: str | None = None) -> list[Insight]:
        """The tree's insights, oldest first; with ``node_id`` only those citing that node."""

    # ------------------------------------------------------------------ queries for the search

    @abc.abstractmethod
    def best_node(self, tree_id: str, *, include_vetoed: bool = False) -> Node | None:
        """The COMPLETE node with the best score in the tree's direction (ties: lowest number), or None.

        Vetoed nodes are skipped unless ``include_vetoed``. Raises NotFoundError (tree).
        """

    @abc.abstractmethod
    def critical_nodes(self, tree_id: str, k: int = 5) -> list[Node]:
        """At most ``k`` nodes worth remembering when planning (the paper's "critical nodes").

        In order: pinned nodes; then COMPLETE, non-vetoed nodes with the largest positive gains of score
        over their parent's score (the tree's base score for the root), in the tree's direction, best
        first; then FAIL nodes that carry a failure, one per failure kind first, most recent first.
        Failures get up to half the slots left after pinned nodes when there are enough of both.
        Raises NotFoundError (tree), InvalidInputError (k < 0).
        """

    # ------------------------------------------------------------------ export / import

    @abc.abstractmethod
    def export_tree(self, tree_id: str) -> dict[str, Any]:
        """The whole tree as strict JSON data: ``{"format": "trex-tree", "version": 1, "tree": ...,
        "nodes": [...], "runs": [...], "insights": [...]}`` (NaN/inf encoded as ``{"$float": "nan"}``).

        Raises NotFoundError.
        """

    @abc.abstractmethod
    def import_tree(self, data: Mapping[str, Any]) -> Tree:
        """Load an export (this or an older format version), keeping every id, and return the tree.

        ``export_tree(import_tree(x).id) == x`` for any export ``x`` of the current version.
        Raises InvalidInputError (not a trex-tree export, malformed, or the tree id already exists),
        SchemaVersionError (a newer format).
        """
