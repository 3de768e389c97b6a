"""Research tools: arXiv papers and Hugging Face Hub datasets and models, through the real clients (cached)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from pydantic import Field

from trex_mcp.tools.common import READ_WORLD, LabGetter, as_dict, expected_errors

Query = Annotated[str, Field(min_length=1, max_length=500, description="Free-text query.")]


def register(server: MCPServer, lab: LabGetter) -> None:
    @server.tool(annotations=READ_WORLD, title="Search arXiv")
    def search_papers(
        query: Annotated[str, Field(min_length=1, max_length=500,
                                    description="arXiv query; field prefixes work: ti:, abs:, au:, cat:, all:.")],
        categories: Annotated[list[str] | None, Field(max_length=10, description="e.g. ['cs.CL', 'cs.LG']")] = None,
        date_from: Annotated[str | None, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")] = None,
        date_to: Annotated[str | None, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")] = None,
        sort: Literal["relevance", "submitted", "updated"] = "relevance",
        max_results: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        """Search arXiv for methods that worked on tasks like this one (e.g. data synthesis for clinical notes).
        Answers are cached; when arXiv is unreachable a cached answer is marked stale, or an error says so."""
        with expected_errors():
            return as_dict(lab().research.search_papers(query, categories=categories, date_from=date_from,
                                                         date_to=date_to, sort=sort, max_results=max_results))

    @server.tool(annotations=READ_WORLD, title="Get an arXiv paper")
    def get_paper(arxiv_id: Annotated[str, Field(min_length=4, max_length=40,
                                                 description="arXiv id, e.g. '2604.14116' or 'cs/0112017'.")]
                  ) -> dict[str, Any]:
        """Fetch one paper's metadata (title, authors, dates, categories, abstract, links) by arXiv id."""
        with expected_errors():
            return as_dict(lab().research.get_paper(arxiv_id))

    @server.tool(annotations=READ_WORLD, title="Search Hub datasets")
    def search_datasets(
        query: Query,
        task: Annotated[str | None, Field(max_length=80, description="Task category, e.g. 'text-classification'.")] = None,
        language: Annotated[str | None, Field(max_length=16, description="Language code, e.g. 'en'.")] = None,
        sort: Literal["downloads", "likes"] = "downloads",
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        """Search the Hugging Face Hub for training data. Follow up with inspect_dataset before using one."""
        with expected_errors():
            return as_dict(lab().research.search_datasets(query, task=task, language=language, sort=sort, limit=limit))

    @server.tool(annotations=READ_WORLD, title="Inspect a Hub dataset")
    def inspect_dataset(
        dataset_id: Annotated[str, Field(min_length=3, max_length=200, description="Hub id 'org/name'.")],
        config: Annotated[str | None, Field(max_length=128)] = None,
        split: Annotated[str | None, Field(max_length=128)] = None,
        rows: Annotated[int, Field(ge=0, le=20, description="First rows to show.")] = 5,
    ) -> dict[str, Any]:
        """Card summary, license, gating, configs, splits with sizes, features and the first rows of a split:
        what you need to write a recipe's column mapping."""
        with expected_errors():
            return as_dict(lab().research.inspect_dataset(dataset_id, config=config, split=split, rows=rows))

    @server.tool(annotations=READ_WORLD, title="Search Hub models")
    def search_models(
        query: Query,
        task: Annotated[str | None, Field(max_length=80, description="Pipeline tag, e.g. 'text-generation'.")] = None,
        sort: Literal["downloads", "likes"] = "downloads",
        limit: Annotated[int, Field(ge=1, le=50)] = 10,
    ) -> dict[str, Any]:
        """Search the Hugging Face Hub for models (e.g. a stronger base model or a teacher for synthesis)."""
        with expected_errors():
            return as_dict(lab().research.search_models(query, task=task, sort=sort, limit=limit))
