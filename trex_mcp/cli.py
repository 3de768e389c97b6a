"""`trex-mcp`: serve the MCP server (stdio or HTTP), run an autonomous search, list tasks, write reports."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trex-mcp", description=__doc__)
    parser.add_argument("--home", help="trex home folder (default: $TREX_HOME or ~/.trex)")
    parser.add_argument("--autonomous", action="store_true", help="run the built-in Researcher/Executor headless")
    parser.add_argument("--task", help="FT-Bench task name (ftbench/<name>) or a task YAML path")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.autonomous:
        print("trex-mcp: autonomous mode is not built yet (see the tree-search issue).", file=sys.stderr)
        return 2
    print("trex-mcp: the MCP server is not built yet.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
