"""Benchmark the research layer against a loopback server replaying recorded arXiv / Hub answers.

Run: `python benchmarks/bench_research.py [--repeats 500]`. Prints one table:
- cold: one call on an empty cache (real clients, loopback HTTP; arXiv limiter waits recorded, not slept;
  the first arXiv and the first Hub call also pay for importing their client library),
- cached repeat: latency of the same call answered from the disk cache (target: under 5 ms),
- single-flight: 20 concurrent identical calls on a cold cache, threads and asyncio tasks; the replay server
  holds the first response until all 20 callers are in flight, then counts upstream requests (target: 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.pop("HF_TOKEN", None)

import anyio  # noqa: E402
from huggingface_hub import constants  # noqa: E402

from trex_mcp.research import RateLimiter, Research  # noqa: E402
from trex_mcp.research.replay import ReplayServer  # noqa: E402

FIXTURES = ROOT / "tests" / "trex_mcp" / "research" / "fixtures"

OPS: dict[str, tuple[Callable[[Research], Any], str]] = {
    "search_papers": (lambda r: r.search_papers("low rank adaptation", max_results=3), "/api/query"),
    "get_paper": (lambda r: r.get_paper("2106.09685"), "/api/query"),
    "search_datasets": (lambda r: r.search_datasets("sentiment", task="text-classification"), "/api/datasets"),
    "search_models": (lambda r: r.search_models("qwen", task="text-generation"), "/api/models"),
    "inspect_dataset": (lambda r: r.inspect_dataset("stanfordnlp/imdb", rows=5), "/"),
}


def fresh_research(server: ReplayServer, cache_dir: Path) -> Research:
    waits: list[float] = []  # the arXiv limiter is real, but its waits are recorded instead of slept
    limiter = RateLimiter(3.0, name="arXiv", sleep=waits.append)
    return Research(cache_dir=cache_dir, arxiv_query_url=server.arxiv_query_url,
                    hub_endpoint=server.hub_endpoint, datasets_server=server.datasets_server,
                    limiter=limiter, hub_token=False, timeout_s=10.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_cold_and_cached(server: ReplayServer, tmp: Path, repeats: int) -> list[tuple[str, ...]]:
    rows = []
    research = fresh_research(server, tmp / "cold")
    try:
        for name, (call, path) in OPS.items():
            before = server.count(path)
            t0 = time.perf_counter()
            call(research)
            cold_ms = (time.perf_counter() - t0) * 1e3
            cold_requests = server.count(path) - before
            before = server.count()
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                call(research)
                samples.append((time.perf_counter() - t0) * 1e3)
            extra = server.count() - before
            p50, p95 = statistics.median(samples), percentile(samples, 0.95)
            verdict = "PASS" if p95 < 5.0 and extra == 0 else "FAIL"
            rows.append((name, f"{cold_ms:.1f} ms ({cold_requests} req)",
                         f"p50 {p50:.2f} / p95 {p95:.2f} / max {max(samples):.2f} ms, {extra} req",
                         "< 5 ms, 0 req", verdict))
    finally:
        research.close()
    return rows


def single_flight_threads(server: ReplayServer, tmp: Path, name: str, n: int = 20) -> tuple[str, ...]:
    call, path = OPS[name]
    research = fresh_research(server, tmp / f"sf-{name}")
    try:
        before = server.count(path if path != "/" else "/api/datasets/")
        barrier = threading.Barrier(n)
        errors: list[BaseException] = []

        def worker() -> None:
            barrier.wait(timeout=10)
            try:
                call(research)
            except BaseException as err:  # reported in the table
                errors.append(err)

        server.hold()
        threads = [threading.Thread(target=worker) for _ in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        joined = server.wait_for_requests(1, timeout_s=10) and research.cache.wait_for_waiters(n - 1,
                                                                                             timeout_s=10)
        server.release()
        for t in threads:
            t.join(timeout=30)
        wall_ms = (time.perf_counter() - t0) * 1e3
        upstream = server.count(path if path != "/" else "/api/datasets/") - before
    finally:
        server.release()
        research.close()
    ok = joined and upstream == 1 and not errors
    return (f"{name} x{n} threads", f"{upstream} upstream req", f"{wall_ms:.0f} ms wall, {len(errors)} errors",
            "1 req", "PASS" if ok else "FAIL")


def single_flight_asyncio(server: ReplayServer, tmp: Path, n: int = 20) -> tuple[str, ...]:
    research = fresh_research(server, tmp / "sf-async")
    results: list[Any] = []

    async def call() -> None:
        results.append(await anyio.to_thread.run_sync(lambda: research.search_datasets("sentiment")))

    async def main() -> bool:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(n):
                    tg.start_soon(call)
                joined = await anyio.to_thread.run_sync(
                    lambda: research.cache.wait_for_waiters(n - 1, timeout_s=10))
                server.release()
        return bool(joined)

    before = server.count("/api/datasets")
    server.hold()
    t0 = time.perf_counter()
    try:
        joined = anyio.run(main)
    finally:
        server.release()
        research.close()
    wall_ms = (time.perf_counter() - t0) * 1e3
    upstream = server.count("/api/datasets") - before
    ok = joined and upstream == 1 and len(results) == n
    return (f"search_datasets x{n} asyncio", f"{upstream} upstream req", f"{wall_ms:.0f} ms wall",
            "1 req", "PASS" if ok else "FAIL")


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "+".join("-" * (w + 2) for w in widths)
    print(f"+{line}+")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print(f"+{line}+")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print(f"+{line}+")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=500, help="cached repeats per operation")
    args = parser.parse_args()
    constants.HF_HUB_OFFLINE = False  # loopback only: the replay server is the "Hub" here
    with ReplayServer(FIXTURES) as server, tempfile.TemporaryDirectory(prefix="bench-research-") as d:
        tmp = Path(d)
        cached = bench_cold_and_cached(server, tmp, args.repeats)
        flights = [single_flight_threads(server, tmp, name) for name in OPS]
        flights.append(single_flight_asyncio(server, tmp))
    print(f"bench_research: loopback replay server, {args.repeats} cached repeats per operation")
    print_table(("operation", "cold (empty cache)", "cached repeat", "target", "result"), cached)
    print_table(("single-flight, cold cache", "upstream", "detail", "target", "result"), flights)
    failed = [r for r in cached + flights if r[-1] != "PASS"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
