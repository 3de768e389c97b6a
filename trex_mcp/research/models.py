"""Typed inputs and results of the research tools.

Inputs (`PaperSearch`, `PaperLookup`, `DatasetSearch`, `ModelSearch`, `DatasetInspect`) are bounded and refuse
unknown keys; `parse_input` turns a pydantic failure into a `ResearchError(kind="bad_input")` that names the
field. Results carry `stale` (True when served from an expired cache entry because upstream failed) and
`source` (which upstream service answered).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trex_mcp.research.errors import ResearchError

__all__ = [
    "DatasetInfo", "DatasetInspect", "DatasetResults", "DatasetSearch", "DatasetSummary", "FeatureInfo",
    "ModelResults", "ModelSearch", "ModelSummary", "Paper", "PaperLookup", "PaperResults", "PaperSearch",
    "SplitInfo", "parse_input",
]

PaperSort = Literal["relevance", "submitted", "updated"]
HubSort = Literal["downloads", "likes"]

# arXiv category ids: "cs.LG", "stat.ML", "hep-th", "math.CO", "q-bio.NC", "cond-mat.stat-mech".
_CATEGORY = re.compile(r"^[a-z]+(-[a-z]+)?(\.[A-Za-z]+(-[a-z]+)?)?$")
# Hub repo ids: "owner/name" (or a legacy bare "name"); no "..", no "--", no leading/trailing "-" or ".".
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9_])?/)?[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9_])?$",
                      re.ASCII)
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_NAME = re.compile(r"^[^\x00-\x1f/?#&]{1,200}$")  # config / split names go into query strings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _repo_id(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} is empty; give a Hub id such as 'stanfordnlp/imdb'")
    if not _REPO_ID.match(value) or ".." in value or "--" in value:
        raise ValueError(f"{value!r} is not a Hub {what}; expected 'owner/name' using letters, digits, "
                         "'-', '_' and '.' (e.g. 'stanfordnlp/imdb')")
    return value


# -- inputs -------------------------------------------------------------------------------------------------

class PaperSearch(_Strict):
    """An arXiv search: keywords (optionally with field prefixes), categories, a date range, a sort order."""

    query: str = Field(max_length=500, description=(
        "Keywords, or an arXiv query with field prefixes (ti:, abs:, au:, all:, cat:) and AND/OR/ANDNOT, "
        "e.g. 'ti:\"low rank adaptation\" AND abs:instruction'. Plain words are all required (AND)."))
    categories: list[str] | None = Field(None, max_length=10, description=(
        "Restrict to these arXiv categories (any of them), e.g. ['cs.CL', 'cs.LG']."))
    date_from: date | None = Field(None, description="Only papers first submitted on or after this date.")
    date_to: date | None = Field(None, description="Only papers first submitted on or before this date.")
    sort: PaperSort = Field("relevance", description=(
        "'relevance', 'submitted' (newest submissions first) or 'updated' (most recently revised first)."))
    max_results: int = Field(10, ge=1, le=50, description="How many papers to return (1-50).")

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("query is empty; give keywords such as 'instruction tuning small models' "
                             "or a fielded query such as 'ti:\"low rank adaptation\"'")
        return value

    @field_validator("categories")
    @classmethod
    def _known_category_shape(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [c.strip() for c in value]
        bad = [c for c in cleaned if not _CATEGORY.match(c)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an arXiv category id; use ids such as 'cs.CL', 'cs.LG', 'stat.ML'")
        return cleaned or None

    @model_validator(mode="after")
    def _dates_in_order(self) -> PaperSearch:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date_from ({self.date_from}) is after date_to ({self.date_to}); swap them")
        return self


class PaperLookup(_Strict):
    """One arXiv paper by id."""

    arxiv_id: str = Field(min_length=1, max_length=100, description=(
        "An arXiv id such as '2106.09685', '2106.09685v2', 'hep-th/9901001', 'arXiv:2106.09685' "
        "or an arxiv.org/abs/ URL."))


class DatasetSearch(_Strict):
    """A Hugging Face Hub dataset search."""

    query: str = Field("", max_length=200, description=(
        "Free text matched against dataset ids (e.g. 'sentiment', 'math'). May be empty when a task or "
        "language filter is given."))
    task: str | None = Field(None, description="Task category filter, e.g. 'text-classification'.")
    language: str | None = Field(None, description="Language code filter, e.g. 'en', 'de'.")
    sort: HubSort = Field("downloads", description="'downloads' (last 30 days) or 'likes'; always descending.")
    limit: int = Field(10, ge=1, le=50, description="How many datasets to return (1-50).")

    @field_validator("query")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("task")
    @classmethod
    def _task_shape(cls, value: str | None) -> str | None:
        if value is not None and not _TAG.match(value.strip()):
            raise ValueError(f"{value!r} is not a Hub task id; use ids such as 'text-classification', "
                             "'question-answering', 'text-generation'")
        return value.strip() if value else None

    @field_validator("language")
    @classmethod
    def _language_shape(cls, value: str | None) -> str | None:
        if value is not None and not _LANGUAGE.match(value.strip()):
            raise ValueError(f"{value!r} is not a language code; use ISO codes such as 'en', 'fr', 'zh'")
        return value.strip() if value else None

    @model_validator(mode="after")
    def _something_to_search(self) -> DatasetSearch:
        if not self.query and not self.task and not self.language:
            raise ValueError("query is empty and no task or language filter is given; give keywords "
                             "(e.g. 'sentiment') or a filter (e.g. task='text-classification')")
        return self


class ModelSearch(DatasetSearch):
    """A Hugging Face Hub model search (task = pipeline tag, e.g. 'text-generation')."""

    library: str | None = Field(None, description="Library filter, e.g. 'transformers', 'peft', 'gguf'.")

    @field_validator("library")
    @classmethod
    def _library_shape(cls, value: str | None) -> str | None:
        if value is not None and not _TAG.match(value.strip()):
            raise ValueError(f"{value!r} is not a library tag; use tags such as 'transformers' or 'peft'")
        return value.strip() if value else None


class DatasetInspect(_Strict):
    """Inspect one Hub dataset: card, license, gating, configs, splits, features and first rows."""

    dataset_id: str = Field(max_length=200, description="Hub dataset id, e.g. 'stanfordnlp/imdb'.")
    config: str | None = Field(None, description="Subset (config) to preview; default: 'default' or the first.")
    split: str | None = Field(None, description="Split to preview; default: 'train' or the first.")
    rows: int = Field(5, ge=0, le=20, description="How many first rows to include (0-20).")

    @field_validator("dataset_id")
    @classmethod
    def _dataset_id_shape(cls, value: str) -> str:
        return _repo_id(value, "dataset id")

    @field_validator("config", "split")
    @classmethod
    def _name_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a valid config/split name")
        return value


M = TypeVar("M", bound=BaseModel)


def parse_input(model: type[M], **values: Any) -> M:
    """Validate tool input, raising `ResearchError(kind="bad_input")` that names the first bad field."""
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if not isinstance(p, int)]
        field = ".".join(loc) or None
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        where = f"{field}: " if field and not msg.startswith(field) else ""
        raise ResearchError(f"{where}{msg}", kind="bad_input", field=field) from None


# -- results ------------------------------------------------------------------------------------------------

class _Result(_Strict):
    stale: bool = Field(False, description=(
        "True when upstream could not be reached and this is an older cached answer."))
    source: str = Field(description="Which upstream answered: 'arxiv', 'hub' or 'hub+dataset-viewer'.")


class Paper(_Result):
    """One arXiv paper's metadata."""

    arxiv_id: str = Field(description="Versioned arXiv id, e.g. '2106.09685v2'.")
    title: str = Field(description="Title, whitespace-normalised.")
    authors: list[str] = Field(description="Author names in order.")
    published: datetime = Field(description="First submission time (UTC).")
    updated: datetime = Field(description="Latest revision time (UTC).")
    primary_category: str = Field(description="Primary arXiv category, e.g. 'cs.CL'.")
    categories: list[str] = Field(description="All categories.")
    abstract: str = Field(description="The abstract, whitespace-normalised.")
    comment: str | None = Field(None, description="Authors' comment (pages, venue), if any.")
    journal_ref: str | None = Field(None, description="Journal reference, if any.")
    doi: str | None = Field(None, description="DOI, if any.")
    abs_url: str = Field(description="Abstract page URL.")
    pdf_url: str | None = Field(None, description="PDF URL, if listed.")


class PaperResults(_Result):
    """Papers matching an arXiv search."""

    query: str = Field(description="The search_query sent to arXiv (after adding categories and dates).")
    sort: PaperSort = Field(description="Sort order used.")
    papers: list[Paper] = Field(description="Matching papers, best first.")
    fetched_at: datetime = Field(description="When upstream produced this answer (UTC).")


class DatasetSummary(_Strict):
    """One dataset in a Hub search result."""

    id: str = Field(description="Hub dataset id.")
    url: str = Field(description="Dataset page URL.")
    description: str | None = Field(None, description="Start of the dataset card text, if any.")
    downloads: int | None = Field(None, description="Downloads in the last 30 days.")
    likes: int | None = Field(None, description="Likes.")
    license: str | None = Field(None, description="License id from the card, e.g. 'apache-2.0'.")
    task_categories: list[str] = Field(default_factory=list, description="Task categories from the tags.")
    languages: list[str] = Field(default_factory=list, description="Language codes from the tags.")
    size_category: str | None = Field(None, description="Size bucket, e.g. '10K<n<100K'.")
    gated: str | None = Field(None, description="'auto' or 'manual' when access must be requested; else null.")
    last_modified: datetime | None = Field(None, description="Last commit time.")


class DatasetResults(_Result):
    """Datasets matching a Hub search."""

    query: str = Field(description="Free-text part of the search.")
    filters: list[str] = Field(description="Hub filters applied, e.g. 'task_categories:text-classification'.")
    sort: HubSort = Field(description="Sort key used (descending).")
    datasets: list[DatasetSummary] = Field(description="Matching datasets.")
    fetched_at: datetime = Field(description="When upstream produced this answer (UTC).")


class ModelSummary(_Strict):
    """One model in a Hub search result."""

    id: str = Field(description="Hub model id.")
    url: str = Field(description="Model page URL.")
    pipeline_tag: str | None = Field(None, description="Task, e.g. 'text-generation'.")
    library: str | None = Field(None, description="Library, e.g. 'transformers'.")
    downloads: int | None = Field(None, description="Downloads in the last 30 days.")
    likes: int | None = Field(None, description="Likes.")
    parameters: int | None = Field(None, description="Parameter count from safetensors metadata, if known.")
    license: str | None = Field(None, description="License id from the tags, if any.")
    languages: list[str] = Field(default_factory=list, description="Language codes from the tags.")
    base_models: list[str] = Field(default_factory=list, description="Models this one was derived from.")
    gated: str | None = Field(None, description="'auto' or 'manual' when access must be requested; else null.")
    last_modified: datetime | None = Field(None, description="Last commit time.")


class ModelResults(_Result):
    """Models matching a Hub search."""

    query: str = Field(description="Free-text part of the search.")
    filters: list[str] = Field(description="Filters applied (pipeline tag, language, library).")
    sort: HubSort = Field(description="Sort key used (descending).")
    models: list[ModelSummary] = Field(description="Matching models.")
    fetched_at: datetime = Field(description="When upstream produced this answer (UTC).")


class SplitInfo(_Strict):
    """One split of one config."""

    config: str = Field(description="Config (subset) name.")
    split: str = Field(description="Split name.")
    num_rows: int | None = Field(None, description="Rows in the split, if the dataset viewer knows.")
    num_bytes: int | None = Field(None, description="Size of the split's parquet files in bytes, if known.")


class FeatureInfo(_Strict):
    """One column of the previewed split."""

    name: str = Field(description="Column name.")
    type: str = Field(description="Compact type, e.g. 'string', 'int64', 'ClassLabel[neg, pos]', "
                      "'list<string>', 'struct{role: string, content: string}'.")


class DatasetInfo(_Result):
    """What a planner needs to write a data recipe for one Hub dataset."""

    id: str = Field(description="Hub dataset id.")
    url: str = Field(description="Dataset page URL.")
    pretty_name: str | None = Field(None, description="Human name from the card, if any.")
    summary: str | None = Field(None, description="Start of the dataset card text, if any.")
    license: str | None = Field(None, description="License id(s) from the card, comma-separated.")
    gated: str | None = Field(None, description="'auto' or 'manual' when access must be requested; else null.")
    task_categories: list[str] = Field(default_factory=list, description="Task categories.")
    languages: list[str] = Field(default_factory=list, description="Language codes.")
    size_category: str | None = Field(None, description="Size bucket, e.g. '10K<n<100K'.")
    downloads: int | None = Field(None, description="Downloads in the last 30 days.")
    likes: int | None = Field(None, description="Likes.")
    last_modified: datetime | None = Field(None, description="Last commit time.")
    configs: list[str] = Field(default_factory=list, description="Config (subset) names.")
    splits: list[SplitInfo] = Field(default_factory=list, description="Every split of every config, with sizes.")
    config: str | None = Field(None, description="Config previewed below.")
    split: str | None = Field(None, description="Split previewed below.")
    features: list[FeatureInfo] = Field(default_factory=list, description="Columns of the previewed split.")
    rows: list[dict[str, Any]] = Field(default_factory=list, description=(
        "First rows of the previewed split; long strings are cut to 500 characters."))
    viewer_note: str | None = Field(None, description=(
        "Why splits, features or rows are missing (e.g. the dataset viewer does not support this dataset)."))
    fetched_at: datetime = Field(description="When upstream produced this answer (UTC).")
