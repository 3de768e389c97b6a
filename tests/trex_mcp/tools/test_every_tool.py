"""Every tool succeeds on real input, in the order a client model would use them, on one tiny search."""

from pathlib import Path

import anyio
import pytest

from trex_mcp.research import Research
from trex_mcp.research.ratelimit import RateLimiter
from trex_mcp.research.replay import ReplayServer

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parents[1] / "research" / "fixtures"
ROUND = {
    "strategy_kind": "refine_data",
    "direction": "Train on the clean source only",
    "hypothesis": "The clean source has correct labels, so a short run learns the format and the labels.",
    "runs": [{"label": "clean", "recipe": {"sources": [{"kind": "task", "name": "clean"}]},
              "config": {"max_steps": 40, "learning_rate": 0.005, "batch_size": 16, "max_length": 128,
                         "scheduler": "constant", "modules_to_save": ["embed_tokens"]}}],
}


async def _ok(client, tool, args):
    result = await client.call_tool(tool, args)
    assert not result.is_error, f"{tool}: {result.content[0].text if result.content else ''}"
    return result.structured_content


async def _wait(client, node_id):
    with anyio.fail_after(600):
        while True:
            status = await _ok(client, "wait_round", {"node_id": node_id, "timeout_s": 5.0})
            if status["done"]:
                return status


@pytest.fixture
def research_tools(lab, monkeypatch):
    """Point the lab's research client at a loopback replay of arXiv and the Hub."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with ReplayServer(FIXTURES) as replay:
        lab._research = Research(lab.settings, arxiv_query_url=replay.arxiv_query_url,
                                 hub_endpoint=replay.hub_endpoint, datasets_server=replay.datasets_server,
                                 limiter=RateLimiter(0.0, name="arXiv"), hub_token=False, timeout_s=5.0)
        yield replay


async def test_research_tools_answer_through_the_real_clients(client, research_tools):
    papers = await _ok(client, "search_papers", {"query": "abs:low rank adaptation", "max_results": 3})
    assert papers["papers"]
    paper = await _ok(client, "get_paper", {"arxiv_id": "2106.09685"})
    assert paper["title"]
    datasets = await _ok(client, "search_datasets", {"query": "imdb", "limit": 3})
    assert datasets["datasets"]
    info = await _ok(client, "inspect_dataset", {"dataset_id": "stanfordnlp/imdb", "rows": 2})
    assert info["splits"]
    models = await _ok(client, "search_models", {"query": "qwen", "limit": 3})
    assert models["models"]


async def test_a_whole_search_uses_every_tree_run_and_evaluation_tool(client, lab):
    tasks = await _ok(client, "list_tasks", {})
    assert any(t["name"] == "ftbench/mini/sentiment" for t in tasks["tasks"])
    task = await _ok(client, "get_task", {"task": "ftbench/mini/sentiment"})
    assert task["evaluation"]["metric"] == "accuracy"
    preview = await _ok(client, "preview_recipe", {"task": "ftbench/mini/sentiment",
                                                    "recipe": {"sources": [{"kind": "task", "name": "noisy"}]}})
    assert preview

    created = await _ok(client, "create_tree", {"task": "ftbench/mini/sentiment", "budget": {"max_rounds": 2}})
    tree_id, root_id = created["tree_id"], created["root_node_id"]
    assert (await _wait(client, root_id))["state"] == "COMPLETE"
    assert any(t["tree_id"] == tree_id for t in (await _ok(client, "list_trees", {}))["trees"])

    suggestion = await _ok(client, "suggest_next_node", {"tree_id": tree_id})
    assert suggestion["node_id"] == root_id and suggestion["context"]["text"]
    node = await _ok(client, "propose_round", {"tree_id": tree_id, "parent_id": root_id, "plan": ROUND})
    launched = await _ok(client, "launch_round", {"node_id": node["node_id"]})
    run_id = launched["runs"][0]["run_id"]
    done = await _wait(client, node["node_id"])
    assert done["state"] == "COMPLETE", done
    run = await _ok(client, "get_run", {"run_id": run_id})
    assert run["state"] == "COMPLETE" and run["artifacts"]["adapter_dir"]
    assert (await _ok(client, "get_run_log", {"run_id": run_id, "lines": 20}))["run_id"] == run_id
    diagnosis = await _ok(client, "get_diagnosis", {"node_id": node["node_id"]})
    assert diagnosis["diagnosis"]["summary"]
    assert (await _ok(client, "get_node", {"node_id": node["node_id"]}))["state"] == "COMPLETE"
    await _ok(client, "annotate_node", {"node_id": node["node_id"], "pinned": True, "note": "clean data works"})
    await _ok(client, "record_insight", {"tree_id": tree_id, "text": "clean data beats the base model",
                                         "evidence": [node["node_id"]], "scope": "data", "effect": 0.5})
    await _ok(client, "record_llm_usage", {"tree_id": tree_id, "tokens": 10})
    summary = await _ok(client, "get_tree", {"tree_id": tree_id})
    assert summary["usage"]["llm_tokens"] == 10 and summary["best_node"]["node_id"] == node["node_id"]

    # A proposed round that is cancelled before it trains ends PRUNED.
    second = await _ok(client, "propose_round", {"tree_id": tree_id, "parent_id": node["node_id"], "plan": {
        **ROUND, "direction": "Continue with more steps", "runs": [{**ROUND["runs"][0], "config": {
            **ROUND["runs"][0]["config"], "max_steps": 60}}]}})
    cancelled = await _ok(client, "cancel_run", {"node_id": second["node_id"]})
    assert cancelled["runs"][0]["state"] == "PRUNED"

    final = await _ok(client, "finalize_tree", {"tree_id": tree_id})
    assert final["split"] == "test" and final["test_score"] > final["base_test_score"]
    report = await _ok(client, "write_report", {"tree_id": tree_id})
    assert Path(report["path"]).is_file()
    refused = await client.call_tool("propose_round", {"tree_id": tree_id, "parent_id": node["node_id"],
                                                       "plan": ROUND})
    assert refused.is_error and "finished" in refused.content[0].text


async def test_autonomous_tools_start_report_and_stop_a_search(client):
    started = await _ok(client, "start_autonomous", {"task": "ftbench/mini/sentiment", "rounds": 1,
                                                     "runs_per_round": 1})
    driver_id = started["driver_id"]
    status = await _ok(client, "get_autonomous_status", {"driver_id": driver_id})
    assert status["phase"] in {"starting", "running", "planning", "resuming"}
    stopped = await _ok(client, "stop_autonomous", {"driver_id": driver_id})
    assert stopped["phase"] in {"starting", "running", "planning", "stopped", "failed"}
    unknown = await client.call_tool("get_autonomous_status", {"driver_id": "0" * 32})
    assert unknown.is_error and "no autonomous driver" in unknown.content[0].text
