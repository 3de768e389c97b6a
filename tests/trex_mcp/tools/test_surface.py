"""The tool surface: every tool is typed, described and annotated; errors are actionable or generic."""

import pytest

pytestmark = pytest.mark.anyio

EXPECTED_TOOLS = {
    "list_tasks", "get_task", "search_papers", "get_paper", "search_datasets", "inspect_dataset", "search_models",
    "create_tree", "list_trees", "get_tree", "get_node", "suggest_next_node", "propose_round", "annotate_node",
    "record_insight", "record_llm_usage", "preview_recipe", "launch_round", "wait_round", "get_run", "cancel_run",
    "get_run_log", "get_diagnosis", "finalize_tree", "write_report", "start_autonomous", "get_autonomous_status",
    "stop_autonomous",
}


async def test_every_tool_has_a_description_annotations_and_a_closed_input_schema(client):
    tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == EXPECTED_TOOLS
    for tool in tools:
        assert tool.description and len(tool.description) > 40, tool.name
        assert tool.annotations is not None and tool.annotations.read_only_hint is not None, tool.name
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        assert tool.output_schema is not None, tool.name


async def test_list_tasks_answers_with_the_mini_suite(client):
    result = await client.call_tool("list_tasks", {})
    assert not result.is_error
    names = {t["name"] for t in result.structured_content["tasks"]}
    assert "ftbench/mini/sentiment" in names


async def test_an_unknown_task_is_a_tool_error_with_close_matches(client):
    result = await client.call_tool("get_task", {"task": "ftbench/mini/sentimant"})
    assert result.is_error
    assert "mini/sentiment" in result.content[0].text


async def test_unknown_arguments_and_out_of_range_values_are_refused(client):
    extra = await client.call_tool("get_run_log", {"run_id": "abcdefgh1234", "lines": 5, "bogus": 1})
    assert extra.is_error
    bounds = await client.call_tool("get_run_log", {"run_id": "abcdefgh1234", "lines": 100000})
    assert bounds.is_error and "lines" in bounds.content[0].text


async def test_an_unknown_id_names_the_id(client):
    result = await client.call_tool("get_tree", {"tree_id": "0123456789abcdef"})
    assert result.is_error
    assert "0123456789abcdef" in result.content[0].text


async def test_an_unknown_tool_is_an_error(client):
    result = await client.call_tool("no_such_tool", {})
    assert result.is_error


async def test_an_unexpected_exception_reaches_the_client_without_internals(client, lab, monkeypatch):
    def boom(*_args, **_kwargs):
        raise RuntimeError("disk full at /secret/path/with/token-abc")

    monkeypatch.setattr(lab, "list_trees", boom)
    monkeypatch.setattr(lab.store, "list_trees", boom)
    result = await client.call_tool("list_trees", {})
    assert result.is_error
    text = result.content[0].text
    assert "/secret/path" not in text and "token-abc" not in text
    assert "list_trees" in text
