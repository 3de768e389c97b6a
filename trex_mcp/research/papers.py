"""arXiv search and lookup through the `arxiv` client (arxiv 4.x), cached and rate-limited.

What this module guarantees:
- Every HTTP request the arxiv client makes (first page, retries) first takes a slot from one process-wide
  `RateLimiter` (3 s apart, arXiv's terms) and runs with a connect/read timeout; the client's own per-object
  delay is switched off because it is neither shared across threads nor injectable.
- Input is validated before anything is sent: an empty query, a bad category or a malformed arXiv id is a
  `ResearchError(kind="bad_input")`; upstream failures map to `offline`, `timeout`, `rate_limited` or
  `upstream`; a missing paper is `not_found`. No raw traceback leaves this module.
- Answers are cached (`ResearchCache`); identical concurrent searches make one request.

How the client is configured: `Client.query_url_format` is the supported base-URL setting (tests point it at
a loopback server). Pacing and timeouts are a `requests` transport adapter mounted on the client's session
(`Client._session`, a plain `requests.Session`): the arxiv client has no public hook for either.

Not covered: downloading PDFs or sources (use `Paper.pdf_url`).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from trex_mcp.research.cache import ResearchCache
from trex_mcp.research.errors import ResearchError
from trex_mcp.research.models import Paper, PaperLookup, PaperResults, PaperSearch, PaperSort, parse_input
from trex_mcp.research.ratelimit import RateLimiter, arxiv_limiter

__all__ = ["ARXIV_QUERY_URL", "ArxivConfig", "build_query", "get_paper", "normalise_arxiv_id", "search_papers"]

log = logging.getLogger(__name__)

ARXIV_QUERY_URL = "https://export.arxiv.org/api/query?{}"
_PAPER_TTL_VERSIONED_S = 30 * 86400.0  # a versioned id names immutable metadata

# Since April 2007: YYMM.NNNN (to 2014) or YYMM.NNNNN (from 2015), optional version.
_NEW_ID = re.compile(r"^(\d{2})(0[1-9]|1[0-2])\.(\d{4,5})(v\d+)?$")
_OLD_ID = re.compile(r"^[a-z]+(-[a-z]+)?(\.[A-Z]{2})?/\d{7}(v\d+)?$")
_ID_PREFIX = re.compile(r"^(?:arxiv:|https?://(?:export\.|www\.)?arxiv\.org/(?:abs|pdf)/)", re.IGNORECASE)
_FIELD_PREFIX = re.compile(r"\b(ti|au|abs|co|jr|cat|rn|id|all|submittedDate|lastUpdatedDate):")
_OPERATORS = {"AND", "OR", "ANDNOT"}
_SORTS = {"relevance": "Relevance", "submitted": "SubmittedDate", "updated": "LastUpdatedDate"}


@dataclass(frozen=True)
class ArxivConfig:
    """Where and how to reach the arXiv API."""

    query_url_format: str = ARXIV_QUERY_URL
    limiter: RateLimiter = field(default_factory=arxiv_limiter)
    timeout_s: float = 15.0
    num_retries: int = 1
    max_wait_s: float = 30.0


def normalise_arxiv_id(raw: str) -> str:
    """'arXiv:2106.09685v2', 'https://arxiv.org/abs/2106.09685' or 'hep-th/9901001' -> the bare id.

    Raises `ResearchError(kind="bad_input", field="arxiv_id")` when the result is not an arXiv id.
    """
    value = _ID_PREFIX.sub("", raw.strip()).removesuffix(".pdf").strip("/")
    new = _NEW_ID.match(value)
    if new and len(new.group(3)) == (5 if new.group(1) + new.group(2) >= "1501" else 4):
        return value
    if _OLD_ID.match(value):
        return value
    raise ResearchError(
        f"arxiv_id: {raw.strip()[:80]!r} is not an arXiv id", kind="bad_input", field="arxiv_id",
        hint="use the form '2106.09685' (optionally with a version, '2106.09685v2') or the old form "
             "'hep-th/9901001'; search_papers finds ids from titles")


def build_query(search: PaperSearch) -> str:
    """The arXiv `search_query` for a validated search: keywords AND categories AND submission dates.

    Plain keywords (no field prefixes, no boolean operators) become `all:` terms joined with AND, so every word
    must match; fielded queries are passed through unchanged.
    """
    query = search.query
    if not _FIELD_PREFIX.search(query) and not (_OPERATORS & set(query.split())):
        try:
            terms = shlex.split(query)
        except ValueError:  # unbalanced quotes: fall back to whitespace words
            terms = query.replace('"', " ").split()
        query = " AND ".join(f'all:"{t}"' if " " in t else f"all:{t}" for t in terms if t)
    parts = [f"({query})"]
    if search.categories:
        parts.append("(" + " OR ".join(f"cat:{c}" for c in search.categories) + ")")
    if search.date_from or search.date_to:
        start = _stamp(search.date_from or date(1991, 1, 1), "0000")
        end = _stamp(search.date_to or date(2999, 12, 31), "2359")
        parts.append(f"submittedDate:[{start} TO {end}]")
    return parts[0][1:-1] if len(parts) == 1 else " AND ".join(parts)


def search_papers(query: str, *, categories: list[str] | None = None, date_from: date | str | None = None,
                  date_to: date | str | None = None, sort: PaperSort = "relevance", max_results: int = 10,
                  cache: ResearchCache | None = None, config: ArxivConfig | None = None) -> PaperResults:
    """Search arXiv; returns `PaperResults` (papers best first, possibly empty). Dates may be ISO strings.

    Raises `ResearchError` (bad_input for invalid arguments; offline, timeout, rate_limited or upstream when
    arXiv cannot answer and nothing is cached).
    """
    search = parse_input(PaperSearch, query=query, categories=categories, date_from=date_from,
                         date_to=date_to, sort=sort, max_results=max_results)
    cfg = config or ArxivConfig()
    search_query = build_query(search)
    key = "arxiv:v1:" + json.dumps([cfg.query_url_format, "search", search_query, search.sort,
                                    search.max_results])

    def fetch() -> dict[str, Any]:
        papers = _run(cfg, search_query=search_query, id_list=None, sort=search.sort,
                      max_results=search.max_results)
        return {"query": search_query, "sort": search.sort, "papers": papers, "source": "arxiv",
                "fetched_at": datetime.now(UTC).isoformat()}

    value, stale = _cached(cache, key, fetch, None)
    papers = [{**paper, "stale": stale} for paper in value["papers"]]
    return PaperResults.model_validate({**value, "papers": papers, "stale": stale})


def get_paper(arxiv_id: str, cache: ResearchCache | None = None, *, config: ArxivConfig | None = None) -> Paper:
    """One paper's metadata by arXiv id (latest version unless the id names one).

    Raises `ResearchError`: bad_input for a malformed id, not_found when arXiv has no such paper, or a
    transient kind when arXiv cannot answer and nothing is cached.
    """
    lookup = parse_input(PaperLookup, arxiv_id=arxiv_id)
    paper_id = normalise_arxiv_id(lookup.arxiv_id)
    cfg = config or ArxivConfig()
    key = "arxiv:v1:" + json.dumps([cfg.query_url_format, "paper", paper_id])
    ttl = _PAPER_TTL_VERSIONED_S if re.search(r"v\d+$", paper_id) else None

    def fetch() -> dict[str, Any]:
        papers = _run(cfg, search_query="", id_list=[paper_id], sort="relevance", max_results=1)
        if not papers:
            raise ResearchError(f"arXiv has no paper with id {paper_id!r}", kind="not_found",
                                field="arxiv_id", hint="check the id, or find it with search_papers")
        return papers[0]

    value, stale = _cached(cache, key, fetch, ttl)
    return Paper.model_validate({**value, "stale": stale})


# -- internals ----------------------------------------------------------------------------------------------

def _stamp(day: date, hhmm: str) -> str:
    return f"{day:%Y%m%d}{hhmm}"


def _cached(cache: ResearchCache | None, key: str, fetch: Any, ttl: float | None) -> tuple[dict[str, Any], bool]:
    if cache is None:
        return fetch(), False
    value, stale = cache.get_or_fetch(key, fetch, ttl_s=ttl)
    return value, stale


@cache
def _paced_adapter_class() -> type[Any]:
    from requests.adapters import HTTPAdapter

    class PacedAdapter(HTTPAdapter):
        """Takes a rate-limiter slot before every request and applies a default timeout."""

        def __init__(self, limiter: RateLimiter, timeout_s: float, max_wait_s: float) -> None:
            super().__init__(max_retries=0)
            self._limiter = limiter
            self._timeout = (timeout_s, timeout_s)
            self._max_wait_s = max_wait_s

        def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True,
                 cert: Any = None, proxies: Any = None) -> Any:
            self._limiter.acquire(self._max_wait_s)
            return super().send(request, stream=stream, timeout=timeout if timeout is not None else self._timeout,
                                verify=verify, cert=cert, proxies=proxies)

    return PacedAdapter


def _run(cfg: ArxivConfig, *, search_query: str, id_list: list[str] | None, sort: PaperSort,
         max_results: int) -> list[dict[str, Any]]:
    """One arXiv API call through the arxiv client; returns papers as JSON-safe dicts."""
    import arxiv
    import requests

    client = arxiv.Client(page_size=max_results, delay_seconds=0.0, num_retries=cfg.num_retries)
    client.query_url_format = cfg.query_url_format
    adapter = _paced_adapter_class()(cfg.limiter, cfg.timeout_s, cfg.max_wait_s)
    session = client._session
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    search = arxiv.Search(query=search_query, id_list=id_list or [], max_results=max_results,
                          sort_by=getattr(arxiv.SortCriterion, _SORTS[sort]),
                          sort_order=arxiv.SortOrder.Descending)
    try:
        return [_paper_dict(r) for r in client.results(search)]
    except ResearchError:
        raise
    except arxiv.HTTPError as err:
        raise _http_error(err.status) from None
    except arxiv.UnexpectedEmptyPageError:
        raise ResearchError("arXiv returned an unexpectedly empty page", kind="upstream",
                            hint="retry in a minute") from None
    except requests.exceptions.Timeout:
        raise ResearchError(f"arXiv did not answer within {cfg.timeout_s:g} s", kind="timeout",
                            hint="retry later; arXiv is slow or overloaded") from None
    except requests.exceptions.ConnectionError:
        raise ResearchError("cannot reach the arXiv API (no network connection or DNS failure)",
                            kind="offline", hint="check the server's network access; cached answers are "
                            "still served") from None
    except requests.exceptions.RequestException as err:
        raise ResearchError(f"the arXiv request failed ({type(err).__name__})", kind="upstream",
                            hint="retry later") from None
    except Exception:
        log.exception("unexpected failure while querying arXiv")
        raise ResearchError("the arXiv lookup failed unexpectedly (details are in the server log)",
                            kind="upstream", hint="retry later") from None
    finally:
        session.close()


def _http_error(status: int) -> ResearchError:
    if status == 429:
        return ResearchError("arXiv is rate-limiting this server (HTTP 429)", kind="rate_limited",
                             hint="wait a minute before searching again")
    if status >= 500:
        return ResearchError(f"arXiv answered with a server error (HTTP {status})", kind="upstream",
                             hint="arXiv is having problems; retry in a few minutes")
    if status == 400:
        return ResearchError("arXiv rejected the query as malformed (HTTP 400)", kind="bad_input",
                             field="query", hint="check field prefixes (ti:, abs:, au:, cat:), quotes and "
                             "AND/OR/ANDNOT; plain keywords always work")
    return ResearchError(f"arXiv refused the request (HTTP {status})", kind="upstream", hint="retry later")


def _clean(text: str | None) -> str | None:
    return " ".join(text.split()) if text else None


def _paper_dict(r: Any) -> dict[str, Any]:
    abs_url = str(r.entry_id).replace("http://arxiv.org/", "https://arxiv.org/")
    return {
        "arxiv_id": r.get_short_id(),
        "title": _clean(r.title) or "",
        "authors": [a.name for a in r.authors],
        "published": r.published.isoformat(),
        "updated": r.updated.isoformat(),
        "primary_category": r.primary_category or "",
        "categories": list(r.categories),
        "abstract": _clean(r.summary) or "",
        "comment": _clean(r.comment),
        "journal_ref": _clean(r.journal_ref),
        "doi": r.doi or None,
        "abs_url": abs_url,
        "pdf_url": r.pdf_url,
        "source": "arxiv",
    }
