"""Benchmark evaluation: 200 examples with a `tiny:` model on CPU (target under 5 s), and the cache hit.

Run: python benchmarks/bench_evaluation.py [--examples 200] [--model tiny:100k] [--threads 1]

The task is mini/sentiment with its validation rows repeated to `--examples` rows (fresh ids) in a temporary
trex home. The model is the untrained tiny base: it never emits an end token, so every row generates the full
`max_new_tokens` (the worst case for generation time). Rows:
- evaluate_model, first call: includes the one-off lazy imports of generation and metrics code;
- evaluate_model, warm: what every later evaluation in the same process costs;
- multiple_choice: the same rows scored by log-likelihood over the two labels;
- evaluate (cache miss): fingerprint + model load + evaluation + cache write;
- evaluate (cache hit) and base_score (cache hit): a diskcache lookup;
- diagnose + to_text: grouping the wrong predictions for the planner.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftbench.data import read_rows  # noqa: E402
from ftbench.registry import load_task  # noqa: E402
from ftbench.spec import TaskSpec  # noqa: E402
from trex_mcp.settings import Settings  # noqa: E402


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Median seconds of `repeat` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def task_with_rows(task: TaskSpec, n: int, folder: Path) -> TaskSpec:
    rows = read_rows(task, task.data.validation)
    out = [{**rows[i % len(rows)], "id": f"bench-{i}"} for i in range(n)]
    path = folder / "validation.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    data = task.data.model_copy(update={"validation": task.data.validation.model_copy(update={"path": str(path)})})
    return task.model_copy(update={"data": data})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--model", default="tiny:100k")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from trex_mcp.evaluation import base_score, diagnose, evaluate, evaluate_model
    from trex_mcp.execution.models import load_model

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        home = Path(tmp)
        settings = Settings(home=home / "home")
        base = load_task("mini/sentiment").model_copy(update={"base_model": args.model})
        task = task_with_rows(base, args.examples, home)
        build_s, (model, tok) = timed(lambda: load_model(args.model, models_dir=settings.models_dir, task=task))
        rows: list[tuple[str, float, str, str]] = [("build + load tiny model (one-off)", build_s, "", "")]

        cold_s, cold = timed(lambda: evaluate_model(task, model, tok))
        rows.append(("evaluate_model, first call (lazy imports)", cold_s, "", cold.summary()))
        warm_s, warm = timed(lambda: evaluate_model(task, model, tok), repeat=3)
        rows.append(("evaluate_model, warm (median of 3)", warm_s, "< 5 s", warm.summary()))
        mc_task = task.model_copy(update={"evaluation": task.evaluation.model_copy(update={"kind": "multiple_choice"})})
        mc_s, mc = timed(lambda: evaluate_model(mc_task, model, tok), repeat=3)
        rows.append(("multiple_choice log-likelihood, warm", mc_s, "< 5 s", mc.summary()))
        miss_s, miss = timed(lambda: evaluate(task, settings=settings))
        rows.append(("evaluate, cache miss (load + eval + store)", miss_s, "< 5 s", f"cached={miss.cached}"))
        hit_s, hit = timed(lambda: evaluate(task, settings=settings), repeat=5)
        rows.append(("evaluate, cache hit (median of 5)", hit_s, "", f"cached={hit.cached}"))
        bs_s, score = timed(lambda: base_score(task, settings), repeat=5)
        rows.append(("base_score, cached (median of 5)", bs_s, "", f"score={score:.3f}"))
        diag_s, diag = timed(lambda: diagnose(task, warm.predictions).to_text(), repeat=5)
        rows.append(("diagnose + to_text (median of 5)", diag_s, "", f"{len(diag)} chars"))

    width = max(len(r[0]) for r in rows)
    print(f"evaluation benchmark: {args.examples} examples, model {args.model}, {args.threads} torch thread(s), "
          f"max_new_tokens={task.evaluation.max_new_tokens}")
    print(f"{'step'.ljust(width)} | {'seconds':>8} | {'target':>6} | result")
    print(f"{'-' * width}-|-{'-' * 8}-|-{'-' * 6}-|-------")
    for name, seconds, target, note in rows:
        print(f"{name.ljust(width)} | {seconds:8.3f} | {target:>6} | {note}")


if __name__ == "__main__":
    main()
