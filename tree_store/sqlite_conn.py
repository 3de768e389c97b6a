"""Connections to one SQLite store file: one per thread, fresh after fork, and transaction helpers.

- Each thread gets its own connection (sqlite3 connections must not be shared between threads that
  run statements at once); a thread's connection is closed when the thread ends.
- A process created by ``fork`` never uses, nor closes, a connection it inherited: SQLite forbids
  carrying a connection across fork, and closing it in the child could disturb the parent's locks.
  The child opens its own connections on first use.
- :meth:`Connections.write` is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front,
  so a transaction never fails half-way on a lock, and a racing writer waits (busy timeout) instead.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tree_store import sqlite_schema as schema
from tree_store.errors import CorruptStoreError, TreeStoreError

__all__ = ["Connections"]

# Inherited through fork: kept referenced (never closed, never used) in the child.
_INHERITED: list[object] = []


class _Holder:
    """Owns one thread's connection (sqlite3 connections cannot be weakly referenced themselves)."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class Connections:
    """The connections of one store file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False
        self._pid = os.getpid()
        self._local = threading.local()
        # Weak: a thread's connection is closed when the thread ends and its thread-local goes away.
        self._holders: weakref.WeakSet[_Holder] = weakref.WeakSet()
        self._lock = threading.Lock()

    def open(self) -> int:
        """Validate (read-only) or create the file, migrate it, and return its schema version.

        Raises CorruptStoreError, SchemaVersionError, TreeStoreError (locked for too long).
        """
        if schema.check_header(self.path):
            schema.validate_existing(self.path)
        holder = self._new()
        conn = holder.conn
        try:
            version = schema.initialise(conn, self.path)
        except sqlite3.OperationalError as exc:
            conn.close()
            if schema.is_busy(exc):
                raise TreeStoreError(f"{self.path} stayed locked while opening: {exc}") from exc
            raise CorruptStoreError(f"{self.path} cannot be opened as a trex tree store: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CorruptStoreError(f"{self.path} is damaged or not a trex tree store: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._local.holder = holder
        return version

    def _new(self) -> _Holder:
        holder = _Holder(schema.connect(self.path))
        with self._lock:
            self._holders.add(holder)
        return holder

    def get(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use). Raises TreeStoreError once closed."""
        if self._closed:
            raise TreeStoreError(f"the tree store at {self.path} is closed; open a new store")
        pid = os.getpid()
        if pid != self._pid:  # forked: start afresh, keeping the parent's connections untouched
            _INHERITED.extend([self._local, *self._holders])
            self._holders = weakref.WeakSet()
            self._lock = threading.Lock()
            self._local = threading.local()
            self._pid = pid
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is None:
            holder = self._new()
            self._local.holder = holder
        return holder.conn

    def count(self) -> int:
        """How many connections this process holds open (one per live thread that used the store)."""
        return len(self._holders)

    def close(self) -> None:
        """Close every connection of this process. Later use raises TreeStoreError."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            return
        with self._lock:
            holders, self._holders = list(self._holders), weakref.WeakSet()
        for h in holders:
            h.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE); committed on exit, rolled back on any exception."""
        conn = self.get()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads that take several statements."""
        conn = self.get()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
