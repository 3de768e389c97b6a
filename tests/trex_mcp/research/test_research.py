"""The Research facade: built from Settings, single-flight over the real clients, cheap to import."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import anyio
import pytest
from pydantic import BaseModel

import trex_mcp.research as research_pkg
from trex_mcp.research import Research, ResearchError, arxiv_limiter
from trex_mcp.settings import Settings


def test_research_built_from_settings_keeps_its_cache_under_the_trex_home(trex_home):
    settings = Settings(home=trex_home)
    with Research.from_settings(settings) as r:
        assert r.cache.directory == settings.cache_dir / "research"
        assert r.cache.directory.is_dir()
        assert r.limiter is arxiv_limiter()  # one process-wide arXiv limiter by default
        assert r.arxiv.query_url_format == "https://export.arxiv.org/api/query?{}"


def test_endpoints_can_be_configured_from_the_environment(trex_home, monkeypatch):
    monkeypatch.setenv("TREX_ARXIV_QUERY_URL", "http://127.0.0.1:9/api/query?{}")
    monkeypatch.setenv("TREX_DATASETS_SERVER_URL", "http://127.0.0.1:9/ds")
    with Research(Settings(home=trex_home)) as r:
        assert r.arxiv.query_url_format == "http://127.0.0.1:9/api/query?{}"
        assert r.hub.viewer_url() == "http://127.0.0.1:9/ds"


def _concurrent(n, call):
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i):
        barrier.wait(timeout=5)
        try:
            results[i] = call()
        except ResearchError as err:
            results[i] = err

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


@pytest.mark.parametrize(("call", "path"), [
    (lambda r: r.search_datasets("sentiment", task="text-classification"), "/api/datasets"),
    (lambda r: r.search_models("qwen"), "/api/models"),
    (lambda r: r.search_papers("low rank adaptation"), "/api/query"),
    (lambda r: r.inspect_dataset("stanfordnlp/imdb"), "/api/datasets/stanfordnlp/imdb"),
])
def test_twenty_concurrent_identical_searches_make_exactly_one_upstream_request(research, replay, call, path):
    replay.hold()  # the leader's request waits at the server until every other caller has joined
    threads, results = _concurrent(20, lambda: call(research))
    assert replay.wait_for_requests(1, timeout_s=5)
    assert research.cache.wait_for_waiters(19, timeout_s=5), "callers did not join the in-flight request"
    replay.release()
    for t in threads:
        t.join(timeout=10)
    assert replay.count(path) == 1
    assert not any(isinstance(r, ResearchError) for r in results)
    assert all(r == results[0] for r in results)


def test_twenty_concurrent_asyncio_callers_make_exactly_one_upstream_request(research, replay):
    replay.hold()
    results = []

    async def call():
        results.append(await anyio.to_thread.run_sync(lambda: research.search_datasets("sentiment")))

    async def main():
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(call)
                joined = await anyio.to_thread.run_sync(lambda: research.cache.wait_for_waiters(19, timeout_s=5))
                replay.release()
                assert joined

    anyio.run(main)
    assert replay.count("/api/datasets") == 1
    assert len(results) == 20 and all(r == results[0] for r in results)


def test_concurrent_callers_all_receive_an_upstream_failure_from_one_request(research, replay):
    replay.fail_always(503)
    replay.hold()
    threads, results = _concurrent(10, lambda: research.search_models("qwen"))
    assert replay.wait_for_requests(1, timeout_s=5)
    assert research.cache.wait_for_waiters(9, timeout_s=5)
    replay.release()
    for t in threads:
        t.join(timeout=10)
    assert replay.count("/api/models") == 1
    assert all(isinstance(r, ResearchError) and r.kind == "upstream" for r in results)


def test_importing_the_package_loads_no_client_library():
    code = ("import sys, trex_mcp.research; "
            "print([m for m in ('arxiv', 'huggingface_hub', 'diskcache', 'requests', 'httpx2') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def _models() -> list[type[BaseModel]]:
    return [getattr(research_pkg, name) for name in research_pkg.__all__
            if isinstance(getattr(research_pkg, name), type) and issubclass(getattr(research_pkg, name), BaseModel)]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_model_forbids_unknown_keys_and_describes_every_field(model):
    assert model.model_config.get("extra") == "forbid"
    schema = model.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize("model", [m for m in _models() if "stale" in m.model_fields], ids=lambda m: m.__name__)
def test_every_result_says_whether_it_is_stale_and_where_it_came_from(model):
    assert {"stale", "source"} <= set(model.model_fields)


def test_results_serialise_to_plain_json(research):
    for result in (research.search_papers("lora"), research.search_datasets("sentiment"),
                   research.search_models("qwen"), research.inspect_dataset("stanfordnlp/imdb")):
        assert json.loads(result.model_dump_json())["stale"] is False


def test_research_errors_carry_a_kind_and_a_json_view():
    err = ResearchError("arXiv is down", kind="upstream", hint="retry later")
    assert err.transient and err.to_dict() == {"kind": "upstream", "message": "arXiv is down", "field": None,
                                               "hint": "retry later"}
    with pytest.raises(ValueError):
        ResearchError("x", kind="boom")  # type: ignore[arg-type]
