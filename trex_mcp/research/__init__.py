"""Research tools: arXiv papers, Hugging Face Hub datasets and models, through the real clients, cached.

Importing this package is cheap: `arxiv`, `huggingface_hub`, `requests` and `diskcache` are imported only when
a lookup runs or a cache is opened.
"""

from trex_mcp.research.cache import ResearchCache
from trex_mcp.research.errors import ErrorKind, ResearchError
from trex_mcp.research.facade import Research
from trex_mcp.research.hub import HubConfig, inspect_dataset, search_datasets, search_models
from trex_mcp.research.models import (
    DatasetInfo,
    DatasetInspect,
    DatasetResults,
    DatasetSearch,
    DatasetSummary,
    FeatureInfo,
    ModelResults,
    ModelSearch,
    ModelSummary,
    Paper,
    PaperLookup,
    PaperResults,
    PaperSearch,
    SplitInfo,
)
from trex_mcp.research.papers import ArxivConfig, get_paper, search_papers
from trex_mcp.research.ratelimit import RateLimiter, arxiv_limiter

__all__ = [
    "ArxivConfig", "DatasetInfo", "DatasetInspect", "DatasetResults", "DatasetSearch", "DatasetSummary",
    "ErrorKind", "FeatureInfo", "HubConfig", "ModelResults", "ModelSearch", "ModelSummary", "Paper",
    "PaperLookup", "PaperResults", "PaperSearch", "RateLimiter", "Research", "ResearchCache", "ResearchError",
    "SplitInfo", "arxiv_limiter", "get_paper", "inspect_dataset", "search_datasets", "search_models",
    "search_papers",
]
