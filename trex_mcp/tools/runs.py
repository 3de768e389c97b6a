"""Run tools: launch a round, follow it with bounded waits, read runs and logs, cancel.

Nothing here holds training open: launch returns at once, and wait_round returns after at most its timeout
(under a minute), to be called again while the round is running.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from trex_mcp.tools.common import DESTRUCTIVE, READ, WRITE, Id, LabGetter, as_dict, expected_errors, jsonable


def register(server: MCPServer, lab: LabGetter) -> None:
    @server.tool(annotations=WRITE, title="Launch a round")
    def launch_round(node_id: Id) -> dict[str, Any]:
        """Start a proposed (WAITING) round: each run's recipe is built and its training job queued. Returns at
        once with the run ids; follow with wait_round."""
        with expected_errors():
            return as_dict(lab().launch_round(node_id))

    @server.tool(annotations=READ, title="Wait for a round")
    async def wait_round(
        node_id: Id,
        ctx: Context,
        timeout_s: Annotated[float, Field(ge=0.0, le=55.0, description="Longest wait; call again if not done.")] = 30.0,
    ) -> dict[str, Any]:
        """Wait (bounded) for a round to finish, sending progress notifications as its runs finish. Returns the
        round's status: done, runs finished, each run's state, score and progress. Call again while not done."""
        with expected_errors():
            the_lab = lab()
            status = await anyio.to_thread.run_sync(the_lab.round_status, node_id)
            last = -1
            with anyio.move_on_after(timeout_s):
                while not status["done"]:
                    if status["runs_finished"] != last:
                        last = status["runs_finished"]
                        await ctx.report_progress(last, status["runs_total"],
                                                  f"round #{status['number']}: {last}/{status['runs_total']} runs done")
                    await anyio.sleep(0.25)
                    status = await anyio.to_thread.run_sync(the_lab.round_status, node_id)
            if status["done"]:
                await ctx.report_progress(status["runs_total"], status["runs_total"], f"round #{status['number']} done")
            return as_dict(status)

    @server.tool(annotations=READ, title="Get a run")
    def get_run(run_id: Id) -> dict[str, Any]:
        """One run in full: recipe, config, state, progress while running, metrics, artifacts, cost, failure
        (kind, message, log tail)."""
        with expected_errors():
            return as_dict(lab().get_run(run_id))

    @server.tool(annotations=DESTRUCTIVE, title="Cancel runs")
    def cancel_run(
        run_id: Annotated[str | None, Field(min_length=8, max_length=64, description="One run to cancel.")] = None,
        node_id: Annotated[str | None, Field(min_length=8, max_length=64,
                                             description="A round: cancel all its unfinished runs.")] = None,
    ) -> dict[str, Any]:
        """Cancel one run, or every unfinished run of a round (give exactly one id). The worker gets SIGTERM,
        saves a checkpoint and stops; the run ends as cancelled."""
        with expected_errors():
            return {"runs": jsonable(lab().cancel(run_id=run_id, node_id=node_id))}

    @server.tool(annotations=READ, title="Read a run's log")
    def get_run_log(run_id: Id, lines: Annotated[int, Field(ge=1, le=500)] = 50) -> dict[str, Any]:
        """The last lines of a run's training log (stdout and stderr of its worker)."""
        with expected_errors():
            return {"run_id": run_id, "log": lab().run_log(run_id, lines)}
