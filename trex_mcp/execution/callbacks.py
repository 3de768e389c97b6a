"""Training-loop instrumentation: raw loss monitoring, the non-finite-loss guard, progress lines, cancellation.

The logic lives in plain classes (`LossMonitor`, `NanGuard`, `ProgressLog`, `CancelToken`) that import nothing
heavy and can be fed values directly in tests. `make_trainer_callback` wraps them in a transformers
`TrainerCallback` (imported lazily), and `instrument_trainer` wraps `trainer.training_step` so every micro-batch's
raw loss reaches the monitor. The loss is taken there, not from the Trainer's logs, because the Trainer's
`logging_nan_inf_filter` replaces non-finite losses in its logs with the running mean (training would go on).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["CancelToken", "LossMonitor", "NanGuard", "ProgressLog", "count_tokens", "instrument_trainer",
           "make_trainer_callback"]


class CancelToken:
    """Set once (by a SIGTERM handler); read by the training loop at each step end."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class NanGuard:
    """Stops training after `patience` consecutive optimizer steps with a non-finite loss.

    `observe` returns True once the streak reaches `patience`; the streak resets on a finite loss.
    """

    def __init__(self, patience: int = 3) -> None:
        if patience < 1:
            raise ValueError("patience must be >= 1")
        self.patience = patience
        self.streak = 0
        self.tripped = False
        self.tripped_at: int | None = None
        self.recent: list[float] = []

    def observe(self, loss: float, step: int) -> bool:
        """Record one step's loss; True when training must stop."""
        self.recent = [*self.recent[-(self.patience * 2 - 1):], loss]
        if math.isfinite(loss):
            self.streak = 0
            return self.tripped
        self.streak += 1
        if self.streak >= self.patience and not self.tripped:
            self.tripped = True
            self.tripped_at = step
        return self.tripped

    def trip(self, step: int) -> None:
        """Mark the guard tripped (another process of a distributed run saw the non-finite losses)."""
        if not self.tripped:
            self.tripped = True
            self.tripped_at = step

    def message(self) -> str:
        shown = ", ".join(f"{x:.4g}" for x in self.recent[-self.patience:])
        return (f"loss was non-finite for {self.patience} consecutive steps (up to step {self.tripped_at}; "
                f"last losses: {shown}); lower the learning rate, use fp32/bf16 instead of fp16, or clip gradients")


class LossMonitor:
    """Collects raw micro-batch losses and token counts, and sums them per optimizer step.

    The micro-batch losses the Trainer returns are already divided by the gradient-accumulation steps, so their
    sum is the step's loss.
    """

    def __init__(self) -> None:
        self._loss = 0.0
        self._micro = 0
        self._tokens = 0
        self.tokens_total = 0
        self.steps = 0
        self.last_loss: float | None = None

    def add_micro(self, loss: float, tokens: int) -> None:
        self._loss += loss
        self._micro += 1
        self._tokens += tokens

    def end_step(self) -> tuple[float | None, int]:
        """The step's loss (None when no micro-batch was seen) and tokens; resets the accumulators."""
        loss = self._loss if self._micro else None
        tokens = self._tokens
        self.tokens_total += tokens
        self.steps += 1
        self.last_loss = loss
        self._loss, self._micro, self._tokens = 0.0, 0, 0
        return loss, tokens


class ProgressLog:
    """Appends one JSON object per line to `progress.jsonl` (flushed per line, so a reader can tail it)."""

    def __init__(self, path: Path, *, enabled: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        now = self.clock()
        record = {"event": event, **{k: _clean(v) for k, v in fields.items()}, "t": round(now, 3),
                  "elapsed_s": round(now - self.started, 3)}
        line = json.dumps(record, sort_keys=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # 'nan' / 'inf' keep the evidence, stay valid JSON
    return value


def count_tokens(inputs: Any) -> int:
    """Real (non-padding) tokens in a collated batch: attention masks if any, else input id counts."""
    if not isinstance(inputs, dict):
        return 0
    masks = [v for k, v in inputs.items() if k.endswith("attention_mask") and hasattr(v, "sum")]
    if masks:
        return int(sum(int(m.sum()) for m in masks))
    ids = [v for k, v in inputs.items() if k.endswith("input_ids") and hasattr(v, "numel")]
    return int(sum(int(v.numel()) for v in ids))


def instrument_trainer(trainer: Any, monitor: LossMonitor) -> None:
    """Wrap `trainer.training_step` so each micro-batch's raw loss and tokens reach `monitor`."""
    original = trainer.training_step

    def training_step(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        tokens = count_tokens(inputs)  # before the step: the Trainer deletes its inputs
        loss = original(model, inputs, *args, **kwargs)
        monitor.add_micro(float(loss.detach().float().item()), tokens)
        return loss

    trainer.training_step = training_step


def make_trainer_callback(*, monitor: LossMonitor, guard: NanGuard, progress: ProgressLog, cancel: CancelToken,
                          world_size: int = 1, stop_after_first_step: bool = False,
                          on_first_step: Callable[[], None] | None = None) -> Any:
    """A transformers `TrainerCallback` driving the objects above at each optimizer step.

    Per step it writes a `step` progress line (step, raw loss, learning rate, tokens per second), stops training
    without saving when the guard trips, and saves a checkpoint then stops when `cancel` is set.
    With `stop_after_first_step` (the preflight) it stops after one step and never saves.
    """
    from transformers import TrainerCallback

    class _TrexCallback(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.last_logs: dict[str, Any] = {}
            self._t_last = time.perf_counter()
            self._first = True

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self._t_last = time.perf_counter()
            if not stop_after_first_step:
                progress.write("phase", phase="train", step=int(state.global_step), total_steps=int(state.max_steps))
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            loss, tokens = monitor.end_step()
            now = time.perf_counter()
            dt = max(now - self._t_last, 1e-9)
            self._t_last = now
            scheduler = kwargs.get("lr_scheduler")
            lr = None
            if scheduler is not None:
                try:
                    lr = float(scheduler.get_last_lr()[0])
                except (AttributeError, IndexError, TypeError):
                    lr = None
            if not stop_after_first_step:
                progress.write("step", step=int(state.global_step), loss=loss, lr=lr,
                               tokens_per_s=round(tokens * world_size / dt, 1), tokens=tokens * world_size,
                               epoch=None if state.epoch is None else round(float(state.epoch), 4))
            if self._first:
                self._first = False
                if on_first_step is not None:
                    on_first_step()
            if stop_after_first_step:
                control.should_training_stop = True
                control.should_save = False
                return control
            nan_stop = loss is not None and guard.observe(loss, int(state.global_step))
            if world_size > 1:  # every process must stop at the same step, or the others hang in a collective
                nan_stop, cancelled = _agree(nan_stop, cancel.is_set())
                if nan_stop:
                    guard.trip(int(state.global_step))
                if cancelled and not cancel.is_set():
                    cancel.cancel("another process of this run was cancelled")
            if nan_stop:
                control.should_training_stop = True
                control.should_save = False
            elif cancel.is_set():
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> Any:
            if logs:
                self.last_logs.update(logs)
            return control

    return _TrexCallback()


def _agree(*flags: bool) -> tuple[bool, ...]:
    """OR each flag across the processes of a distributed run (one tiny all-reduce); unchanged otherwise."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flags
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    values = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in values.tolist())


def world_size_from_env() -> int:
    """Processes in this training job (accelerate / torchrun set WORLD_SIZE); 1 otherwise."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1
