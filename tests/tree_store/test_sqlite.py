"""SQLite backend: the file itself (durability, settings, refusing foreign files, migration, fork, threads)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

import tree_store.sqlite_schema as schema
from tree_store import (
    CorruptStoreError,
    InMemoryTreeStore,
    InvalidInputError,
    SchemaVersionError,
    SQLiteTreeStore,
    State,
    TreeStoreError,
    open_store,
)

ASSETS = Path(__file__).parent / "assets"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_refused_untouched(path: Path, error: type[Exception], match: str) -> None:
    before = _digest(path)
    with pytest.raises(error, match=match):
        SQLiteTreeStore(path)
    assert _digest(path) == before


def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SQLiteTreeStore(path) as store:
        tree = store.create_tree("t", task_name="x", higher_is_better=True)
        root = store.add_node(tree.id, None)
        store.finish_node(root.id, State.COMPLETE, score=0.5)
    with SQLiteTreeStore(path) as again:
        assert again.get_node(root.id).score == 0.5
        assert again.schema_version == 1


def test_connection_uses_wal_full_sync_and_a_long_busy_timeout(tmp_path: Path) -> None:
    store = SQLiteTreeStore(tmp_path / "store.db")
    conn = store._db.get()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    store.close()


def test_a_file_of_random_bytes_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "random.db"
    path.write_bytes(os.urandom(10_000))
    _assert_refused_untouched(path, CorruptStoreError, "not an SQLite file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.db"]


def test_a_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text('{"format": "trex-tree"}\n')
    _assert_refused_untouched(path, CorruptStoreError, "refusing to open or overwrite")


def test_another_applications_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, CorruptStoreError, "another application.*users")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:8192] + bytes(range(256)) * 16 + b[12288:], id="overwritten-page"),
    ],
)
def test_a_damaged_store_is_refused_and_left_untouched(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(damage((ASSETS / "v1_store.db").read_bytes()))  # type: ignore[operator]
    _assert_refused_untouched(path, CorruptStoreError, "damaged|integrity")


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    shutil.copy(ASSETS / "v1_store.db", path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, SchemaVersionError, "newer")


def test_an_empty_file_becomes_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteTreeStore(path) as store:
        assert store.list_trees() == []
        store.create_tree("t", task_name="x", higher_is_better=True)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorruptStoreError, match="directory"):
        SQLiteTreeStore(tmp_path)


def test_an_old_schema_is_migrated_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    shutil.copy(ASSETS / "v1_store.db", path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE nodes ADD COLUMN extra TEXT")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(schema.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError, match="migration bug"):
        SQLiteTreeStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    assert "extra" not in [r[1] for r in conn.execute("PRAGMA table_info(nodes)")]
    conn.close()

    monkeypatch.setitem(schema.MIGRATIONS, 1, lambda c: c.execute("ALTER TABLE nodes ADD COLUMN extra TEXT"))
    with SQLiteTreeStore(path) as store:
        assert store.schema_version == 2
        assert len(store.list_trees()) == 1


def test_the_store_pickles_as_its_path(tmp_path: Path) -> None:
    store = SQLiteTreeStore(tmp_path / "store.db")
    tree = store.create_tree("t", task_name="x", higher_is_better=True)
    clone = pickle.loads(pickle.dumps(store))
    assert isinstance(clone, SQLiteTreeStore)
    assert clone.get_tree(tree.id) == tree
    clone.close()
    store.close()


def _child_writes(store: SQLiteTreeStore, tree_id: str, parent_id: str) -> None:
    store.add_node(tree_id, parent_id, meta={"from": "child"})


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteTreeStore(tmp_path / "store.db")
    tree = store.create_tree("t", task_name="x", higher_is_better=True)
    root = store.add_node(tree.id, None)
    proc = multiprocessing.get_context("fork").Process(target=_child_writes, args=(store, tree.id, root.id))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    store.add_node(tree.id, root.id, meta={"from": "parent"})
    assert sorted(n.meta["from"] for n in store.children(root.id)) == ["child", "parent"]
    store.close()


def test_threads_writing_at_once_store_every_record(tmp_path: Path) -> None:
    store = SQLiteTreeStore(tmp_path / "store.db")
    tree = store.create_tree("t", task_name="x", higher_is_better=True)
    root = store.add_node(tree.id, None)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait(timeout=10)
        for _ in range(10):
            store.add_node(tree.id, root.id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    nodes = store.list_nodes(tree.id)
    assert len(nodes) == 81
    assert sorted(n.number for n in nodes) == list(range(81))
    store.close()


def test_a_closed_store_refuses_use(tmp_path: Path) -> None:
    store = SQLiteTreeStore(tmp_path / "store.db")
    store.close()
    with pytest.raises(TreeStoreError, match="closed"):
        store.list_trees()


def test_open_store_understands_paths_urls_and_memory(tmp_path: Path) -> None:
    assert isinstance(open_store(":memory:"), InMemoryTreeStore)
    nested = tmp_path / "a" / "b" / "store.db"
    with open_store(nested) as s1:
        assert isinstance(s1, SQLiteTreeStore) and nested.exists()
    with open_store(f"sqlite:///{tmp_path / 'url.db'}") as s2:
        assert isinstance(s2, SQLiteTreeStore) and (tmp_path / "url.db").exists()
    with pytest.raises(InvalidInputError, match="scheme"):
        open_store("postgres://db/x")


def test_a_finished_threads_connection_is_released(tmp_path: Path) -> None:
    import gc

    store = SQLiteTreeStore(tmp_path / "store.db")
    worker = threading.Thread(target=store.list_trees)
    worker.start()
    worker.join(timeout=30)
    gc.collect()
    assert store._db.count() == 1  # only the opening thread's connection is left
    store.close()
