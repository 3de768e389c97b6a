"""The llm planner through the real `openai` client against a loopback server replaying scripted answers.

An invalid answer (not JSON, or a plan that breaks a bound) goes back to the model with the validation error;
three bad answers in a row are a PlannerError; every response's tokens are counted; the API key never leaks.
The last test runs a one-round search with `--planner llm` through the driver and checks the tree's token count.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import pytest

from trex_mcp.agents.heuristic import PlannerError
from trex_mcp.agents.llm import LLMPlanner

from .conftest import API_KEY, Answer, ReplayServer, planning_state, run_search

TINY_CONFIG = {"method": "sft", "adapter": "lora", "lora_r": 8, "lora_alpha": 16, "learning_rate": 5e-3,
               "modules_to_save": ["embed_tokens"], "max_steps": 30, "batch_size": 16, "max_length": 128,
               "scheduler": "constant", "save_steps": 30, "seed": 7}


def _run(label: str, sources: list[str], **config: Any) -> dict[str, Any]:
    return {"label": label, "recipe": {"sources": [{"kind": "task", "name": n} for n in sources]},
            "config": {**TINY_CONFIG, **config}}


def _plan(*runs: dict[str, Any]) -> dict[str, Any]:
    return {"strategy_kind": "refine_data", "direction": "Train on the clean source alone",
            "hypothesis": "Clean labels teach the negation rule; the noisy source teaches it wrong.",
            "runs": list(runs) or [_run("clean", ["clean"])]}


def _planner(replay: ReplayServer) -> LLMPlanner:
    return LLMPlanner(base_url=replay.url, model="replay-model", api_key=API_KEY, timeout_s=10.0)


def _leaks(exc: BaseException) -> bool:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + str(getattr(exc, "hint", ""))
    return API_KEY in text


def test_a_valid_plan_is_accepted_and_its_tokens_counted(replay: ReplayServer) -> None:
    replay.answers = [Answer(json.dumps(_plan()), tokens=(300, 40))]
    planner = _planner(replay)
    plan = planner.plan(planning_state())
    assert [r.label for r in plan.runs] == ["clean"]
    assert plan.runs[0].config.max_steps == 30
    assert planner.tokens_used == 340 and planner.tokens_since_report == 340
    assert len(replay.seen) == 1
    request = replay.seen[0]
    assert request.authorization == f"Bearer {API_KEY}"
    assert request.body["model"] == "replay-model"
    system = request.body["messages"][0]
    assert system["role"] == "system" and '"RoundPlan"' in system["content"]  # the plan's JSON schema is given
    assert "train_sources" in replay.user_texts(0)[0] and "noisy" in replay.user_texts(0)[0]


def test_a_reply_in_a_json_fence_with_prose_around_it_is_accepted(replay: ReplayServer) -> None:
    replay.answers = [Answer("Here is my plan:\n```json\n" + json.dumps(_plan()) + "\n```\nGood luck.")]
    assert _planner(replay).plan(planning_state()).strategy_kind == "refine_data"


def test_invalid_json_is_sent_back_with_the_error_and_the_corrected_answer_is_accepted(replay: ReplayServer) -> None:
    bad = '{"strategy_kind": "refine_data", "direction": "oops", '
    replay.answers = [Answer(bad, tokens=(200, 10)), Answer(json.dumps(_plan()), tokens=(260, 40))]
    planner = _planner(replay)
    plan = planner.plan(planning_state())
    assert plan.runs[0].label == "clean"
    assert len(replay.seen) == 2
    follow_up = replay.seen[1].body["messages"]
    assert follow_up[-2] == {"role": "assistant", "content": bad}  # the model sees its own bad answer
    assert "That plan is invalid" in follow_up[-1]["content"] and "JSON" in follow_up[-1]["content"]
    assert planner.tokens_used == 210 + 300


@pytest.mark.parametrize(("bad_plan", "error_text"), [
    (_plan(_run("too hot", ["clean"], learning_rate=5.0)), "runs.0.config.learning_rate"),
    (_plan(*[_run(f"v{i}", ["clean"], seed=i) for i in range(6)]), "runs: List should have at most 5 items"),
    (_plan(*[_run(f"v{i}", ["clean"], seed=i) for i in range(4)]), "at most 3 runs per round, got 4"),
    (_plan(_run("no data", [])), "runs.0.recipe.sources"),
], ids=["learning-rate-5", "six-runs", "more-runs-than-the-round-allows", "no-sources"])
def test_a_plan_that_breaks_a_bound_is_sent_back_with_the_error_and_corrected(replay: ReplayServer, bad_plan: dict[str, Any], error_text: str) -> None:
    replay.answers = [Answer(json.dumps(bad_plan)), Answer(json.dumps(_plan()))]
    plan = _planner(replay).plan(planning_state(runs_per_round=3))
    assert [r.label for r in plan.runs] == ["clean"]
    assert len(replay.seen) == 2
    correction = replay.user_texts(1)[-1]
    assert error_text in correction, correction


def test_three_bad_answers_in_a_row_raise_a_planner_error_naming_the_last_problem(replay: ReplayServer) -> None:
    replay.answers = [Answer("no plan, sorry"), Answer(json.dumps(_plan(_run("x", ["clean"], learning_rate=5.0)))),
                      Answer(json.dumps({"strategy_kind": "teleport", "direction": "up", "hypothesis": "yes",
                                         "runs": []})),
                      Answer(json.dumps(_plan()))]  # never asked for: three attempts in all
    planner = _planner(replay)
    with pytest.raises(PlannerError, match="no valid plan in 3 attempts") as caught:
        planner.plan(planning_state())
    assert "strategy_kind" in str(caught.value)
    assert len(replay.seen) == 3 and len(replay.answers) == 1
    assert planner.tokens_used == 3 * 120  # failed attempts cost tokens too


def test_server_refusals_are_shown_to_the_model_on_the_next_call(replay: ReplayServer) -> None:
    refusal = "propose_round: runs[0] ('clean') repeats run 3f2a (same recipe, config and starting point)"
    replay.answers = [Answer(json.dumps(_plan()))]
    _planner(replay).plan(planning_state(rejections=[refusal]))
    assert refusal in replay.user_texts(0)[0]


def test_the_api_key_never_appears_in_errors(replay: ReplayServer) -> None:
    # An endpoint that echoes the key it was given (some do) in a 401 body.
    replay.answers = [Answer(status=401, body={"error": {"message": f"Incorrect API key provided: {API_KEY}",
                                                         "type": "invalid_request_error", "code": "invalid_api_key"}})]
    planner = _planner(replay)
    with pytest.raises(PlannerError, match="AuthenticationError") as caught:
        planner.plan(planning_state())
    assert not _leaks(caught.value)
    # A model that parrots the key in three bad answers.
    replay.answers = [Answer(f"my key is {API_KEY}"), Answer(f'{{"direction": "{API_KEY}"}}'),
                      Answer(json.dumps(_plan(_run(API_KEY[:80], ["clean"], learning_rate=9.0))))]
    with pytest.raises(PlannerError) as caught:
        planner.plan(planning_state())
    assert not _leaks(caught.value)
    assert API_KEY not in json.dumps(planner.describe())


def test_an_unreachable_endpoint_is_a_planner_error_with_a_hint(replay: ReplayServer) -> None:
    planner = LLMPlanner(base_url="http://127.0.0.1:9/v1", model="m", api_key=API_KEY, timeout_s=2.0)
    planner.client = planner.client.with_options(max_retries=0)
    with pytest.raises(PlannerError, match="LLM endpoint failed") as caught:
        planner.plan(planning_state())
    assert "TREX_LLM_BASE_URL" in (caught.value.hint or "") and not _leaks(caught.value)


def test_the_llm_planner_needs_its_endpoint_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TREX_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("TREX_LLM_MODEL", raising=False)
    with pytest.raises(PlannerError, match="TREX_LLM_BASE_URL"):
        LLMPlanner.from_env()


# ---------------------------------------------------------------------------- through the driver


@pytest.mark.slow  # a whole search in a subprocess / through the LLM planner: CI runs it in its slow stage
@pytest.mark.timeout(600)
def test_a_one_round_search_with_the_llm_planner_records_its_tokens_on_the_tree(replay: ReplayServer, agents_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tree_store import State, open_store
    from trex_mcp.agents.driver import DriverOptions
    from trex_mcp.settings import Settings

    monkeypatch.setenv("TREX_LLM_BASE_URL", replay.url)
    monkeypatch.setenv("TREX_LLM_MODEL", "replay-model")
    monkeypatch.setenv("TREX_LLM_API_KEY", API_KEY)
    # The first answer breaks a bound, so the tree's token count must include a failed attempt.
    replay.answers = [Answer(json.dumps(_plan(_run("too hot", ["clean"], learning_rate=5.0))), tokens=(500, 50))]
    replay.fallback = Answer(json.dumps(_plan(_run("clean, 30 steps", ["clean"]))), tokens=(700, 60))
    settings = Settings(home=agents_home, heartbeat_s=1.0)
    options = DriverOptions(task="ftbench/mini/sentiment", planner="llm", rounds=1, runs_per_round=1, quiet=False)
    result = run_search(settings, options)

    assert result.summary is not None, result.output
    assert result.summary["llm_tokens"] == replay.tokens_served == 550 + 760
    assert len(replay.seen) == 2
    store = open_store(settings.store_path)
    try:
        tree = store.get_tree(result.tree_id)
        assert tree.meta["llm_tokens"] == 1310 and tree.status == "finished"
        round_one = [n for n in store.list_nodes(tree.id) if n.parent_id is not None]
        assert len(round_one) == 1 and round_one[0].state == State.COMPLETE, result.output
        (run,) = store.list_runs(round_one[0].id)
        assert [s["name"] for s in run.recipe["sources"]] == ["clean"] and run.recipe["decontaminate"] is True
        assert run.config["max_steps"] == 30 and run.score is not None
    finally:
        store.close()
    assert API_KEY not in result.output
