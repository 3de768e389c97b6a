"""Run FT-Bench tasks through trex-mcp's autonomous mode, as any MCP client would, and print a results table.

    python examples/clients/ftbench_client.py --offline                   # the mini suite, offline on CPU
    python examples/clients/ftbench_client.py --offline --rounds 4 --runs-per-round 3 --json mini.json
    python examples/clients/ftbench_client.py --tasks ftbench/mini/sentiment ftbench/mini/notes
    python examples/clients/ftbench_client.py --tasks sst2 hoc --rounds 20 --samples-per-round 50000

The client starts `trex-mcp --home HOME` as a subprocess over stdio (one server process per task, so a task that
crashes its server does not take the others down), calls `start_autonomous`, polls `get_autonomous_status`
(one line on stderr whenever the phase, the round or the best score changes), and collects the driver's final
summary. Tasks run one after another: a CPU server trains one run at a time.

The child process does not inherit this process's environment: only the variables a run needs are passed
(PATH, HOME, TREX_*, the Hugging Face cache and offline switches, thread counts, CUDA_VISIBLE_DEVICES, and
HF_TOKEN only when it is set). Secrets are never printed.

Exit status: 0 when every task finished; 1 when any task failed (named on stderr; a failed task does not stop
the others); 2 on a usage error; 130 after Ctrl-C, which asks the running driver to stop (stop_autonomous: the
running round is cancelled, finished rounds stay in the tree and can be resumed) and exits; a second Ctrl-C
exits at once.

What it does not do: run tasks in parallel, or resume a stopped search (use `trex-mcp --autonomous --resume`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

#: Environment variables passed to the server when they are set here (the child inherits nothing else).
FORWARDED_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
    "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    "TOKENIZERS_PARALLELISM", "CUDA_VISIBLE_DEVICES", "PYTORCH_CUDA_ALLOC_CONF",
)
#: Prefixes forwarded whole: trex settings and the LLM planner's endpoint (TREX_LLM_BASE_URL, ...).
FORWARDED_PREFIXES = ("TREX_",)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
FINAL_PHASES = ("done", "failed", "stopped")

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------- results


@dataclass
class TaskResult:
    """One task's outcome: the driver's summary flattened, or the reason it failed."""

    task: str
    status: str  # "done" | "failed" | "stopped"
    metric: str | None = None
    base_validation: float | None = None
    best_validation: float | None = None
    base_test: float | None = None
    test: float | None = None
    normalised_gain: float | None = None
    rounds: int | None = None
    runs: int | None = None
    wall_s: float | None = None
    tree_id: str | None = None
    report: str | None = None
    error: str | None = None

    @property
    def beats_base(self) -> bool | None:
        """Whether the test score is better than the base model's test score (None when either is missing)."""
        if self.test is None or self.base_test is None:
            return None
        return self.test > self.base_test

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "beats_base": self.beats_base}


def result_from_summary(task: str, summary: Mapping[str, Any], *, wall_s: float | None = None) -> TaskResult:
    """A finished task's row, from the summary `get_autonomous_status` returns once the driver is done.

    `wall_s` (measured by the client, start to summary) wins over the driver's own figure when given.
    """
    return TaskResult(task=str(summary.get("task") or task), status="done", metric=summary.get("metric"),
                      base_validation=summary.get("base_validation"), best_validation=summary.get("best_validation"),
                      base_test=summary.get("base_test"), test=summary.get("test"),
                      normalised_gain=summary.get("normalised_gain"), rounds=summary.get("rounds"),
                      runs=summary.get("runs"), wall_s=wall_s if wall_s is not None else summary.get("wall_s"),
                      tree_id=summary.get("tree_id"), report=summary.get("report"))


COLUMNS: tuple[tuple[str, str], ...] = (
    ("task", "task"), ("metric", "metric"), ("base_validation", "base (val)"), ("best_validation", "best (val)"),
    ("base_test", "base (test)"), ("test", "test"), ("normalised_gain", "norm. gain"), ("rounds", "rounds"),
    ("wall_s", "wall (s)"), ("status", "status"),
)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key == "wall_s":
        return f"{float(value):.0f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _rows(results: Sequence[TaskResult]) -> list[list[str]]:
    return [[_cell(key, getattr(r, key)) for key, _ in COLUMNS] for r in results]


def format_table(results: Sequence[TaskResult]) -> str:
    """The results as an aligned plain-text table (numbers right-aligned), then one line per failed task."""
    header = [title for _, title in COLUMNS]
    rows = _rows(results)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    left = {0, 1, len(header) - 1}

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    out += [f"{r.task}: {r.status}: {' '.join((r.error or '').split())}" for r in results if r.error]
    return "\n".join(out)


def format_markdown(results: Sequence[TaskResult], *, command: str | None = None) -> str:
    """The results as a Markdown table, with the command that produced them and the failures below it."""
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    header = [title for _, title in COLUMNS]
    aligns = ["---" if i in (0, 1, len(header) - 1) else "---:" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    out += ["| " + " | ".join(escape(c) for c in row) + " |" for row in _rows(results)]
    if command:
        out += ["", f"Command: `{command}`"]
    failures = [r for r in results if r.error]
    if failures:
        out += ["", "Failures:", ""] + [f"- `{r.task}` ({r.status}): {escape(r.error or '')}" for r in failures]
    return "\n".join(out) + "\n"


def results_document(results: Sequence[TaskResult], *, options: Mapping[str, Any] | None = None,
                     command: str | None = None, started_at: float | None = None,
                     total_wall_s: float | None = None) -> dict[str, Any]:
    """The JSON document `--json` writes: the options, one object per task, and which tasks failed."""
    return {"command": command, "options": dict(options or {}), "started_at": started_at,
            "total_wall_s": total_wall_s, "tasks": [r.to_json() for r in results],
            "failed": [r.task for r in results if r.status != "done"]}


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- the server


def server_command() -> list[str]:
    """`trex-mcp` from this interpreter's environment, else `python -m trex_mcp.cli` (same entry point)."""
    script = Path(sys.executable).parent / ("trex-mcp.exe" if os.name == "nt" else "trex-mcp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trex_mcp.cli"]


def child_env(environ: Mapping[str, str], *, home: Path | None, offline: bool) -> dict[str, str]:
    """The server's environment: the forwarded variables that are set, HF_TOKEN only when non-empty."""
    env = {k: environ[k] for k in FORWARDED_ENV if environ.get(k)}
    env.update({k: v for k, v in environ.items() if k.startswith(FORWARDED_PREFIXES) and v})
    if environ.get("HF_TOKEN"):
        env["HF_TOKEN"] = environ["HF_TOKEN"]
    if home is not None:
        env["TREX_HOME"] = str(home)
    if offline:
        env.update(OFFLINE_ENV)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def server_parameters(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> StdioServerParameters:
    """How to start `trex-mcp` for `args` (home, data roots, capacity, log level)."""
    command = server_command()
    extra: list[str] = []
    if args.home is not None:
        extra += ["--home", str(args.home)]
    for root in args.data_root:
        extra += ["--data-root", str(root)]
    if args.capacity is not None:
        extra += ["--capacity", str(args.capacity)]
    if not args.cold_workers:
        extra.append("--warm-worker")  # runs follow each other: keep the torch/TRL imports done
    extra += ["--log-level", args.server_log_level]
    env = child_env(os.environ if environ is None else environ, home=args.home, offline=args.offline)
    return StdioServerParameters(command=command[0], args=[*command[1:], *extra], env=env)


class ToolFailure(Exception):
    """A tool answered with an error (its message says what was wrong)."""


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call `tool`; return its structured result, or raise ToolFailure with the server's message."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content) or "unknown error"
        raise ToolFailure(f"{tool}: {text}")
    return dict(result.structured_content or {})


# ---------------------------------------------------------------------------------------------- the suite


@dataclass
class Interrupt:
    """What Ctrl-C needs to reach: the running driver, on its client."""

    requested: bool = False
    client: Client | None = None
    driver_id: str | None = None
    stop_sent: bool = False


def driver_arguments(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """start_autonomous's arguments for `task` under the chosen budget."""
    out: dict[str, Any] = {"task": task, "planner": args.planner, "policy": args.policy, "rounds": args.rounds,
                           "runs_per_round": args.runs_per_round, "samples_per_round": args.samples_per_round,
                           "seed": args.seed}
    if args.max_wall_s is not None:
        out["max_wall_s"] = args.max_wall_s
    return out


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


async def follow_driver(client: Client, task: str, driver_id: str, *, poll_s: float, task_timeout_s: float | None,
                        interrupt: Interrupt, log: Log) -> dict[str, Any]:
    """Poll the driver until it reaches a final phase; returns its last status.

    Logs one line whenever the phase, the round or the best score changes. Past `task_timeout_s`, or after
    Ctrl-C, asks the driver to stop and waits up to `stop_grace_s` for it.
    """
    started = time.monotonic()
    last: tuple[Any, ...] | None = None
    stop_deadline: float | None = None
    stop_grace_s = 90.0  # the driver notices a stop within one wait_round poll (20 s), then cancels the round
    while True:
        status = await call(client, "get_autonomous_status", {"driver_id": driver_id})
        key = (status.get("phase"), status.get("rounds_done"), status.get("best_score"))
        if key != last:
            event = _short((status.get("events") or [""])[-1])
            log(f"{task}: {status.get('phase')} | round {status.get('rounds_done')}/{status.get('rounds_planned')} "
                f"| best so far {_fmt(status.get('best_score'))} | {status.get('elapsed_s', 0):.0f}s"
                + (f" | {event}" if event else ""))
            last = key
        if status.get("phase") in FINAL_PHASES:
            return status
        elapsed = time.monotonic() - started
        if stop_deadline is None and (interrupt.requested or (task_timeout_s is not None and elapsed > task_timeout_s)):
            if not interrupt.stop_sent:
                await call(client, "stop_autonomous", {"driver_id": driver_id})
                interrupt.stop_sent = True
            why = "interrupted" if interrupt.requested else f"past the task timeout of {task_timeout_s:.0f} s"
            log(f"{task}: {why}: stop requested, waiting for the running round to be cancelled")
            stop_deadline = time.monotonic() + stop_grace_s
        if stop_deadline is not None and time.monotonic() > stop_deadline:
            return {**status, "phase": "stopped",
                    "error": f"the driver did not stop within {stop_grace_s:.0f} s of stop_autonomous"}
        await anyio.sleep(poll_s)


async def run_task(params: StdioServerParameters, task: str, args: argparse.Namespace, *, interrupt: Interrupt,
                   log: Log, errlog: TextIO) -> TaskResult:
    """Run one task on a fresh server process; never raises for a task-level failure (the row says why)."""
    started = time.monotonic()
    try:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            interrupt.client = client
            interrupt.stop_sent = False
            start = await call(client, "start_autonomous", driver_arguments(task, args))
            interrupt.driver_id = start["driver_id"]
            log(f"{task}: started driver {start['driver_id'][:8]}")
            status = await follow_driver(client, task, start["driver_id"], poll_s=args.poll_s,
                                         task_timeout_s=args.task_timeout, interrupt=interrupt, log=log)
    except ToolFailure as exc:
        return TaskResult(task=task, status="failed", wall_s=time.monotonic() - started, error=str(exc))
    except Exception as exc:  # the server died or the connection broke: this task failed, the next one runs
        return TaskResult(task=task, status="failed", wall_s=time.monotonic() - started,
                          error=f"{type(exc).__name__}: {exc}".strip())
    finally:
        interrupt.client = None
        interrupt.driver_id = None
    wall_s = time.monotonic() - started
    summary = status.get("summary")
    if status.get("phase") == "done" and summary:
        return result_from_summary(task, summary, wall_s=wall_s)
    phase = str(status.get("phase"))
    error = status.get("error") or ("stopped before the final evaluation" if phase == "stopped"
                                    else f"the driver ended in phase {phase!r} without a summary")
    return TaskResult(task=task, status="stopped" if phase == "stopped" else "failed", wall_s=wall_s,
                      tree_id=status.get("tree_id"), rounds=status.get("rounds_done"),
                      best_validation=status.get("best_score"), error=str(error))


async def list_suite(params: StdioServerParameters, errlog: TextIO, *, mini: bool) -> list[str]:
    """The task names the server lists, mini tasks or full ones."""
    async with Client(stdio_client(params, errlog=errlog)) as client:
        listed = await call(client, "list_tasks", {})
    return [t["name"] for t in listed.get("tasks", []) if bool(t.get("mini")) == mini]


async def _watch_signals(interrupt: Interrupt, scope: anyio.CancelScope, log: Log) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if interrupt.requested:
                log("second interrupt: exiting now")
                scope.cancel()
                return
            interrupt.requested = True
            log("interrupt: stopping the running driver (press Ctrl-C again to exit at once)")
            if interrupt.client is not None and interrupt.driver_id is not None and not interrupt.stop_sent:
                interrupt.stop_sent = True
                try:
                    await call(interrupt.client, "stop_autonomous", {"driver_id": interrupt.driver_id})
                except Exception as exc:  # the poll loop reports the outcome; do not die in the watcher
                    log(f"stop_autonomous failed: {exc}")


async def run_suite(args: argparse.Namespace, *, log: Log, errlog: TextIO,
                    interrupt: Interrupt | None = None) -> list[TaskResult]:
    """Run `args.tasks` (or the mini suite) one after another; returns one row per task that was started."""
    interrupt = interrupt or Interrupt()
    params = server_parameters(args)
    results: list[TaskResult] = []
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            if sys.platform != "win32" and args.handle_signals:
                tg.start_soon(_watch_signals, interrupt, scope, log)
            tasks = list(args.tasks) if args.tasks else await list_suite(params, errlog, mini=True)
            if not tasks:
                log("no tasks to run")
            for number, task in enumerate(tasks, 1):
                if interrupt.requested:
                    break
                log(f"[{number}/{len(tasks)}] {task}")
                result = await run_task(params, task, args, interrupt=interrupt, log=log, errlog=errlog)
                results.append(result)
                log(f"{task}: {result.status}" + (f": {_short(result.error)}" if result.error else
                                                   f" | test {_fmt(result.test)} vs base {_fmt(result.base_test)}"))
            tg.cancel_scope.cancel()
    return results


# ---------------------------------------------------------------------------------------------- command line


def _bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ftbench_client.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--tasks", nargs="+", metavar="TASK",
                       help="tasks to run, e.g. ftbench/mini/sentiment or sst2 (default: the mini suite)")
    which.add_argument("--all-mini", action="store_true", help="run every mini task (the default)")
    budget = p.add_argument_group("budget (per task)")
    budget.add_argument("--rounds", type=_bounded(int, 1, 20), default=4, help="rounds after the baseline (1-20)")
    budget.add_argument("--runs-per-round", type=_bounded(int, 1, 5), default=3, help="variants per round (1-5)")
    budget.add_argument("--samples-per-round", type=_bounded(int, 1, 50_000), default=50_000,
                        help="training rows per run (the task's own budget may cap it lower)")
    budget.add_argument("--max-wall-s", type=_bounded(float, 1, 30 * 24 * 3600), default=None,
                        help="the server's wall-clock budget per search")
    budget.add_argument("--task-timeout", type=_bounded(float, 1, 30 * 24 * 3600), default=None,
                        help="client-side limit per task: past it the driver is stopped and the task fails")
    search = p.add_argument_group("search")
    search.add_argument("--policy", choices=["uct", "greedy", "random"], default="uct")
    search.add_argument("--planner", choices=["heuristic", "llm"], default="heuristic",
                        help="llm needs TREX_LLM_BASE_URL and TREX_LLM_MODEL (and TREX_LLM_API_KEY) set here")
    search.add_argument("--seed", type=_bounded(int, 0, 2**31 - 1), default=0)
    server = p.add_argument_group("server")
    server.add_argument("--home", type=Path, default=None, help="trex home (default: $TREX_HOME or ~/.trex)")
    server.add_argument("--data-root", action="append", type=Path, default=[],
                        help="a folder recipes may read local files from (repeatable)")
    server.add_argument("--capacity", type=_bounded(int, 1, 64), default=None, help="concurrent training runs")
    server.add_argument("--cold-workers", action="store_true",
                        help="start every run in a fresh process (default: the server keeps one warm CPU worker)")
    server.add_argument("--offline", action="store_true",
                        help="set HF_HUB_OFFLINE, HF_DATASETS_OFFLINE and TRANSFORMERS_OFFLINE for the server")
    server.add_argument("--server-log", type=Path, default=None, help="write the server's stderr here")
    server.add_argument("--server-log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="WARNING")
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    out.add_argument("--markdown", type=Path, metavar="FILE", help="write the results as a Markdown table")
    out.add_argument("--poll-s", type=_bounded(float, 0.05, 600), default=2.0, help="status poll interval")
    p.set_defaults(handle_signals=True)
    return p


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the suite from the command line. Returns the exit status (see the module docstring)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    command = shlex.join(["python", "examples/clients/ftbench_client.py", *(sys.argv[1:] if argv is None else argv)])
    started_wall = time.time()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[ftbench {time.monotonic() - started:7.1f}s] {message}", file=stderr, flush=True)

    interrupt = Interrupt()
    server_log: IO[str] | None = None
    try:
        server_log = args.server_log.open("a", encoding="utf-8") if args.server_log else None
        results = anyio.run(lambda: run_suite(args, log=log, errlog=server_log or sys.stderr, interrupt=interrupt))
    except KeyboardInterrupt:  # platforms without signal receivers
        interrupt.requested = True
        results = []
    finally:
        if server_log is not None:
            server_log.close()
    total = time.monotonic() - started
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
               if k not in ("handle_signals",)}
    if results:
        print(format_table(results), file=stdout, flush=True)
        print(f"total wall time {total:.0f} s", file=stdout, flush=True)
    if args.json:
        write_text_atomic(args.json, json.dumps(results_document(results, options=options, command=command,
                                                                 started_at=started_wall, total_wall_s=round(total, 1)),
                                                indent=2, default=str) + "\n")
    if args.markdown:
        write_text_atomic(args.markdown, format_markdown(results, command=command))
    if interrupt.requested:
        log("interrupted; finished rounds are kept in the trees (resume with trex-mcp --autonomous --resume TREE)")
        return 130
    failed = [r.task for r in results if r.status != "done"]
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
