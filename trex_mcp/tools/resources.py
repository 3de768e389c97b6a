"""Resources (tasks, trees, nodes, run logs) and prompts that help a client model act as the Researcher."""

from __future__ import annotations

import json
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import UserMessage

from trex_mcp.tools.common import LabGetter, jsonable

RESEARCHER_GUIDE = """You are the Researcher of a TREX fine-tuning search. Each round is one node of a search tree.
Work in this order: read the memory context and the last diagnosis; state one direction and a hypothesis that
the evidence supports; propose 3-5 run variants that test it (most gains come from data work: choose sources,
filter noisy rows, de-duplicate, mix, resize; then training: learning rate, epochs, LoRA rank, full vs LoRA,
warm start from the parent's adapter). Never repeat a run that already ran. Never train on evaluation data."""


def register(server: MCPServer, lab: LabGetter) -> None:
    @server.resource("trex://tasks", mime_type="application/json", title="FT-Bench tasks")
    def tasks_resource() -> str:
        """Every FT-Bench task with its metric and base model."""
        return json.dumps([{"name": t.registry_name, "metric": t.evaluation.metric, "base_model": t.base_model,
                            "mini": t.mini} for t in lab().list_tasks()])

    @server.resource("trex://tasks/{group}/{name}", mime_type="application/json", title="A mini task")
    def mini_task_resource(group: str, name: str) -> str:
        """A task whose name has two parts, e.g. trex://tasks/mini/sentiment."""
        return lab().get_task(f"ftbench/{group}/{name}").model_dump_json()

    @server.resource("trex://trees/{tree_id}", mime_type="application/json", title="A search tree")
    def tree_resource(tree_id: str) -> str:
        """A tree's compact summary."""
        return json.dumps(jsonable(lab().tree_summary(tree_id)))

    @server.resource("trex://nodes/{node_id}", mime_type="application/json", title="A round")
    def node_resource(node_id: str) -> str:
        """A node with its runs."""
        return json.dumps(jsonable(lab().get_node(node_id)))

    @server.resource("trex://runs/{run_id}/log", mime_type="text/plain", title="A run's log")
    def run_log_resource(run_id: str) -> str:
        """The last 200 lines of a run's training log."""
        return lab().run_log(run_id, 200)

    @server.prompt(title="Plan the next round")
    def plan_round(tree_id: str) -> list[Any]:
        """Plan a round: the policy's choice of node, its memory context and the task, with instructions."""
        suggestion = lab().suggest_next(tree_id)
        return [UserMessage(
            f"{RESEARCHER_GUIDE}\n\nTask:\n{json.dumps(suggestion['task'], indent=1)}\n\n"
            f"Node to expand: {suggestion['node_id']} ({suggestion['reason']}).\n"
            f"Budget left: {json.dumps(suggestion['budget_left'])}\n\nMemory context:\n{suggestion['context']['text']}\n\n"
            "Write a RoundPlan and call propose_round(tree_id, parent_id, plan), then launch_round and wait_round.")]

    @server.prompt(title="Diagnose a round")
    def diagnose_round(node_id: str) -> list[Any]:
        """Explain a finished round's failures and compare it with earlier rounds; ends with insights to record."""
        data = lab().diagnosis(node_id)
        return [UserMessage(
            "Diagnose this finished round. Group its failure cases by likely cause, compare with its parent and "
            "siblings, and state 1-3 insights (record each with record_insight, citing node ids).\n\n"
            f"{json.dumps(jsonable(data), indent=1)[:12000]}")]
