"""tree_store: the durable experiment tree of trex (trees, nodes = rounds, runs = variants, insights).

Imports nothing from trex_mcp or ftbench; standard library only. Start with :func:`open_store`::

    store = open_store("~/.trex/store.db")       # SQLite, WAL, one file (the default)
    store = open_store(":memory:")               # in-memory, for tests

The contract every backend honours is documented in :mod:`tree_store.base` and checked by the suite
in :mod:`tree_store.testing`.
"""

from __future__ import annotations

import os
from pathlib import Path

from tree_store.base import BackpropMode, TreeStore
from tree_store.codec import decode_json, encode_json
from tree_store.errors import (
    CorruptStoreError,
    InvalidInputError,
    NotFoundError,
    SchemaVersionError,
    TreeStoreError,
    UpdateFinishedError,
)
from tree_store.memory import InMemoryTreeStore
from tree_store.records import (
    Failure,
    FailureKind,
    Insight,
    Node,
    Run,
    State,
    Tree,
    TreeStatus,
    is_better,
    is_valid_score,
    score_key,
)
from tree_store.sqlite import SQLiteTreeStore

__all__ = [
    "BackpropMode",
    "CorruptStoreError",
    "Failure",
    "FailureKind",
    "InMemoryTreeStore",
    "Insight",
    "InvalidInputError",
    "Node",
    "NotFoundError",
    "Run",
    "SQLiteTreeStore",
    "SchemaVersionError",
    "State",
    "Tree",
    "TreeStatus",
    "TreeStore",
    "TreeStoreError",
    "UpdateFinishedError",
    "decode_json",
    "encode_json",
    "is_better",
    "is_valid_score",
    "open_store",
    "score_key",
]


def open_store(path_or_url: str | os.PathLike[str]) -> TreeStore:
    """Open a store: ``":memory:"`` or ``"memory://"`` for in-memory, ``"sqlite:///abs/path.db"``,
    ``"sqlite://relative.db"`` or a plain file path for SQLite (``~`` is expanded; parent folders are
    created).

    Raises CorruptStoreError (the file is not a trex store), SchemaVersionError (written by a newer
    version), InvalidInputError (unknown URL scheme).
    """
    text = os.fspath(path_or_url)
    if text in (":memory:", "memory://", "memory:"):
        return InMemoryTreeStore()
    if text.startswith("sqlite://"):
        text = text[len("sqlite://") :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise InvalidInputError(
            f"unknown store URL scheme {scheme!r}; use a file path, sqlite:///path or :memory:"
        )
    if not text:
        raise InvalidInputError("store path is empty; pass a file path such as ~/.trex/store.db")
    path = Path(text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteTreeStore(path)
