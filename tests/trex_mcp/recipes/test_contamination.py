from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.recipes import check_contamination, materialize
from trex_mcp.settings import Settings

from .conftest import make_rows, make_task

MINI = Path(__file__).resolve().parents[3] / "ftbench" / "data" / "mini" / "sentiment"


def _eval(task: TaskSpec) -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for split, src in (("validation", task.data.validation), ("test", task.data.test)):
        rows = [json.loads(x) for x in Path(src.path or "").read_text().splitlines()]
        out.append((split, rows))
    return out


def _edit(text: str, n: int) -> str:
    """Change n small words, as a careless scraper would."""
    swaps = {"the": "this", "was": "is", "felt": "seemed", "found": "thought", "is": "was", "this": "that"}
    words = text.split()
    done = 0
    for i, w in enumerate(words):
        if done < n and w in swaps:
            words[i] = swaps[w]
            done += 1
    return " ".join(words)


def test_near_copies_of_eval_items_are_flagged_with_source_and_eval_id(task: TaskSpec) -> None:
    evals = _eval(task)
    val, test = evals[0][1], evals[1][1]
    copies = [_edit(val[i]["text"], 1) for i in range(3)] + [_edit(test[i]["text"], 2) for i in range(2)]
    clean = [r["text"] for r in make_rows("c", 200, 7, "c")]
    rows = [{"prompt": f"Review: {t}\nSentiment:", "completion": " positive"} for t in clean + copies]
    labels = ["clean"] * len(clean) + ["noisy"] * len(copies)
    report = check_contamination(rows, task, sources=labels, eval_data=evals)
    assert report.per_source["clean"].flagged == 0 and report.per_source["clean"].checked == 200
    assert report.per_source["noisy"].flagged == 5
    assert report.flagged_indices == list(range(200, 205))
    assert report.per_split == {"validation": 3, "test": 2}
    assert [e.eval_id for e in report.examples] == [val[0]["id"], val[1]["id"], val[2]["id"], test[0]["id"],
                                                    test[1]["id"]]
    assert all(e.source == "noisy" and e.score >= 0.8 for e in report.examples)
    assert "noisy: 5" in report.summary()


def test_long_eval_text_copied_inside_a_longer_row_is_flagged(data_root: Path) -> None:
    task = make_task(data_root)
    long_text = " ".join(f"word{i % 37} filler{i}" for i in range(45))  # 90 words
    evals = [("validation", [{"id": "long-1", "text": long_text, "label": "positive"}]), ("test", [])]
    edited = long_text.replace("filler10 ", "other10 ").replace("filler30 ", "other30 ")
    rows = [f"intro words here. {edited} and a closing remark",
            " ".join(f"word{i % 37} thing{i}" for i in range(45))]  # same common words, no rare ones
    report = check_contamination(rows, task, eval_data=evals)
    assert report.flagged_indices == [0]


def test_short_eval_text_is_flagged_only_when_the_row_is_little_more_than_it(task: TaskSpec) -> None:
    evals = [("validation", [{"id": "s1", "text": "zorblat rocks", "label": "positive"}]), ("test", [])]
    rows = [{"prompt": "Review: Zorblat rocks!\nSentiment:", "completion": " positive"},
            {"prompt": "Review: my friend said zorblat rocks but the case broke after a week\nSentiment:",
             "completion": " negative"}]
    report = check_contamination(rows, task, eval_data=evals)
    assert report.flagged_indices == [0]


def test_decontaminate_removes_flagged_rows_and_counts_them(data_root: Path, settings: Settings) -> None:
    probe = make_task(data_root)
    val = _eval(probe)[0][1]
    noisy = make_rows("n", 50, 11, "n") + [{"id": f"copy{i}", "text": _edit(val[i]["text"], 1), "label": "positive"}
                                           for i in range(4)]
    task = make_task(data_root, train={"clean": make_rows("c", 60, 3, "c"), "noisy": noisy})
    recipe: dict[str, Any] = {"sources": [{"kind": "task", "name": "clean"}, {"kind": "task", "name": "noisy"}]}
    built = materialize(recipe, task=task, settings=settings)
    assert ("decontaminate", 114, 110) in [(c.op, c.rows_in, c.rows_out) for c in built.operator_counts]
    assert built.contamination.removed_rows == 4 and built.contamination.per_source["noisy"].flagged == 4
    assert built.source_rows == {"clean": 60, "noisy": 50}
    prompts = {json.loads(x)["prompt"] for x in built.data_file.read_text().splitlines()}
    assert not any(task.prompt_template.format(input=_edit(val[i]["text"], 1)) in prompts for i in range(4))
    report_only = materialize({**recipe, "decontaminate": False}, task=task, settings=settings)
    assert report_only.rows == 114 and report_only.contamination.flagged_rows == 4
    assert report_only.contamination.removed_rows == 0


@pytest.mark.skipif(not (MINI / "manifest.json").is_file(), reason="mini sentiment data not generated")
def test_mini_sentiment_planted_near_copies_are_caught_without_false_positives(settings: Settings) -> None:
    from ftbench.registry import load_task

    task = load_task("mini/sentiment")
    planted = json.loads((MINI / "manifest.json").read_text())["noisy"]["planted_near_copies"]
    recipe = {"sources": [{"kind": "task", "name": n} for n in ("clean", "noisy", "offdomain")], "shuffle": False}
    built = materialize(recipe, task=task, settings=settings)
    report = built.contamination
    assert report.per_source["clean"].flagged == 0 and report.per_source["offdomain"].flagged == 0
    assert 8 <= report.per_source["noisy"].flagged <= 12
    assert report.per_source["noisy"].flagged >= len(planted) - 1
    noisy = {r["id"]: r["text"] for r in map(json.loads, (MINI / "train_noisy.jsonl").read_text().splitlines())}
    planted_eval_ids = {p["eval_id"] for p in planted}
    assert {e.eval_id for e in report.examples} <= planted_eval_ids
    prompts = {json.loads(x)["prompt"] for x in built.data_file.read_text().splitlines()}
    left = [p["train_id"] for p in planted if task.prompt_template.format(input=noisy[p["train_id"]]) in prompts]
    assert len(left) <= 1, left  # the planted copies were removed
