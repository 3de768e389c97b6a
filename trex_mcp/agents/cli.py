"""`trex-mcp --autonomous`: build the server in this process and drive it with the built-in planner."""

from __future__ import annotations

import argparse
import sys

import anyio

from trex_mcp.settings import Settings


def run_autonomous(args: argparse.Namespace, settings: Settings) -> int:
    """Run a whole search from the command line; prints progress to stderr and the summary table to stdout."""
    from trex_mcp.agents.driver import AutonomousDriver, DriverOptions, format_summary, summary_json
    from trex_mcp.server import build_server, close_server

    options = DriverOptions(task=args.task, planner=args.planner, policy=args.policy, rounds=args.rounds,
                            runs_per_round=args.runs_per_round, samples_per_round=args.samples_per_round,
                            max_wall_s=args.wall_time, max_device_hours=args.gpu_hours,
                            max_llm_tokens=args.token_budget, seed=args.seed, resume_tree_id=args.resume)
    server = build_server(settings)
    driver = AutonomousDriver(server, options, lab=server.trex_lab())  # type: ignore[attr-defined]
    try:
        summary = anyio.run(driver.run)
    except KeyboardInterrupt:
        print(f"\ntrex-mcp: interrupted; resume with --resume {driver.tree_id}", file=sys.stderr)
        return 130
    finally:
        close_server(server)
    if summary is None:
        print(f"trex-mcp: search stopped; resume with --resume {driver.tree_id}", file=sys.stderr)
        return 1
    print(summary_json(summary) if args.json else format_summary(summary))
    return 0
