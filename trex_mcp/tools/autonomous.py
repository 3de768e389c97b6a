"""Autonomous-mode tools: start the built-in Researcher/Executor on a task, follow it, stop it.

The driver is an MCP client of this same server (in-memory), so it uses exactly the tools a desktop client uses.
It runs in a thread with its own event loop, so it outlives the call that started it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from trex_mcp.tools.common import READ, WRITE, LabGetter, TaskName, as_dict, expected_errors, jsonable

if TYPE_CHECKING:
    from trex_mcp.agents.driver import AutonomousDriver

log = logging.getLogger(__name__)
_DRIVERS: dict[str, tuple[AutonomousDriver, threading.Thread]] = {}
_LOCK = threading.Lock()


def _run(driver: AutonomousDriver) -> None:
    """Thread body: the driver records its own failure in its status; nothing escapes the thread."""
    try:
        anyio.run(driver.run)
    except Exception:
        log.warning("autonomous search %s ended with an error: %s", driver.tree_id, driver.error)


def stop_all(timeout_s: float = 15.0) -> None:
    """Stop every autonomous search of this process (server shutdown); finished rounds are kept."""
    with _LOCK:
        entries = list(_DRIVERS.values())
    for driver, _thread in entries:
        driver.stop()
    for _driver, thread in entries:
        thread.join(timeout=timeout_s)


def register(server: MCPServer, lab: LabGetter) -> None:
    @server.tool(annotations=WRITE, title="Start autonomous mode")
    def start_autonomous(
        task: TaskName,
        planner: Literal["heuristic", "llm"] = "heuristic",
        policy: Literal["uct", "greedy", "random"] = "uct",
        rounds: Annotated[int, Field(ge=1, le=20, description="Rounds after the baseline.")] = 20,
        runs_per_round: Annotated[int, Field(ge=1, le=5)] = 3,
        samples_per_round: Annotated[int, Field(ge=1, le=50_000)] = 50_000,
        max_wall_s: Annotated[float | None, Field(gt=0, le=30 * 24 * 3600)] = None,
        seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0,
        resume_tree_id: Annotated[str | None, Field(min_length=8, max_length=64,
                                                    description="Continue this tree instead of a new one.")] = None,
    ) -> dict[str, Any]:
        """Run the built-in planner headless on a task: baseline, then rounds chosen by the tree policy, then the
        final test-split evaluation and report. Returns a driver id at once; follow it with get_autonomous_status."""
        with expected_errors():
            from trex_mcp.agents.driver import AutonomousDriver, DriverOptions

            options = DriverOptions(task=task, planner=planner, policy=policy, rounds=rounds,
                                    runs_per_round=runs_per_round, samples_per_round=samples_per_round,
                                    max_wall_s=max_wall_s, seed=seed, resume_tree_id=resume_tree_id, quiet=True)
            driver = AutonomousDriver(server, options, lab=lab())
            driver_id = secrets.token_hex(16)
            thread = threading.Thread(target=_run, args=(driver,), name=f"autonomous-{driver_id[:8]}", daemon=True)
            with _LOCK:
                _DRIVERS[driver_id] = (driver, thread)
            thread.start()
            return {"driver_id": driver_id, "status": jsonable(driver.status())}

    def _get(driver_id: str) -> AutonomousDriver:
        with _LOCK:
            entry = _DRIVERS.get(driver_id)
        if entry is None:
            raise ToolError(f"no autonomous driver {driver_id!r} in this server process (they do not survive a "
                            "restart; resume with start_autonomous(resume_tree_id=...))")
        return entry[0]

    @server.tool(annotations=READ, title="Autonomous status")
    def get_autonomous_status(driver_id: Annotated[str, Field(min_length=8, max_length=64)]) -> dict[str, Any]:
        """Where an autonomous search stands: phase, tree id, rounds done, best score so far, running jobs, the
        last events, and the final summary once it has finished."""
        return as_dict(_get(driver_id).status())

    @server.tool(annotations=WRITE, title="Stop autonomous mode")
    def stop_autonomous(driver_id: Annotated[str, Field(min_length=8, max_length=64)]) -> dict[str, Any]:
        """Ask an autonomous search to stop after cancelling its running round. The tree keeps every finished
        round; resume later with start_autonomous(resume_tree_id=...)."""
        driver = _get(driver_id)
        driver.stop()
        return as_dict(driver.status())
