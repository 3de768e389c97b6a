"""Every tree store backend passes the same contract suite (tree_store.testing)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tree_store import InMemoryTreeStore, SQLiteTreeStore
from tree_store.testing import StoreFactory, TreeStoreContract

BACKENDS = ["memory", "sqlite"]


class TestTreeStoreContract(TreeStoreContract):
    @pytest.fixture(params=BACKENDS)
    def make_store(self, request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
        counter = itertools.count()
        if request.param == "memory":
            return InMemoryTreeStore
        return lambda: SQLiteTreeStore(tmp_path / f"store-{next(counter)}.db")
