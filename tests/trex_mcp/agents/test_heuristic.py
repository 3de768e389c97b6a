"""The heuristic planner: baseline first, one direction per round, learns from failures, never repeats."""

import pytest

from ftbench.registry import load_task
from trex_mcp.agents.heuristic import HeuristicPlanner, PlannerError
from trex_mcp.agents.state import PlanningState, RunRecord, variant_key


def _state(parent, parent_runs, all_runs, path, round_index=0, runs=3):
    task = load_task("ftbench/mini/sentiment").model_dump(mode="json")
    return PlanningState(task=task, parent=parent, parent_runs=parent_runs, all_runs=all_runs, path=path,
                         context_text="", runs_per_round=runs, max_samples=50_000, higher_is_better=True,
                         round_index=round_index)


ROOT = {"node_id": "root-node-0001", "number": 0, "parent_id": None, "strategy": "baseline"}


def _record(node, i, recipe, config, score=0.8, failure=None):
    return RunRecord(run_id=f"run-{node['number']}-{i}", node_id=node["node_id"], node_number=node["number"],
                     label=f"v{i}", recipe=recipe, config=config, state="FAIL" if failure else "COMPLETE",
                     score=None if failure else score, failure=failure, parent_node_id=node["parent_id"])


def test_first_round_under_the_root_compares_data_sources():
    plan = HeuristicPlanner().plan(_state(ROOT, [], [], [ROOT]))
    assert plan.strategy_kind == "refine_data"
    sources = [tuple(s.name for s in run.recipe.sources) for run in plan.runs]
    assert ("clean",) in sources and len(plan.runs) == 3


def test_the_planner_never_repeats_a_variant_over_many_rounds():
    planner = HeuristicPlanner(seed=3)
    all_runs: list[RunRecord] = []
    parent, path = ROOT, [ROOT]
    seen: set[str] = set()
    for round_index in range(12):
        parent_runs = [r for r in all_runs if r.node_id == parent["node_id"]]
        plan = planner.plan(_state(parent, parent_runs, all_runs, path, round_index))
        node = {"node_id": f"node-{round_index + 1:04d}-x", "number": round_index + 1,
                "parent_id": parent["node_id"], "strategy": plan.strategy_kind}
        for i, run in enumerate(plan.runs):
            recipe, config = run.recipe.model_dump(mode="json"), run.config.model_dump(mode="json")
            key = variant_key(recipe, config, parent["node_id"])
            assert key not in seen, f"round {round_index} repeats {run.label}"
            seen.add(key)
            all_runs.append(_record(node, i, recipe, config, score=0.5 + 0.01 * round_index + 0.001 * i))
        parent, path = node, [*path, node]  # always dig deeper: the hardest case for repeats


def test_nan_loss_in_the_parent_lowers_the_learning_rate():
    planner = HeuristicPlanner()
    base = planner.plan(_state(ROOT, [], [], [ROOT]))
    recipe, config = base.runs[0].recipe.model_dump(mode="json"), base.runs[0].config.model_dump(mode="json")
    node = {"node_id": "node-0001-x", "number": 1, "parent_id": ROOT["node_id"], "strategy": "refine_data"}
    runs = [_record(node, 0, recipe, config, score=0.7),
            _record(node, 1, recipe, {**config, "learning_rate": 0.05}, failure="nan_loss: loss was nan 3 times")]
    plan = planner.plan(_state(node, runs, runs, [ROOT, node], 1))
    assert plan.runs
    # Every variant starts from the learning rate divided by 10; the largest move (x2) stays well below the old one.
    assert all(r.config.learning_rate <= config["learning_rate"] / 5 + 1e-12 for r in plan.runs)


def test_a_task_without_training_sources_is_refused_with_a_hint():
    state = _state(ROOT, [], [], [ROOT])
    state.task["data"]["train"] = []
    with pytest.raises(PlannerError, match="no training sources"):
        HeuristicPlanner().plan(state)
