"""Task tools: list the FT-Bench tasks and read one task's specification."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from trex_mcp.tools.common import READ, LabGetter, TaskName, expected_errors


def register(server: MCPServer, lab: LabGetter) -> None:
    @server.tool(annotations=READ, title="List FT-Bench tasks")
    def list_tasks() -> dict[str, Any]:
        """List every FT-Bench task this server knows: the ten paper tasks (need a GPU and network) and the
        offline mini tasks (run on a CPU in minutes). Start here to choose a task for create_tree."""
        with expected_errors():
            return {"tasks": [{"name": t.registry_name, "domain": t.domain, "metric": t.evaluation.metric,
                               "higher_is_better": t.higher_is_better, "base_model": t.base_model, "mini": t.mini,
                               "description": t.description[:240]} for t in lab().list_tasks()]}

    @server.tool(annotations=READ, title="Get a task")
    def get_task(task: TaskName) -> dict[str, Any]:
        """Read one task's full specification: data sources (train candidates, validation, test), the prompt
        template, the metric and its direction, published scores and budgets. Use it before writing recipes."""
        with expected_errors():
            return lab().get_task(task).model_dump(mode="json")
