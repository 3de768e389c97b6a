"""Bridge to the lm-evaluation-harness for tasks whose `evaluation.kind` is `lm_eval`.

Two shapes:
- **Built from the task's data** (no `harness_task`): a dict task config pointing at the split's local file by
  absolute path (or its Hub dataset), `doc_to_text` translated from the task's `prompt_template`, and
  `multiple_choice` (log-likelihood over the declared choices) when the task has choices, else `generate_until`.
  The TaskManager is built with `include_defaults=False` (indexing the 14k built-in tasks costs ~9 s).
- **Named** (`harness_task` set): a registered harness task (or the absolute path of a harness YAML file), when
  its data is available offline. The split is honoured: for 'validation' the task's test split is switched off so
  the harness falls back to its validation docs; a task without the requested split raises `EvaluationError`.

Per-sample outputs (`log_samples=True`) become predictions, so the bad-case diagnosis works the same way as for
the built-in evaluator. The harness does not reseed the global RNGs (all seeds passed as None).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trex_mcp.evaluation.data import EvalExample, split_source
from trex_mcp.evaluation.errors import EvaluationError
from trex_mcp.evaluation.generation import Completion, clean_completion

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec

__all__ = ["HarnessRun", "harness_config", "jinja_template", "run_harness"]

_METRIC_KEYS = {"accuracy": "acc", "exact_match": "exact_match", "macro_f1": "f1", "rouge1": "rouge1",
                "rougeL": "rougeL"}


@dataclass
class HarnessRun:
    """What the harness produced: aligned completions (built-from-data shape) or raw samples (named shape)."""

    metrics: dict[str, float]
    completions: list[Completion] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    metric_key: str | None = None


def jinja_template(template: str, input_field: str) -> str:
    """Translate a Python format string (`{input}`, `{column}`) to the Jinja lm-eval renders.

    Literal text is wrapped in `{% raw %}` blocks so braces or Jinja syntax in it stay literal. Raises
    `EvaluationError` for conversions, format specs or attribute/index lookups, which Jinja cannot mirror.
    """
    parts: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise EvaluationError(f"prompt_template is not a valid format string: {exc}",
                              field="prompt_template") from exc
    for literal, name, spec, conversion in parsed:
        if literal:
            parts.append("{% raw %}" + literal + "{% endraw %}")
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise EvaluationError(f"prompt_template field '{{{name}}}' cannot be translated for lm-eval",
                                  field="prompt_template",
                                  hint="use plain '{column}' fields, or evaluation.kind 'generative'")
        parts.append("{{ " + (input_field if name == "input" else name) + " }}")
    return "".join(parts)


def harness_config(task: TaskSpec, split: str, *, stop_at_newline: bool) -> dict[str, Any]:
    """The dict task config that evaluates `task`'s `split` from its own data files."""
    source = split_source(task, split)
    if source.kind == "local":
        dataset: dict[str, Any] = {"dataset_path": "json",
                                   "dataset_kwargs": {"data_files": {split: str(task.local_path(source))}}}
        split_name = split
    else:
        dataset = {"dataset_path": source.hub_id, "dataset_name": source.config,
                   "dataset_kwargs": {"revision": source.revision} if source.revision else {}}
        split_name = source.split or split
    spec = task.evaluation
    target = task.target_field
    cfg: dict[str, Any] = {
        "task": f"trex_{task.name.replace('/', '_').replace('-', '_')}_{split}",
        **dataset,
        "test_split": split_name,
        "doc_to_text": jinja_template(task.prompt_template, task.input_field),
        "metadata": {"version": task.version},
    }
    if spec.choices and spec.metric not in ("multilabel_macro_f1", "multilabel_micro_f1"):
        index = {c.strip().lower(): i for i, c in enumerate(spec.choices)}
        cfg.update({
            "output_type": "multiple_choice",
            "doc_to_choice": list(spec.choices),
            "doc_to_target": "{{ " + json.dumps(index) + "[(" + target + " | string | trim | lower)] }}",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        })
    else:
        sep = json.dumps(spec.label_separator)
        cfg.update({
            "output_type": "generate_until",
            "doc_to_target": "{% if " + target + " is string %}{{ " + target + " }}{% else %}{{ " + target
                             + " | join(" + sep + ") }}{% endif %}",
            "generation_kwargs": {"until": ["\n"] if stop_at_newline else [], "max_gen_toks": spec.max_new_tokens,
                                  "do_sample": False},
            "filter_list": [{"name": "strip", "filter": [{"function": "remove_whitespace"},
                                                         {"function": "take_first"}]}],
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        })
    return cfg


def _named_task(task: TaskSpec, split: str, allow_unsafe_code: bool) -> tuple[Any, Any]:
    from pathlib import Path

    from lm_eval.tasks import TaskManager, get_task_dict

    name = task.evaluation.harness_task or ""
    is_path = name.endswith((".yaml", ".yml")) and Path(name).is_absolute()
    manager = TaskManager(include_defaults=not is_path)
    try:
        loaded = get_task_dict([name], manager)
    except Exception as exc:  # the harness raises KeyError, ValueError, FileNotFoundError, ConnectionError...
        raise EvaluationError(f"lm-eval task '{name}' is not available: {exc}", field="evaluation.harness_task",
                              hint="check the name with `lm-eval ls tasks`; offline, only cached data loads"
                              ) from exc
    leaves = [t for t in loaded.values() if hasattr(t, "config")]
    if len(leaves) != 1:
        raise EvaluationError(f"lm-eval task '{name}' is a group of {len(leaves)} tasks; name one task",
                              field="evaluation.harness_task")
    harness_task = leaves[0]
    config = harness_task.config
    if split == "validation":
        if not harness_task.has_validation_docs():
            raise EvaluationError(f"lm-eval task '{name}' has no validation split to search on",
                                  field="split", hint="use a task with validation data, or build one from files")
        config.test_split = None  # the harness evaluates test docs first; switch them off for the search
    elif not harness_task.has_test_docs():
        raise EvaluationError(f"lm-eval task '{name}' has no test split", field="split")
    if getattr(config, "unsafe_code", False) and not allow_unsafe_code:
        raise EvaluationError(f"lm-eval task '{name}' executes model output", field="evaluation.harness_task",
                              hint="the operator must set allow_unsafe_code in the server settings")
    return harness_task, manager


def run_harness(task: TaskSpec, model: Any, tokenizer: Any, *, split: str, examples: list[EvalExample],
                limit: int | None, batch_size: int, stop_at_newline: bool,
                allow_unsafe_code: bool = False) -> HarnessRun:
    """Run the harness on an in-memory model; see the module docstring for the two shapes."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    named = task.evaluation.harness_task is not None
    if named:
        task_obj, manager = _named_task(task, split, allow_unsafe_code)
        task_spec: Any = task_obj
    else:
        task_spec = harness_config(task, split, stop_at_newline=stop_at_newline)
        manager = TaskManager(include_defaults=False)
    max_length = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
              max_length=int(max_length) if isinstance(max_length, int) else None)
    try:
        result = simple_evaluate(model=lm, tasks=[task_spec], task_manager=manager, limit=limit,
                                 bootstrap_iters=0, log_samples=True, random_seed=None, numpy_random_seed=None,
                                 torch_random_seed=None, fewshot_random_seed=None,
                                 confirm_run_unsafe_code=allow_unsafe_code)
    except EvaluationError:
        raise
    except Exception as exc:  # surface harness failures (bad config, missing data) as an actionable error
        raise EvaluationError(f"lm-eval failed on task {task.name}: {type(exc).__name__}: {exc}",
                              field="evaluation", hint="check the task's lm_eval settings and data") from exc
    if not result or not result.get("results"):
        raise EvaluationError(f"lm-eval returned no results for task {task.name}", field="evaluation")
    task_key = next(iter(result["results"]))
    metrics = {f"harness/{k}": float(v) for k, v in result["results"][task_key].items()
               if isinstance(v, int | float) and not isinstance(v, bool) and "stderr" not in k}
    samples = sorted(result.get("samples", {}).get(task_key, []), key=lambda s: int(s["doc_id"]))
    if named:
        return HarnessRun(metrics=metrics, samples=samples, metric_key=_metric_key(task, metrics))
    return HarnessRun(metrics=metrics, completions=_align(samples, examples, tokenizer, task, stop_at_newline))


def _metric_key(task: TaskSpec, metrics: dict[str, float]) -> str:
    wanted = _METRIC_KEYS.get(task.evaluation.metric, task.evaluation.metric)
    for key in metrics:
        if key.removeprefix("harness/").split(",")[0] == wanted:
            return key
    if not metrics:
        raise EvaluationError(f"lm-eval reported no numeric metric for task {task.name}", field="evaluation")
    return next(iter(metrics))


def _align(samples: list[dict[str, Any]], examples: list[EvalExample], tokenizer: Any, task: TaskSpec,
           stop_at_newline: bool) -> list[Completion]:
    if len(samples) != len(examples):
        raise EvaluationError(f"lm-eval scored {len(samples)} rows of task {task.name}, expected {len(examples)}",
                              field="evaluation")
    choices = task.evaluation.choices or []
    out: list[Completion] = []
    for sample, example in zip(samples, examples, strict=True):
        doc_id = sample.get("doc", {}).get("id")
        if doc_id is not None and str(doc_id) != example.id:
            raise EvaluationError(f"lm-eval row order differs from the data file (row '{doc_id}' vs "
                                  f"'{example.id}')", field="evaluation")
        resps = sample["filtered_resps"]
        if sample.get("arguments") and isinstance(sample["arguments"][0][1], str) and choices \
                and len(resps) == len(choices):
            lls = [float(r[0] if isinstance(r, list | tuple) else r) for r in resps]
            best = max(range(len(lls)), key=lambda i: lls[i])
            out.append(Completion(text=choices[best], raw=json.dumps([round(x, 4) for x in lls]), truncated=False))
            continue
        raw = str(resps[0] if isinstance(resps, list) else resps)
        n_tokens = len(tokenizer(raw, add_special_tokens=False)["input_ids"])
        truncated = n_tokens >= task.evaluation.max_new_tokens and not (stop_at_newline and "\n" in raw)
        out.append(Completion(text=clean_completion(raw, stop_at_newline=stop_at_newline), raw=raw,
                              truncated=truncated))
    return out
