"""The heuristic planner: the offline default that needs no LLM.

It follows the strategy kinds the paper's Researcher chose most, in a sensible order, and learns from what the
tree shows:

1. Under the root (the baseline), it establishes a trained baseline per data source: each training source alone
   and all of them mixed, so that the first round already answers "which data?".
2. Under a trained node it refines in one direction per round, chosen from what the node's path has not tried
   yet and from the node's diagnosis: refine the data (de-duplicate, drop or down-weight noisy sources, resize),
   adjust the training scheme (learning rate, steps, LoRA rank, full fine-tuning), or continue from the node's
   adapter (warm start, and preference training when the task has a closed label set).
3. Failures steer it: after `nan_loss` it lowers the learning rate, after `oom` it halves the batch size, and a
   kind of change that failed as `invalid_config` is not proposed again.

It never proposes a variant the tree has already run (same recipe and config). It is deterministic for a seed.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

from trex_mcp.agents.state import PlanningState, RunRecord, variant_key
from trex_mcp.errors import TrexError
from trex_mcp.plans import RoundPlan, RunPlan

Variant = tuple[str, dict[str, Any], dict[str, Any]]  # label, recipe, config

ORDER = ("refine_data", "training_scheme", "warm_start")


class PlannerError(TrexError):
    """The planner cannot propose a round."""


def default_config(state: PlanningState) -> dict[str, Any]:
    """A starting training config suited to the base model's size."""
    if state.is_tiny:
        # Measured on CPU: tiny random models need a high learning rate, ~100 steps, and trainable embeddings
        # next to the LoRA weights (plain LoRA on a frozen random embedding reached 0.6-0.7 on mini/sentiment,
        # LoRA + embed_tokens 0.89).
        return {"method": "sft", "adapter": "lora", "lora_r": 8, "lora_alpha": 16, "learning_rate": 5e-3,
                "modules_to_save": ["embed_tokens"],
                "max_steps": 100, "batch_size": 16, "max_length": 128, "scheduler": "constant",
                "save_steps": 50, "seed": state.seed}
    return {"method": "sft", "adapter": "lora", "lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4,
            "epochs": 2.0, "batch_size": 8, "grad_accum": 2, "max_length": 1024, "scheduler": "cosine",
            "warmup_ratio": 0.03, "save_steps": 200, "precision": "bf16", "seed": state.seed}


def _task_recipe(names: list[str], weights: list[float] | None = None) -> dict[str, Any]:
    sources: list[dict[str, Any]] = [{"kind": "task", "name": n} for n in names]
    if weights:
        for source, weight in zip(sources, weights, strict=True):
            source["weight"] = weight
    return {"sources": sources, "format": "prompt_completion"}


def _source_names(state: PlanningState) -> list[str]:
    return [s["name"] for s in state.task.get("data", {}).get("train", [])]


def _noisy_names(state: PlanningState) -> list[str]:
    out = []
    for source in state.task.get("data", {}).get("train", []):
        text = f"{source['name']} {source.get('description', '')}".lower()
        if any(word in text for word in ("noisy", "noise", "scraped", "weak", "off-domain", "offdomain")):
            out.append(source["name"])
    return out


def _adjust_for_failures(config: dict[str, Any], runs: list[RunRecord]) -> dict[str, Any]:
    kinds = {r.failure_kind for r in runs if r.failure_kind}
    out = dict(config)
    if "nan_loss" in kinds:
        out["learning_rate"] = max(out.get("learning_rate", 2e-4) / 10.0, 1e-6)
    if "oom" in kinds:
        out["batch_size"] = max(1, int(out.get("batch_size", 8)) // 2)
        out["grad_accum"] = min(256, int(out.get("grad_accum", 1)) * 2)
    return out


# ------------------------------------------------------------------ moves per strategy kind


def _data_moves(state: PlanningState, recipe: dict[str, Any], config: dict[str, Any]) -> Iterator[Variant]:
    ops = recipe.get("operators", [])
    names = [s["name"] for s in recipe["sources"] if s.get("kind") == "task"]
    all_names = _source_names(state)
    noisy = set(_noisy_names(state))
    if not any(op.get("op") == "dedupe" for op in ops):
        yield "near-dedupe", {**recipe, "operators": [*ops, {"op": "dedupe", "method": "minhash", "threshold": 0.8}]}, config
    clean = [n for n in names if n not in noisy]
    if clean and len(clean) < len(names):
        yield "drop noisy sources", {**recipe, "sources": [{"kind": "task", "name": n} for n in clean]}, config
    others = [n for n in all_names if n not in names and n not in noisy]
    for other in others:
        yield f"add {other}", _with_ops(_task_recipe([*names, other]), ops), config
    if len(names) >= 2:
        weights = [3.0 if n not in noisy else 1.0 for n in names]
        if len(set(weights)) > 1:
            yield "up-weight clean", _with_ops(_task_recipe(names, weights), ops), config
    for n in noisy - set(names):
        yield f"add deduped {n}", _with_ops(_task_recipe([*names, n], [3.0] * len(names) + [1.0]),
                                            [*ops, {"op": "dedupe", "method": "minhash", "threshold": 0.8}]), config
    yield "exact-dedupe", {**recipe, "operators": [*ops, {"op": "dedupe", "method": "exact"}]}, config
    yield "length filter", {**recipe, "operators": [*ops, {"op": "filter_length", "unit": "words", "min": 2}]}, config


def _with_ops(recipe: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {**recipe, "operators": list(ops)} if ops else recipe


def _scheme_moves(state: PlanningState, recipe: dict[str, Any], config: dict[str, Any]) -> Iterator[Variant]:
    lr = float(config.get("learning_rate", 2e-4))
    steps = config.get("max_steps")
    yield "lr x2", recipe, {**config, "learning_rate": min(lr * 2, 0.05)}
    if steps:
        yield "steps x2", recipe, {**config, "max_steps": min(int(steps) * 2, 1000)}
    else:
        yield "epochs x2", recipe, {**config, "epochs": min(float(config.get("epochs", 1.0)) * 2, 20.0)}
    if config.get("adapter", "lora") == "lora":
        yield "full fine-tune", recipe, {k: v for k, v in {**config, "adapter": "full",
                                                             "learning_rate": lr * (0.6 if state.is_tiny else 0.1)}.items()
                                         if k not in ("lora_r", "lora_alpha", "lora_dropout", "modules_to_save")}
        rank = int(config.get("lora_r", 8)) * 2
        yield f"lora r={rank}", recipe, {**config, "lora_r": min(rank, 256), "lora_alpha": min(rank * 2, 1024)}
    yield "lr x0.5", recipe, {**config, "learning_rate": lr * 0.5}
    if steps:
        yield "steps x0.5", recipe, {**config, "max_steps": max(int(steps) // 2, 10)}


def _warm_moves(state: PlanningState, recipe: dict[str, Any], config: dict[str, Any]) -> Iterator[Variant]:
    lr = float(config.get("learning_rate", 2e-4))
    base = {**config, "warm_start": True}
    yield "continue, lr x0.5", recipe, {**base, "learning_rate": lr * 0.5}
    yield "continue, same lr", recipe, base
    choices = state.task.get("evaluation", {}).get("choices")
    if choices and config.get("method", "sft") == "sft":
        pref = {**{k: v for k, v in recipe.items() if k != "mapping"}, "format": "preference",
                "mapping": {"rejected_from_choices": True}}
        dpo = {k: v for k, v in base.items() if k != "packing"}
        yield "DPO on label pairs", pref, {**dpo, "method": "dpo", "learning_rate": lr * 0.2, "beta": 0.1}
    clean = [n for n in _source_names(state) if n not in set(_noisy_names(state))]
    if clean:
        yield "continue on clean data", _task_recipe(clean), {**base, "learning_rate": lr * 0.5}


MOVES = {"refine_data": _data_moves, "training_scheme": _scheme_moves, "warm_start": _warm_moves}


class HeuristicPlanner:
    """Proposes rounds without an LLM; see the module docstring for its strategy."""

    name = "heuristic"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def plan(self, state: PlanningState) -> RoundPlan:
        """A RoundPlan for expanding `state.parent`. Raises PlannerError when nothing new is left to try."""
        if not _source_names(state):
            raise PlannerError(f"task {state.task.get('name')} declares no training sources; the heuristic planner "
                               "cannot find data by itself", hint="use --planner llm or plan from an MCP client")
        if state.parent.get("parent_id") is None:
            return self._baseline_round(state)
        best = state.best_parent_run()
        if best is None:
            raise PlannerError(f"node #{state.parent.get('number')} has no trained run to refine")
        rng = random.Random(f"{self.seed}:{state.round_index}")
        for kind in self._kind_order(state, best):
            variants = self._pick(state, MOVES[kind](state, copy.deepcopy(best.recipe),
                                                     _adjust_for_failures(dict(best.config), state.parent_runs)), rng)
            if variants:
                return self._round(kind, best, variants, state)
        raise PlannerError(f"every change the heuristic planner knows has been tried under node "
                           f"#{state.parent.get('number')}", hint="expand another node or finalise the tree")

    # ------------------------------------------------------------------ internals

    def _baseline_round(self, state: PlanningState) -> RoundPlan:
        config = _adjust_for_failures(default_config(state), state.parent_runs)
        names = _source_names(state)
        noisy = set(_noisy_names(state))
        candidates: list[Variant] = [(f"source {n}", _task_recipe([n]), config) for n in names if n not in noisy]
        candidates += [(f"source {n}", _task_recipe([n]), config) for n in names if n in noisy]
        if len(names) > 1:
            candidates.insert(min(2, len(candidates)), ("all sources", _task_recipe(names), config))
        variants = self._pick(state, iter(candidates), None)
        if not variants:  # every source already ran from the root: vary the seed
            config = {**config, "seed": int(config.get("seed", 0)) + 1 + state.round_index}
            variants = self._pick(state, iter((lbl, r, config) for lbl, r, _ in candidates), None)
        if not variants:
            raise PlannerError("no new baseline variant left under the root")
        return RoundPlan(strategy_kind="refine_data",
                         direction="Establish a trained baseline for each data source and for their mixture",
                         hypothesis="Which data the model trains on matters most; compare the sources as they are "
                         "before refining any of them.",
                         runs=[RunPlan(label=lbl, recipe=r, config=c) for lbl, r, c in variants])

    def _kind_order(self, state: PlanningState, best: RunRecord) -> list[str]:
        tried = [str(n.get("strategy")) for n in state.path if n.get("strategy") in ORDER]
        untried = [k for k in ORDER if k not in tried]
        counts = (state.parent.get("diagnosis") or {}).get("group_counts", {}) or {}
        by_kind: dict[str, int] = {}
        for name, count in counts.items():
            kind = str(name).split("[", 1)[0]
            by_kind[kind] = by_kind.get(kind, 0) + int(count)
        format_kinds = ("empty", "truncated", "invalid_label", "unknown_label", "format_only", "repetitive")
        format_trouble = sum(by_kind.get(k, 0) for k in format_kinds) > sum(by_kind.values()) / 2
        noisy_in_best = any(s.get("name") in set(_noisy_names(state)) for s in best.recipe.get("sources", []))
        preferred = list(ORDER)
        if format_trouble:
            preferred = ["training_scheme", "warm_start", "refine_data"]
        elif noisy_in_best:
            preferred = ["refine_data", "training_scheme", "warm_start"]
        ordered = [k for k in preferred if k in untried] + [k for k in preferred if k not in untried]
        if best.config.get("method") == "dpo":
            ordered = [k for k in ordered if k != "warm_start"] + ["warm_start"]
        return ordered

    def _pick(self, state: PlanningState, moves: Iterator[Variant], rng: random.Random | None) -> list[Variant]:
        used = state.used_keys()
        bad_labels = {r.label for r in state.all_runs if r.failure_kind == "invalid_config"}
        picked: list[Variant] = []
        parent_id = state.parent.get("node_id")
        for label, recipe, config in moves:
            key = variant_key(recipe, config, parent_id)
            if key in used or label in bad_labels or any(variant_key(r, c, parent_id) == key for _, r, c in picked):
                continue
            picked.append((label, recipe, config))
            if len(picked) >= state.runs_per_round:
                break
        if rng is not None:
            rng.shuffle(picked)
        return picked

    def _round(self, kind: str, best: RunRecord, variants: list[Variant], state: PlanningState) -> RoundPlan:
        labels = ", ".join(v[0] for v in variants)
        directions = {
            "refine_data": f"Refine the data of the best run ('{best.label}'): {labels}",
            "training_scheme": f"Adjust the training scheme of the best run ('{best.label}'): {labels}",
            "warm_start": f"Continue from the best run's adapter ('{best.label}'): {labels}",
        }
        hypotheses = {
            "refine_data": "Most gains come from data: removing noise and duplicates or re-mixing sources should "
                           "fix the label confusions the diagnosis shows.",
            "training_scheme": "The data is fixed; the model may be under- or over-trained, so steps, learning rate "
                               "and capacity should move the score.",
            "warm_start": "The parent's model is good; more training from it (or preference training on its "
                          "labels) should sharpen its decisions without starting over.",
        }
        return RoundPlan(strategy_kind=kind, direction=directions[kind][:300], hypothesis=hypotheses[kind],
                         runs=[RunPlan(label=lbl[:80], recipe=r, config=c) for lbl, r, c in variants])
