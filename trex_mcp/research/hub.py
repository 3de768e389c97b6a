"""Hugging Face Hub research: search datasets and models, inspect one dataset. Cached, bounded, offline-honest.

What this module guarantees:
- Offline mode (`HF_HUB_OFFLINE=1`, read by huggingface_hub) gives a `ResearchError(kind="offline")` at once,
  before any request; a cached answer, even an expired one, is still served (marked stale).
- Every request has a timeout and no hidden retries, so a call returns in about `timeout_s` at worst.
- Failures map to `bad_input`, `not_found`, `gated`, `offline`, `timeout`, `rate_limited` or `upstream` with an
  actionable message; tokens are never echoed.

How huggingface_hub is used: `HfApi(endpoint=...).dataset_info` for the card, license and gating; searches
send the same `GET /api/datasets` and `/api/models` requests `HfApi.list_datasets` / `list_models` send, through
huggingface_hub's shared session (`get_session`), headers (`build_hf_headers`), error mapping
(`hf_raise_for_status`) and parsers (`hf_api.DatasetInfo` / `ModelInfo`). The list methods themselves are not
called because they take no timeout and retry 5xx answers five times with backoff (about 23 s), which would
hold a tool call far too long. Splits, sizes, features and first rows come from the Hub's dataset viewer
(datasets-server: `/splits`, `/size`, `/first-rows`) through the same session; its endpoint is configurable.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trex_mcp.research.cache import ResearchCache
from trex_mcp.research.errors import ResearchError
from trex_mcp.research.models import (
    DatasetInfo,
    DatasetInspect,
    DatasetResults,
    DatasetSearch,
    HubSort,
    ModelResults,
    ModelSearch,
    parse_input,
)

__all__ = ["HubConfig", "inspect_dataset", "search_datasets", "search_models"]

log = logging.getLogger(__name__)

_MAX_ROWS = 20
_MAX_CELL_CHARS = 500
_MAX_LIST_ITEMS = 50
_SUMMARY_CHARS = 1000
_DATASET_EXPAND = ["author", "cardData", "description", "downloads", "gated", "lastModified", "likes", "tags"]
_MODEL_EXPAND = ["downloads", "gated", "lastModified", "library_name", "likes", "pipeline_tag", "safetensors",
                 "tags"]


@dataclass(frozen=True)
class HubConfig:
    """Where and how to reach the Hub and its dataset viewer.

    `endpoint=None` means huggingface_hub's own default (`HF_ENDPOINT`, else https://huggingface.co);
    `datasets_server=None` means https://datasets-server.huggingface.co. `token=None` lets huggingface_hub find
    the server's token (`HF_TOKEN` or a saved login); `False` forces anonymous requests.
    """

    endpoint: str | None = None
    datasets_server: str | None = None
    timeout_s: float = 15.0
    token: str | bool | None = None

    def endpoint_url(self) -> str:
        from huggingface_hub import constants

        return (self.endpoint or constants.ENDPOINT).rstrip("/")

    def viewer_url(self) -> str:
        from huggingface_hub import constants

        return (self.datasets_server or constants.DATASETS_SERVER_ENDPOINT).rstrip("/")


# -- public functions ---------------------------------------------------------------------------------------

def search_datasets(query: str = "", *, task: str | None = None, language: str | None = None,
                    sort: HubSort = "downloads", limit: int = 10, cache: ResearchCache | None = None,
                    hub: HubConfig | None = None) -> DatasetResults:
    """Search Hub datasets by free text and task/language filters; returns `DatasetResults`.

    Raises `ResearchError` (bad_input for invalid arguments; offline, timeout, rate_limited or upstream when the
    Hub cannot answer and nothing is cached).
    """
    args = parse_input(DatasetSearch, query=query, task=task, language=language, sort=sort, limit=limit)
    cfg = hub or HubConfig()
    filters = ([f"task_categories:{args.task}"] if args.task else []) + (
        [f"language:{args.language}"] if args.language else [])
    key = "hub:v1:" + json.dumps([cfg.endpoint, "datasets", args.query, filters, args.sort, args.limit])

    def fetch() -> dict[str, Any]:
        from huggingface_hub.hf_api import DatasetInfo as HubDatasetInfo

        endpoint = cfg.endpoint_url()
        params: dict[str, Any] = {"sort": args.sort, "limit": args.limit, "expand": _DATASET_EXPAND}
        if args.query:
            params["search"] = args.query
        if filters:
            params["filter"] = filters
        items = _get_json(cfg, f"{endpoint}/api/datasets", params, what="dataset search")
        found = [_dataset_summary(HubDatasetInfo(**item), endpoint) for item in _as_list(items)[: args.limit]]
        return {"query": args.query, "filters": filters, "sort": args.sort, "datasets": found, "source": "hub",
                "fetched_at": _now()}

    value, stale = _cached(cache, key, fetch)
    return DatasetResults.model_validate({**value, "stale": stale})


def search_models(query: str = "", *, task: str | None = None, language: str | None = None,
                  library: str | None = None, sort: HubSort = "downloads", limit: int = 10,
                  cache: ResearchCache | None = None, hub: HubConfig | None = None) -> ModelResults:
    """Search Hub models by free text, pipeline tag (`task`), language and library; returns `ModelResults`.

    Raises `ResearchError` like `search_datasets`.
    """
    args = parse_input(ModelSearch, query=query, task=task, language=language, library=library, sort=sort,
                       limit=limit)
    cfg = hub or HubConfig()
    tag_filters = [f for f in (args.language, args.library) if f]
    shown = ([f"pipeline_tag:{args.task}"] if args.task else []) + tag_filters
    key = "hub:v1:" + json.dumps([cfg.endpoint, "models", args.query, shown, args.sort, args.limit])

    def fetch() -> dict[str, Any]:
        from huggingface_hub.hf_api import ModelInfo

        endpoint = cfg.endpoint_url()
        params: dict[str, Any] = {"sort": args.sort, "limit": args.limit, "expand": _MODEL_EXPAND}
        if args.query:
            params["search"] = args.query
        if args.task:
            params["pipeline_tag"] = args.task
        if tag_filters:
            params["filter"] = tag_filters
        items = _get_json(cfg, f"{endpoint}/api/models", params, what="model search")
        found = [_model_summary(ModelInfo(**{"siblings": None, **item}), endpoint)
                 for item in _as_list(items)[: args.limit]]
        return {"query": args.query, "filters": shown, "sort": args.sort, "models": found, "source": "hub",
                "fetched_at": _now()}

    value, stale = _cached(cache, key, fetch)
    return ModelResults.model_validate({**value, "stale": stale})


def inspect_dataset(dataset_id: str, *, config: str | None = None, split: str | None = None, rows: int = 5,
                    cache: ResearchCache | None = None, hub: HubConfig | None = None) -> DatasetInfo:
    """Card summary, license, gating, configs, splits with sizes, features and the first rows of one split.

    Raises `ResearchError`: bad_input (malformed id, unknown config or split), not_found (no such dataset),
    gated (access must be requested or the token lacks it), or a transient kind when nothing is cached.
    """
    args = parse_input(DatasetInspect, dataset_id=dataset_id, config=config, split=split, rows=rows)
    cfg = hub or HubConfig()
    key = "hub:v1:" + json.dumps([cfg.endpoint, cfg.datasets_server, "inspect", args.dataset_id, args.config,
                                  args.split])
    value, stale = _cached(cache, key, lambda: _inspect(cfg, args))
    return DatasetInfo.model_validate({**value, "rows": value["rows"][: args.rows], "stale": stale})


# -- inspect ------------------------------------------------------------------------------------------------

def _inspect(cfg: HubConfig, args: DatasetInspect) -> dict[str, Any]:
    from huggingface_hub import HfApi

    _offline_guard()
    endpoint = cfg.endpoint_url()
    ds_id = args.dataset_id
    api = HfApi(endpoint=endpoint, token=cfg.token, library_name="trex-mcp")
    with _hub_errors("dataset", ds_id):
        info = api.dataset_info(ds_id, timeout=cfg.timeout_s)
    card = _dataset_summary(info, endpoint)
    page = card["url"]
    result: dict[str, Any] = {
        "id": info.id, "url": page, "pretty_name": _card_field(info, "pretty_name"),
        "summary": _shorten(_card_text(info.description), _SUMMARY_CHARS), "license": card["license"],
        "gated": card["gated"], "task_categories": card["task_categories"], "languages": card["languages"],
        "size_category": card["size_category"], "downloads": card["downloads"], "likes": card["likes"],
        "last_modified": card["last_modified"], "configs": [], "splits": [], "config": None, "split": None,
        "features": [], "rows": [], "viewer_note": None, "source": "hub+dataset-viewer", "fetched_at": _now(),
    }
    if card["gated"] and not _have_token(cfg):
        raise _gated_error(ds_id, card, page, with_token=False)

    viewer = cfg.viewer_url()
    listing = _viewer_get(cfg, f"{viewer}/splits", {"dataset": ds_id})
    if isinstance(listing, _Refusal):
        if listing.status in (401, 403) or listing.code in ("ExternalUnauthenticatedError",
                                                             "ExternalAuthenticatedError"):
            raise _gated_error(ds_id, card, page, with_token=_have_token(cfg))
        result["viewer_note"] = (f"the dataset viewer has no splits for this dataset ({listing.message}); "
                                 "it may be disabled or in an unsupported format: load a few rows with a "
                                 "recipe preview instead")
        return result

    pairs = [(str(s["config"]), str(s["split"])) for s in listing.get("splits", [])
             if isinstance(s, dict) and "config" in s and "split" in s]
    configs = list(dict.fromkeys(c for c, _ in pairs))
    result["configs"] = configs
    if not pairs:
        result["viewer_note"] = "the dataset viewer lists no splits for this dataset"
        return result
    preferred = "default"
    if args.config is None and args.split is not None:  # a split named alone: the config that has it
        having = [c for c, s in pairs if s == args.split]
        preferred = "default" if "default" in having else (having[0] if having else preferred)
    chosen_config = _choose(args.config, configs, preferred, "config", ds_id)
    config_splits = [s for c, s in pairs if c == chosen_config]
    chosen_split = _choose(args.split, config_splits, "train", "split", f"{ds_id} config {chosen_config!r}")
    result["config"], result["split"] = chosen_config, chosen_split

    sizes: dict[tuple[str, str], dict[str, Any]] = {}
    size = _viewer_get(cfg, f"{viewer}/size", {"dataset": ds_id})
    if isinstance(size, _Refusal):
        result["viewer_note"] = f"split sizes unavailable ({size.message})"
    else:
        for s in (size.get("size") or {}).get("splits", []):
            if isinstance(s, dict):
                sizes[(str(s.get("config")), str(s.get("split")))] = s
    result["splits"] = [{"config": c, "split": s, "num_rows": _int(sizes.get((c, s), {}).get("num_rows")),
                         "num_bytes": _int(sizes.get((c, s), {}).get("num_bytes_parquet_files"))}
                        for c, s in pairs]

    first = _viewer_get(cfg, f"{viewer}/first-rows",
                        {"dataset": ds_id, "config": chosen_config, "split": chosen_split})
    if isinstance(first, _Refusal):
        note = f"first rows unavailable ({first.message})"
        result["viewer_note"] = f"{result['viewer_note']}; {note}" if result["viewer_note"] else note
        return result
    result["features"] = [{"name": str(f.get("name")), "type": _type_str(f.get("type"))}
                          for f in first.get("features", []) if isinstance(f, dict)]
    result["rows"] = [_trim(r.get("row", {})) for r in first.get("rows", [])[:_MAX_ROWS] if isinstance(r, dict)]
    return result


def _choose(requested: str | None, available: list[str], preferred: str, what: str, where: str) -> str:
    if requested is not None:
        if requested not in available:
            listed = ", ".join(repr(a) for a in available[:20]) or "none"
            raise ResearchError(f"{what} {requested!r} not found in {where}; available: {listed}",
                                kind="bad_input", field=what, hint=f"pick one of the listed {what}s")
        return requested
    return preferred if preferred in available else available[0]


def _gated_error(ds_id: str, card: dict[str, Any], page: str, *, with_token: bool) -> ResearchError:
    mode = "manual approval" if card.get("gated") == "manual" else "automatic approval"
    license_note = f", license {card['license']}" if card.get("license") else ""
    if with_token:
        hint = (f"the server's Hugging Face token has not been granted access: accept the conditions at {page} "
                "with that account (approval may take time), or pick another dataset")
    else:
        hint = (f"accept the conditions at {page} while logged in, then set HF_TOKEN in the trex server's "
                "environment and retry; or pick another dataset")
    return ResearchError(f"dataset {ds_id!r} is gated ({mode}{license_note}); its files and rows need an "
                         "approved account", kind="gated", field="dataset_id", hint=hint)


# -- HTTP through huggingface_hub ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Refusal:
    """A dataset-viewer 4xx: the viewer has no answer for this dataset (kept, not raised)."""

    status: int
    code: str | None
    message: str


def _offline_guard() -> None:
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise ResearchError("the Hugging Face Hub is not reachable: offline mode is on (HF_HUB_OFFLINE=1)",
                            kind="offline", hint="unset HF_HUB_OFFLINE in the trex server's environment to "
                            "search the Hub; cached answers are still served")


def _headers(cfg: HubConfig) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    from trex_mcp import __version__

    headers = build_hf_headers(token=cfg.token, library_name="trex-mcp", library_version=__version__)
    return {str(k): str(v) for k, v in headers.items()}


def _have_token(cfg: HubConfig) -> bool:
    if cfg.token is False:
        return False
    if isinstance(cfg.token, str):
        return bool(cfg.token)
    from huggingface_hub.utils import get_token

    return get_token() is not None


def _get_json(cfg: HubConfig, url: str, params: dict[str, Any], *, what: str) -> Any:
    from huggingface_hub import get_session
    from huggingface_hub.utils import hf_raise_for_status

    _offline_guard()
    with _hub_errors(what, None):
        response = get_session().get(url, params=params, headers=_headers(cfg), timeout=cfg.timeout_s)
        hf_raise_for_status(response)
        return response.json()


def _viewer_get(cfg: HubConfig, url: str, params: dict[str, str]) -> dict[str, Any] | _Refusal:
    from huggingface_hub import get_session
    from huggingface_hub.utils import hf_raise_for_status

    with _hub_errors("dataset viewer", params.get("dataset")):
        response = get_session().get(url, params=params, headers=_headers(cfg), timeout=cfg.timeout_s)
        code = response.headers.get("X-Error-Code")
        if code == "ResponseNotReady":
            raise ResearchError(f"the dataset viewer is still processing {params.get('dataset')!r}",
                                kind="upstream", hint="retry in a few minutes")
        if 400 <= response.status_code < 500 and response.status_code != 429:
            return _Refusal(response.status_code, code, _viewer_message(response))
        hf_raise_for_status(response)
        payload = response.json()
    if not isinstance(payload, dict):
        raise ResearchError("the dataset viewer sent an answer of an unexpected shape", kind="upstream",
                            hint="retry later")
    return payload


def _viewer_message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    text = body.get("error") if isinstance(body, dict) else None
    return _shorten(str(text) if text else f"HTTP {response.status_code}", 300) or ""


@contextmanager
def _hub_errors(what: str, repo_id: str | None) -> Iterator[None]:
    """Turn huggingface_hub / httpx2 failures into `ResearchError`s."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        yield
    except ResearchError:
        raise
    except OfflineModeIsEnabled:
        raise ResearchError("the Hugging Face Hub is not reachable: offline mode is on (HF_HUB_OFFLINE=1)",
                            kind="offline", hint="unset HF_HUB_OFFLINE on the trex server") from None
    except GatedRepoError:
        raise ResearchError(f"{repo_id!r} is gated and the server's token has no access", kind="gated",
                            field="dataset_id", hint="accept its conditions on the Hub with the server's "
                            "account, or pick another dataset") from None
    except RepositoryNotFoundError:
        raise ResearchError(f"no {what} {repo_id!r} on the Hugging Face Hub (or it is private)",
                            kind="not_found", field="dataset_id",
                            hint="check the id ('owner/name'), or find one with search_datasets") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else 0
        raise _status_error(status, what) from None
    except httpx2.TimeoutException:
        raise ResearchError(f"the Hugging Face {what} did not answer in time", kind="timeout",
                            hint="retry later; the Hub is slow or overloaded") from None
    except httpx2.TransportError:
        raise ResearchError("cannot reach the Hugging Face Hub (no network connection or DNS failure)",
                            kind="offline", hint="check the server's network access; cached answers are "
                            "still served") from None
    except ValueError:
        raise ResearchError(f"the Hugging Face {what} sent an answer that is not valid JSON", kind="upstream",
                            hint="retry later") from None
    except Exception:
        log.exception("unexpected failure during Hugging Face %s", what)
        raise ResearchError(f"the Hugging Face {what} failed unexpectedly (details are in the server log)",
                            kind="upstream", hint="retry later") from None


def _status_error(status: int, what: str) -> ResearchError:
    if status == 429:
        return ResearchError(f"the Hugging Face Hub is rate-limiting this server ({what}, HTTP 429)",
                             kind="rate_limited", hint="wait a minute; setting HF_TOKEN raises the limit")
    if status >= 500:
        return ResearchError(f"the Hugging Face {what} answered with a server error (HTTP {status})",
                             kind="upstream", hint="the Hub is having problems; retry in a few minutes")
    if status in (401, 403):
        return ResearchError(f"the Hugging Face {what} refused access (HTTP {status})", kind="gated",
                             hint="the server's token lacks permission for this repository")
    if status in (400, 422):
        return ResearchError(f"the Hugging Face {what} rejected the request (HTTP {status})", kind="bad_input",
                             hint="simplify the query or filters")
    if status == 404:
        return ResearchError(f"the Hugging Face {what} found nothing (HTTP 404)", kind="not_found",
                             hint="check the id")
    return ResearchError(f"the Hugging Face {what} failed (HTTP {status})", kind="upstream", hint="retry later")


# -- shaping ------------------------------------------------------------------------------------------------

def _cached(cache: ResearchCache | None, key: str,
            fetch: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    if cache is None:
        return fetch(), False
    return cache.get_or_fetch(key, fetch)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _as_list(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise ResearchError("the Hugging Face Hub sent a search answer of an unexpected shape", kind="upstream",
                            hint="retry later")
    return [i for i in items if isinstance(i, dict) and "id" in i]


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _shorten(text: Any, limit: int) -> str | None:
    if not text:
        return None
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_CARD_HEADINGS = re.compile(r"^(dataset card for\b.*|dataset summary|dataset description)$", re.IGNORECASE)


def _card_text(description: Any) -> str | None:
    """The Hub's card-derived description without the boilerplate headings it starts with."""
    if not description:
        return None
    lines = [line.strip() for line in str(description).splitlines() if line.strip()]
    while lines and _CARD_HEADINGS.match(lines[0]):
        lines.pop(0)
    return " ".join(" ".join(lines).split()) or None


def _tag_values(tags: list[str] | None, prefix: str) -> list[str]:
    return [t.split(":", 1)[1] for t in (tags or []) if t.startswith(prefix + ":")]


def _card_field(info: Any, name: str) -> Any:
    card = getattr(info, "card_data", None)
    return getattr(card, name, None) if card is not None else None


def _license(info: Any) -> str | None:
    value = _card_field(info, "license") or _tag_values(info.tags, "license")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or None
    return str(value) if value else None


def _gated(value: Any) -> str | None:
    return value if value in ("auto", "manual") else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _dataset_summary(info: Any, endpoint: str) -> dict[str, Any]:
    tags = info.tags or []
    sizes = _tag_values(tags, "size_categories")
    return {
        "id": info.id, "url": f"{endpoint}/datasets/{info.id}",
        "description": _shorten(_card_text(info.description), 300), "downloads": _int(info.downloads),
        "likes": _int(info.likes), "license": _license(info),
        "task_categories": _tag_values(tags, "task_categories"), "languages": _tag_values(tags, "language"),
        "size_category": sizes[0] if sizes else None, "gated": _gated(info.gated),
        "last_modified": _iso(info.last_modified),
    }


def _model_summary(info: Any, endpoint: str) -> dict[str, Any]:
    tags = info.tags or []
    bases = [t.split(":")[-1] if t.count(":") >= 2 else t.split(":", 1)[1]
             for t in tags if t.startswith("base_model:")]
    safetensors = getattr(info, "safetensors", None)
    return {
        "id": info.id, "url": f"{endpoint}/{info.id}", "pipeline_tag": info.pipeline_tag,
        "library": info.library_name, "downloads": _int(info.downloads), "likes": _int(info.likes),
        "parameters": _int(getattr(safetensors, "total", None)),
        "license": next(iter(_tag_values(tags, "license")), None),
        "languages": [t for t in tags if len(t) == 2 and t.isalpha() and t.islower()],
        "base_models": list(dict.fromkeys(bases)), "gated": _gated(info.gated),
        "last_modified": _iso(info.last_modified),
    }


def _type_str(feature: Any, depth: int = 0) -> str:
    """A compact rendering of a datasets feature type as the dataset viewer serialises it."""
    if depth > 4:
        return "…"
    if isinstance(feature, list):
        return f"list<{_type_str(feature[0], depth + 1)}>" if feature else "list"
    if not isinstance(feature, dict):
        return str(feature)
    kind = feature.get("_type")
    if kind == "Value":
        return str(feature.get("dtype", "?"))
    if kind == "ClassLabel":
        names = [str(n) for n in feature.get("names", [])]
        shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
        return f"ClassLabel[{shown}]"
    if kind in ("List", "Sequence", "LargeList"):
        return f"list<{_type_str(feature.get('feature'), depth + 1)}>"
    if kind is None:  # a struct: {field: type}
        inner = ", ".join(f"{k}: {_type_str(v, depth + 1)}" for k, v in list(feature.items())[:20])
        return "struct{" + inner + "}"
    return str(kind)


def _trim(value: Any, depth: int = 0) -> Any:
    """Bound a row for a planner's context: long strings cut, long lists shortened, depth limited."""
    if isinstance(value, str):
        return value if len(value) <= _MAX_CELL_CHARS else value[: _MAX_CELL_CHARS - 1] + "…"
    if depth > 4:
        return _shorten(json.dumps(value, default=str), 200)
    if isinstance(value, list):
        return [_trim(v, depth + 1) for v in value[:_MAX_LIST_ITEMS]]
    if isinstance(value, dict):
        return {str(k): _trim(v, depth + 1) for k, v in value.items()}
    return value
