"""A disk cache for upstream answers, with expiry, stale fallback and single-flight.

What it guarantees:
- A fresh entry (younger than its ttl) is answered from disk without calling upstream.
- Concurrent identical requests make one upstream call: the first caller (the leader) fetches, every other
  caller for the same key waits for the leader's answer or error (single-flight across threads; asyncio
  callers go through `aget_or_fetch`, which runs in a worker thread and so joins the same flight).
- When the fetch fails with a transient `ResearchError` (offline, timeout, rate limit, upstream error) and an
  older entry exists, that entry is returned marked stale instead of the error.
- Waiting is bounded (`wait_timeout_s`); a broken or locked cache file degrades to "no cache", never a crash.

What it does not do: coordinate fetches between processes (each process has its own flights; the disk
entries are shared), or validate values (callers store plain JSON-like data and validate it on the way out).
Expired entries stay on disk (up to `max_stale_s`) precisely so they can be served stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from trex_mcp.research.errors import ResearchError

__all__ = ["ResearchCache"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Flight:
    """One upstream fetch in progress and the callers waiting for it."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    stale: bool = False
    error: BaseException | None = None
    waiters: int = 0


class ResearchCache:
    """diskcache-backed store of upstream answers keyed by request, with a ttl per entry."""

    def __init__(self, directory: Path | str, ttl_s: float = 6 * 3600.0, *,
                 max_stale_s: float = 30 * 86400.0, size_limit: int = 256 * 2**20,
                 wait_timeout_s: float = 120.0, clock: Callable[[], float] = time.time) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self.max_stale_s = max(max_stale_s, ttl_s)
        self.wait_timeout_s = wait_timeout_s
        self._clock = clock
        self._size_limit = size_limit
        self._opened: Any = None  # the diskcache.Cache, opened on first use (keeps start-up and bad input cheap)
        self._open_lock = threading.Lock()
        self._cv = threading.Condition()
        self._flights: dict[str, _Flight] = {}
        self._stats_lock = threading.Lock()
        self.upstream_calls = 0  # fetches actually started (for tests and benchmarks)

    # -- public API -------------------------------------------------------------------------------------

    def get_or_fetch(self, key: str, fetch: Callable[[], T], *, ttl_s: float | None = None) -> tuple[T, bool]:
        """Return `(value, stale)` for `key`, calling `fetch()` at most once across concurrent callers.

        `stale` is True only when `fetch` failed transiently and an expired entry was returned instead.
        Raises the fetch's `ResearchError` when there is nothing cached to fall back on, and
        `ResearchError(kind="timeout")` when an identical in-flight request takes longer than `wait_timeout_s`.
        """
        ttl = self.ttl_s if ttl_s is None else ttl_s
        entry = self._read(key)
        if entry is not None and self._is_fresh(entry, ttl):
            return entry[1], False

        with self._cv:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                flight.waiters += 1
            self._cv.notify_all()

        if not leader:
            return self._follow(flight)
        return self._lead(key, fetch, ttl, flight)

    async def aget_or_fetch(self, key: str, fetch: Callable[[], T], *,
                            ttl_s: float | None = None) -> tuple[T, bool]:
        """`get_or_fetch` for asyncio/anyio callers: runs in a worker thread, so it joins the same flights."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(partial(self.get_or_fetch, key, fetch, ttl_s=ttl_s))

    def peek(self, key: str) -> tuple[float, Any] | None:
        """The stored `(stored_at, value)` for `key`, fresh or not, without fetching."""
        return self._read(key)

    def waiting(self, key: str | None = None) -> int:
        """Callers waiting on the in-flight fetch of `key` (or on any in-flight fetch when `key` is None)."""
        with self._cv:
            return self._count_waiters(key)

    def wait_for_waiters(self, count: int, *, key: str | None = None, timeout_s: float = 5.0) -> bool:
        """Block until at least `count` callers wait on in-flight fetches (of `key`, or of any key).

        Returns False on timeout. Lets tests and benchmarks prove concurrency without sleeping.
        """
        with self._cv:
            return self._cv.wait_for(lambda: self._count_waiters(key) >= count, timeout=timeout_s)

    def _count_waiters(self, key: str | None) -> int:
        if key is None:
            return sum(f.waiters for f in self._flights.values())
        flight = self._flights.get(key)
        return 0 if flight is None else flight.waiters

    def clear(self) -> None:
        """Drop every entry."""
        self._disk.clear(retry=True)

    def close(self) -> None:
        """Close the underlying files (the object must not be used afterwards)."""
        with self._open_lock:
            if self._opened is not None:
                self._opened.close()

    @property
    def _disk(self) -> Any:
        if self._opened is None:
            with self._open_lock:
                if self._opened is None:
                    import diskcache  # lazy: keep server start-up fast

                    self._opened = diskcache.Cache(str(self.directory), size_limit=self._size_limit, timeout=2.0)
        return self._opened

    def __enter__(self) -> ResearchCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------------

    def _lead(self, key: str, fetch: Callable[[], T], ttl: float, flight: _Flight) -> tuple[T, bool]:
        try:
            # Another leader may have stored a fresh answer between our first read and taking the flight.
            entry = self._read(key)
            if entry is not None and self._is_fresh(entry, ttl):
                result: tuple[Any, bool] = (entry[1], False)
            else:
                with self._stats_lock:
                    self.upstream_calls += 1
                try:
                    value = fetch()
                except ResearchError as err:
                    if not (err.transient and entry is not None):
                        raise
                    log.info("serving stale cache entry for %s after %s error", key, err.kind)
                    result = (entry[1], True)
                else:
                    self._write(key, value)
                    result = (value, False)
            flight.value, flight.stale = result
            return result
        except BaseException as err:
            flight.error = err
            raise
        finally:
            with self._cv:
                self._flights.pop(key, None)
            flight.done.set()

    def _follow(self, flight: _Flight) -> tuple[Any, bool]:
        if not flight.done.wait(self.wait_timeout_s):
            raise ResearchError(
                f"an identical request has been in flight for more than {self.wait_timeout_s:g} s",
                kind="timeout", hint="retry later; the upstream service is slow")
        if flight.error is not None:
            if isinstance(flight.error, ResearchError):
                raise flight.error.copy()
            raise ResearchError("the upstream lookup failed unexpectedly (details are in the server log)",
                                kind="upstream", hint="retry later")
        return flight.value, flight.stale

    def _is_fresh(self, entry: tuple[float, Any], ttl: float) -> bool:
        return self._clock() - entry[0] < ttl

    def _read(self, key: str) -> tuple[float, Any] | None:
        from diskcache import Timeout

        try:
            entry = self._disk.get(key, default=None, retry=False)
        except Timeout:
            log.warning("research cache busy; treating %s as a miss", key)
            return None
        except Exception:  # a corrupt or unreadable entry must not break research
            log.warning("research cache entry %s unreadable; treating it as a miss", key, exc_info=True)
            return None
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], int | float)):
            return None
        return float(entry[0]), entry[1]

    def _write(self, key: str, value: Any) -> None:
        from diskcache import Timeout

        try:
            self._disk.set(key, (self._clock(), value), expire=self.max_stale_s, retry=False)
        except Timeout:
            log.warning("research cache busy; %s not stored", key)
        except Exception:
            log.warning("research cache could not store %s", key, exc_info=True)
