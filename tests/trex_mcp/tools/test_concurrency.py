"""Concurrent tool calls (M8): many reads at once all succeed, and blocking tool bodies do not serialize.

Interleaving is proven with a barrier that only opens when every call is inside its tool body at the same time,
not with timing.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult, TextContent

from tree_store import State
from trex_mcp.lab import Lab

pytestmark = pytest.mark.anyio

READS = 100


def text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


async def call_many(client: Client, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    async def one(i: int, name: str, args: dict[str, Any]) -> None:
        results[i] = await client.call_tool(name, args)

    async with anyio.create_task_group() as tg:
        for i, (name, args) in enumerate(calls):
            tg.start_soon(one, i, name, args)
    return results


def cancel_everything(lab: Lab) -> None:
    """Stop every unfinished run, so no worker outlives the test.

    The Lab submits a launched round's runs from a background thread; joining it first keeps the cancel from
    racing the submission.
    """
    for thread in threading.enumerate():
        if thread.name.startswith("launch-"):
            thread.join(timeout=60)
    for tree in lab.list_trees():
        for node in lab.nodes(tree.id):
            if not node.state.is_finished():
                lab.cancel(node_id=node.id)


async def until_running(lab: Lab, node_id: str, limit_s: float = 60.0) -> None:
    """Until the round's first run has a live worker (bounded); fails at once if the run finished instead."""
    with anyio.fail_after(limit_s):
        while True:
            run = lab.store.list_runs(node_id)[0]
            assert not run.state.is_finished(), f"the run finished before the reads: {run.state} {run.failure}"
            if run.state == State.RUNNING:
                return
            await anyio.sleep(0.05)  # polling the store: the job manager offers no event to wait on


def read_calls(tree_id: str) -> list[tuple[str, dict[str, Any]]]:
    kinds = [("get_tree", {"tree_id": tree_id}), ("list_trees", {}), ("list_tasks", {})]
    return [kinds[i % len(kinds)] for i in range(READS)]


def assert_all_answered(results: list[Any]) -> None:
    errors = [text_of(r) for r in results if r.is_error]
    assert errors == []
    assert all(r.structured_content for r in results)


async def test_100_concurrent_reads_all_succeed_within_5_s(client: Client, lab: Lab) -> None:
    task = lab.get_task("ftbench/mini/sentiment")
    tree = lab.store.create_tree("reads", task_name=task.registry_name, higher_is_better=True,
                                 task_snapshot=task.model_dump(mode="json"),
                                 budget={"max_rounds": 2, "runs_per_round": 1, "max_samples_per_round": 100})
    lab.store.add_node(tree.id, None, strategy_kind="baseline", plan={"direction": "baseline"})

    with anyio.fail_after(5):
        results = await call_many(client, read_calls(tree.id))

    assert_all_answered(results)


async def test_100_concurrent_reads_all_succeed_while_a_training_run_is_active(client: Client, lab: Lab) -> None:
    created = await client.call_tool("create_tree", {"task": "ftbench/mini/sentiment",
                                                     "budget": {"max_rounds": 1, "runs_per_round": 1}})
    assert not created.is_error, text_of(created)
    try:
        await until_running(lab, created.structured_content["root_node_id"])

        with anyio.fail_after(5):
            results = await call_many(client, read_calls(created.structured_content["tree_id"]))

        assert_all_answered(results)
    finally:
        cancel_everything(lab)


async def test_blocking_tool_bodies_run_in_parallel_not_one_after_another(
        client: Client, lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    parallel = 10
    barrier = threading.Barrier(parallel, timeout=10)
    real_list_tasks = lab.list_tasks

    def list_tasks_meeting_the_others():  # type: ignore[no-untyped-def]
        barrier.wait()  # raises BrokenBarrierError unless all calls are inside their bodies at once
        return real_list_tasks()

    monkeypatch.setattr(lab, "list_tasks", list_tasks_meeting_the_others)
    with anyio.fail_after(30):
        results = await call_many(client, [("list_tasks", {})] * parallel)
    assert [r.is_error for r in results] == [False] * parallel
