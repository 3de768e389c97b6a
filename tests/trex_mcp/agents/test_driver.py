"""A whole autonomous search on mini/sentiment through AutonomousDriver (the in-memory MCP client).

One search (heuristic planner, UCT, 1 round of 2 runs after the baseline: the heuristic's comparison of data
sources, which trains on the clean and on the noisy source) is shared by every test of this module. It trains
real tiny models, so it takes a minute or two on a loaded 2-core machine. Deeper searches are exercised by the
slow resume test and by benchmarks/bench_policies.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tree_store import Run, State, TreeStore, open_store
from trex_mcp.agents.driver import DriverOptions, format_summary
from trex_mcp.settings import Settings

from .conftest import SearchResult, run_search

pytestmark = pytest.mark.timeout(900)

DATA = Path(__file__).resolve().parents[3] / "ftbench" / "data" / "mini" / "sentiment"


@pytest.fixture(scope="module")
def search(agents_home: Path) -> SearchResult:
    settings = Settings(home=agents_home, heartbeat_s=1.0)
    options = DriverOptions(task="ftbench/mini/sentiment", planner="heuristic", policy="uct", rounds=1,
                            runs_per_round=2, seed=0)
    return run_search(settings, options)


@pytest.fixture(scope="module")
def store(search: SearchResult) -> Iterator[TreeStore]:
    the_store = open_store(search.settings.store_path)
    yield the_store
    the_store.close()


def _trained_runs(store: TreeStore, tree_id: str) -> list[Run]:
    return [r for r in store.find_runs(tree_id=tree_id) if not r.meta.get("baseline")]


def test_the_summary_reports_base_best_validation_test_and_normalised_gain(search: SearchResult) -> None:
    summary = search.summary
    assert summary is not None, search.output
    for key in ("base_validation", "best_validation", "base_test", "test", "normalised_gain"):
        assert isinstance(summary[key], float), (key, summary)
    assert summary["metric"] == "accuracy" and summary["rounds"] == 1
    assert summary["best_validation"] > summary["base_validation"]
    table = format_summary(summary)
    assert "normalised gain (test)" in table and summary["tree_id"] in table


def test_the_best_test_score_is_clearly_above_the_base_model(search: SearchResult) -> None:
    summary = search.summary
    assert summary is not None
    # The untrained tiny model does not even produce a label; trained on clean data it reaches ~0.9.
    assert summary["test"] >= summary["base_test"] + 0.3, summary
    assert summary["normalised_gain"] > 0.3


def test_every_round_finished_and_no_run_is_left_running(search: SearchResult, store: TreeStore) -> None:
    nodes = store.list_nodes(search.tree_id)
    assert [n.number for n in nodes] == [0, 1]
    assert all(n.state.is_finished() for n in nodes)
    assert not [r for r in store.find_runs(tree_id=search.tree_id) if not r.state.is_finished()]
    assert store.get_tree(search.tree_id).status == "finished"
    trained = [r for r in _trained_runs(store, search.tree_id) if r.state == State.COMPLETE]
    assert len(trained) == 2, [(r.meta.get("label"), r.state, r.failure) for r in _trained_runs(store, search.tree_id)]


def _planted_texts() -> dict[str, str]:
    """Texts of the near-copies of evaluation reviews planted in the noisy source."""
    manifest = json.loads((DATA / "manifest.json").read_text())
    ids = {p["train_id"] for p in manifest["noisy"]["planted_near_copies"]}
    rows = [json.loads(line) for line in (DATA / "train_noisy.jsonl").read_text().splitlines() if line.strip()]
    return {r["id"]: r["text"] for r in rows if r["id"] in ids}


def _training_prompts(run: Run) -> list[str]:
    data = Path(str(run.artifacts["dataset_dir"])) / "data.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    return [str(r.get("prompt", "")) + str(r.get("messages", "")) for r in rows]


def test_no_run_trained_on_the_planted_near_copies_of_evaluation_reviews(search: SearchResult, store: TreeStore) -> None:
    planted = _planted_texts()
    assert len(planted) == 10
    used_noisy = 0
    for run in _trained_runs(store, search.tree_id):
        assert run.recipe.get("decontaminate") is True, run.recipe
        report = str(run.artifacts.get("contamination", ""))
        names = {s.get("name") for s in run.recipe["sources"]}
        if "noisy" not in names:
            continue
        used_noisy += 1
        removed = re.search(r"removed (\d+)", report)
        assert removed and int(removed.group(1)) > 0, report
        steps: list[dict[str, Any]] = run.artifacts.get("operator_counts") or []
        decon = [s for s in steps if s.get("op") == "decontaminate"]
        assert decon and decon[0]["rows_in"] > decon[0]["rows_out"], steps
        prompts = "\n".join(_training_prompts(run))
        leaked = [i for i, text in planted.items() if text in prompts]
        assert not leaked, f"run {run.meta.get('label')} trained on planted rows {leaked}"
    assert used_noisy >= 1, "the search never used the noisy source; the check above did not run"


def test_insights_were_recorded_for_the_rounds(search: SearchResult, store: TreeStore) -> None:
    insights = store.list_insights(search.tree_id)
    assert len(insights) >= 1
    assert all(len(i.evidence) >= 1 for i in insights)
    assert any("score" in i.text for i in insights)


def test_the_report_file_exists_and_names_the_tree(search: SearchResult) -> None:
    assert search.summary is not None
    report = Path(str(search.summary["report"]))
    assert report.is_file() and report.suffix == ".html"
    assert search.tree_id in report.read_text(encoding="utf-8")


def test_progress_lines_say_what_the_search_did(search: SearchResult) -> None:
    out = search.output
    assert "baseline round launched" in out
    assert "expand #0" in out and "round 1/1 (#1) COMPLETE" in out
    assert "evaluating the best node once on the test split" in out


# ---------------------------------------------------------------------------- driver behaviour without training


class _ScriptedPlanner:
    """Returns the given plans in turn and remembers the server refusals it was shown."""

    name = "scripted"

    def __init__(self, plans: list[dict[str, Any]]) -> None:
        self.plans = plans
        self.calls = 0
        self.rejections_seen: list[list[str]] = []
        self.tokens_since_report = 0

    def plan(self, state: Any) -> Any:
        from trex_mcp.plans import RoundPlan

        self.rejections_seen.append(list(state.rejections))
        plan = self.plans[min(self.calls, len(self.plans) - 1)]
        self.calls += 1
        self.tokens_since_report += 10  # as an LLM planner would: every attempt costs tokens
        return RoundPlan.model_validate(plan)


def _lab_with_a_finished_baseline(home: Path, monkeypatch: pytest.MonkeyPatch, budget: dict[str, Any],
                                  child_score: float = 0.05) -> Any:
    """A Lab whose rounds finish at once without any job: the root scores 0.1, every later run `child_score`
    (and gets a fake adapter folder, so that warm starts have something to continue from)."""
    from trex_mcp.lab import Lab

    lab = Lab(Settings(home=home, heartbeat_s=1.0), start_jobs=False)

    def finish_at_once(node_id: str) -> dict[str, Any]:
        assert lab.store.claim_node(node_id)
        is_root = lab.store.get_node(node_id).parent_id is None
        for run in lab.store.list_runs(node_id):
            assert lab.store.claim_run(run.id)
            if not is_root:
                lab.store.record_run_artifacts(run.id, {"adapter_dir": str(home / "adapters" / run.id)})
            lab.store.finish_run(run.id, State.COMPLETE, score=0.1 if is_root else child_score)
        lab._maybe_complete(node_id)
        return lab.get_node(node_id)

    monkeypatch.setattr(lab, "launch_round", finish_at_once)
    tree = lab.create_tree("ftbench/mini/sentiment", budget=budget)
    return lab, tree


def _drive(lab: Any, tree_id: str, planner: Any, **options: Any) -> tuple[Any, str]:
    import io

    import anyio

    from trex_mcp.agents.driver import AutonomousDriver
    from trex_mcp.server import build_server

    server = build_server(lab.settings, lab=lab)  # the caller closes the lab (and so the server)
    out = io.StringIO()
    driver = AutonomousDriver(server, DriverOptions(resume_tree_id=tree_id, finalize=False, **options), lab=lab,
                              out=out, planner=planner)
    anyio.run(driver.run)
    return driver, out.getvalue()


def test_a_budget_override_cannot_raise_the_tasks_own_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, tree = _lab_with_a_finished_baseline(tmp_path, monkeypatch, {"max_rounds": 20, "runs_per_round": 2,
                                                                      "max_samples_per_round": 50_000})
    try:
        # mini/sentiment allows 8 rounds of at most 4,000 samples: `--rounds 20` (the CLI default) stays within.
        assert tree.budget["max_rounds"] == 8 and tree.budget["max_samples_per_round"] == 4000
        assert tree.budget["runs_per_round"] == 2
        assert lab.store.get_tree(tree.id).base_score == 0.1
    finally:
        lab.close()


def test_a_refused_plan_is_fed_back_to_the_planner_and_its_tokens_are_still_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, tree = _lab_with_a_finished_baseline(tmp_path, monkeypatch, {"max_rounds": 2})
    # warm_start under the root is refused by the server: the root has no trained run to continue from.
    warm = {"strategy_kind": "warm_start", "direction": "continue from the base model", "hypothesis": "it helps",
            "runs": [{"label": "warm", "recipe": {"sources": [{"kind": "task", "name": "clean"}]},
                      "config": {"warm_start": True}}]}
    planner = _ScriptedPlanner([warm])
    try:
        driver, out = _drive(lab, tree.id, planner, rounds=1)
        assert planner.calls == 3  # three attempts under the only expandable node, then the search ends
        assert planner.rejections_seen[0] == []
        assert "no trained run to continue from" in planner.rejections_seen[1][0]
        assert len(planner.rejections_seen[2]) == 2
        assert "plan refused" in out and "no planner proposal left" in out
        assert lab.store.get_tree(tree.id).meta["llm_tokens"] == 30
        assert [n.number for n in lab.store.list_nodes(tree.id)] == [0]
        assert driver.phase == "stopped" and driver.error is None
    finally:
        lab.close()


def test_the_search_ends_cleanly_when_the_trees_round_budget_is_spent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, tree = _lab_with_a_finished_baseline(tmp_path, monkeypatch, {"max_rounds": 1})
    root = lab.store.list_nodes(tree.id)[0]
    child = lab.store.add_node(tree.id, root.id, strategy_kind="refine_data", plan={"direction": "done earlier"})
    lab.store.claim_node(child.id)
    lab.store.finish_node(child.id, State.FAIL)
    planner = _ScriptedPlanner([])
    try:
        # --rounds 5 asks for more than the tree's budget of 1 round: the driver plans nothing and stops cleanly.
        driver, _out = _drive(lab, tree.id, planner, rounds=5)
        assert planner.calls == 0 and driver.error is None
        assert driver.status()["rounds_planned"] == 1
    finally:
        lab.close()


def test_a_token_budget_refused_by_the_server_ends_the_search_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, tree = _lab_with_a_finished_baseline(tmp_path, monkeypatch, {"max_rounds": 3, "max_llm_tokens": 5})
    plan = {"strategy_kind": "refine_data", "direction": "clean only", "hypothesis": "clean labels",
            "runs": [{"label": "clean", "recipe": {"sources": [{"kind": "task", "name": "clean"}]}}]}
    planner = _ScriptedPlanner([plan])  # spends 10 tokens per plan: over the budget of 5 after the first
    try:
        driver, out = _drive(lab, tree.id, planner, rounds=3)
        assert "LLM tokens reached the limit of 5" in out and "ending the search" in out
        assert planner.calls == 1 and driver.error is None
        assert [n.number for n in lab.store.list_nodes(tree.id)] == [0]
    finally:
        lab.close()


def test_expanding_the_root_again_never_repeats_a_variant_the_tree_already_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trex_mcp.agents.heuristic import HeuristicPlanner

    # Children score below the base, so greedy keeps expanding the root: the planner must move on to the
    # variants it has not run yet (and the server would refuse a repeat).
    lab, tree = _lab_with_a_finished_baseline(tmp_path, monkeypatch, {"max_rounds": 3, "runs_per_round": 2})
    try:
        _driver, out = _drive(lab, tree.id, HeuristicPlanner(seed=0), rounds=3, policy="greedy", runs_per_round=2)
        assert "plan refused" not in out
        nodes = lab.store.list_nodes(tree.id)
        assert [n.parent_id for n in nodes[1:]] == [nodes[0].id] * 3
        variants = [(tuple(s["name"] for s in r.recipe["sources"]), r.config.get("seed"))
                    for n in nodes[1:] for r in lab.store.list_runs(n.id)]
        assert len(variants) == 6 and len(set(variants)) == 6, variants
    finally:
        lab.close()


def test_the_server_refuses_a_repeated_run_and_keeps_the_warm_start_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trex_mcp.plans import RoundPlan
    from trex_mcp.rounds import RoundError

    lab, tree = _lab_with_a_finished_baseline(tmp_path, monkeypatch, {"max_rounds": 5})
    root = lab.store.list_nodes(tree.id)[0]
    clean = {"label": "clean", "recipe": {"sources": [{"kind": "task", "name": "clean"}]}, "config": {"max_steps": 5}}
    plan = RoundPlan.model_validate({"strategy_kind": "refine_data", "direction": "clean only",
                                     "hypothesis": "clean labels", "runs": [clean]})
    try:
        first = lab.propose_round(tree.id, root.id, plan)
        with pytest.raises(RoundError, match="repeats run"):
            lab.propose_round(tree.id, root.id, plan)
        lab.launch_round(first["node_id"])
        (parent_run,) = lab.store.list_runs(first["node_id"])
        warm = RoundPlan.model_validate({"strategy_kind": "warm_start", "direction": "continue", "hypothesis": "more",
                                         "runs": [{**clean, "config": {"max_steps": 5, "warm_start": True}}]})
        node = lab.propose_round(tree.id, first["node_id"], warm)
        (run,) = lab.store.list_runs(node["node_id"])
        # The run must know which run's adapter it continues from, or the worker trains from scratch.
        assert run.meta["warm_start_run"] == parent_run.id and isinstance(run.meta["key"], str)
    finally:
        lab.close()
