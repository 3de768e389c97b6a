"""Benchmark recipe materialisation: a 50,000-row build, a cache hit, and the contamination check.

Run: python benchmarks/bench_recipes.py [--rows 50000]

The task is mini/sentiment (its validation/test data are the contamination reference). The training source is
a synthetic JSONL file of review-like rows written to a temporary data root, with 2% exact duplicates and 20
planted near-copies of evaluation items. Everything runs offline in a temporary trex home.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftbench.registry import load_task  # noqa: E402
from trex_mcp.recipes import check_contamination, materialize  # noqa: E402
from trex_mcp.recipes import sources as recipe_sources  # noqa: E402
from trex_mcp.settings import Settings  # noqa: E402

SYL = ["ka", "lo", "mi", "ren", "tor", "vex", "bri", "qui", "sol", "nel", "dar", "pho", "zen", "mul", "fin"]
THINGS = ["movie", "phone", "album", "book", "camera", "game", "show", "laptop", "headphones", "keyboard"]
POS = ["great", "wonderful", "brilliant", "solid", "enjoyable", "superb", "excellent"]
NEG = ["awful", "boring", "terrible", "useless", "poor", "bland", "annoying"]
FRAMES = ["the {n} {t} was {a}", "i found the {n} {t} {a}", "honestly the {n} {t} felt {a}",
          "overall this {n} {t} is {a}", "this {n} {t} seemed {b} but was {a}", "my {n} {t} is {a} and {b}"]


def synth_rows(n: int, evals: list[str], seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name = "".join(rng.choice(SYL) for _ in range(3)) + str(i)
        label = rng.choice(["positive", "negative"])
        adj, other = (POS, NEG) if label == "positive" else (NEG, POS)
        text = rng.choice(FRAMES).format(n=name, t=rng.choice(THINGS), a=rng.choice(adj), b=rng.choice(other))
        rows.append({"id": f"b{i}", "text": text, "label": label})
    for _ in range(n // 50):  # 2% exact duplicates
        rows[rng.randrange(n)] = dict(rows[rng.randrange(n)])
    for i, text in enumerate(rng.sample(evals, 20)):  # planted near-copies
        words = text.split()
        words[0] = {"the": "this", "this": "the"}.get(words[0], words[0])
        rows[rng.randrange(n)] = {"id": f"copy{i}", "text": " ".join(words), "label": "positive"}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    mini = load_task("mini/sentiment")
    # the mini task caps rounds at 4,000 samples; the benchmark measures the paper's 50,000-sample round
    task = mini.model_copy(update={"budgets": mini.budgets.model_copy(update={"max_samples_per_round": 50_000})})
    evals = [json.loads(x)["text"] for src in (task.data.validation, task.data.test)
             for x in Path(src.path or "").read_text().splitlines()]
    with tempfile.TemporaryDirectory(prefix="bench-recipes-") as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        rows = synth_rows(args.rows, evals)
        path = root / "big.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        settings = Settings(home=Path(tmp) / "home", data_roots=[root])
        recipe = {"sources": [{"kind": "local", "path": "big.jsonl"}],
                  "operators": [{"op": "filter_length", "field": "text", "unit": "words", "min": 3},
                                {"op": "dedupe", "method": "exact"},
                                {"op": "dedupe", "method": "ngram", "threshold": 0.9, "field": "text"}],
                  "max_samples": 50_000}

        t0, c0 = time.perf_counter(), time.process_time()
        built = materialize(recipe, task=task, settings=settings)
        build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0

        hits, hit_cpus = [], []
        for _ in range(5):
            recipe_sources._HASH_MEMO.clear()  # as a new process would: sha256 from the on-disk hash cache
            t0, c0 = time.perf_counter(), time.process_time()
            hit = materialize(recipe, task=task, settings=settings)
            hits.append(time.perf_counter() - t0)
            hit_cpus.append(time.process_time() - c0)
            assert hit.cache_hit
        hit_s, hit_cpu = statistics.median(hits), statistics.median(hit_cpus)

        mat = importlib.import_module("trex_mcp.recipes.materialize")
        trl_rows = [{"prompt": task.prompt_template.format(input=r["text"]), "completion": " " + r["label"]}
                    for r in rows]
        t0, c0 = time.perf_counter(), time.process_time()
        report = check_contamination(trl_rows, task, eval_data=mat.read_eval_rows(task))
        contam_s, contam_cpu = time.perf_counter() - t0, time.process_time() - c0

    size_mb = sum(len(json.dumps(r)) + 1 for r in rows) / 1e6
    print(f"recipe benchmark: {args.rows} source rows ({size_mb:.1f} MB JSONL), task {task.registry_name}")
    print(f"{'step':<28}{'wall s':>9}{'cpu s':>9}  note")
    steps = ", ".join(f"{c.op} {c.rows_in}->{c.rows_out}" for c in built.operator_counts if c.rows_in != c.rows_out)
    print(f"{'build (cold)':<28}{build_s:>9.3f}{build_cpu:>9.3f}  {built.rows} rows written; {steps}")
    print(f"{'cache hit (median of 5)':<28}{hit_s:>9.4f}{hit_cpu:>9.4f}  {100 * hit_s / build_s:.3f}% of build "
          "wall time (target < 5%)")
    print(f"{'contamination check':<28}{contam_s:>9.3f}{contam_cpu:>9.3f}  {report.flagged_rows} of "
          f"{report.checked_rows} rows flagged against {report.eval_items} eval texts (20 planted)")


if __name__ == "__main__":
    main()
