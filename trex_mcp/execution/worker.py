"""The training worker: `python -m trex_mcp.execution.worker <run_dir>/spec.json`.

Runs one Run in its own process (or, for several GPUs, in each process of an `accelerate launch`): preflight,
train with TRL, save the adapter, evaluate on the validation split, write `result.json`.

What it guarantees (rank 0 writes every file; see `RunSpec` for the inputs):
- `progress.jsonl` gets one JSON line per event, each with `t` (unix time) and `elapsed_s`: `phase` (start,
  validate, preflight, load, train with `total_steps`, save, evaluate), `preflight_ok`, `resume` (checkpoint,
  step), `step` (step, raw loss, lr, tokens, tokens_per_s, epoch), `done` (status, failure kind, score).
  `heartbeat` is rewritten every `heartbeat_s` with the unix time.
- Preflight: the config is validated, the model and tokenizer load, and ONE training step runs on a few rows
  with a freshly loaded model; any failure there is `invalid_config` with the cause.
- Checkpoints go to `checkpoints/checkpoint-N/`; a retried run resumes from the latest COMPLETE one (a folder
  without `trainer_state.json` is incomplete: it is skipped and removed), so the global step only goes up.
- `nan_loss` after `nan_patience` consecutive non-finite raw losses (read every micro-batch, not from the HF
  logs, which hide them); `oom` on an out-of-memory error, with the batch size recorded; SIGTERM saves a
  checkpoint at the end of the current step and ends the run as `cancelled`.
- `adapter/` (the LoRA adapter, or the full model) appears complete or not at all (`_COMPLETE` inside).
- `result.json` is written last, atomically; exit code 0 means status "complete", non-zero a failure. A stale
  result from an earlier attempt is moved to `result.previous.json` first; a complete run removes its
  checkpoints unless `keep_checkpoints`. With `train=False` (a baseline) nothing is trained or published: the
  base model (or warm-start adapter) is only evaluated.

Not covered: a SIGKILL (the manager's heartbeat and retry logic handle that) and validating that the dataset
rows make sense for the task (the recipe's materialise step does that).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from trex_mcp.atomic import atomic_write_json, atomic_write_text, is_complete, publish_dir
from trex_mcp.execution.callbacks import (
    CancelToken,
    LossMonitor,
    NanGuard,
    ProgressLog,
    instrument_trainer,
    make_trainer_callback,
    world_size_from_env,
)
from trex_mcp.execution.spec import RunSpec

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec
    from trex_mcp.recipes.config import TrainConfig

__all__ = ["WorkerFailure", "classify_exception", "latest_complete_checkpoint", "main", "run_worker"]

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_OOM_MESSAGES = ("CUDA out of memory", "DefaultCPUAllocator: can't allocate memory", "out of memory")
_FORMAT_COLUMNS = {
    "prompt_completion": ("prompt", "completion"),
    "messages": ("messages",),
    "preference": ("chosen", "rejected"),
}


class WorkerFailure(Exception):
    """A run that ends in a known failure kind (tree_store's FailureKind values)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Cancelled(BaseException):
    """Raised from the SIGTERM handler outside the training loop (BaseException: not caught by `except Exception`)."""


# ----------------------------------------------------------------------------------------- helpers


def classify_exception(exc: BaseException) -> str:
    """'oom' for out-of-memory errors (anywhere in the cause chain), else 'crash'."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "OutOfMemoryError" or isinstance(current, MemoryError):
            return "oom"
        if any(m in str(current) for m in _OOM_MESSAGES):
            return "oom"
        current = current.__cause__ or current.__context__
    return "crash"


def latest_complete_checkpoint(folder: Path, *, remove_incomplete: bool = False) -> Path | None:
    """The `checkpoint-N` folder with the highest N that holds `trainer_state.json` (written last by the Trainer).

    Incomplete folders (a save interrupted by a kill) are skipped, and deleted when `remove_incomplete`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for child in folder.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    best: Path | None = None
    for _, path in sorted(found, reverse=True):
        if (path / "trainer_state.json").is_file():
            if best is None:
                best = path
        elif remove_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return best


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


class _Heartbeat:
    """A daemon thread rewriting `path` with the unix time every `interval` seconds."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trex-heartbeat", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def _beat(self) -> None:
        # A full disk must not kill training; a stale heartbeat is reported by the manager.
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, f"{time.time():.3f}\n")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _Context:
    """What the signal handler and the phases share."""

    def __init__(self, spec: RunSpec, *, is_main: bool) -> None:
        self.spec = spec
        self.is_main = is_main
        self.cancel = CancelToken()
        self.in_training = False  # inside trainer.train(): cancel at the step end, with a checkpoint
        self.finishing = False  # writing the result: never interrupt
        self.progress = ProgressLog(spec.run_dir / "progress.jsonl", enabled=is_main)
        self.batch_size: int | None = None
        self.checkpoint: str | None = None
        self.stats: dict[str, Any] = {}  # steps, tokens, train_s: reported for failed runs too
        self.timings: dict[str, float] = {}

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.cancel.cancel(f"received signal {signal.Signals(signum).name}")
        if not (self.in_training or self.finishing):
            raise _Cancelled()


# ------------------------------------------------------------------------------------------ phases


def _load_task(spec: RunSpec) -> TaskSpec:
    from ftbench.spec import TaskSpec

    if spec.task_snapshot is not None:
        try:
            return TaskSpec.model_validate(spec.task_snapshot)
        except ValueError as exc:
            raise WorkerFailure("invalid_config", f"task_snapshot is not a valid task spec: {exc}") from exc
    from ftbench.errors import FTBenchError
    from ftbench.registry import load_task

    try:
        return load_task(spec.task_name)
    except FTBenchError as exc:
        raise WorkerFailure("invalid_config", f"task_name '{spec.task_name}': {exc}") from exc


def _parse_config(spec: RunSpec) -> TrainConfig:
    from trex_mcp.errors import TrexError
    from trex_mcp.recipes.config import parse_train_config

    try:
        cfg = parse_train_config(spec.config)
    except TrexError as exc:
        raise WorkerFailure("invalid_config", str(exc)) from exc
    if spec.checkpoint_steps is not None:
        cfg = cfg.model_copy(update={"save_steps": spec.checkpoint_steps})
    wanted = cfg.dataset_format
    if wanted is not None and spec.dataset_format != wanted:
        raise WorkerFailure("invalid_config", f"dataset_format: method '{cfg.method}' needs '{wanted}' rows, "
                            f"got '{spec.dataset_format}'")
    if cfg.method == "sft" and spec.dataset_format == "preference":
        raise WorkerFailure("invalid_config", "dataset_format: method 'sft' needs 'prompt_completion' or "
                            "'messages' rows, got 'preference'; use method 'dpo' or another recipe format")
    return cfg


def _read_dataset(spec: RunSpec) -> list[dict[str, Any]]:
    """The dataset rows, reduced to the columns TRL uses for the format. Raises WorkerFailure(invalid_config)."""
    path = Path(spec.dataset_file)
    if not path.is_file():
        raise WorkerFailure("invalid_config", f"dataset_file {path} does not exist")
    required = _FORMAT_COLUMNS[spec.dataset_format]
    keep = (*required, "prompt") if spec.dataset_format == "preference" else required
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise WorkerFailure("invalid_config", f"dataset_file line {number}: not JSON ({exc})") from exc
            missing = [c for c in required if c not in row] if isinstance(row, dict) else list(required)
            if missing:
                raise WorkerFailure("invalid_config", f"dataset_file line {number}: format '{spec.dataset_format}' "
                                    f"needs columns {list(required)}; missing {missing}")
            rows.append({c: row[c] for c in keep if c in row})
    if not rows:
        raise WorkerFailure("invalid_config", f"dataset_file {path} has no rows")
    return rows


def _is_peft_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def _load_for_training(spec: RunSpec, cfg: TrainConfig, task: TaskSpec, use_cpu: bool) -> tuple[Any, Any, bool]:
    """(model, tokenizer, needs_new_lora). Warm starts continue a parent's adapter (SFT) or merge it (DPO/full)."""
    from trex_mcp.execution.models import load_model

    dtype: str | None = None
    if not use_cpu and cfg.adapter == "lora" and cfg.precision in ("bf16", "fp16"):
        dtype = cfg.precision  # frozen base in half precision; full fine-tunes keep fp32 masters (amp)
    warm = spec.warm_start_adapter
    if warm is None and cfg.warm_start:
        raise WorkerFailure("invalid_config", "config.warm_start is true but the spec names no warm_start_adapter; "
                            "training from scratch would silently ignore the plan")
    if warm is None:
        model, tok = load_model(spec.base_model, models_dir=spec.models_dir, task=task, dtype=dtype)
        return model, tok, cfg.adapter == "lora"
    warm = Path(warm)
    if not is_complete(warm):
        raise WorkerFailure("invalid_config", f"warm_start_adapter {warm} is missing or incomplete (no _COMPLETE)")
    continue_adapter = _is_peft_dir(warm) and cfg.adapter == "lora" and cfg.method == "sft"
    model, tok = load_model(spec.base_model, models_dir=spec.models_dir, task=task, adapter_dir=warm,
                            merge=not continue_adapter, dtype=dtype, trainable=continue_adapter)
    return model, tok, cfg.adapter == "lora" and not continue_adapter


def _build_trainer(cfg: TrainConfig, model: Any, tokenizer: Any, rows: list[dict[str, Any]], output_dir: Path,
                   *, use_cpu: bool, new_lora: bool, callback: Any) -> Any:
    import copy

    from datasets import Dataset

    from trex_mcp.recipes.config import to_peft_config, to_trl_config

    args = to_trl_config(cfg, str(output_dir), use_cpu=use_cpu)
    peft_config = to_peft_config(cfg) if new_lora else None
    dataset = Dataset.from_list(rows)
    if cfg.method == "dpo":
        from peft import PeftModel
        from trl import DPOTrainer

        ref = None
        if peft_config is None and not isinstance(model, PeftModel):
            ref = copy.deepcopy(model).eval()  # full DPO: TRL would otherwise reload from config._name_or_path
            for p in ref.parameters():
                p.requires_grad_(False)
        return DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config, callbacks=[callback])
    from trl import SFTTrainer

    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=[callback])


def _free_memory() -> None:
    gc.collect()
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _preflight(ctx: _Context, cfg: TrainConfig, task: TaskSpec, rows: list[dict[str, Any]], use_cpu: bool) -> None:
    """One training step on a few rows with a freshly loaded model; any failure is invalid_config (or oom)."""
    spec = ctx.spec
    few = rows[: spec.preflight_rows]
    pre_cfg = cfg.model_copy(update={"max_steps": 1, "grad_accum": 1, "batch_size": min(cfg.batch_size, len(few)),
                                     "warmup_ratio": 0.0})
    out = spec.run_dir / ".preflight"
    shutil.rmtree(out, ignore_errors=True)
    monitor, guard = LossMonitor(), NanGuard(spec.nan_patience)
    callback = make_trainer_callback(monitor=monitor, guard=guard, progress=ctx.progress, cancel=ctx.cancel,
                                     stop_after_first_step=True)
    model: Any = None
    trainer: Any = None
    try:
        model, tok, new_lora = _load_for_training(spec, cfg, task, use_cpu)
        trainer = _build_trainer(pre_cfg, model, tok, few, out, use_cpu=use_cpu, new_lora=new_lora,
                                 callback=callback)
        instrument_trainer(trainer, monitor)
        trainer.train()
        if monitor.steps < 1:
            raise RuntimeError("the preflight step did not run (no batch was produced from the rows)")
    except (WorkerFailure, _Cancelled):
        raise
    except Exception as exc:
        if classify_exception(exc) == "oom":
            raise WorkerFailure("oom", f"out of memory in the preflight step (batch size "
                                f"{pre_cfg.batch_size}): {exc}") from exc
        traceback.print_exc(file=sys.stderr)
        raise WorkerFailure("invalid_config", f"preflight failed: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(out, ignore_errors=True)
        model = trainer = None  # drop the preflight copy before the real model loads
        _free_memory()


def _evaluate(ctx: _Context, task: TaskSpec, model: Any, tokenizer: Any) -> dict[str, Any]:
    try:
        from trex_mcp.evaluation import evaluate_model
    except ImportError as exc:
        raise WorkerFailure("crash", f"evaluation is not available (trex_mcp.evaluation.evaluate_model: {exc}); "
                            "run with evaluate=false or install the evaluation package") from exc
    result = evaluate_model(task, model, tokenizer, split="validation", limit=ctx.spec.eval_limit)
    lines = "".join(json.dumps(p, default=str) + "\n" for p in result.predictions)
    atomic_write_text(ctx.spec.run_dir / "predictions.jsonl", lines)
    return {"score": result.score, "metric": result.metric, "metrics": dict(result.metrics),
            "higher_is_better": result.higher_is_better, "eval_n": result.n}


def _evaluate_only(ctx: _Context, cfg: TrainConfig, task: TaskSpec, use_cpu: bool) -> dict[str, Any]:
    """A baseline run: load the base model (or base + warm-start adapter) and evaluate it; nothing is trained."""
    from trex_mcp.errors import TrexError

    spec = ctx.spec
    ctx.progress.write("phase", phase="load")
    try:
        model, tokenizer, _ = _load_for_training(spec, cfg, task, use_cpu)
    except TrexError as exc:
        raise WorkerFailure("invalid_config", str(exc)) from exc
    if not use_cpu:
        model = model.to("cuda")
    ctx.progress.write("preflight_ok", train=False)
    outcome: dict[str, Any] = {"steps": 0, "tokens": 0, "train_s": 0.0, "train_loss": None, "adapter_dir": None,
                               "warm_started": spec.warm_start_adapter is not None, "score": None, "metric": None,
                               "metrics": {}, "eval_s": 0.0}
    if spec.evaluate and ctx.is_main:
        t = time.perf_counter()
        ctx.progress.write("phase", phase="evaluate")
        model.eval()
        outcome.update(_evaluate(ctx, task, model, tokenizer))
        outcome["eval_s"] = round(time.perf_counter() - t, 3)
        outcome["predictions_file"] = str(spec.run_dir / "predictions.jsonl")
    return outcome


def _train_and_evaluate(ctx: _Context) -> dict[str, Any]:
    spec = ctx.spec
    t_start = time.perf_counter()
    ctx.progress.write("phase", phase="validate")
    cfg = _parse_config(spec)
    ctx.batch_size = cfg.batch_size
    task = _load_task(spec)
    rows = _read_dataset(spec) if spec.train else []

    import datasets
    import peft  # noqa: F401 - imported here so import_s counts every heavy import
    import torch
    import transformers
    import trl

    trl.SFTTrainer if cfg.method == "sft" else trl.DPOTrainer  # noqa: B018 - trl imports its trainers lazily
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    use_cpu = not torch.cuda.is_available()
    if use_cpu:
        torch.set_num_threads(1)  # shared CPUs: more threads is several times slower under contention
    ctx.timings["import_s"] = round(time.perf_counter() - t_start, 3)

    if not spec.train:
        return _evaluate_only(ctx, cfg, task, use_cpu)

    t = time.perf_counter()
    ctx.progress.write("phase", phase="preflight", rows=len(rows))
    _preflight(ctx, cfg, task, rows, use_cpu)
    ctx.timings["preflight_s"] = round(time.perf_counter() - t, 3)
    ctx.progress.write("preflight_ok")

    t = time.perf_counter()
    ctx.progress.write("phase", phase="load")
    model, tokenizer, new_lora = _load_for_training(spec, cfg, task, use_cpu)
    checkpoints = spec.run_dir / "checkpoints"
    resume = latest_complete_checkpoint(checkpoints, remove_incomplete=ctx.is_main)
    monitor, guard = LossMonitor(), NanGuard(spec.nan_patience)
    world = world_size_from_env()
    callback = make_trainer_callback(monitor=monitor, guard=guard, progress=ctx.progress, cancel=ctx.cancel,
                                     world_size=world)
    trainer = _build_trainer(cfg, model, tokenizer, rows, checkpoints, use_cpu=use_cpu, new_lora=new_lora,
                             callback=callback)
    instrument_trainer(trainer, monitor)
    ctx.timings["load_s"] = round(time.perf_counter() - t, 3)

    resumed_step = 0
    if resume is not None:
        resumed_step = int(_CHECKPOINT.match(resume.name).group(1))  # type: ignore[union-attr]
        ctx.progress.write("resume", checkpoint=resume.name, step=resumed_step)
    t = time.perf_counter()
    ctx.in_training = True
    try:
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        ctx.in_training = False
        train_s = time.perf_counter() - t
        ctx.timings["train_s"] = round(train_s, 3)
        ctx.stats = {"steps": int(trainer.state.global_step), "tokens": monitor.tokens_total * world,
                     "train_s": round(train_s, 3), "resumed_from_step": resumed_step}

    if guard.tripped:
        raise WorkerFailure("nan_loss", guard.message())
    if ctx.cancel.is_set():
        latest = latest_complete_checkpoint(checkpoints)
        ctx.checkpoint = str(latest) if latest else None
        raise _Cancelled()

    t = time.perf_counter()
    ctx.progress.write("phase", phase="save")
    tmp = spec.run_dir / ".tmp-adapter"
    if ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # LoRA: the adapter only; full: the whole model; plus the tokenizer
    trainer.accelerator.wait_for_everyone()
    if ctx.is_main:
        from trex_mcp.execution.models import write_adapter_meta

        write_adapter_meta(tmp, base_model=spec.base_model, task=task, adapter=cfg.adapter)
        publish_dir(tmp, spec.run_dir / "adapter")
    ctx.timings["save_s"] = round(time.perf_counter() - t, 3)

    outcome: dict[str, Any] = {
        **ctx.stats,
        "train_loss": float(output.training_loss),
        "warm_started": spec.warm_start_adapter is not None,
        "adapter_dir": str(spec.run_dir / "adapter"),
        "score": None, "metric": None, "metrics": {}, "eval_s": 0.0,
    }
    if spec.evaluate and ctx.is_main:
        t = time.perf_counter()
        ctx.progress.write("phase", phase="evaluate")
        eval_model = trainer.model
        if hasattr(eval_model, "merge_and_unload"):
            eval_model = eval_model.merge_and_unload()  # faster generation; the adapter is already saved
        eval_model.eval()
        outcome.update(_evaluate(ctx, task, eval_model, tokenizer))
        outcome["eval_s"] = round(time.perf_counter() - t, 3)
        outcome["predictions_file"] = str(spec.run_dir / "predictions.jsonl")
    return outcome


# -------------------------------------------------------------------------------------------- entry


def run_worker(spec: RunSpec) -> int:
    """Run one training job described by `spec`; writes result.json last. Returns the process exit code."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    is_main = _rank() == 0
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    result_path = spec.run_dir / "result.json"
    if is_main and result_path.exists():  # a stale result from an earlier attempt must not be read as ours
        os.replace(result_path, spec.run_dir / "result.previous.json")
    ctx = _Context(spec, is_main=is_main)
    previous = {s: signal.signal(s, ctx.on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    heartbeat = _Heartbeat(spec.run_dir / "heartbeat", spec.heartbeat_s) if is_main else None
    if heartbeat is not None:
        heartbeat.start()
    result: dict[str, Any] = {
        "run_id": spec.run_id, "train": spec.train, "status": "fail", "failure": None, "score": None,
        "metric": None, "metrics": {},
        "train_loss": None, "steps": 0, "tokens": 0, "train_s": 0.0, "eval_s": 0.0, "batch_size": None,
    }
    gpu = False
    try:
        ctx.progress.write("phase", phase="start", run_id=spec.run_id, pid=os.getpid())
        outcome = _train_and_evaluate(ctx)
        result.update(outcome)
        result["status"] = "complete"
        if is_main and not spec.keep_checkpoints:
            shutil.rmtree(spec.run_dir / "checkpoints", ignore_errors=True)  # only needed to resume
    except WorkerFailure as exc:
        result["failure"] = {"kind": exc.kind, "message": exc.message}
    except _Cancelled:
        if ctx.checkpoint:
            where = f"; checkpoint {ctx.checkpoint}"
        elif is_complete(spec.run_dir / "adapter"):
            where = f"; training had finished, the adapter is at {spec.run_dir / 'adapter'}"
        else:
            where = "; no checkpoint was written"
        result["failure"] = {"kind": "cancelled", "message": f"{ctx.cancel.reason or 'cancelled'}{where}"}
        result["checkpoint"] = ctx.checkpoint
    except Exception as exc:  # noqa: BLE001 - the worker reports every failure through result.json
        traceback.print_exc(file=sys.stderr)
        kind = classify_exception(exc)
        message = f"{type(exc).__name__}: {exc}"
        if kind == "oom":
            message = f"out of memory at batch size {ctx.batch_size}: {message}; lower batch_size or max_length"
        result["failure"] = {"kind": kind, "message": message[:4000]}
    finally:
        ctx.finishing = True
        if result["status"] != "complete":
            result.update(ctx.stats)  # how far a failed run got
        if heartbeat is not None:
            heartbeat.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        gpu = False
    wall = time.perf_counter() - wall0
    result["batch_size"] = ctx.batch_size
    result["wall_s"] = round(wall, 3)
    # GPU seconds on GPU (training wall time x devices), CPU seconds of this process otherwise.
    result["device_s"] = round(result["train_s"] * max(1, spec.gpus, world_size_from_env()), 3) if gpu else round(
        time.process_time() - cpu0, 3)
    result["device"] = "cuda" if gpu else "cpu"
    result["timings"] = ctx.timings
    if is_main:
        ctx.progress.write("done", status=result["status"],
                           failure=(result["failure"] or {}).get("kind"), score=result["score"])
        atomic_write_json(result_path, result)
    return EXIT_OK if result["status"] == "complete" else EXIT_FAIL


def _fail_early(spec_path: Path, kind: str, message: str) -> int:
    """Report a spec that cannot be read: result.json next to it, if that folder exists."""
    print(f"trex worker: {message}", file=sys.stderr)
    folder = spec_path.parent
    if folder.is_dir() and _rank() == 0:
        atomic_write_json(folder / "result.json", {"status": "fail", "failure": {"kind": kind, "message": message},
                                                   "score": None, "steps": 0, "tokens": 0})
    return EXIT_FAIL


def main(argv: list[str] | None = None) -> int:
    """Entry point: one argument, the path of spec.json."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m trex_mcp.execution.worker <run_dir>/spec.json", file=sys.stderr)
        return EXIT_USAGE
    spec_path = Path(args[0])
    try:
        spec = RunSpec.read(spec_path)
    except OSError as exc:
        return _fail_early(spec_path, "invalid_config", f"cannot read spec {spec_path}: {exc}")
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        return _fail_early(spec_path, "invalid_config", f"invalid spec {spec_path}: {exc}")
    return run_worker(spec)


if __name__ == "__main__":
    sys.exit(main())
