"""The SQLite file format of the tree store: schema, identification, validation on open, migrations.

Besides the record fields, ``nodes`` keeps two derived, indexed columns for ``critical_nodes``:
``gain`` (a COMPLETE node's improvement over its parent's score, in the tree's direction) and
``failure_kind``. They are maintained by the store and are not part of records or exports.

A trex store is an SQLite file whose header carries ``application_id`` 0x54524558 ("TREX") and whose
``meta`` table says ``application = trex-tree-store`` and ``schema_version = N``.

Opening a path:

- missing or empty file, or an SQLite file with no tables and no application id: a new store is created;
- a trex store of this or an older schema version: opened (older versions are migrated in one
  transaction, so a crash mid-migration leaves the old version intact);
- a newer schema version: ``SchemaVersionError``;
- anything else (not SQLite, another application's database, a damaged file): ``CorruptStoreError``.
  Such files are inspected read-only first and never written to.

Not covered: network file systems. SQLite locking is unreliable on NFS/SMB; keep the store on local disk.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from tree_store._logic import SCHEMA_VERSION
from tree_store.errors import CorruptStoreError, SchemaVersionError, TreeStoreError

APPLICATION_ID = 0x54524558  # "TREX"
APPLICATION_NAME = "trex-tree-store"
BUSY_TIMEOUT_MS = 30_000

SCHEMA_V1 = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE trees (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    task_name TEXT NOT NULL,
    task_snapshot TEXT NOT NULL,
    higher_is_better INTEGER NOT NULL,
    base_score REAL,
    reference_score REAL,
    budget TEXT NOT NULL,
    status TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    tree_id TEXT NOT NULL REFERENCES trees(id),
    parent_id TEXT REFERENCES nodes(id),
    depth INTEGER NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    strategy_kind TEXT NOT NULL,
    plan TEXT NOT NULL,
    diagnosis TEXT,
    score REAL,
    reward REAL,
    visits INTEGER NOT NULL,
    value REAL NOT NULL,
    cost TEXT NOT NULL,
    pinned INTEGER NOT NULL,
    vetoed INTEGER NOT NULL,
    note TEXT NOT NULL,
    failure TEXT,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    gain REAL,
    failure_kind TEXT,
    UNIQUE (tree_id, number)
);
CREATE INDEX nodes_parent ON nodes (parent_id, number);
CREATE INDEX nodes_tree_state_score ON nodes (tree_id, state, score);
CREATE INDEX nodes_gain ON nodes (tree_id, gain) WHERE gain IS NOT NULL;
CREATE INDEX nodes_failure ON nodes (tree_id, failure_kind, finished_at, number) WHERE state = 'FAIL';
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL REFERENCES nodes(id),
    tree_id TEXT NOT NULL REFERENCES trees(id),
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    recipe TEXT NOT NULL,
    config TEXT NOT NULL,
    job TEXT NOT NULL,
    metrics TEXT NOT NULL,
    score REAL,
    artifacts TEXT NOT NULL,
    failure TEXT,
    cost TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    retry_of TEXT,
    heartbeat_at REAL,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    UNIQUE (node_id, number)
);
CREATE INDEX runs_state ON runs (state);
CREATE INDEX runs_tree ON runs (tree_id);
CREATE TABLE insights (
    id TEXT PRIMARY KEY,
    tree_id TEXT NOT NULL REFERENCES trees(id),
    text TEXT NOT NULL,
    evidence TEXT NOT NULL,
    scope TEXT NOT NULL,
    effect REAL,
    created_at REAL NOT NULL
);
CREATE INDEX insights_tree ON insights (tree_id);
"""

# MIGRATIONS[v] upgrades a store from schema version v to v + 1, inside the caller's transaction.
# Add an entry with every schema change, bump SCHEMA_VERSION, and commit a fixture of the old version
# under tests/tree_store/assets/.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


def _ro_uri(path: Path) -> str:
    return "file:" + urllib.parse.quote(str(path.absolute())) + "?mode=ro"


def check_header(path: Path) -> bool:
    """True when ``path`` holds data that must be validated; False when it is missing or empty.

    Raises CorruptStoreError when the file is not SQLite at all (nothing is written).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if path.is_dir():
        raise CorruptStoreError(f"{path} is a directory, not a trex tree store file; pass a file path")
    # The header is not read with a plain open(): closing any descriptor of a database file drops every POSIX
    # lock this process holds on it, so another connection here could lose its locks and a second process could
    # delete the WAL under it. SQLite's own read-only open (validate_existing) tracks descriptors per inode.
    return size > 0


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    return [str(r[0]) for r in rows]


def inspect(conn: sqlite3.Connection, path: Path) -> int | None:
    """Identify the file: its schema version, or None if it is an empty SQLite file (a new store).

    Raises CorruptStoreError (foreign or damaged), SchemaVersionError (newer than this code).
    """
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    tables = _tables(conn)
    if app_id == 0 and not tables:
        return None
    if app_id != APPLICATION_ID:
        shown = ", ".join(tables[:5]) or "none"
        raise CorruptStoreError(
            f"{path} is an SQLite database of another application (application_id={app_id}, tables: {shown}), "
            "not a trex tree store; refusing to open or overwrite it. Choose another store path."
        )
    if "meta" not in tables:
        raise CorruptStoreError(f"{path} is marked as a trex tree store but has no meta table; it is damaged")
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if rows.get("application") != APPLICATION_NAME:
        raise CorruptStoreError(
            f"{path}: meta.application is {rows.get('application')!r}, not {APPLICATION_NAME!r}"
        )
    try:
        version = int(rows["schema_version"])
    except (KeyError, ValueError):
        raise CorruptStoreError(
            f"{path}: meta.schema_version is missing or not an integer; the store is damaged"
        ) from None
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} has tree store schema version {version}, newer than this tree_store ({SCHEMA_VERSION}); "
            "upgrade trex-mcp to open it"
        )
    if version < 1:
        raise CorruptStoreError(f"{path}: schema_version {version} is invalid")
    return version


def validate_existing(path: Path) -> None:
    """Read-only check of an existing non-empty file, including an integrity check.

    Raises CorruptStoreError / SchemaVersionError. Writes nothing to the database file.
    """
    try:
        conn = sqlite3.connect(_ro_uri(path), uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise CorruptStoreError(f"{path} cannot be opened as a trex tree store: {exc}") from exc
    try:
        inspect(conn, path)
        result = conn.execute("PRAGMA quick_check").fetchone()
        if result is None or result[0] != "ok":
            raise CorruptStoreError(
                f"{path} failed SQLite's integrity check ({result!r}); restore it from a backup"
            )
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise TreeStoreError(f"{path} stayed locked for {BUSY_TIMEOUT_MS // 1000} s: {exc}") from exc
        raise CorruptStoreError(f"{path} cannot be read as a trex tree store: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc).lower():
            raise CorruptStoreError(
                f"{path} is not a trex tree store (not an SQLite file); refusing to open or overwrite it. "
                "Move it away or choose another store path."
            ) from exc
        raise CorruptStoreError(f"{path} is damaged or not a trex tree store: {exc}") from exc
    finally:
        conn.close()


def is_busy(exc: sqlite3.OperationalError) -> bool:
    msg = str(exc).lower()
    return "locked" in msg or "busy" in msg


def connect(path: Path) -> sqlite3.Connection:
    """A read-write connection in WAL mode with FULL sync and a 30 s busy timeout (no validation)."""
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def initialise(conn: sqlite3.Connection, path: Path) -> int:
    """Create the schema if the file is new, migrate it if old; return the schema version.

    Safe when several processes open the same new file at once: the work happens under an immediate
    (write) transaction and is re-checked inside it.
    """
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise TreeStoreError(
                f"{path}: could not switch SQLite to WAL mode (got {mode!r}); use a local disk"
            )
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = inspect(conn, path)
        if version is None:
            # executescript() would commit; run statement by statement inside this transaction.
            for stmt in SCHEMA_V1.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("application", APPLICATION_NAME),
                    ("schema_version", "1"),
                    ("created_pid", str(os.getpid())),
                ],
            )
            version = 1
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](conn)
            version += 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version
