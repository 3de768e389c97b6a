"""Hub datasets and models through huggingface_hub, pointed at a loopback server replaying Hub JSON."""

from __future__ import annotations

import socket
import time

import pytest

from trex_mcp.research import ResearchError


def test_a_dataset_search_returns_structured_summaries(research, replay):
    res = research.search_datasets("sentiment", task="text-classification", language="en", limit=3)
    assert [d.id for d in res.datasets] == ["stanfordnlp/imdb", "cornell-movie-review-data/rotten_tomatoes",
                                            "stanfordnlp/sst2"]
    imdb = res.datasets[0]
    assert imdb.license == "other" and imdb.task_categories == ["text-classification"]
    assert imdb.languages == ["en"] and imdb.size_category == "10K<n<100K"
    assert imdb.downloads == 143021 and imdb.likes == 312 and imdb.gated is None
    assert imdb.description and imdb.description.startswith("Large Movie Review Dataset.")
    assert imdb.url == f"{replay.hub_endpoint}/datasets/stanfordnlp/imdb"
    assert res.filters == ["task_categories:text-classification", "language:en"]
    assert res.source == "hub" and res.stale is False


def test_the_dataset_search_request_has_the_hub_parameters(research, replay):
    research.search_datasets("sentiment", task="text-classification", sort="likes", limit=5)
    req = replay.requests[-1]
    assert req.path == "/api/datasets"
    assert req.params["search"] == ["sentiment"] and req.params["sort"] == ["likes"]
    assert req.params["limit"] == ["5"] and req.params["filter"] == ["task_categories:text-classification"]
    assert "cardData" in req.params["expand"]


def test_a_filter_alone_is_enough_to_search(research):
    assert research.search_datasets("", task="text-classification").datasets


def test_a_search_without_query_or_filter_is_bad_input(research, replay):
    with pytest.raises(ResearchError) as info:
        research.search_datasets("   ")
    assert info.value.kind == "bad_input" and "query is empty" in str(info.value)
    assert replay.count() == 0


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"task": "Text Classification!"}, "task"),
    ({"language": "english"}, "language"),
    ({"limit": 0}, "limit"),
    ({"sort": "trending"}, "sort"),
])
def test_invalid_dataset_search_arguments_are_bad_input(research, replay, kwargs, field):
    with pytest.raises(ResearchError) as info:
        research.search_datasets("sentiment", **kwargs)
    assert info.value.kind == "bad_input" and info.value.field == field
    assert replay.count() == 0


def test_a_model_search_returns_sizes_licenses_and_base_models(research, replay):
    res = research.search_models("qwen", task="text-generation", library="transformers")
    qwen, smol, llama = res.models
    assert qwen.id == "Qwen/Qwen3-1.7B" and qwen.parameters == 2031739904
    assert qwen.license == "apache-2.0" and qwen.base_models == ["Qwen/Qwen3-1.7B-Base"]
    assert qwen.pipeline_tag == "text-generation" and qwen.library == "transformers"
    assert smol.languages == ["en"] and smol.base_models == ["HuggingFaceTB/SmolLM2-360M"]
    assert llama.gated == "manual" and llama.url == f"{replay.hub_endpoint}/meta-llama/Llama-3.2-1B-Instruct"
    req = replay.requests[-1]
    assert req.path == "/api/models" and req.params["pipeline_tag"] == ["text-generation"]
    assert req.params["filter"] == ["transformers"]


def test_inspect_gives_card_license_configs_splits_features_and_rows(research, replay):
    info = research.inspect_dataset("stanfordnlp/imdb", rows=3)
    assert info.pretty_name == "IMDB" and info.license == "other" and info.gated is None
    assert info.summary and info.summary.startswith("Large Movie Review Dataset.")
    assert info.configs == ["plain_text"] and (info.config, info.split) == ("plain_text", "train")
    assert [(s.split, s.num_rows) for s in info.splits] == [("train", 25000), ("test", 25000),
                                                             ("unsupervised", 50000)]
    assert info.splits[0].num_bytes == 20979968
    assert [(f.name, f.type) for f in info.features] == [("text", "string"), ("label", "ClassLabel[neg, pos]")]
    assert len(info.rows) == 3 and info.rows[1]["label"] == 0
    assert len(info.rows[0]["text"]) == 500 and info.rows[0]["text"].endswith("…")  # long cell cut
    assert info.source == "hub+dataset-viewer" and info.viewer_note is None
    assert [r.path for r in replay.requests] == ["/api/datasets/stanfordnlp/imdb", "/datasets-server/splits",
                                                 "/datasets-server/size", "/datasets-server/first-rows"]


def test_inspect_previews_the_requested_split_and_caches_independently_of_row_count(research, replay):
    test_split = research.inspect_dataset("stanfordnlp/imdb", split="test", rows=1)
    assert test_split.split == "test" and len(test_split.rows) == 1
    before = replay.count()
    assert len(research.inspect_dataset("stanfordnlp/imdb", split="test", rows=3).rows) == 3
    assert replay.count() == before


def test_an_unknown_split_or_config_lists_the_available_ones(research):
    with pytest.raises(ResearchError) as info:
        research.inspect_dataset("stanfordnlp/imdb", split="validation")
    assert info.value.kind == "bad_input" and info.value.field == "split"
    assert "'train', 'test', 'unsupervised'" in str(info.value)
    with pytest.raises(ResearchError) as info:
        research.inspect_dataset("stanfordnlp/imdb", config="sst")
    assert info.value.kind == "bad_input" and "'plain_text'" in str(info.value)


def test_an_unknown_dataset_is_not_found_with_a_pointer_to_search(research):
    with pytest.raises(ResearchError) as info:
        research.inspect_dataset("nobody/no-such-dataset")
    assert info.value.kind == "not_found" and info.value.field == "dataset_id"
    assert "search_datasets" in str(info.value)


def test_a_gated_dataset_explains_how_to_get_access_without_touching_the_viewer(research, replay):
    with pytest.raises(ResearchError) as info:
        research.inspect_dataset("bigcode/the-stack")
    err = info.value
    assert err.kind == "gated" and "automatic approval" in str(err) and "license other" in str(err)
    assert "HF_TOKEN" in str(err) and "/datasets/bigcode/the-stack" in str(err)
    assert replay.count("/datasets-server") == 0


def test_a_gated_dataset_the_token_cannot_read_is_reported_as_gated(make_research, replay, hub_online):
    r = make_research(hub_token="hf_test_token_not_granted")
    with pytest.raises(ResearchError) as info:
        r.inspect_dataset("bigcode/the-stack")
    assert info.value.kind == "gated" and "has not been granted access" in str(info.value)
    assert "hf_test_token_not_granted" not in str(info.value)
    assert replay.count("/datasets-server/splits") == 1


def test_a_dataset_the_viewer_does_not_support_still_returns_its_card(research):
    info = research.inspect_dataset("acme/legacy-scripted")
    assert info.license == "cc-by-4.0" and info.task_categories == ["question-answering"]
    assert info.splits == [] and info.rows == []
    assert info.viewer_note and "recipe preview" in info.viewer_note


@pytest.mark.parametrize("bad", ["", "a/b/c", "../etc", "org/na..me", "org/-name", "name with space", "x" * 120])
def test_a_malformed_dataset_id_is_bad_input_and_nothing_is_sent(research, replay, bad):
    with pytest.raises(ResearchError) as info:
        research.inspect_dataset(bad)
    assert info.value.kind == "bad_input" and info.value.field == "dataset_id"
    assert replay.count() == 0


def test_an_upstream_5xx_is_reported_once_without_hidden_retries(research, replay):
    replay.fail_always(502)
    start = time.monotonic()
    with pytest.raises(ResearchError) as info:
        research.search_datasets("sentiment")
    assert info.value.kind == "upstream" and "HTTP 502" in str(info.value)
    assert "retry in a few minutes" in str(info.value)
    assert replay.count() == 1 and time.monotonic() - start < 3.0


def test_a_dataset_viewer_5xx_during_inspect_is_upstream(research, replay):
    replay.fail_always(503, path_prefix="/datasets-server")
    with pytest.raises(ResearchError) as info:
        research.inspect_dataset("stanfordnlp/imdb")
    assert info.value.kind == "upstream" and "dataset viewer" in str(info.value)


def test_a_dataset_viewer_still_processing_says_to_retry_later(research, replay):
    replay.fail_always(500, headers={"X-Error-Code": "ResponseNotReady"}, path_prefix="/datasets-server")
    with pytest.raises(ResearchError) as info:
        research.inspect_dataset("stanfordnlp/imdb")
    assert info.value.kind == "upstream" and "still processing" in str(info.value)


def test_missing_split_sizes_leave_a_note_but_keep_the_preview(research, replay):
    replay.fail_next(404, headers={"X-Error-Code": "ResponseNotFound"}, path_prefix="/datasets-server/size")
    info = research.inspect_dataset("stanfordnlp/imdb")
    assert [s.num_rows for s in info.splits] == [None, None, None]
    assert info.rows and info.viewer_note and "split sizes unavailable" in info.viewer_note


def test_hub_rate_limiting_is_reported_as_rate_limited(research, replay):
    replay.fail_always(429)
    with pytest.raises(ResearchError) as info:
        research.search_models("llama")
    assert info.value.kind == "rate_limited"


def test_offline_mode_answers_offline_at_once_without_any_request(offline_research, replay):
    for call in (lambda: offline_research.search_datasets("sentiment"),
                 lambda: offline_research.search_models("qwen"),
                 lambda: offline_research.inspect_dataset("stanfordnlp/imdb")):
        with pytest.raises(ResearchError) as info:
            call()
        assert info.value.kind == "offline" and "HF_HUB_OFFLINE" in str(info.value)
    assert replay.count() == 0


def test_offline_mode_still_serves_a_cached_answer_marked_stale(research, replay, cache_clock, monkeypatch):
    from huggingface_hub import constants

    fresh = research.search_datasets("sentiment")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert research.search_datasets("sentiment") == fresh  # still fresh: served from cache
    cache_clock.advance(7 * 3600)
    stale = research.search_datasets("sentiment")
    assert stale.stale is True and stale.datasets == fresh.datasets
    assert replay.count() == 1


def test_a_silent_hub_is_reported_as_a_timeout_within_the_limit(make_research, replay, hub_online):
    r = make_research(timeout_s=0.3)
    replay.hold()
    start = time.monotonic()
    with pytest.raises(ResearchError) as info:
        r.search_datasets("sentiment")
    assert info.value.kind == "timeout"
    assert time.monotonic() - start < 3.0


def test_an_unreachable_hub_is_reported_as_offline(make_research, hub_online):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = make_research(hub_endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(ResearchError) as info:
        r.search_models("qwen")
    assert info.value.kind == "offline"


def test_a_multi_config_dataset_previews_the_first_config_by_default(research):
    info = research.inspect_dataset("nyu-mll/glue", rows=1)
    assert info.configs == ["cola", "mnli"] and (info.config, info.split) == ("cola", "train")
    assert len(info.splits) == 6 and info.splits[4].num_rows == 9815
    assert info.features[1].type == "ClassLabel[unacceptable, acceptable]" and info.features[2].type == "int32"


def test_a_split_named_without_its_config_finds_the_config_that_has_it(research):
    info = research.inspect_dataset("nyu-mll/glue", split="validation_matched", rows=2)
    assert (info.config, info.split) == ("mnli", "validation_matched")
    assert info.features[2].type == "ClassLabel[entailment, neutral, contradiction]"
    assert info.rows[1]["label"] == 2


@pytest.mark.parametrize(("feature", "rendered"), [
    ({"dtype": "float32", "_type": "Value"}, "float32"),
    ({"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"}, "list<string>"),
    ([{"role": {"dtype": "string", "_type": "Value"}, "content": {"dtype": "string", "_type": "Value"}}],
     "list<struct{role: string, content: string}>"),
    ({"_type": "Image"}, "Image"),
])
def test_feature_types_render_compactly_for_a_planner(feature, rendered):
    from trex_mcp.research.hub import _type_str

    assert _type_str(feature) == rendered
