"""One round's life in the store: variants in, run specs out, and the node's completion.

These are the lab's helpers for rounds; they take the store and settings explicitly so that they can be tested
without a server. Completion (`complete_round`) is the only place that turns run scores into a node's score,
normalised reward, diagnosis and tree statistics.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftbench.spec import TaskSpec
from tree_store import Failure, FailureKind, Node, Run, State, Tree, TreeStore, is_valid_score, score_key
from trex_mcp.budget import BudgetError, TreeBudget
from trex_mcp.errors import TrexError
from trex_mcp.plans import RoundPlan
from trex_mcp.settings import Settings

if TYPE_CHECKING:
    from trex_mcp.execution.manager import JobManager
    from trex_mcp.execution.spec import RunSpec

log = logging.getLogger(__name__)


class RoundError(TrexError):
    """A round cannot be built as proposed."""


# ---------------------------------------------------------------------------- views


def node_line(node: Node) -> dict[str, Any]:
    """One line per node, for tree summaries."""
    return {"node_id": node.id, "number": node.number, "parent_id": node.parent_id, "depth": node.depth,
            "state": node.state.value, "strategy": node.strategy_kind,
            "direction": str((node.plan or {}).get("direction", ""))[:160], "score": node.score,
            "reward": node.reward, "visits": node.visits, "pinned": node.pinned, "vetoed": node.vetoed,
            "failure": None if node.failure is None else node.failure.kind.value}


def node_view(node: Node, runs: list[Run]) -> dict[str, Any]:
    """A node in full, with its runs."""
    view = node_line(node)
    view.update({"plan": node.plan, "diagnosis": node.diagnosis, "note": node.note, "cost": node.cost,
                 "failure": None if node.failure is None else node.failure.to_dict(),
                 "runs": [run_line(r) for r in runs]})
    return view


def run_line(run: Run) -> dict[str, Any]:
    """One line per run."""
    return {"run_id": run.id, "number": run.number, "label": run.meta.get("label", ""), "state": run.state.value,
            "score": run.score, "attempt": run.attempt,
            "failure": None if run.failure is None else f"{run.failure.kind.value}: {run.failure.message[:300]}"}


def run_view(run: Run) -> dict[str, Any]:
    """A run in full (recipe, config, metrics, artifacts, cost, job handle without internals)."""
    view = run_line(run)
    view.update({"node_id": run.node_id, "tree_id": run.tree_id, "recipe": run.recipe, "config": run.config,
                 "metrics": run.metrics, "artifacts": run.artifacts, "cost": run.cost, "retry_of": run.retry_of,
                 "job": {k: run.job.get(k) for k in ("backend", "attempt", "restart_count", "queued_at") if k in run.job},
                 "failure": None if run.failure is None else run.failure.to_dict()})
    return view


def task_brief(task: TaskSpec) -> dict[str, Any]:
    """What a planner needs to know about a task to write recipes."""
    return {"name": task.registry_name, "description": task.description, "base_model": task.base_model,
            "metric": task.evaluation.metric, "higher_is_better": task.higher_is_better,
            "input_field": task.input_field, "target_field": task.target_field,
            "prompt_template": task.prompt_template, "choices": task.evaluation.choices,
            "train_sources": [{"name": s.name, "kind": s.kind, "description": s.description} for s in task.data.train]}


def safe_progress(jobs: JobManager, run_id: str) -> dict[str, Any] | None:
    """The job manager's progress for a run, or None when it has none (never raises)."""
    try:
        status = jobs.status(run_id)
    except Exception:  # progress is decoration; a missing job must not fail a status call
        return None
    if hasattr(status, "model_dump"):
        return dict(status.model_dump(mode="json"))
    return dict(status.__dict__) if hasattr(status, "__dict__") else None


# ---------------------------------------------------------------------------- building


def _variant_key(recipe: dict[str, Any], config: dict[str, Any], warm_from: str | None) -> str:
    blob = json.dumps({"recipe": {k: v for k, v in recipe.items() if k != "description"}, "config": config,
                       "warm_from": warm_from}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def best_run(runs: list[Run], higher_is_better: bool) -> Run | None:
    """The COMPLETE run with the best valid score, or None."""
    scored = [r for r in runs if r.state == State.COMPLETE and is_valid_score(r.score)]
    return min(scored, key=lambda r: (score_key(r.score, higher_is_better), r.number)) if scored else None


def prepare_variants(store: TreeStore, tree: Tree, task: TaskSpec, parent: Node, plan: RoundPlan
                     ) -> list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """Check a plan's variants against the budget and earlier runs; returns (label, recipe, config, meta)."""
    limits = TreeBudget.model_validate(tree.budget)
    existing = {str(r.meta.get("key")): r for r in store.find_runs(tree_id=tree.id) if r.meta.get("key")}
    parent_best = best_run(store.list_runs(parent.id), tree.higher_is_better)
    out: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    for index, variant in enumerate(plan.runs):
        recipe = variant.recipe.model_dump(mode="json")
        if recipe.get("max_samples") is None:
            recipe["max_samples"] = limits.max_samples_per_round
        elif recipe["max_samples"] > limits.max_samples_per_round:
            raise BudgetError(f"runs[{index}].recipe.max_samples: {recipe['max_samples']} is over the budget of "
                              f"{limits.max_samples_per_round} samples per round", field=f"runs[{index}].recipe.max_samples")
        config = variant.config.model_dump(mode="json")
        warm_from = None
        if variant.config.warm_start:
            if parent_best is None or not parent_best.artifacts.get("adapter_dir"):
                raise RoundError(f"runs[{index}].config.warm_start: node #{parent.number} has no trained run to "
                                 "continue from", field=f"runs[{index}].config.warm_start",
                                 hint="set warm_start to false, or expand a node whose runs trained")
            warm_from = parent_best.id
        key = _variant_key(recipe, config, warm_from)
        if key in existing and existing[key].state != State.PRUNED:
            twin = existing[key]
            raise RoundError(f"runs[{index}] ('{variant.label}') repeats run {twin.id} (same recipe, config and "
                             "starting point); it would waste a run", field=f"runs[{index}]",
                             hint="change the data, a hyperparameter or the seed")
        if key in {m["key"] for *_, m in out}:
            raise RoundError(f"runs[{index}] ('{variant.label}') duplicates another run of this round",
                             field=f"runs[{index}]")
        out.append((variant.label, recipe, config, {"key": key, "warm_start_run": warm_from}))
    return out


def build_run_spec(store: TreeStore, settings: Settings, tree: Tree, node: Node, run: Run) -> RunSpec:
    """Materialise the run's recipe (cached, decontaminated) and write its spec. Raises TrexError subclasses."""
    from trex_mcp.execution.spec import RunSpec

    task = TaskSpec.model_validate(tree.task_snapshot)
    run_dir = settings.runs_dir / run.id
    common: dict[str, Any] = {
        "run_id": run.id, "tree_id": tree.id, "node_id": node.id,
        "task_name": str(tree.meta.get("task_ref") or tree.task_name), "task_snapshot": tree.task_snapshot,
        "base_model": task.base_model, "run_dir": run_dir, "models_dir": settings.models_dir,
        "heartbeat_s": settings.heartbeat_s,
    }
    if run.meta.get("baseline"):
        # Nothing is trained; the spec still names a (empty) dataset file so that it is self-describing.
        run_dir.mkdir(parents=True, exist_ok=True)
        empty = run_dir / "no-training.jsonl"
        empty.touch()
        return RunSpec(**common, dataset_file=empty, dataset_format="prompt_completion", config={}, train=False)
    from trex_mcp.recipes.materialize import materialize
    from trex_mcp.recipes.recipe import parse_recipe

    built = materialize(parse_recipe(run.recipe), task=task, settings=settings)
    contamination: Any = getattr(built, "contamination", None)
    store.record_run_artifacts(run.id, {
        "dataset_fingerprint": built.fingerprint, "dataset_rows": built.rows, "dataset_dir": str(built.dir),
        "operator_counts": _jsonable(built.operator_counts),
        "contamination": _jsonable(contamination.summary() if hasattr(contamination, "summary") else contamination),
    })
    warm = None
    if run.meta.get("warm_start_run"):
        parent_run = store.get_run(str(run.meta["warm_start_run"]))
        warm = Path(str(parent_run.artifacts["adapter_dir"]))
    return RunSpec(**common, dataset_file=built.data_file, dataset_format=built.format, config=run.config,
                   warm_start_adapter=warm)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dict__"):
        return _jsonable(vars(value))
    return value


def fail_unbuildable(store: TreeStore, run: Run, exc: BaseException) -> None:
    """A run whose recipe or spec could not be built fails as invalid_config, before taking a slot."""
    message = str(exc) if isinstance(exc, TrexError) else f"internal error while building the run ({type(exc).__name__})"
    store.finish_run(run.id, State.FAIL, failure=Failure(FailureKind.INVALID_CONFIG, message))


def prune_unsubmitted(store: TreeStore, run: Run) -> None:
    """Cancel a run that never reached the job manager."""
    store.finish_run(run.id, State.PRUNED, failure=Failure(FailureKind.CANCELLED, "cancelled before it started"))


# ---------------------------------------------------------------------------- completion


def _sum_cost(runs: list[Run]) -> dict[str, Any]:
    total: dict[str, float] = {"wall_s": 0.0, "device_s": 0.0, "tokens": 0.0}
    for run in runs:
        for key in total:
            value = run.cost.get(key)
            if isinstance(value, int | float) and value == value:
                total[key] += float(value)
    return {"wall_s": round(total["wall_s"], 3), "device_s": round(total["device_s"], 3), "tokens": int(total["tokens"])}


def _read_predictions(run: Run) -> list[dict[str, Any]]:
    path = run.artifacts.get("predictions")
    candidates = [Path(str(path))] if path else []
    if run.job.get("run_dir"):
        candidates.append(Path(str(run.job["run_dir"])) / "predictions.jsonl")
    for candidate in candidates:
        if candidate.exists():
            with candidate.open(encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]
    return []


def complete_round(store: TreeStore, tree: Tree, task: TaskSpec, node: Node, runs: list[Run]) -> Node:
    """Finish a RUNNING node whose runs are all finished: score, reward, diagnosis, back-up."""
    cost = _sum_cost(runs)
    best = best_run(runs, tree.higher_is_better)
    if best is None:
        if all(r.state == State.PRUNED for r in runs):
            return store.finish_node(node.id, State.PRUNED, cost=cost)
        failures = [r.failure for r in runs if r.failure is not None]
        kinds = Counter(f.kind for f in failures)
        kind = kinds.most_common(1)[0][0] if kinds else FailureKind.CRASH
        detail = "; ".join(f"run {i}: {f.kind.value}: {f.message[:160]}" for i, f in enumerate(failures))
        finished = store.finish_node(node.id, State.FAIL, cost=cost, failure=Failure(
            kind, f"all {len(runs)} run(s) failed: {detail}", log_tail=failures[0].log_tail if failures else ""))
        if node.parent_id is not None:
            store.backpropagate(node.id, 0.0)
        return finished
    assert best.score is not None
    if node.parent_id is None:  # the baseline round: its score is the tree's base score
        store.update_tree(tree.id, base_score=best.score)
        finished = store.finish_node(node.id, State.COMPLETE, score=best.score, reward=0.0, cost=cost,
                                     diagnosis=_diagnose(task, best))
        store.backpropagate(node.id, 0.0)
        return finished
    from trex_mcp.evaluation import normalised_gain

    base = tree.base_score if tree.base_score is not None else best.score
    reward = normalised_gain(best.score, base=base, reference=tree.reference_score,
                             higher_is_better=tree.higher_is_better, metric=task.evaluation.metric)
    parent = store.get_node(node.parent_id)
    finished = store.finish_node(node.id, State.COMPLETE, score=best.score, reward=reward, cost=cost,
                                 diagnosis=_diagnose(task, best, previous=parent.diagnosis))
    store.backpropagate(node.id, reward)
    return finished


def _diagnose(task: TaskSpec, run: Run, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The best run's diagnosis (compared with the parent's when there is one), as stored on the node."""
    predictions = _read_predictions(run)
    if not predictions:
        return {"summary": "no predictions were kept for this run", "best_run": run.id}
    from trex_mcp.evaluation import diagnose
    from trex_mcp.evaluation.diagnosis import Diagnosis

    # The stored diagnosis carries extra keys (group_counts, summary, best_run) that the Diagnosis model forbids.
    usable_previous = ({k: v for k, v in previous.items() if k in Diagnosis.model_fields}
                       if previous and "groups" in previous else None)
    try:
        diagnosis = diagnose(task, predictions, score=run.score, previous=usable_previous)
    except Exception as exc:  # completion runs in the job monitor: a diagnosis bug must not leave the node RUNNING
        log.exception("diagnosing run %s failed", run.id)
        return {"summary": f"diagnosis failed ({type(exc).__name__})", "best_run": run.id}
    return {**diagnosis.to_dict(), "group_counts": diagnosis.group_counts(), "summary": diagnosis.to_text(),
            "best_run": run.id}
