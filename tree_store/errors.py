"""Errors of the tree store. ``TreeStoreError`` is the root; catch it to catch them all."""

from __future__ import annotations

__all__ = [
    "CorruptStoreError",
    "InvalidInputError",
    "NotFoundError",
    "SchemaVersionError",
    "TreeStoreError",
    "UpdateFinishedError",
]


class TreeStoreError(Exception):
    """Root of every error the tree store raises."""


class NotFoundError(TreeStoreError, LookupError):
    """No record of that kind has that id. ``kind`` and ``id`` say which."""

    def __init__(self, kind: str, record_id: str) -> None:
        self.kind = kind
        self.id = record_id
        super().__init__(f"{kind} {record_id!r} not found; check the id (ids are case-sensitive)")


class UpdateFinishedError(TreeStoreError):
    """The record is finished (COMPLETE, FAIL or PRUNED) and cannot change.

    Only human flags (pin, veto, note) and tree-policy statistics (visits, value) change after a node is
    finished. To try again, add a new run (see ``TreeStore.retry_run``) or a child node.
    """

    def __init__(self, kind: str, record_id: str, state: str, action: str) -> None:
        self.kind = kind
        self.id = record_id
        self.state = state
        super().__init__(
            f"cannot {action}: {kind} {record_id!r} is finished ({state}) and finished records are "
            "immutable; add a new run or child node instead"
        )


class InvalidInputError(TreeStoreError, ValueError):
    """An argument is wrong (bad value, unknown state, wrong tree, not JSON-serialisable, ...)."""


class CorruptStoreError(TreeStoreError):
    """The file is not a readable trex tree store (foreign, damaged or not SQLite). It was not modified."""


class SchemaVersionError(TreeStoreError):
    """The store was written by a newer version of tree_store than this one; upgrade to open it."""
