"""The service layer: every MCP tool and the autonomous driver go through a `Lab`.

A Lab owns the tree store, the job manager and the research client of one server process. It turns planner
intents (create a tree, propose a round, launch it, finalise) into store records and jobs, and completes a round
when its last run finishes (node score, normalised reward, diagnosis, back-up of the tree statistics).

Guarantees: budgets are checked here, whoever plans; the test split is only evaluated by `finalize`, after the
tree is marked finished; every state change is a store write, so a crashed server loses nothing it acknowledged
(runs it had launched are re-attached or failed by the job manager's reconciliation on the next start).
Not covered: planning itself (agents/), the MCP surface (tools/).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftbench.registry import list_tasks, load_task
from ftbench.spec import TaskSpec
from tree_store import Insight, Node, Run, SQLiteTreeStore, State, Tree, TreeStore, UpdateFinishedError
from trex_mcp import rounds
from trex_mcp.budget import TreeBudget, check_new_round, usage
from trex_mcp.errors import TrexError
from trex_mcp.plans import RoundPlan
from trex_mcp.search.memory import build_context
from trex_mcp.search.policies import Backup, NoCandidateError, PolicyName, select
from trex_mcp.settings import Settings

if TYPE_CHECKING:
    from trex_mcp.execution.manager import JobManager
    from trex_mcp.research import Research

log = logging.getLogger(__name__)


class LabError(TrexError):
    """A request the lab refuses (wrong state, unknown task, ...)."""


class Lab:
    """One server's services. Thread-safe: tools run in worker threads."""

    def __init__(self, settings: Settings, *, store: TreeStore | None = None, start_jobs: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        settings.ensure_dirs()
        self.settings = settings
        self.clock = clock
        self.store: TreeStore = store if store is not None else SQLiteTreeStore(settings.store_path)
        self._lock = threading.RLock()
        self._jobs: JobManager | None = None
        self._research: Research | None = None
        self._closed = False
        if start_jobs:
            self.jobs.reconcile()
            self._resume_unsubmitted()

    # ------------------------------------------------------------------ parts, built lazily

    @property
    def jobs(self) -> JobManager:
        """The job manager (created on first use)."""
        with self._lock:
            if self._jobs is None:
                from trex_mcp.execution.manager import JobManager

                self._jobs = JobManager(self.store, self.settings, on_finish=self._on_run_finished,
                                        warm_worker=self.settings.warm_worker)
            return self._jobs

    @property
    def research(self) -> Research:
        """The research client (papers, Hub), created on first use."""
        with self._lock:
            if self._research is None:
                from trex_mcp.research import Research

                self._research = Research(self.settings)
            return self._research

    def close(self) -> None:
        """Stop the job monitor (running jobs keep running and are re-attached next start) and close the store."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._jobs is not None:
                self._jobs.close()
            self.store.close()

    # ------------------------------------------------------------------ tasks

    def list_tasks(self) -> list[TaskSpec]:
        """Every registered FT-Bench task."""
        return list_tasks()

    def get_task(self, name: str) -> TaskSpec:
        """A task by registry name or YAML path. Raises ftbench errors with close matches."""
        return load_task(name)

    def task_of(self, tree: Tree) -> TaskSpec:
        """The task snapshot a tree was created with."""
        return TaskSpec.model_validate(tree.task_snapshot)

    # ------------------------------------------------------------------ trees

    def create_tree(self, task: str, *, name: str | None = None, budget: dict[str, Any] | None = None) -> Tree:
        """Create a search for `task` and launch its baseline (the base model scored on validation).

        The root node is the baseline round; its score is the tree's base score once it finishes.
        """
        spec = self.get_task(task)
        if spec.unsafe_code and not self.settings.allow_unsafe_code:
            raise LabError(f"task {spec.registry_name} executes model output and is off by default",
                           field="task", hint="the operator must start the server with --allow-unsafe-code")
        overrides = dict(budget or {})
        # The task's limits are the ceiling: an override may only tighten them (a mini task's short budget keeps
        # `--autonomous` with the default --rounds 20 to the task's own max_rounds).
        for key, ceiling in (("max_rounds", spec.budgets.max_rounds),
                             ("max_samples_per_round", spec.budgets.max_samples_per_round)):
            if isinstance(overrides.get(key), int) and overrides[key] > ceiling:
                overrides[key] = ceiling
        limits = TreeBudget.model_validate({
            "max_rounds": spec.budgets.max_rounds,
            "runs_per_round": spec.budgets.runs_per_round,
            "max_samples_per_round": spec.budgets.max_samples_per_round,
            **overrides,
        })
        tree = self.store.create_tree(
            name or f"{spec.name} search",
            task_name=spec.registry_name,
            higher_is_better=spec.higher_is_better,
            task_snapshot=spec.model_dump(mode="json"),
            reference_score=spec.scores.reference,
            budget=limits.model_dump(mode="json"),
            meta={"task_ref": task if task.endswith((".yaml", ".yml")) else spec.registry_name},
        )
        root = self.store.add_node(tree.id, None, strategy_kind="baseline", plan={
            "direction": f"Score the base model {spec.base_model} on the validation split",
            "hypothesis": "The baseline every later round is measured against.",
        })
        self.store.add_run(root.id, recipe={}, config={}, meta={"label": "base model", "baseline": True})
        self.launch_round(root.id)
        return self.store.get_tree(tree.id)

    def get_tree(self, tree_id: str) -> Tree:
        return self.store.get_tree(tree_id)

    def list_trees(self) -> list[Tree]:
        return self.store.list_trees()

    def tree_summary(self, tree_id: str) -> dict[str, Any]:
        """A compact view of a tree: task, budget and usage, best node, one line per node."""
        tree = self.store.get_tree(tree_id)
        nodes = self.store.list_nodes(tree_id)
        best = self.store.best_node(tree_id)
        return {
            "tree_id": tree.id,
            "name": tree.name,
            "task": tree.task_name,
            "status": tree.status,
            "higher_is_better": tree.higher_is_better,
            "base_score": tree.base_score,
            "reference_score": tree.reference_score,
            "budget": tree.budget,
            "usage": usage(self.store, tree, now=self.clock()),
            "best_node": None if best is None else {"node_id": best.id, "number": best.number,
                                                    "score": best.score, "reward": best.reward},
            "final": tree.meta.get("final"),
            "nodes": [rounds.node_line(n) for n in nodes],
        }

    # ------------------------------------------------------------------ nodes and rounds

    def get_node(self, node_id: str) -> dict[str, Any]:
        """A node with its runs."""
        node = self.store.get_node(node_id)
        return rounds.node_view(node, self.store.list_runs(node_id))

    def suggest_next(self, tree_id: str, *, policy: PolicyName | None = None, c: float = 1.0,
                     backup: Backup = "mean", max_chars: int = 4000, seed: int | None = None) -> dict[str, Any]:
        """The node the policy would expand next, its reasons, and the memory context for planning."""
        tree = self.store.get_tree(tree_id)
        nodes = self.store.list_nodes(tree.id)
        if any(n.parent_id is None and n.state == State.FAIL for n in nodes):
            root = next(n for n in nodes if n.parent_id is None)
            reason = root.failure.message if root.failure else "unknown"
            raise LabError(f"the baseline round failed, so there is no base score to improve on: {reason}",
                           field="tree_id", hint="fix the task's base model or data, then create a new tree")
        rng = random.Random(seed) if seed is not None else None
        try:
            selection = select(nodes, policy=policy or self.settings.policy, c=c, backup=backup, rng=rng)
        except NoCandidateError as exc:
            raise LabError(str(exc), field="tree_id", hint="wait for running rounds (wait_round) first") from exc
        context = build_context(self.store, selection.node_id, max_chars=max_chars)
        return {
            "node_id": selection.node_id,
            "number": selection.number,
            "policy": selection.policy,
            "reason": selection.reason,
            "candidates": [c_.__dict__ for c_ in selection.candidates[:8]],
            "context": context.to_dict(),
            "task": rounds.task_brief(self.task_of(tree)),
            "budget_left": self._budget_left(tree),
        }

    def _budget_left(self, tree: Tree) -> dict[str, Any]:
        used = usage(self.store, tree, now=self.clock())
        limits = TreeBudget.model_validate(tree.budget)
        return {"rounds": limits.max_rounds - used["rounds"], "runs_per_round": limits.runs_per_round,
                "max_samples_per_round": limits.max_samples_per_round}

    def propose_round(self, tree_id: str, parent_id: str, plan: RoundPlan) -> dict[str, Any]:
        """Add a WAITING round under `parent_id` with one run per variant. Checks budget and duplicates."""
        with self._lock:
            tree = self.store.get_tree(tree_id)
            if tree.status != "active":
                raise LabError(f"tree {tree_id} is {tree.status}; no new rounds", field="tree_id")
            parent = self.store.get_node(parent_id)
            if parent.tree_id != tree.id:
                raise LabError(f"node {parent_id} belongs to another tree", field="parent_id")
            if parent.state != State.COMPLETE:
                raise LabError(f"node #{parent.number} is {parent.state.value}; only COMPLETE nodes get children",
                               field="parent_id", hint="wait for the round to finish, or pick another node")
            if parent.vetoed:
                raise LabError(f"node #{parent.number} is vetoed by a human; pick another parent", field="parent_id")
            check_new_round(self.store, tree, runs=len(plan.runs), now=self.clock())
            task = self.task_of(tree)
            variants = rounds.prepare_variants(self.store, tree, task, parent, plan)
            node = self.store.add_node(tree.id, parent.id, strategy_kind=plan.strategy_kind, plan={
                "direction": plan.direction, "hypothesis": plan.hypothesis,
                "runs": [r.label for r in plan.runs]})
            for label, recipe, config, meta in variants:  # meta: {"key", "warm_start_run"}, read back top-level
                self.store.add_run(node.id, recipe=recipe, config=config, meta={"label": label, **meta})
            return self.get_node(node.id)

    def launch_round(self, node_id: str) -> dict[str, Any]:
        """Start a WAITING round: its runs are built and submitted in the background; returns at once."""
        node = self.store.get_node(node_id)
        if not self.store.claim_node(node_id, now=self.clock()):
            raise LabError(f"round #{node.number} is {self.store.get_node(node_id).state.value}, not WAITING; "
                           "it was already launched", field="node_id")
        threading.Thread(target=self._submit_round, args=(node_id,), name=f"launch-{node.number}",
                         daemon=True).start()
        return self.get_node(node_id)

    def _submit_round(self, node_id: str) -> None:
        node = self.store.get_node(node_id)
        tree = self.store.get_tree(node.tree_id)
        for run in self.store.list_runs(node_id):
            if run.state != State.WAITING or run.job:
                continue
            try:
                spec = rounds.build_run_spec(self.store, self.settings, tree, node, run)
            except TrexError as exc:
                rounds.fail_unbuildable(self.store, run, exc)
                continue
            except Exception as exc:  # a bug while building must fail the run, not hang the round
                log.exception("building run %s failed", run.id)
                rounds.fail_unbuildable(self.store, run, exc)
                continue
            try:
                self.jobs.submit(run.id, spec)
            except UpdateFinishedError:
                log.info("run %s was finished (cancelled) while its round was being launched", run.id)
        self._maybe_complete(node_id)

    def _resume_unsubmitted(self) -> None:
        """Runs of RUNNING rounds that never reached the job manager (server died while launching)."""
        for tree in self.store.list_trees(status="active"):
            for node in self.store.list_nodes(tree.id, state=State.RUNNING):
                if any(r.state == State.WAITING and not r.job for r in self.store.list_runs(node.id)):
                    threading.Thread(target=self._submit_round, args=(node.id,), daemon=True).start()
                else:
                    self._maybe_complete(node.id)

    def _on_run_finished(self, run: Run) -> None:
        self._maybe_complete(run.node_id)

    def _maybe_complete(self, node_id: str) -> None:
        with self._lock:
            node = self.store.get_node(node_id)
            if node.state != State.RUNNING:
                return
            runs = self.store.list_runs(node_id)
            if any(not r.state.is_finished() for r in runs):
                return
            tree = self.store.get_tree(node.tree_id)
            rounds.complete_round(self.store, tree, self.task_of(tree), node, runs)

    def round_status(self, node_id: str) -> dict[str, Any]:
        """Progress of a round: state, runs finished, each run's state and last progress."""
        node = self.store.get_node(node_id)
        runs = self.store.list_runs(node_id)
        views = []
        for run in runs:
            view = rounds.run_line(run)
            if run.state == State.RUNNING and self._jobs is not None:
                view["progress"] = rounds.safe_progress(self.jobs, run.id)
            views.append(view)
        return {"node_id": node.id, "number": node.number, "state": node.state.value, "done": node.state.is_finished(),
                "runs_finished": sum(1 for r in runs if r.state.is_finished()), "runs_total": len(runs),
                "score": node.score, "reward": node.reward, "runs": views}

    # ------------------------------------------------------------------ runs

    def get_run(self, run_id: str) -> dict[str, Any]:
        run = self.store.get_run(run_id)
        view = rounds.run_view(run)
        if run.state == State.RUNNING:
            view["progress"] = rounds.safe_progress(self.jobs, run.id)
        return view

    def cancel(self, *, run_id: str | None = None, node_id: str | None = None) -> list[dict[str, Any]]:
        """Cancel one run, or every unfinished run of a round. Returns the runs' new views."""
        if (run_id is None) == (node_id is None):
            raise LabError("give exactly one of run_id or node_id", field="run_id")
        targets = [self.store.get_run(run_id)] if run_id else self.store.list_runs(str(node_id))
        out = []
        for run in targets:
            if not run.state.is_finished():
                if run.job or run.state == State.RUNNING:
                    self.jobs.cancel(run.id)
                else:
                    rounds.prune_unsubmitted(self.store, run)
            out.append(rounds.run_line(self.store.get_run(run.id)))
        if node_id is not None:
            # A proposed round that never launched is closed too (PRUNED), so it does not block finalize.
            if self.store.get_node(node_id).state == State.WAITING:
                self.store.claim_node(node_id, now=self.clock())
            self._maybe_complete(node_id)
        return out

    def run_log(self, run_id: str, lines: int = 50) -> str:
        """The last `lines` lines of a run's training log."""
        run = self.store.get_run(run_id)
        path = Path(str(run.job.get("run_dir") or self.settings.runs_dir / run.id)) / "train.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    # ------------------------------------------------------------------ human input and lessons

    def annotate(self, node_id: str, *, pinned: bool | None = None, vetoed: bool | None = None,
                 note: str | None = None) -> dict[str, Any]:
        node = self.store.set_flags(node_id, pinned=pinned, vetoed=vetoed, note=note)
        return rounds.node_line(node)

    def record_insight(self, tree_id: str, text: str, *, evidence: list[str], scope: str = "tree",
                       effect: float | None = None) -> Insight:
        return self.store.add_insight(tree_id, text, evidence=evidence, scope=scope, effect=effect)

    def add_llm_tokens(self, tree_id: str, tokens: int) -> dict[str, Any]:
        """Count LLM planner tokens against the tree's budget; returns the new total."""
        with self._lock:
            tree = self.store.get_tree(tree_id)
            total = int(tree.meta.get("llm_tokens") or 0) + int(tokens)
            self.store.update_tree(tree_id, meta={"llm_tokens": total})
            return {"tree_id": tree_id, "llm_tokens": total, "limit": tree.budget.get("max_llm_tokens")}

    def diagnosis(self, node_id: str) -> dict[str, Any]:
        """A finished round's diagnosis (bad cases of its best run), or why there is none yet."""
        node = self.store.get_node(node_id)
        if not node.state.is_finished():
            raise LabError(f"round #{node.number} is {node.state.value}; its diagnosis comes when it finishes",
                           field="node_id", hint="call wait_round first")
        return {"node_id": node.id, "number": node.number, "state": node.state.value, "score": node.score,
                "reward": node.reward, "diagnosis": node.diagnosis,
                "failure": None if node.failure is None else node.failure.to_dict(),
                "runs": [rounds.run_line(r) for r in self.store.list_runs(node_id)]}

    # ------------------------------------------------------------------ recipes

    def preview_recipe(self, task: str, recipe: dict[str, Any], n: int = 3) -> dict[str, Any]:
        """Formatted examples, token-length statistics and the contamination report of a recipe."""
        from trex_mcp.recipes.preview import preview
        from trex_mcp.recipes.recipe import parse_recipe

        spec = self.get_task(task)
        result = preview(parse_recipe(recipe), task=spec, settings=self.settings, n=n)
        return result.model_dump(mode="json")

    # ------------------------------------------------------------------ the end of a search

    def finalize(self, tree_id: str) -> dict[str, Any]:
        """Close the search and score its best node once on the test split; writes the HTML report."""
        from trex_mcp.finalize import finalize_tree

        with self._lock:
            tree = self.store.get_tree(tree_id)
            running = [n for n in self.store.list_nodes(tree_id) if not n.state.is_finished()]
            if running:
                raise LabError(f"{len(running)} round(s) still unfinished (e.g. #{running[0].number})",
                               field="tree_id", hint="wait for them or cancel them before finalising")
            return finalize_tree(self.store, self.settings, tree)

    def nodes(self, tree_id: str) -> list[Node]:
        return self.store.list_nodes(tree_id)
