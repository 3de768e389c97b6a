"""Fixtures for the research tests: a loopback replay server, a fake clock, and a `Research` wired to both.

The real clients (arxiv, huggingface_hub) are pointed at the replay server through their supported endpoint
settings. The repository conftest turns Hugging Face offline mode on; `hub_online` turns it off for loopback
tests only (offline behaviour is tested separately).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trex_mcp.research import RateLimiter, Research
from trex_mcp.research.replay import ReplayServer

FIXTURES = Path(__file__).parent / "fixtures"


class FakeClock:
    """A settable clock whose sleep records the wait instead of sleeping."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer(FIXTURES) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(3.0, name="arXiv", clock=clock, sleep=clock.sleep)


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let huggingface_hub send requests (to the loopback server) despite the suite-wide HF_HUB_OFFLINE=1."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def cache_clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def make_research(tmp_path: Path, replay: ReplayServer, limiter: RateLimiter,
                  cache_clock: FakeClock) -> Iterator[Callable[..., Research]]:
    """Build a Research wired to the replay server (cache clock and arXiv limiter are fakes); closed after."""
    made: list[Research] = []

    def build(**overrides: Any) -> Research:
        options: dict[str, Any] = {
            "cache_dir": tmp_path / "research-cache", "arxiv_query_url": replay.arxiv_query_url,
            "hub_endpoint": replay.hub_endpoint, "datasets_server": replay.datasets_server,
            "limiter": limiter, "timeout_s": 5.0, "hub_token": False, "clock": cache_clock, **overrides}
        made.append(Research(**options))
        return made[-1]

    yield build
    for r in made:
        r.close()


@pytest.fixture
def research(make_research: Callable[..., Research], hub_online: None) -> Research:
    """A Research talking to the replay server, Hub offline mode off."""
    return make_research()


@pytest.fixture
def offline_research(make_research: Callable[..., Research]) -> Research:
    """A Research in the suite's default Hugging Face offline mode (HF_HUB_OFFLINE=1)."""
    return make_research()
