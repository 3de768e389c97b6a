"""Request spacing shared by every caller in the process.

arXiv's terms ask for at most one request every three seconds. The arxiv client enforces its own delay only
per `Client` object and not across threads, so trex paces arXiv requests itself with one process-wide
`RateLimiter` (see `arxiv_limiter()`): each request reserves the next free slot under a lock and then sleeps
until its slot, so concurrent callers are spaced out, never bunched.

Guarantees: slots handed out by one limiter are at least `min_interval_s` apart on its clock; a caller whose
slot is further away than `max_wait_s` is refused at once with a `rate_limited` error rather than left
waiting. The clock and sleep functions are injectable so tests can check spacing without sleeping.

Not covered: other processes (each process has its own limiter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from trex_mcp.research.errors import ResearchError

__all__ = ["ARXIV_MIN_INTERVAL_S", "RateLimiter", "arxiv_limiter"]

ARXIV_MIN_INTERVAL_S = 3.0


class RateLimiter:
    """Hands out request slots at least `min_interval_s` apart, thread-safe."""

    def __init__(self, min_interval_s: float, *, name: str = "upstream",
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.min_interval_s = min_interval_s
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free: float | None = None
        self.granted = 0  # slots handed out so far (for tests and benchmarks)

    def acquire(self, max_wait_s: float = 60.0) -> float:
        """Wait for the next free slot and return its time on the limiter's clock.

        Raises `ResearchError(kind="rate_limited")` without waiting when the slot is more than `max_wait_s`
        away (too many requests queued ahead).
        """
        with self._lock:
            now = self._clock()
            slot = now if self._next_free is None else max(now, self._next_free)
            wait = slot - now
            if wait > max_wait_s:
                queued = max(1, round(wait / self.min_interval_s)) if self.min_interval_s else 1
                raise ResearchError(
                    f"{self.name} allows one request every {self.min_interval_s:g} s and about {queued} "
                    f"request(s) are already queued; this one would wait {wait:.0f} s.",
                    kind="rate_limited", hint=f"retry in about {wait:.0f} s, or ask fewer questions at once")
            self._next_free = slot + self.min_interval_s
            self.granted += 1
        if wait > 0:
            self._sleep(wait)
        return slot


_ARXIV_LIMITER: RateLimiter | None = None
_ARXIV_LIMITER_LOCK = threading.Lock()


def arxiv_limiter() -> RateLimiter:
    """The process-wide limiter for arXiv API requests (one request every 3 s)."""
    global _ARXIV_LIMITER
    with _ARXIV_LIMITER_LOCK:
        if _ARXIV_LIMITER is None:
            _ARXIV_LIMITER = RateLimiter(ARXIV_MIN_INTERVAL_S, name="arXiv")
        return _ARXIV_LIMITER
