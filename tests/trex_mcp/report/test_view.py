from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from tree_store import InMemoryTreeStore, State
from trex_mcp.report.errors import ReportError
from trex_mcp.report.page import jsonable, page_payload, runs_table
from trex_mcp.report.view import (
    best_node,
    best_path,
    compute_seconds,
    config_summary,
    normalised_gain,
    parse_export,
    recipe_summary,
    rounds_used,
    score_curves,
)


def test_parse_export_orders_nodes_by_number_and_groups_runs_by_node(small_tree: Any) -> None:
    data = parse_export(small_tree.store.export_tree(small_tree.tree_id))
    assert [n.number for n in data.nodes] == list(range(8))
    assert [r.number for r in data.runs_by_node[small_tree.ids[1]]] == [0, 1, 2]
    assert data.metric == "accuracy"
    assert rounds_used(data) == 7  # the root is the baseline, not a round of the budget


@pytest.mark.parametrize(("export", "field"), [
    ({"format": "other", "version": 1}, "format"),
    ({"format": "trex-tree", "version": 99}, "version"),
    ({"format": "trex-tree", "version": 1}, None),  # no "tree"
    ([1, 2], None),
])
def test_parse_export_refuses_what_is_not_a_readable_trex_tree(export: object, field: str | None) -> None:
    with pytest.raises(ReportError) as info:
        parse_export(export)  # type: ignore[arg-type]
    assert info.value.field == field
    assert str(info.value)


def test_best_node_follows_the_final_result_and_never_picks_a_vetoed_node(small_tree: Any) -> None:
    data = parse_export(small_tree.store.export_tree(small_tree.tree_id))
    best = best_node(data)
    assert best is not None and best.number == 3  # #4 scored higher but is vetoed
    assert best_path(data, best) == [small_tree.ids[0], small_tree.ids[1], small_tree.ids[3]]
    override = best_node(data, {"best_node_id": small_tree.ids[1]})
    assert override is not None and override.number == 1


def test_best_node_without_a_final_result_is_the_best_unvetoed_complete_node(build_tree: Callable[..., Any]) -> None:
    tree = build_tree(InMemoryTreeStore(), final=False)
    data = parse_export(tree.store.export_tree(tree.tree_id))
    best = best_node(data)
    assert best is not None and best.number == 3


def test_score_curves_only_rise_and_ignore_vetoed_scores(small_tree: Any) -> None:
    data = parse_export(small_tree.store.export_tree(small_tree.tree_id))
    curves = score_curves(data)
    assert curves["rounds"]["x"] == [0, 1, 3]
    assert curves["rounds"]["best"] == [0.62, 0.74, 0.81]
    assert curves["vetoed"]["score"] == [0.86]
    compute = curves["compute"]
    assert compute["x"] == sorted(compute["x"])  # cumulative
    assert compute["x"][-1] == pytest.approx(curves["total_compute_s"])
    assert curves["total_compute_s"] == pytest.approx(120 * 10 + 300)  # failed runs cost compute too
    best = [b for b in compute["best"] if b is not None]
    assert best == sorted(best) and best[-1] == 0.81
    points = curves["compute_points"]  # one per scored, unvetoed node, at its best run
    assert points["score"] == [0.62, 0.74, 0.81]
    assert points["x"] == sorted(points["x"])


def test_score_curves_respect_a_lower_is_better_metric() -> None:
    store = InMemoryTreeStore()
    tree = store.create_tree("loss", task_name="t", higher_is_better=False)
    root = store.add_node(tree.id, None)
    store.finish_node(root.id, State.COMPLETE, score=2.0)
    for score in (1.5, 3.0, 1.0):
        node = store.add_node(tree.id, root.id)
        store.finish_node(node.id, State.COMPLETE, score=score)
    data = parse_export(store.export_tree(tree.id))
    assert score_curves(data)["rounds"]["best"] == [2.0, 1.5, 1.5, 1.0]
    best = best_node(data)
    assert best is not None and best.score == 1.0


def test_summaries_name_sources_operators_and_the_deciding_config_choices() -> None:
    recipe = {"sources": [{"kind": "task", "name": "clean"}, {"kind": "hub", "name": "org/ds", "max_rows": 500}],
              "operators": [{"op": "dedup"}, {"op": "filter_length"}], "format": "prompt_completion"}
    assert recipe_summary(recipe) == "task:clean + hub:org/ds[500] → dedup → filter_length · prompt_completion"
    assert recipe_summary({}) == ""
    assert recipe_summary({"odd": 1}) == '{"odd":1}'
    config = {"method": "dpo", "adapter": "lora", "lora_r": 16, "learning_rate": 5e-5, "epochs": 2.0,
              "batch_size": 4, "grad_accum": 4, "warm_start": True}
    assert config_summary(config) == "dpo lora r16 lr 5e-5 2 ep bs 4×4 warm start"
    assert config_summary({"adapter": "full", "max_steps": 30}) == "full 30 steps"


def test_compute_and_gain_helpers_handle_missing_and_odd_values() -> None:
    assert compute_seconds({"device_s": 3.0, "wall_s": 9.0}) == 3.0
    assert compute_seconds({"gpu_hours": 0.5}) == 1800.0
    assert compute_seconds({"wall_s": 2}) == 2.0
    assert compute_seconds({"device_s": float("nan"), "tokens": 5}) is None
    assert normalised_gain(0.7, 0.5, 0.9) == pytest.approx(0.5)
    assert normalised_gain(0.7, 0.5, 0.5) is None
    assert normalised_gain(None, 0.5, 0.9) is None
    assert normalised_gain(float("nan"), 0.5, 0.9) is None


def test_jsonable_makes_strict_json_short_floats_and_clipped_text() -> None:
    out = jsonable({"a": float("nan"), "b": [float("inf"), -math.inf], "c": 0.123456789, "d": 1767225600.73,
                    "e": "x" * 20, "f": (1, 2), "g": object})
    assert out["a"] == "NaN" and out["b"] == ["Infinity", "-Infinity"]
    assert out["c"] == 0.123457 and out["d"] == 1767225601.0
    assert out["f"] == [1, 2] and isinstance(out["g"], str)
    assert jsonable("x" * 20, limit=5).startswith("xxxxx… [15 more")


def test_runs_table_has_one_row_per_run_with_node_numbers_and_failure_kinds(small_tree: Any) -> None:
    data = parse_export(small_tree.store.export_tree(small_tree.tree_id))
    table = runs_table(data)
    assert len(table["rows"]) == len(data.runs) == 12
    oom = [r for r in table["rows"] if r["failure"] == "oom"]
    assert len(oom) == 1 and oom[0]["node"] == 1 and oom[0]["score"] is None
    assert {c["key"] for c in table["columns"]} >= {"node", "run", "state", "score", "gain", "recipe", "config"}


def test_page_payload_keys_nodes_by_number_and_links_runs_insights_and_clicks(small_tree: Any) -> None:
    data = parse_export(small_tree.store.export_tree(small_tree.tree_id))
    payload = page_payload(data)
    assert payload["best"] == 3 and payload["best_path"] == [0, 1, 3]
    node1 = payload["nodes"]["1"]
    assert node1["pinned"] and node1["on_best_path"] and node1["children"] == 2
    assert [payload["runs"][i]["number"] for i in node1["runs"]] == [0, 1, 2]
    assert payload["runs"][node1["runs"][2]]["failure"]["kind"] == "oom"
    assert payload["insights"][node1["insights"][0]]["evidence"] == [1, 2]
    tree = payload["figures"]["tree"]
    nodes_trace = next(t for t in tree["data"] if t.get("name") == "nodes")
    assert nodes_trace["customdata"] == list(range(8))
    assert tree["layout"]["meta"]["ring_px"] > 0


def test_jsonable_turns_subclasses_and_enums_into_plain_json() -> None:
    from collections import OrderedDict

    out = jsonable({"state": State.COMPLETE, "od": OrderedDict(a=1.0), "flag": True, "n": 3})
    assert out == {"state": "COMPLETE", "od": {"a": 1.0}, "flag": True, "n": 3}
