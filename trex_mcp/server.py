"""`build_server(settings)`: the MCP server with every tool, resource and prompt registered.

Start-up imports only mcp, pydantic and the project's light modules; torch, transformers and friends load inside
the tools that need them, so `tools/list` answers within about a second of process start. The Lab (store, job
manager, research cache) is built on first use and closed by `close_server`.
"""

from __future__ import annotations

import threading

from mcp.server import MCPServer

from trex_mcp import __version__
from trex_mcp.lab import Lab
from trex_mcp.settings import Settings

INSTRUCTIONS = """trex-mcp runs LLM fine-tuning as a tree search (TREX). A typical session:
1. list_tasks / get_task to pick a task; create_tree starts a search and launches the baseline round.
2. wait_round on the root, then loop: suggest_next_node (the policy's choice + memory context) -> write a plan
   -> propose_round (3-5 runs: data recipe + training config) -> launch_round -> wait_round (repeat until done)
   -> get_diagnosis -> record_insight.
3. finalize_tree scores the best node once on the held-out test split and writes an HTML report.
Research tools (search_papers, search_datasets, inspect_dataset) help choose data. Budgets are enforced by the
server. start_autonomous runs the built-in planner instead."""


class _LabHolder:
    """Builds the Lab on first use (thread-safe), so that importing and listing tools stays cheap."""

    def __init__(self, settings: Settings, lab: Lab | None) -> None:
        self.settings = settings
        self._lab = lab
        self._lock = threading.Lock()

    def __call__(self) -> Lab:
        with self._lock:
            if self._lab is None:
                self._lab = Lab(self.settings)
            return self._lab

    def close(self) -> None:
        with self._lock:
            if self._lab is not None:
                self._lab.close()


def build_server(settings: Settings | None = None, *, lab: Lab | None = None) -> MCPServer:
    """The trex-mcp MCP server. Pass `lab` to share one (tests, the autonomous driver)."""
    from trex_mcp.tools import autonomous, evaluation, research, resources, runs, tasks, trees

    settings = settings or Settings()
    holder = _LabHolder(settings, lab)
    from trex_mcp.http import auth_kwargs

    server = MCPServer("trex-mcp", title="TREX fine-tuning search", version=__version__, instructions=INSTRUCTIONS,
                       **auth_kwargs(settings))
    for module in (tasks, research, trees, runs, evaluation, autonomous, resources):
        module.register(server, holder)
    _forbid_unknown_arguments(server)
    server.trex_lab = holder  # type: ignore[attr-defined]
    return server


def _forbid_unknown_arguments(server: MCPServer) -> None:
    """Make every tool refuse unknown argument names (the SDK's argument models accept and drop them).

    Each tool's generated argument model is replaced by a subclass with `extra="forbid"`, and its published input
    schema gets `additionalProperties: false`, so clients see it and a misspelt argument is an error
    rather than silently ignored.
    """
    from pydantic import BaseModel, ConfigDict

    for tool in server._tool_manager.list_tools():
        base = tool.fn_metadata.arg_model
        sealed: type[BaseModel] = type(base.__name__, (base,), {"model_config": ConfigDict(arbitrary_types_allowed=True, extra="forbid"),
                                               "__module__": base.__module__})
        tool.fn_metadata.arg_model = sealed  # type: ignore[assignment]
        # The SDK's schema plus this one key: identical to regenerating it from `sealed`, at half the start-up cost.
        tool.parameters = {**tool.parameters, "additionalProperties": False}


def close_server(server: MCPServer) -> None:
    """Close the server's Lab (running training jobs keep running and are re-attached on the next start)."""
    from trex_mcp.tools.autonomous import stop_all

    stop_all()
    holder = getattr(server, "trex_lab", None)
    if holder is not None:
        holder.close()
