"""The arXiv rate limiter: slots 3 s apart across threads, refusal instead of long waits, one per process."""

from __future__ import annotations

import threading

import pytest

from trex_mcp.research import RateLimiter, ResearchError, arxiv_limiter


def test_sequential_requests_are_spaced_by_the_minimum_interval(limiter, clock):
    first = limiter.acquire()
    second = limiter.acquire()
    assert second - first == pytest.approx(3.0)
    assert clock.sleeps == [pytest.approx(3.0)]


def test_a_request_after_the_interval_has_passed_does_not_wait(limiter, clock):
    limiter.acquire()
    clock.advance(5.0)
    limiter.acquire()
    assert clock.sleeps == []


def test_concurrent_callers_get_distinct_slots_at_least_three_seconds_apart(limiter):
    n = 12
    barrier = threading.Barrier(n)
    slots: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait(timeout=5)
        slot = limiter.acquire(max_wait_s=1_000)
        with lock:
            slots.append(slot)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    ordered = sorted(slots)
    assert len(ordered) == n
    assert all(b - a >= 3.0 - 1e-9 for a, b in zip(ordered, ordered[1:], strict=False))
    assert limiter.granted == n


def test_a_caller_that_would_wait_too_long_is_refused_with_rate_limited(limiter, clock):
    for _ in range(4):
        limiter.acquire(max_wait_s=100)
    with pytest.raises(ResearchError) as info:
        limiter.acquire(max_wait_s=5)
    assert info.value.kind == "rate_limited"
    assert "retry in about" in str(info.value)
    assert limiter.granted == 4  # the refused caller took no slot


def test_the_process_wide_arxiv_limiter_is_one_object_spacing_three_seconds():
    assert arxiv_limiter() is arxiv_limiter()
    assert arxiv_limiter().min_interval_s == 3.0


def test_a_negative_interval_is_rejected():
    with pytest.raises(ValueError):
        RateLimiter(-1.0)
