"""`Research`: the one object the server builds per process for papers, datasets and models.

It holds the disk cache (under `settings.cache_dir / "research"`), the arXiv rate limiter (the process-wide
one unless a test injects its own) and the endpoints. Every method is a plain synchronous call that is safe to
run from worker threads; asyncio code calls them through `anyio.to_thread.run_sync`.

Endpoints: arXiv from `TREX_ARXIV_QUERY_URL` (a format string with `{}` for the query), the Hub from
huggingface_hub's `HF_ENDPOINT`, the dataset viewer from `TREX_DATASETS_SERVER_URL`; constructor arguments
override all three.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from trex_mcp.research.cache import ResearchCache
from trex_mcp.research.hub import HubConfig, inspect_dataset, search_datasets, search_models
from trex_mcp.research.models import (
    DatasetInfo,
    DatasetResults,
    HubSort,
    ModelResults,
    Paper,
    PaperResults,
    PaperSort,
)
from trex_mcp.research.papers import ARXIV_QUERY_URL, ArxivConfig, get_paper, search_papers
from trex_mcp.research.ratelimit import RateLimiter, arxiv_limiter
from trex_mcp.settings import Settings

__all__ = ["Research"]

DEFAULT_TTL_S = 6 * 3600.0


class Research:
    """Cached, rate-limited access to arXiv and the Hugging Face Hub."""

    def __init__(self, settings: Settings | None = None, *, cache_dir: Path | None = None,
                 ttl_s: float = DEFAULT_TTL_S, arxiv_query_url: str | None = None,
                 hub_endpoint: str | None = None, datasets_server: str | None = None,
                 timeout_s: float = 15.0, limiter: RateLimiter | None = None,
                 hub_token: str | bool | None = None, clock: Callable[[], float] | None = None) -> None:
        if cache_dir is None:
            cache_dir = (settings or Settings.model_validate({})).cache_dir / "research"
        self.cache = (ResearchCache(cache_dir, ttl_s) if clock is None
                      else ResearchCache(cache_dir, ttl_s, clock=clock))
        self.limiter = limiter or arxiv_limiter()
        self.arxiv = ArxivConfig(
            query_url_format=arxiv_query_url or os.environ.get("TREX_ARXIV_QUERY_URL") or ARXIV_QUERY_URL,
            limiter=self.limiter, timeout_s=timeout_s)
        self.hub = HubConfig(endpoint=hub_endpoint,
                             datasets_server=datasets_server or os.environ.get("TREX_DATASETS_SERVER_URL"),
                             timeout_s=timeout_s, token=hub_token)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Research:
        """One per process: cache under `settings.cache_dir / "research"`, endpoints from the environment."""
        return cls(settings, **overrides)

    def search_papers(self, query: str, *, categories: list[str] | None = None,
                      date_from: date | str | None = None, date_to: date | str | None = None,
                      sort: PaperSort = "relevance",
                      max_results: int = 10) -> PaperResults:
        """See `trex_mcp.research.papers.search_papers`."""
        return search_papers(query, categories=categories, date_from=date_from, date_to=date_to, sort=sort,
                             max_results=max_results, cache=self.cache, config=self.arxiv)

    def get_paper(self, arxiv_id: str) -> Paper:
        """See `trex_mcp.research.papers.get_paper`."""
        return get_paper(arxiv_id, self.cache, config=self.arxiv)

    def search_datasets(self, query: str = "", *, task: str | None = None, language: str | None = None,
                        sort: HubSort = "downloads", limit: int = 10) -> DatasetResults:
        """See `trex_mcp.research.hub.search_datasets`."""
        return search_datasets(query, task=task, language=language, sort=sort, limit=limit, cache=self.cache,
                               hub=self.hub)

    def search_models(self, query: str = "", *, task: str | None = None, language: str | None = None,
                      library: str | None = None, sort: HubSort = "downloads", limit: int = 10) -> ModelResults:
        """See `trex_mcp.research.hub.search_models`."""
        return search_models(query, task=task, language=language, library=library, sort=sort, limit=limit,
                             cache=self.cache, hub=self.hub)

    def inspect_dataset(self, dataset_id: str, *, config: str | None = None, split: str | None = None,
                        rows: int = 5) -> DatasetInfo:
        """See `trex_mcp.research.hub.inspect_dataset`."""
        return inspect_dataset(dataset_id, config=config, split=split, rows=rows, cache=self.cache, hub=self.hub)

    def close(self) -> None:
        """Close the cache files."""
        self.cache.close()

    def __enter__(self) -> Research:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
