"""Hostile input and handles: fuzzed tool arguments (M7, the in-memory part) and unguessable ids (M5).

Fuzz cases are wrong types, oversized values, unknown keys and hostile strings.

Every answer must be an `is_error` result or a valid result; the server must keep answering, and `tools/list`
must work after the storm. The arXiv endpoint is pointed at a closed loopback port with no request spacing, so
a fuzz case that happens to be a valid search fails fast instead of waiting for arXiv's 3 s pacing (the Hub is
offline in tests already). No generated value names a real task, so no case launches training.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import Tool

from trex_mcp.lab import Lab
from trex_mcp.research import Research
from trex_mcp.research.ratelimit import RateLimiter
from trex_mcp.settings import Settings

CASES = 300

HOSTILE = st.sampled_from([
    "", " ", "\x00", "../../../etc/passwd", "/etc/shadow", "C:\\Windows\\system32", "$(id)", "`id`", ";id",
    "--output=/etc/x", "-rf", "\n\r\t", "\ud7ff\ue000", "🙂" * 50, "null", "{}", "[]", "1e309", "NaN",
    "0123456789abcdef0123456789abcdef", "' OR 1=1 --", "<script>alert(1)</script>",
])
HUGE = st.builds(lambda ch, n: ch * n, st.sampled_from(["x", "é", "\x00", "🙂", "../"]), st.integers(1, 100_000))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), HOSTILE, HUGE,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | HOSTILE, inner, max_size=4),
    max_leaves=6,
)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal("asyncio") as p:
        yield p


@pytest.fixture
def sync_client(server, portal: BlockingPortal) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    with portal.wrap_async_context_manager(Client(server)) as c:
        yield c


@pytest.fixture
def offline_research(lab: Lab, settings: Settings) -> None:
    lab._research = Research(settings, arxiv_query_url="http://127.0.0.1:9/api/query?{}",
                             limiter=RateLimiter(0.0, name="arXiv"), timeout_s=2.0)


def arguments_for(tool: Tool) -> st.SearchStrategy[dict[str, Any]]:
    """Argument dicts for `tool`: its own parameter names (some missing, some extra), with wild values."""
    names = sorted(tool.input_schema.get("properties", {}))
    keys = st.sampled_from(names) | st.text(max_size=12) if names else st.text(max_size=12)
    return st.dictionaries(keys, VALUES, max_size=len(names) + 2)


def test_fuzzed_arguments_to_every_tool_give_errors_or_results_and_never_crash_the_server(
        sync_client: Client, portal: BlockingPortal, offline_research: None) -> None:
    tools = portal.call(sync_client.list_tools).tools
    by_name = {t.name: t for t in tools}
    outcomes = {"error": 0, "result": 0}

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(data=st.data())
    def one_call(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(by_name)), label="tool")
        args = data.draw(arguments_for(by_name[name]), label="arguments")
        result = portal.call(sync_client.call_tool, name, args)
        if result.is_error:
            assert result.content and result.content[0].type == "text"
            assert len(result.content[0].text) < 20_000  # an error names the problem; it does not echo the input
            outcomes["error"] += 1
        else:
            assert result.structured_content is not None, (name, args)
            outcomes["result"] += 1

    one_call()

    assert sum(outcomes.values()) >= CASES
    assert {t.name for t in portal.call(sync_client.list_tools).tools} == set(by_name)
    after = portal.call(sync_client.call_tool, "list_tasks", {})
    assert not after.is_error


def test_every_tool_refuses_an_unknown_argument_and_a_wrong_type(sync_client: Client, portal: BlockingPortal) -> None:
    tools = portal.call(sync_client.list_tools).tools
    for tool in tools:
        unknown = portal.call(sync_client.call_tool, tool.name, {"no_such_argument": 1})
        assert unknown.is_error, tool.name
        for name in tool.input_schema.get("properties", {}):
            wrong = portal.call(sync_client.call_tool, tool.name, {name: {"nested": ["wrong", "type"]}})
            assert wrong.is_error, (tool.name, name)


def test_tree_node_and_run_ids_from_the_tools_are_uuid4_with_122_random_bits(
        sync_client: Client, portal: BlockingPortal, lab: Lab) -> None:
    ids: list[str] = []
    try:
        for i in range(3):
            created = portal.call(sync_client.call_tool, "create_tree",
                                  {"task": "ftbench/mini/sentiment", "name": f"ids {i}", "budget": {"max_rounds": 1}})
            assert not created.is_error, created.content[0].text
            tree_id, root_id = created.structured_content["tree_id"], created.structured_content["root_node_id"]
            node = portal.call(sync_client.call_tool, "get_node", {"node_id": root_id}).structured_content
            run_ids = [r["run_id"] for r in node["runs"]]
            insight = portal.call(sync_client.call_tool, "record_insight",
                                  {"tree_id": tree_id, "text": "ids are random", "evidence": [root_id]})
            assert not insight.is_error, insight.content[0].text
            ids += [tree_id, root_id, *run_ids, insight.structured_content["id"]]
    finally:
        for thread in threading.enumerate():  # the Lab submits launched runs from these threads
            if thread.name.startswith("launch-"):
                thread.join(timeout=60)
        for tree in lab.list_trees():
            for node_ in lab.nodes(tree.id):
                if not node_.state.is_finished():
                    lab.cancel(node_id=node_.id)

    assert len(ids) == len(set(ids)) >= 12
    for handle in ids:
        parsed = uuid.UUID(hex=handle)
        assert parsed.hex == handle  # 32 hex digits, nothing derived or sequential around it
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122  # 128 - 6 fixed bits = 122 random bits
    values = sorted(int(h, 16) for h in ids)
    assert len({b - a for a, b in zip(values, values[1:], strict=False)}) > 1  # not an arithmetic sequence
