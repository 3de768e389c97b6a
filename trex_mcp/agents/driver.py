"""The autonomous driver: plan, run, evaluate, diagnose, and choose where to dig next, round after round.

The driver is an MCP client of the server (in-memory `Client(server)`), so it uses exactly the tools a desktop
client uses, and the server enforces the budgets. Every decision is a store write made by a tool, so a driver
killed mid-round loses nothing: `--resume <tree>` waits for rounds that were running (their jobs are re-attached
or failed by the server's reconciliation), launches rounds that were proposed but not launched, and never re-runs
a finished round.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from typing import Any, Literal, TextIO

from mcp import Client
from pydantic import BaseModel, ConfigDict, Field

from trex_mcp.agents.heuristic import HeuristicPlanner, PlannerError
from trex_mcp.agents.state import PlanningState, RunRecord, variant_key
from trex_mcp.errors import TrexError


class DriverError(TrexError):
    """A tool call the driver depends on failed."""


SETTLE_S = 120.0  # longest a round may stay unfinished after its last run finished


class _BudgetSpent(Exception):
    """The server refused a new round because a tree budget is spent (rounds, wall time, device hours, tokens)."""


class DriverOptions(BaseModel):
    """How an autonomous search runs."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(None, description="Task name or YAML path (not needed when resuming).")
    planner: Literal["heuristic", "llm"] = "heuristic"
    policy: Literal["uct", "greedy", "random"] = "uct"
    exploration: float = Field(1.0, ge=0.0, le=10.0)
    rounds: int = Field(20, ge=1, le=20, description="Rounds after the baseline.")
    runs_per_round: int = Field(3, ge=1, le=5)
    samples_per_round: int = Field(50_000, ge=1, le=50_000)
    max_wall_s: float | None = Field(None, gt=0)
    max_device_hours: float | None = Field(None, gt=0)
    max_llm_tokens: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0)
    resume_tree_id: str | None = None
    quiet: bool = False
    finalize: bool = True


class AutonomousDriver:
    """Runs one search through the server's tools. `run()` is a coroutine; `stop()` may be called from any thread."""

    def __init__(self, server: Any, options: DriverOptions, *, lab: Any = None, out: TextIO | None = None,
                 planner: Any = None) -> None:
        self.server = server
        self.options = options
        self.lab = lab
        self.out = out or sys.stderr
        self.planner = planner or self._make_planner()
        self.tree_id: str | None = options.resume_tree_id
        self.phase = "starting"
        self.rounds_done = 0
        self.rounds_planned = options.rounds
        self.best_score: float | None = None
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None
        self.events: deque[str] = deque(maxlen=50)
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._current_node: str | None = None

    def _make_planner(self) -> Any:
        if self.options.planner == "llm":
            from trex_mcp.agents.llm import LLMPlanner

            return LLMPlanner.from_env(seed=self.options.seed)
        return HeuristicPlanner(seed=self.options.seed)

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        """Ask the search to stop: the running round is cancelled, finished rounds are kept."""
        self._stop.set()
        self._say("stop requested")

    def status(self) -> dict[str, Any]:
        """Where the search stands."""
        return {"phase": self.phase, "tree_id": self.tree_id, "rounds_done": self.rounds_done,
                "rounds_planned": self.rounds_planned, "best_score": self.best_score,
                "current_node": self._current_node, "elapsed_s": round(time.monotonic() - self._started, 1),
                "events": list(self.events)[-10:], "summary": self.summary, "error": self.error}

    def _say(self, message: str) -> None:
        self.events.append(message)
        if not self.options.quiet:
            print(f"[trex {time.monotonic() - self._started:7.1f}s] {message}", file=self.out, flush=True)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> dict[str, Any] | None:
        """Run the search to its end; returns the summary (None if stopped before finalising)."""
        failure: BaseException | None = None
        async with Client(self.server) as client:
            self.client = client
            try:
                await self._search()
            except TrexError as exc:  # raised after the client closes, so it is not wrapped in a task group
                self.error = str(exc)
                self.phase = "failed"
                self._say(f"failed: {exc}")
                failure = exc
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                self.phase = "failed"
                failure = exc
        if failure is not None:
            raise failure
        return self.summary

    async def _call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        if result.is_error:
            text = result.content[0].text if result.content else "unknown error"  # type: ignore[union-attr]
            raise DriverError(f"{tool}: {text}")
        return dict(result.structured_content or {})

    async def _search(self) -> None:
        if self.tree_id is None:
            if not self.options.task:
                raise DriverError("a task is needed to start a search", field="task")
            budget = {"max_rounds": self.options.rounds, "runs_per_round": self.options.runs_per_round,
                      "max_samples_per_round": self.options.samples_per_round}
            for key in ("max_wall_s", "max_device_hours", "max_llm_tokens"):
                if getattr(self.options, key) is not None:
                    budget[key] = getattr(self.options, key)
            created = await self._call("create_tree", {"task": self.options.task, "budget": budget})
            self.tree_id = created["tree_id"]
            self._say(f"tree {self.tree_id} on {created['task']}: baseline round launched")
            await self._wait(created["root_node_id"], "baseline")
        else:
            await self._resume()
        tree = await self._call("get_tree", {"tree_id": self.tree_id})
        self.rounds_done = sum(1 for n in tree["nodes"] if n["parent_id"] is not None)
        self.best_score = (tree.get("best_node") or {}).get("score")
        if tree["status"] == "active":
            await self._rounds(tree)
        if self.options.finalize and not self._stop.is_set():
            self.phase = "finalising"
            self._say("evaluating the best node once on the test split")
            final = await self._call("finalize_tree", {"tree_id": self.tree_id})
            tree = await self._call("get_tree", {"tree_id": self.tree_id})
            self.summary = self._summary(tree, final)
            self.phase = "done"
        else:
            self.phase = "stopped"

    async def _resume(self) -> None:
        assert self.tree_id is not None
        self.phase = "resuming"
        tree = await self._call("get_tree", {"tree_id": self.tree_id})
        self._say(f"resuming tree {self.tree_id} ({len(tree['nodes'])} nodes, status {tree['status']})")
        for node in tree["nodes"]:
            if node["state"] == "WAITING":
                await self._call("launch_round", {"node_id": node["node_id"]})
                self._say(f"round #{node['number']} was proposed but not launched: launched")
            if node["state"] in ("WAITING", "RUNNING"):
                finished = await self._wait(node["node_id"], f"round #{node['number']} (resumed)")
                if node["parent_id"] is not None:
                    await self._learn(finished, await self._call("get_node", {"node_id": node["node_id"]}))

    async def _rounds(self, tree: dict[str, Any]) -> None:
        # The tree's own budget (e.g. a mini task's max_rounds) may be tighter than --rounds.
        self.rounds_planned = min(self.options.rounds, int(tree.get("budget", {}).get("max_rounds") or 20))
        while self.rounds_done < self.rounds_planned and not self._stop.is_set():
            self.phase = "planning"
            suggestion = await self._call("suggest_next_node", {
                "tree_id": self.tree_id, "policy": self.options.policy, "exploration": self.options.exploration,
                "seed": self.options.seed + self.rounds_done})
            if int(suggestion.get("budget_left", {}).get("rounds", 1)) <= 0:
                # The tree's own budget (e.g. the task's max_rounds) can be tighter than --rounds.
                self._say("the tree's round budget is spent; ending the search")
                return
            try:
                node = await self._plan_and_propose(suggestion)
            except _BudgetSpent as exc:
                self._say(f"{exc}; ending the search")
                return
            if node is None:
                self._say("no planner proposal left for any expandable node; ending the search")
                return
            self._current_node = node["node_id"]
            await self._call("launch_round", {"node_id": node["node_id"]})
            label = f"round {self.rounds_done + 1}/{self.rounds_planned} (#{node['number']})"
            finished = await self._wait(node["node_id"], label)
            self.rounds_done += 1
            await self._learn(finished, node)
            self._current_node = None

    async def _plan_and_propose(self, suggestion: dict[str, Any]) -> dict[str, Any] | None:
        parents = [suggestion["node_id"]] + [c["node_id"] for c in suggestion.get("candidates", [])
                                             if c["node_id"] != suggestion["node_id"]]
        for parent_id in parents[:4]:
            state = await self._planning_state(parent_id, suggestion)
            for _attempt in range(3):
                try:
                    plan = self.planner.plan(state)
                except PlannerError as exc:
                    self._say(f"planner: {exc}")
                    break
                finally:  # tokens of failed attempts count against the budget too
                    await self._report_llm_usage()
                try:
                    node = await self._call("propose_round", {"tree_id": self.tree_id, "parent_id": parent_id,
                                                              "plan": plan.model_dump(mode="json")})
                except DriverError as exc:
                    text = str(exc)
                    if "budget:" in text:
                        raise _BudgetSpent(text.split("budget:", 1)[1].strip().split(" (", 1)[0]) from None
                    if text.rstrip().endswith("Error executing tool propose_round"):
                        raise  # an internal server error: nothing the planner can fix
                    # A refused plan (a repeated run, a bound, a parent that changed state): tell the planner why,
                    # so that its next attempt differs, and never offer the same variants again.
                    self._say(f"plan refused: {text[:300]}")
                    state.rejections.append(text)
                    for run in plan.runs:
                        state.excluded_keys.add(variant_key(run.recipe.model_dump(mode="json"),
                                                            run.config.model_dump(mode="json"), parent_id))
                    if " is vetoed" in text or "only COMPLETE nodes" in text:
                        break
                    continue
                why = suggestion["reason"] if parent_id == suggestion["node_id"] else "next candidate"
                self._say(f"expand #{state.parent['number']} ({why}) -> {plan.strategy_kind}: {plan.direction}")
                return node
        return None

    async def _report_llm_usage(self) -> None:
        used = int(getattr(self.planner, "tokens_since_report", 0) or 0)
        if used:
            await self._call("record_llm_usage", {"tree_id": self.tree_id, "tokens": used})
            self.planner.tokens_since_report = 0

    async def _planning_state(self, parent_id: str, suggestion: dict[str, Any]) -> PlanningState:
        tree = await self._call("get_tree", {"tree_id": self.tree_id})
        task = await self._call("get_task", {"task": tree["task"]})
        parent = await self._call("get_node", {"node_id": parent_id})
        records: list[RunRecord] = []
        parent_runs: list[RunRecord] = []
        by_id = {n["node_id"]: n for n in tree["nodes"]}
        for line in tree["nodes"]:
            node = parent if line["node_id"] == parent_id else await self._call("get_node", {"node_id": line["node_id"]})
            for run_line in node["runs"]:
                run = await self._call("get_run", {"run_id": run_line["run_id"]})
                record = RunRecord(run_id=run["run_id"], node_id=line["node_id"], node_number=line["number"],
                                   label=run["label"], recipe=run["recipe"], config=run["config"], state=run["state"],
                                   score=run["score"], failure=run["failure"]["kind"] + ": " + run["failure"]["message"]
                                   if run["failure"] else None, parent_node_id=line["parent_id"])
                records.append(record)
                if line["node_id"] == parent_id:
                    parent_runs.append(record)
        path: list[dict[str, Any]] = []
        cursor: str | None = parent_id
        while cursor is not None:
            path.insert(0, by_id[cursor])
            cursor = by_id[cursor]["parent_id"]
        budget = suggestion.get("budget_left", {})
        return PlanningState(task=task, parent=parent, parent_runs=parent_runs, all_runs=records, path=path,
                             context_text=suggestion["context"]["text"],
                             runs_per_round=min(self.options.runs_per_round, int(budget.get("runs_per_round", 5))),
                             max_samples=int(budget.get("max_samples_per_round", self.options.samples_per_round)),
                             higher_is_better=bool(tree["higher_is_better"]), round_index=self.rounds_done,
                             seed=self.options.seed)

    async def _wait(self, node_id: str, label: str) -> dict[str, Any]:
        self.phase = "running"
        last = None
        settled_since: float | None = None
        while True:
            if self._stop.is_set():
                await self._call("cancel_run", {"node_id": node_id})
            status = await self._call("wait_round", {"node_id": node_id, "timeout_s": 5.0})
            progress = (status["runs_finished"], status["runs_total"])
            if progress != last and not status["done"]:
                running = [r for r in status["runs"] if r["state"] == "RUNNING"]
                self._say(f"{label}: {progress[0]}/{progress[1]} runs finished, {len(running)} running")
                last = progress
            if status["done"]:
                break
            # Every run finished but the round did not: the server's completion step failed. Waiting longer
            # would hang the search, so say so (the server log has the traceback).
            if status["runs_total"] and status["runs_finished"] == status["runs_total"]:
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > SETTLE_S:
                    raise DriverError(f"{label}: all {status['runs_total']} runs finished {SETTLE_S:.0f}s ago but "
                                      "the round did not complete; the server failed to score it (see its log)",
                                      hint=f"fix the cause, then resume with --resume {self.tree_id}")
            else:
                settled_since = None
        for run in status["runs"]:
            score = "n/a" if run["score"] is None else f"{run['score']:.4f}"
            extra = f"  [{run['failure']}]" if run["failure"] else ""
            self._say(f"  run {run['number']} '{run['label']}': {run['state']} score {score}{extra}")
        tree = await self._call("get_tree", {"tree_id": self.tree_id})
        self.best_score = (tree.get("best_node") or {}).get("score")
        score = "n/a" if status["score"] is None else f"{status['score']:.4f}"
        best = "n/a" if self.best_score is None else f"{self.best_score:.4f}"
        self._say(f"{label} {status['state']}: score {score} | best so far {best}")
        return status

    async def _learn(self, status: dict[str, Any], node: dict[str, Any]) -> None:
        """Record the round's lesson: its change of score against its parent, and its best run's diagnosis."""
        if status["state"] not in ("COMPLETE", "FAIL"):
            return
        parent = await self._call("get_node", {"node_id": node["parent_id"]})
        plan = node.get("plan") or {}
        if status["state"] == "FAIL":
            diag = await self._call("get_diagnosis", {"node_id": node["node_id"]})
            failure = (diag.get("failure") or {}).get("message", "")[:300]
            text = f"'{plan.get('direction', '')[:120]}' failed: {failure}"
            effect = None
        else:
            delta = (status["score"] or 0.0) - (parent.get("score") or 0.0)
            verb = "improved" if delta > 0 else "did not improve"
            text = (f"{node.get('strategy') or plan.get('strategy')}: '{plan.get('direction', '')[:140]}' {verb} the "
                    f"score from {parent.get('score')} to {status['score']}")
            effect = round(delta, 6)
        await self._call("record_insight", {"tree_id": self.tree_id, "text": text[:1900],
                                            "evidence": [node["node_id"], node["parent_id"]],
                                            "scope": str(node.get("strategy") or "tree"), "effect": effect})

    def _summary(self, tree: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
        usage = tree.get("usage", {})
        return {"tree_id": tree["tree_id"], "task": tree["task"], "metric": final.get("metric"),
                "base_validation": tree.get("base_score"), "best_validation": final.get("validation_score"),
                "base_test": final.get("base_test_score"), "test": final.get("test_score"),
                "normalised_gain": final.get("normalised_gain"), "rounds": usage.get("rounds"),
                "runs": usage.get("runs"), "wall_s": round(time.monotonic() - self._started, 1),
                "device_hours": usage.get("device_hours"), "train_tokens": usage.get("train_tokens"),
                "llm_tokens": usage.get("llm_tokens"), "best_node": final.get("best_node_number"),
                "report": final.get("report")}


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-search table printed by the CLI."""
    def fmt(value: Any, key: str = "") -> str:
        if isinstance(value, float):
            return f"{value:.1f}" if key.startswith("wall") else f"{value:.4f}"
        return "n/a" if value is None else str(value)

    rows = [("task", summary["task"]), ("metric", summary["metric"]),
            ("base (validation)", summary["base_validation"]), ("best (validation)", summary["best_validation"]),
            ("base (test)", summary["base_test"]), ("best node (test)", summary["test"]),
            ("normalised gain (test)", summary["normalised_gain"]), ("rounds", summary["rounds"]),
            ("runs", summary["runs"]), ("wall time (s)", summary["wall_s"]),
            ("device hours", summary["device_hours"]), ("training tokens", summary["train_tokens"]),
            ("LLM tokens", summary["llm_tokens"]), ("tree", summary["tree_id"]), ("report", summary["report"])]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {fmt(v, k)}" for k, v in rows)


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, default=str)
