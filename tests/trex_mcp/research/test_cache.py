"""ResearchCache: expiry, stale fallback on transient failures, and single-flight across threads and tasks."""

from __future__ import annotations

import threading

import anyio
import pytest

from trex_mcp.research import ResearchCache, ResearchError


@pytest.fixture
def cache(tmp_path, cache_clock):
    c = ResearchCache(tmp_path / "c", ttl_s=60.0, clock=cache_clock, wait_timeout_s=5.0)
    yield c
    c.close()


class Upstream:
    """A fetch function that counts calls and can block until released."""

    def __init__(self, value: object = "answer") -> None:
        self.value = value
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.error: BaseException | None = None

    def __call__(self) -> object:
        self.calls += 1
        self.entered.set()
        assert self.gate.wait(5), "test gate never released"
        if self.error is not None:
            raise self.error
        return self.value


def test_a_fresh_entry_is_answered_without_calling_upstream(cache):
    up = Upstream({"n": 1})
    assert cache.get_or_fetch("k", up) == ({"n": 1}, False)
    assert cache.get_or_fetch("k", up) == ({"n": 1}, False)
    assert up.calls == 1


def test_an_expired_entry_is_fetched_again(cache, cache_clock):
    up = Upstream()
    cache.get_or_fetch("k", up)
    cache_clock.advance(61)
    cache.get_or_fetch("k", up)
    assert up.calls == 2


def test_a_per_call_ttl_overrides_the_default(cache, cache_clock):
    up = Upstream()
    cache.get_or_fetch("k", up, ttl_s=3600)
    cache_clock.advance(120)
    cache.get_or_fetch("k", up, ttl_s=3600)
    assert up.calls == 1


@pytest.mark.parametrize("kind", ["offline", "timeout", "rate_limited", "upstream"])
def test_a_transient_failure_serves_the_expired_entry_marked_stale(cache, cache_clock, kind):
    up = Upstream("old")
    cache.get_or_fetch("k", up)
    cache_clock.advance(61)
    up.error = ResearchError("down", kind=kind)
    assert cache.get_or_fetch("k", up) == ("old", True)


@pytest.mark.parametrize("kind", ["bad_input", "not_found", "gated"])
def test_a_non_transient_failure_is_raised_even_with_an_expired_entry(cache, cache_clock, kind):
    up = Upstream("old")
    cache.get_or_fetch("k", up)
    cache_clock.advance(61)
    up.error = ResearchError("no", kind=kind)
    with pytest.raises(ResearchError) as info:
        cache.get_or_fetch("k", up)
    assert info.value.kind == kind


def test_a_transient_failure_with_nothing_cached_is_raised(cache):
    up = Upstream()
    up.error = ResearchError("down", kind="offline")
    with pytest.raises(ResearchError) as info:
        cache.get_or_fetch("k", up)
    assert info.value.kind == "offline"


def test_entries_survive_reopening_the_cache_directory(tmp_path, cache_clock):
    with ResearchCache(tmp_path / "c", ttl_s=60.0, clock=cache_clock) as first:
        first.get_or_fetch("k", Upstream({"x": [1, 2]}))
    up = Upstream("other")
    with ResearchCache(tmp_path / "c", ttl_s=60.0, clock=cache_clock) as second:
        assert second.get_or_fetch("k", up) == ({"x": [1, 2]}, False)
    assert up.calls == 0


def _run_threads(n, target):
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i: int) -> None:
        barrier.wait(timeout=5)
        try:
            results[i] = target()
        except ResearchError as err:
            results[i] = err

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def test_twenty_concurrent_identical_requests_make_one_upstream_call(cache):
    up = Upstream({"v": 42})
    up.gate.clear()
    threads, results = _run_threads(20, lambda: cache.get_or_fetch("same", up))
    assert cache.wait_for_waiters(19, key="same", timeout_s=5), "callers never joined the flight"
    up.gate.set()
    for t in threads:
        t.join(timeout=5)
    assert up.calls == 1
    assert cache.upstream_calls == 1
    assert results == [({"v": 42}, False)] * 20


def test_waiting_callers_receive_the_leaders_error_as_their_own_copy(cache):
    up = Upstream()
    up.gate.clear()
    up.error = ResearchError("the Hub is down", kind="upstream", hint="retry")
    threads, results = _run_threads(5, lambda: cache.get_or_fetch("k", up))
    assert cache.wait_for_waiters(4, timeout_s=5)
    up.gate.set()
    for t in threads:
        t.join(timeout=5)
    assert up.calls == 1
    assert all(isinstance(r, ResearchError) and r.kind == "upstream" for r in results)
    assert len({id(r) for r in results}) >= 4  # followers get copies, not one shared instance


def test_a_follower_stops_waiting_after_the_wait_timeout(tmp_path, cache_clock):
    c = ResearchCache(tmp_path / "c", ttl_s=60.0, clock=cache_clock, wait_timeout_s=0.2)
    up = Upstream()
    up.gate.clear()
    leader = threading.Thread(target=lambda: c.get_or_fetch("k", up))
    leader.start()
    try:
        assert up.entered.wait(5), "the leader never started its fetch"
        with pytest.raises(ResearchError) as info:
            c.get_or_fetch("k", up)
        assert info.value.kind == "timeout"
    finally:
        up.gate.set()
        leader.join(timeout=5)
        c.close()


def test_asyncio_callers_share_one_flight_too(cache):
    up = Upstream("async answer")
    up.gate.clear()
    results: list[tuple[object, bool]] = []

    async def main() -> None:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(call)
                joined = await anyio.to_thread.run_sync(lambda: cache.wait_for_waiters(19, timeout_s=5))
                assert joined
                up.gate.set()

    async def call() -> None:
        results.append(await cache.aget_or_fetch("k", up))

    anyio.run(main)
    assert up.calls == 1
    assert results == [("async answer", False)] * 20


def test_an_unreadable_entry_is_treated_as_a_miss(cache):
    cache._disk.set("k", "not a (stored_at, value) pair")
    up = Upstream("fresh")
    assert cache.get_or_fetch("k", up) == ("fresh", False)
    assert up.calls == 1
