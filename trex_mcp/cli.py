"""`trex-mcp`: serve the MCP server (stdio or HTTP), run an autonomous search, list tasks, write reports.

    trex-mcp                                   serve over stdio (what Claude Desktop starts)
    trex-mcp serve --transport http            serve streamable HTTP on 127.0.0.1:8765/mcp
    trex-mcp tasks                             list FT-Bench tasks
    trex-mcp --autonomous --task ftbench/mini/sentiment [--rounds 4 ...]
    trex-mcp report <tree id | export.json> [-o report.html]

stdout of the stdio server carries only MCP messages: logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, default=None,
                        help="trex home: store, runs, datasets, models, caches (default: $TREX_HOME or ~/.trex)")
    parser.add_argument("--data-root", action="append", type=Path, default=[],
                        help="a folder recipes may read local files from (repeatable)")
    parser.add_argument("--capacity", type=int, default=None,
                        help="concurrent training runs (default: visible GPUs, or 1 on CPU)")
    parser.add_argument("--executor", choices=["local", "ray"], default=None,
                        help="where training runs: local subprocesses (default) or jobs on a Ray cluster")
    parser.add_argument("--ray-address", default=None,
                        help="dashboard address of the Ray cluster, e.g. http://127.0.0.1:8265 (implies --executor "
                        "ray; default $RAY_ADDRESS, else http://127.0.0.1:8265)")
    parser.add_argument("--warm-worker", action="store_true",
                        help="keep one spare CPU worker with torch/TRL imported for the next run (saves ~10 s of "
                        "imports per run, costs ~1 GB while idle; always on in --autonomous unless --cold-workers)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="stderr log level (default WARNING)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trex-mcp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(parser)
    auto = parser.add_argument_group("autonomous mode")
    auto.add_argument("--autonomous", action="store_true", help="run the built-in Researcher/Executor headless")
    auto.add_argument("--task", help="FT-Bench task (ftbench/<name>) or a task YAML path")
    auto.add_argument("--planner", choices=["heuristic", "llm"], default="heuristic",
                      help="heuristic (offline default) or llm (OpenAI-compatible endpoint: TREX_LLM_BASE_URL, "
                      "TREX_LLM_MODEL, TREX_LLM_API_KEY)")
    auto.add_argument("--policy", choices=["uct", "greedy", "random"], default="uct", help="tree policy")
    auto.add_argument("--rounds", type=int, default=20, help="rounds after the baseline (max 20)")
    auto.add_argument("--runs-per-round", type=int, default=3, help="parallel variants per round (1-5)")
    auto.add_argument("--samples-per-round", type=int, default=50_000, help="training rows per run (max 50,000)")
    auto.add_argument("--wall-time", type=float, default=None, help="wall-clock budget in seconds")
    auto.add_argument("--gpu-hours", type=float, default=None, help="device-hours budget")
    auto.add_argument("--token-budget", type=int, default=None, help="LLM planner token budget")
    auto.add_argument("--seed", type=int, default=0, help="planner and policy seed")
    auto.add_argument("--resume", metavar="TREE_ID", help="continue an earlier search; finished rounds are kept")
    auto.add_argument("--json", action="store_true", help="print the final summary as JSON")
    auto.add_argument("--cold-workers", action="store_true",
                      help="start every run in a fresh process (default: keep one warm CPU worker ready)")

    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="serve the MCP server (default: stdio)")
    _add_common(serve)
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (non-loopback needs a token and hosts)")
    serve.add_argument("--port", type=int, default=8765, help="HTTP port")
    serve.add_argument("--allowed-host", action="append", default=[], help="Host header accepted off loopback")
    serve.add_argument("--allow-unsafe-code", action="store_true",
                       help="operator opt-in for tasks that execute model output (not a sandbox)")
    tasks = sub.add_parser("tasks", help="list FT-Bench tasks")
    _add_common(tasks)
    report = sub.add_parser("report", help="write a tree's HTML report")
    _add_common(report)
    report.add_argument("tree", help="tree id (in the home's store) or a path to an exported tree JSON")
    report.add_argument("-o", "--output", type=Path, default=None, help="output HTML file")
    return parser


def _settings(args: argparse.Namespace, **extra: object):  # type: ignore[no-untyped-def]
    from trex_mcp.settings import Settings

    values: dict[str, object] = {"data_roots": args.data_root, **extra}
    if args.home is not None:
        values["home"] = args.home
    if args.capacity is not None:
        values["capacity"] = args.capacity
    if getattr(args, "ray_address", None) is not None:
        values["ray_address"] = args.ray_address
        values["executor"] = "ray"
    if getattr(args, "executor", None) is not None:
        values["executor"] = args.executor
    return Settings(**values)


def _serve(args: argparse.Namespace) -> int:
    from trex_mcp.server import build_server, close_server

    transport = getattr(args, "transport", "stdio")
    settings = _settings(args, http_host=getattr(args, "host", "127.0.0.1"), http_port=getattr(args, "port", 8765),
                         allowed_hosts=getattr(args, "allowed_host", []),
                         allow_unsafe_code=getattr(args, "allow_unsafe_code", False), warm_worker=args.warm_worker)
    server = build_server(settings)
    try:
        if transport == "http":
            import uvicorn

            from trex_mcp.http import build_http_app

            app = build_http_app(server, settings)
            print(f"trex-mcp: serving http://{settings.http_host}:{settings.http_port}/mcp", file=sys.stderr)
            uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning")
        else:
            server.run()
    finally:
        close_server(server)
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from ftbench.registry import list_tasks

    rows = [(t.registry_name, t.evaluation.metric, t.base_model, "mini" if t.mini else "full") for t in list_tasks()]
    width = max(len(r[0]) for r in rows) if rows else 10
    for name, metric, base, kind in rows:
        print(f"{name:<{width}}  {kind:<4}  {metric:<20}  {base}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from trex_mcp.report.cli import report_command

    return report_command(args.tree, output=args.output, settings=_settings(args))


def _autonomous(args: argparse.Namespace) -> int:
    if not args.task and not args.resume:
        print("trex-mcp: --autonomous needs --task (e.g. ftbench/mini/sentiment) or --resume TREE_ID", file=sys.stderr)
        return 2
    from trex_mcp.agents.cli import run_autonomous

    # A headless search launches run after run: keep a spare worker with the heavy imports done.
    return run_autonomous(args, _settings(args, warm_worker=not args.cold_workers))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `trex-mcp` command. Returns the exit code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Library chatter (progress bars, deprecation notes from transformers/peft internals) is not for users; real
    # problems still arrive as errors and log records.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    warnings.filterwarnings("ignore", message=r".*(tie_word_embeddings|ensure_weight_tying).*", category=UserWarning)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ftbench.errors import FTBenchError
    from trex_mcp.errors import TrexError

    try:
        if args.autonomous:
            return _autonomous(args)
        if args.command == "tasks":
            return _tasks(args)
        if args.command == "report":
            return _report(args)
        return _serve(args)
    except (TrexError, FTBenchError) as exc:
        print(f"trex-mcp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
