"""A synthetic search tree of any size, written through the real store API: for the report benchmark, demos
and size tests.

Shaped like a real TREX search: UCT-like growth that favours good nodes, 3-5 runs per round with data
recipes and training configs, about one run in ten failing with a 50-line log tail, diagnoses, insights,
pinned and vetoed nodes, the last rounds still running or waiting, and a final test result. Deterministic for
a given seed (times are injected, not read from the clock).
"""

from __future__ import annotations

import random
from typing import Any

from tree_store.base import TreeStore
from tree_store.records import Failure, FailureKind, Node, State

__all__ = ["build_synthetic_tree"]

STRATEGIES = ["baseline", "refine data pipeline", "construct synthetic data", "adjust training scheme"]
SOURCES = [{"kind": "task", "name": "clean"}, {"kind": "task", "name": "noisy"}, {"kind": "task", "name": "offdomain"},
           {"kind": "hub", "name": "org/reviews-en", "max_rows": 5000}, {"kind": "local", "path": "data/extra.jsonl"}]
OPERATORS = ["dedup", "filter_length", "balance_labels", "relabel_with_rules", "augment_paraphrase", "mix"]
FAILURES = [FailureKind.OOM, FailureKind.NAN_LOSS, FailureKind.TIMEOUT, FailureKind.CRASH]


def _log_tail(rng: random.Random, kind: FailureKind) -> str:
    lines = [f"step {i:4d} | loss {rng.uniform(0.2, 2.5):.4f} | lr 2.0e-04 | {rng.randint(900, 2400)} tok/s"
             for i in range(0, 470, 10)]
    last = {FailureKind.OOM: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            FailureKind.NAN_LOSS: "loss is nan for 3 consecutive logging steps; stopping",
            FailureKind.TIMEOUT: "wall-clock limit reached: SIGTERM sent",
            FailureKind.CRASH: "RuntimeError: expected scalar type Float but found BFloat16"}[kind]
    return "\n".join([*lines, "Traceback (most recent call last):", '  File "worker.py", line 212, in train', last])


def _plan(rng: random.Random, strategy: str, number: int) -> dict[str, Any]:
    focus = rng.choice(["label noise", "short inputs", "negation", "domain shift", "class imbalance", "format errors"])
    return {
        "direction": f"{strategy}: address {focus} seen in round {max(0, number - 1)}",
        "hypothesis": (f"The model fails on {focus}; cleaning and re-weighting the training mix for it should "
                       f"raise validation accuracy by a few points without hurting other groups."),
        "variants": [f"variant {chr(97 + i)}: {rng.choice(OPERATORS)} + lr {rng.choice(['1e-4', '2e-4', '5e-4'])}"
                     for i in range(3)],
    }


def build_synthetic_tree(store: TreeStore, *, nodes: int = 500, seed: int = 0, name: str = "synthetic search") -> str:
    """Write a tree of ``nodes`` rounds into ``store`` and return its id."""
    rng = random.Random(seed)
    t = 1_767_225_600.0  # 2026-01-01, injected so the tree is the same on every run
    base, ref = 0.55, 0.92
    tree = store.create_tree(
        name, task_name="mini/sentiment", higher_is_better=True, base_score=base, reference_score=ref,
        budget={"max_rounds": 20, "runs_per_round": 5, "max_samples_per_round": 50_000, "max_wall_s": None,
                "max_device_hours": 300.0, "max_llm_tokens": None},
        task_snapshot={"name": "mini/sentiment", "version": 1, "domain": "sentiment", "base_model": "tiny:2m",
                       "reference_model": "reference-large", "description": "Binary sentiment of short reviews.",
                       "evaluation": {"kind": "generative", "metric": "accuracy"}},
        now=t)
    made: list[Node] = []
    quality: dict[str, float] = {}
    for number in range(nodes):
        t += 600
        parent_id: str | None = None
        if made:
            # favour good parents, like a tree policy would, with some exploration
            pool = sorted(made, key=lambda n: -quality.get(n.id, 0.0))[: max(3, len(made) // 4)]
            parent_id = (rng.choice(pool) if rng.random() < 0.8 else rng.choice(made)).id
        strategy = STRATEGIES[0] if not made else rng.choice(STRATEGIES[1:])
        node = store.add_node(tree.id, parent_id, strategy_kind=strategy,
                              plan=_plan(rng, strategy, number), now=t)
        made.append(node)
        if number >= nodes - 3:  # the newest rounds are still in flight
            if number == nodes - 1:
                continue
            store.claim_node(node.id, now=t)
            run = store.add_run(node.id, recipe={"sources": [SOURCES[0]], "format": "prompt_completion"},
                                config={"method": "sft", "adapter": "lora", "lora_r": 8, "learning_rate": 2e-4},
                                now=t)
            store.claim_run(run.id, now=t)
            continue
        store.claim_node(node.id, now=t)
        if parent_id is None:  # the baseline: the base model scored once, as the lab does
            run = store.add_run(node.id, recipe={}, config={}, meta={"label": "base model", "baseline": True},
                                now=t)
            store.finish_run(run.id, State.COMPLETE, score=base, metrics={"accuracy": base}, now=t,
                             cost={"device_s": 30.0})
            store.finish_node(node.id, State.COMPLETE, score=base, reward=0.0, now=t)
            quality[node.id] = base
            continue
        parent_q = quality.get(parent_id, base)
        node_best: float | None = None
        for _ in range(rng.randint(3, 5)):
            recipe = {"sources": rng.sample(SOURCES, rng.randint(1, 3)),
                      "operators": [{"op": op} for op in rng.sample(OPERATORS, rng.randint(0, 3))],
                      "format": "prompt_completion"}
            config = {"method": "sft", "adapter": rng.choice(["lora", "lora", "full"]), "lora_r": rng.choice([8, 16]),
                      "learning_rate": rng.choice([1e-4, 2e-4, 5e-4]), "epochs": rng.choice([1.0, 2.0, 3.0]),
                      "batch_size": rng.choice([8, 16]), "grad_accum": rng.choice([1, 2])}
            run = store.add_run(node.id, recipe=recipe, config=config, now=t)
            store.claim_run(run.id, now=t)
            device_s = rng.uniform(60, 900)
            cost = {"device_s": device_s, "wall_s": device_s * 1.1, "tokens": rng.randint(10**5, 10**6)}
            t += device_s
            if rng.random() < 0.1:
                kind = rng.choice(FAILURES)
                store.finish_run(run.id, State.FAIL, cost=cost, now=t,
                                 failure=Failure(kind, f"{kind.value} in training", _log_tail(rng, kind)))
                continue
            # diminishing returns towards a ceiling, with noise: most rounds help a little, some hurt
            score = min(0.97, max(0.3, parent_q + (0.9 - parent_q) * rng.uniform(-0.5, 0.3)
                                  + rng.gauss(0.0, 0.008)))
            store.finish_run(run.id, State.COMPLETE, score=score, cost=cost, now=t,
                             metrics={"accuracy": score, "train_loss": rng.uniform(0.1, 0.9), "n": 200},
                             artifacts={"rows": rng.randint(500, 50_000), "dataset": f"ds-{rng.getrandbits(32):08x}"})
            node_best = score if node_best is None else max(node_best, score)
        if node_best is None:
            store.finish_node(node.id, State.FAIL, now=t,
                              failure=Failure(FailureKind.CRASH, "every run of this round failed"))
            continue
        quality[node.id] = node_best
        reward = (node_best - base) / (ref - base)
        store.finish_node(node.id, State.COMPLETE, score=node_best, reward=reward, now=t,
                          diagnosis={"summary": "most errors are negations and very short inputs",
                                     "groups": [{"name": "negation", "count": rng.randint(1, 30),
                                                 "example": "not bad at all -> predicted negative"},
                                                {"name": "short input", "count": rng.randint(1, 20),
                                                 "example": "meh -> predicted positive"}]})
        store.backpropagate(node.id, reward)
        if rng.random() < 0.03:
            store.set_flags(node.id, pinned=True, note="promising direction: keep exploring")
        elif rng.random() < 0.02:
            store.set_flags(node.id, vetoed=True, note="suspected contamination: do not expand")
    for i in range(min(8, len(made) // 5)):
        evidence = [n.id for n in rng.sample(made, 2)]
        store.add_insight(tree.id, f"Lesson {i}: cleaning label noise helped more than tuning the learning rate.",
                          evidence=evidence, scope="data", effect=rng.uniform(0.0, 0.05), now=t)
    best = store.best_node(tree.id)
    if best is not None and best.score is not None:
        test = best.score - 0.01
        store.update_tree(tree.id, status="finished", now=t, meta={"final": {
            "test_score": test, "normalised_gain": (test - base) / (ref - base), "best_node_id": best.id,
            "split": "test"}})
    return tree.id
