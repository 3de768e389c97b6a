"""arXiv through the real `arxiv` client pointed at a loopback server replaying recorded Atom feeds."""

from __future__ import annotations

import socket
import time
from datetime import date

import pytest

from trex_mcp.research import PaperSearch, ResearchError
from trex_mcp.research.papers import build_query, normalise_arxiv_id


def test_a_search_returns_structured_papers_in_feed_order(research, replay):
    res = research.search_papers("low rank adaptation", max_results=3)
    assert [p.arxiv_id for p in res.papers] == ["2106.09685v2", "2305.14314v1", "2305.11206v1"]
    lora = res.papers[0]
    assert lora.title == "LoRA: Low-Rank Adaptation of Large Language Models"
    assert lora.authors[:2] == ["Edward J. Hu", "Yelong Shen"]
    assert lora.primary_category == "cs.CL" and "cs.LG" in lora.categories
    assert lora.published.year == 2021 and lora.updated >= lora.published
    assert lora.abstract.startswith("We propose Low-Rank Adaptation") and "\n" not in lora.abstract
    assert lora.abs_url == "https://arxiv.org/abs/2106.09685v2"
    assert lora.pdf_url == "https://arxiv.org/pdf/2106.09685v2"
    assert lora.comment and lora.comment.startswith("Draft V2")
    assert res.source == "arxiv" and res.stale is False and not any(p.stale for p in res.papers)
    assert replay.count("/api/query") == 1


def test_the_request_carries_query_sort_and_page_size(research, replay):
    research.search_papers("ti:lora", categories=["cs.CL", "cs.LG"], sort="submitted", max_results=7)
    params = replay.requests[-1].params
    assert params["search_query"] == ["(ti:lora) AND (cat:cs.CL OR cat:cs.LG)"]
    assert params["sortBy"] == ["submittedDate"] and params["sortOrder"] == ["descending"]
    assert params["max_results"] == ["7"] and params["start"] == ["0"]


def test_a_search_with_no_match_returns_an_empty_list(research):
    assert research.search_papers("nomatch").papers == []


def test_plain_keywords_become_required_all_terms():
    assert build_query(PaperSearch(query='low rank "instruction tuning"')) == (
        'all:low AND all:rank AND all:"instruction tuning"')


def test_fielded_queries_pass_through_and_dates_become_a_submitted_range():
    q = build_query(PaperSearch(query='ti:"low rank" ANDNOT au:smith', categories=["cs.CL"],
                                date_from=date(2023, 1, 1), date_to=date(2024, 6, 30)))
    assert q == ('(ti:"low rank" ANDNOT au:smith) AND (cat:cs.CL) AND '
                 "submittedDate:[202301010000 TO 202406302359]")


def test_dates_given_as_iso_strings_are_accepted(research, replay):
    research.search_papers("lora", date_from="2023-01-01")
    assert "submittedDate:[202301010000 TO 299912312359]" in replay.requests[-1].params["search_query"][0]


@pytest.mark.parametrize(("raw", "expected"), [
    ("2106.09685", "2106.09685"),
    ("2106.09685v2", "2106.09685v2"),
    ("arXiv:2106.09685", "2106.09685"),
    ("https://arxiv.org/abs/2106.09685v1", "2106.09685v1"),
    ("https://arxiv.org/pdf/2106.09685.pdf", "2106.09685"),
    ("0704.0001", "0704.0001"),
    ("hep-th/9901001", "hep-th/9901001"),
    ("math.CO/0101001v2", "math.CO/0101001v2"),
])
def test_arxiv_ids_are_normalised(raw, expected):
    assert normalise_arxiv_id(raw) == expected


def test_get_paper_returns_one_papers_metadata(research, replay):
    paper = research.get_paper("arXiv:2106.09685")
    assert paper.arxiv_id == "2106.09685v2" and paper.title.startswith("LoRA")
    assert replay.requests[-1].params["id_list"] == ["2106.09685"]


@pytest.mark.parametrize("bad", ["2106.9685", "2113.01234", "1312.12345", "hello world", "1234", "../../etc/passwd", "2106.09685 OR 1=1"])
def test_a_malformed_arxiv_id_is_bad_input_and_nothing_is_sent(research, replay, bad):
    with pytest.raises(ResearchError) as info:
        research.get_paper(bad)
    assert info.value.kind == "bad_input" and info.value.field == "arxiv_id"
    assert "2106.09685" in str(info.value)  # the message shows the expected form
    assert replay.count() == 0


def test_an_unknown_arxiv_id_is_not_found(research):
    with pytest.raises(ResearchError) as info:
        research.get_paper("2501.99999")
    assert info.value.kind == "not_found"
    assert "search_papers" in str(info.value)


@pytest.mark.parametrize("query", ["", "   ", "\n"])
def test_an_empty_query_is_bad_input_naming_the_field(research, replay, query):
    with pytest.raises(ResearchError) as info:
        research.search_papers(query)
    assert info.value.kind == "bad_input" and info.value.field == "query"
    assert "keywords" in str(info.value)
    assert replay.count() == 0


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"categories": ["computer science"]}, "categories"),
    ({"max_results": 0}, "max_results"),
    ({"max_results": 500}, "max_results"),
    ({"sort": "newest"}, "sort"),
    ({"date_from": date(2024, 1, 2), "date_to": date(2024, 1, 1)}, None),
])
def test_invalid_search_arguments_are_bad_input(research, replay, kwargs, field):
    with pytest.raises(ResearchError) as info:
        research.search_papers("lora", **kwargs)
    assert info.value.kind == "bad_input"
    assert info.value.field == field
    assert replay.count() == 0


def test_an_upstream_5xx_is_retried_once_then_reported_as_upstream(research, replay, limiter):
    replay.fail_always(503)
    with pytest.raises(ResearchError) as info:
        research.search_papers("lora")
    assert info.value.kind == "upstream"
    assert "HTTP 503" in str(info.value) and "retry" in str(info.value)
    assert replay.count("/api/query") == 2
    assert limiter.granted == 2  # the retry also waited for its own slot


def test_http_429_is_reported_as_rate_limited(research, replay):
    replay.fail_always(429)
    with pytest.raises(ResearchError) as info:
        research.search_papers("lora")
    assert info.value.kind == "rate_limited"


def test_every_arxiv_request_waits_for_the_shared_limiter(research, replay, limiter, clock):
    research.search_papers("lora")
    research.search_papers("qlora")
    research.get_paper("2106.09685")
    assert limiter.granted == replay.count("/api/query") == 3
    assert clock.sleeps == [pytest.approx(3.0), pytest.approx(6.0)]  # fake clock: slots 0 s, 3 s, 6 s


def test_a_cached_repeat_makes_no_request(research, replay):
    first = research.search_papers("lora")
    again = research.search_papers("lora")
    assert again == first
    assert replay.count("/api/query") == 1


def test_an_unreachable_arxiv_is_reported_as_offline(make_research):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = make_research(arxiv_query_url=f"http://127.0.0.1:{port}/api/query?{{}}")
    with pytest.raises(ResearchError) as info:
        r.search_papers("lora")
    assert info.value.kind == "offline"


def test_a_silent_arxiv_is_reported_as_a_timeout_within_the_limit(make_research, replay):
    r = make_research(timeout_s=0.3)
    replay.hold()
    start = time.monotonic()
    with pytest.raises(ResearchError) as info:
        r.search_papers("lora")
    assert info.value.kind == "timeout"
    assert time.monotonic() - start < 3.0


def test_an_expired_answer_is_served_stale_when_arxiv_fails(research, replay, cache_clock):
    research.search_papers("lora")
    cache_clock.advance(7 * 3600)
    replay.fail_always(503)
    res = research.search_papers("lora")
    assert res.stale is True and all(p.stale for p in res.papers)
    assert len(res.papers) == 3


def test_errors_never_carry_a_traceback(research, replay):
    replay.fail_always(500)
    with pytest.raises(ResearchError) as info:
        research.search_papers("lora")
    assert "Traceback" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
