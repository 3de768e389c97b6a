"""A scripted MCP client: start `trex-mcp` over stdio and run one search round on the offline mini task.

    python examples/clients/one_round.py [--command /path/to/.venv/bin/trex-mcp] [--home /tmp/trex-demo]

It does what a desktop host's model would do, tool by tool: list the tools, create a tree on
ftbench/mini/sentiment (which launches the baseline round), wait for the baseline, propose a one-run round
(train on the task's 'clean' source), launch it, wait for it with progress, and print the round's diagnosis.
Runs on a CPU in about a minute, offline. The server's log goes to <home>/server-stderr.log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

TASK = "ftbench/mini/sentiment"
PLAN = {
    "strategy_kind": "refine_data",
    "direction": "Train on the clean source",
    "hypothesis": "Clean, correctly labelled reviews teach the label words and the answer format.",
    "runs": [{
        "label": "clean lr=5e-3",
        "recipe": {"sources": [{"kind": "task", "name": "clean"}]},
        "config": {"max_steps": 30, "learning_rate": 0.005, "batch_size": 16, "max_length": 128,
                   "scheduler": "constant"},
    }],
}


class StepFailed(Exception):
    """A tool answered with an error, or a round did not complete."""


def default_command() -> str:
    """`trex-mcp` next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "trex-mcp"
    found = str(beside) if beside.exists() else shutil.which("trex-mcp")
    if not found:
        raise SystemExit("trex-mcp not found; pass --command /path/to/.venv/bin/trex-mcp")
    return found


async def call(client: Client, tool: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Call a tool; stop with its message when it answers is_error."""
    result = await client.call_tool(tool, args, **kwargs)
    if result.is_error:
        text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
        raise StepFailed(f"{tool} failed: {text}")
    return dict(result.structured_content or {})


async def wait(client: Client, node_id: str, what: str) -> dict[str, Any]:
    """Call wait_round until the round is done (each call waits at most 30 s on the server)."""

    async def progress(done: float, total: float | None, message: str | None) -> None:
        print(f"  {message or f'{what}: {done:g} runs done'}")

    with anyio.fail_after(900):
        while True:
            status = await call(client, "wait_round", {"node_id": node_id, "timeout_s": 30},
                                progress_callback=progress)
            if status["done"]:
                return status


async def one_round(command: str, home: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    params = StdioServerParameters(command=command, args=["--home", str(home)], env=env)
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server-stderr.log").open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            tools = (await client.list_tools()).tools
            print(f"{len(tools)} tools: {', '.join(sorted(t.name for t in tools))}")

            tree = await call(client, "create_tree", {"task": TASK, "name": "one scripted round",
                                                      "budget": {"max_rounds": 1, "runs_per_round": 1}})
            print(f"tree {tree['tree_id']}: baseline round {tree['root_node_id']} launched")
            baseline = await wait(client, tree["root_node_id"], "baseline")
            print(f"baseline {baseline['state']}: validation score {baseline['score']}")
            if baseline["state"] != "COMPLETE":
                raise StepFailed(f"the baseline did not complete: {json.dumps(baseline['runs'])}")

            node = await call(client, "propose_round", {"tree_id": tree["tree_id"],
                                                        "parent_id": tree["root_node_id"], "plan": PLAN})
            await call(client, "launch_round", {"node_id": node["node_id"]})
            print(f"round #{node['number']} launched: {PLAN['direction']}")
            status = await wait(client, node["node_id"], f"round #{node['number']}")
            print(f"round #{status['number']} {status['state']}: score {status['score']}, reward {status['reward']}")

            diagnosis = await call(client, "get_diagnosis", {"node_id": node["node_id"]})
            summary = (diagnosis.get("diagnosis") or {}).get("summary")
            print("\ndiagnosis:\n" + (summary or json.dumps(diagnosis, indent=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--command", default=None, help="the trex-mcp executable (default: next to this Python)")
    parser.add_argument("--home", type=Path, default=None, help="trex home (default: a new temporary folder)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="trex-one-round-"))
    print(f"trex home: {home}")
    try:
        anyio.run(one_round, args.command or default_command(), home)
    except* StepFailed as failed:  # raised inside the client's task groups, so it arrives in a group
        raise SystemExit(f"stopped: {failed.exceptions[0]}") from None


if __name__ == "__main__":
    main()
