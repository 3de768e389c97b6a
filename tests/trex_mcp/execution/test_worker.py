"""The training worker: real TRL training of a tiny model, failures, checkpoints and resume, cancellation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trex_mcp.execution import worker
from trex_mcp.execution.callbacks import LossMonitor, NanGuard, count_tokens
from trex_mcp.execution.spec import RunSpec
from trex_mcp.execution.worker import classify_exception, latest_complete_checkpoint, run_worker

# LoRA with modules_to_save=['embed_tokens'] on a tied-embedding model: PEFT warns about tying, merging unties.
pytestmark = [pytest.mark.filterwarnings("ignore:Model has `tie_word_embeddings=True`:UserWarning"),
              pytest.mark.filterwarnings("ignore:Input and output embeddings are no longer tied:UserWarning")]

#: LoRA (plus trained tied embeddings, which lets a random tiny model reach confident outputs) that learns
#: mini/sentiment in 60 steps; measured validation accuracy about 0.9.
LEARNING_CONFIG = {"modules_to_save": ["embed_tokens"], "max_steps": 60}


def _result(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "result.json").read_text())


def _events(run_dir: Path, kind: str | None = None) -> list[dict[str, Any]]:
    lines = (run_dir / "progress.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return [e for e in events if kind is None or e["event"] == kind]


@pytest.fixture(scope="session")
def trained_run(run_spec_factory: Callable[..., RunSpec], tmp_path_factory: pytest.TempPathFactory) -> RunSpec:
    """One real LoRA SFT run of the session tiny model on the sentiment 'clean' rows, evaluated (session-wide)."""
    spec = run_spec_factory(tmp_path_factory.mktemp("trained") / "run", LEARNING_CONFIG, evaluate=True)
    assert run_worker(spec) == 0, _result(spec.run_dir)
    return spec


def test_lora_sft_on_the_clean_source_learns_the_task(trained_run, tiny_sentiment_model):
    from trex_mcp.evaluation import evaluate_model
    from trex_mcp.execution.models import load_model

    result = _result(trained_run.run_dir)
    assert result["status"] == "complete" and result["failure"] is None
    assert result["metric"] == "accuracy" and result["score"] >= 0.8
    steps = _events(trained_run.run_dir, "step")
    assert [e["step"] for e in steps] == list(range(1, 61))
    assert steps[-1]["loss"] < steps[0]["loss"] / 2
    task, models_dir = tiny_sentiment_model.task, tiny_sentiment_model.models_dir
    base, tok = load_model("tiny:100k", models_dir=models_dir, task=task)
    assert evaluate_model(task, base, tok, split="validation").score <= 0.6
    # The published adapter reproduces the in-memory score after a reload from disk.
    tuned, tok = load_model("tiny:100k", models_dir=models_dir, task=task,
                            adapter_dir=trained_run.run_dir / "adapter", merge=True)
    assert evaluate_model(task, tuned, tok, split="validation").score == pytest.approx(result["score"], abs=0.02)
    predictions = [json.loads(x) for x in (trained_run.run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == result["eval_n"] == 100
    assert {"id", "input", "prediction", "reference", "correct"} <= predictions[0].keys()


def test_worker_runs_end_to_end_in_a_subprocess(make_run_spec):
    spec = make_run_spec(config={"max_steps": 6, "save_steps": 3}, evaluate=True, eval_limit=10)
    spec_file = spec.write()
    proc = subprocess.run([sys.executable, "-m", "trex_mcp.execution.worker", str(spec_file)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = spec.run_dir
    result = _result(run_dir)
    assert result["status"] == "complete" and result["steps"] == 6
    for key in ("score", "metric", "metrics", "train_loss", "tokens", "train_s", "eval_s", "wall_s", "device_s",
                "batch_size"):
        assert key in result, key
    assert result["tokens"] > 0 and result["batch_size"] == 16 and result["device"] == "cpu"
    assert result["device_s"] > 0 and result["train_s"] < result["wall_s"]
    assert (run_dir / "adapter" / "_COMPLETE").is_file()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((run_dir / "adapter" / "trex_adapter.json").read_text())["base_model"] == "tiny:100k"
    assert len((run_dir / "predictions.jsonl").read_text().splitlines()) == 10
    assert float((run_dir / "heartbeat").read_text()) > 0
    assert [e["total_steps"] for e in _events(run_dir, "phase") if e["phase"] == "train"] == [6]
    kinds = [e["event"] for e in _events(run_dir)]
    assert kinds.index("preflight_ok") < kinds.index("step") and kinds[-1] == "done"
    step = _events(run_dir, "step")[0]
    assert {"step", "loss", "lr", "tokens_per_s", "t"} <= step.keys() and step["tokens_per_s"] > 0
    assert not (run_dir / "checkpoints").exists()  # removed once the run is complete
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp")]


def test_nan_guard_stops_after_three_consecutive_non_finite_losses_only():
    guard = NanGuard(patience=3)
    series = [2.0, float("nan"), float("inf"), 1.5, float("nan"), float("nan"), 1.0, float("nan"), float("-inf")]
    assert not any(guard.observe(x, step) for step, x in enumerate(series, start=1))
    assert guard.observe(float("nan"), 10) and guard.tripped_at == 10
    assert guard.observe(1.0, 11)  # once tripped, it stays tripped
    assert "3 consecutive steps" in guard.message()


def test_loss_monitor_sums_micro_batches_into_one_step():
    monitor = LossMonitor()
    monitor.add_micro(0.25, 10)
    monitor.add_micro(0.5, 6)
    assert monitor.end_step() == (0.75, 16)
    assert monitor.end_step() == (None, 0)
    assert monitor.tokens_total == 16


def test_count_tokens_uses_attention_masks_else_input_ids():
    import torch

    assert count_tokens({"input_ids": torch.ones(2, 5), "attention_mask": torch.tensor([[1, 1, 1, 0, 0]] * 2)}) == 6
    assert count_tokens({"input_ids": torch.ones(1, 7)}) == 7
    assert count_tokens([1, 2]) == 0


def _poison_loss_after(step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the real training loss NaN from optimizer step `step` on (the preflight is left alone)."""
    real_build = worker._build_trainer

    def build(cfg, *args, **kwargs):
        trainer = real_build(cfg, *args, **kwargs)
        if cfg.max_steps == 1:
            return trainer
        compute_loss = trainer.compute_loss

        def poisoned(*a, **k):
            loss = compute_loss(*a, **k)
            return loss * float("nan") if trainer.state.global_step >= step else loss

        trainer.compute_loss = poisoned
        return trainer

    monkeypatch.setattr(worker, "_build_trainer", build)


def test_non_finite_losses_end_the_run_as_nan_loss_within_three_steps(make_run_spec, monkeypatch):
    _poison_loss_after(2, monkeypatch)
    spec = make_run_spec(config={"max_steps": 30, "save_steps": 2})
    assert run_worker(spec) == worker.EXIT_FAIL
    result = _result(spec.run_dir)
    assert result["status"] == "fail" and result["failure"]["kind"] == "nan_loss"
    assert "3 consecutive" in result["failure"]["message"]
    assert result["steps"] == 5  # steps 3, 4, 5 were non-finite
    losses = [e["loss"] for e in _events(spec.run_dir, "step")]
    assert losses[2:] == ["nan", "nan", "nan"]
    assert not (spec.run_dir / "adapter").exists()


def test_retry_resumes_from_the_latest_complete_checkpoint_and_skips_incomplete_ones(make_run_spec):
    spec = make_run_spec(config={"max_steps": 12, "save_steps": 4, "save_total_limit": 3}, keep_checkpoints=True)
    assert run_worker(spec) == 0
    checkpoints = spec.run_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("checkpoint-")) == [
        "checkpoint-12", "checkpoint-4", "checkpoint-8"]
    # A kill while checkpoint-12 was being saved: the Trainer writes trainer_state.json last.
    (checkpoints / "checkpoint-12" / "trainer_state.json").unlink()
    assert latest_complete_checkpoint(checkpoints).name == "checkpoint-8"
    first_attempt = len(_events(spec.run_dir))
    assert run_worker(spec) == 0
    events = _events(spec.run_dir)[first_attempt:]
    assert [e["step"] for e in events if e["event"] == "resume"] == [8]
    assert [e["step"] for e in events if e["event"] == "step"] == [9, 10, 11, 12]
    result = _result(spec.run_dir)
    assert result["status"] == "complete" and result["steps"] == 12 and result["resumed_from_step"] == 8
    assert (checkpoints / "checkpoint-12" / "trainer_state.json").is_file()
    assert (spec.run_dir / "result.previous.json").is_file()


def test_sigterm_saves_a_checkpoint_and_ends_the_run_as_cancelled(make_run_spec):
    spec = make_run_spec(config={"max_steps": 100_000, "save_steps": 100_000})
    progress = spec.run_dir / "progress.jsonl"
    sent = threading.Event()
    done = threading.Event()

    def terminate_after_a_few_steps() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done.is_set():
            if progress.exists() and progress.read_text().count('"event": "step"') >= 3:
                # Only while the worker's handler is installed: never SIGTERM pytest itself.
                if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None) and not done.is_set():
                    os.kill(os.getpid(), signal.SIGTERM)
                    sent.set()
                return
            done.wait(0.01)

    thread = threading.Thread(target=terminate_after_a_few_steps)
    thread.start()
    try:
        code = run_worker(spec)
    finally:
        done.set()
        thread.join(timeout=10)
    assert sent.is_set()
    assert code == worker.EXIT_FAIL
    result = _result(spec.run_dir)
    assert result["failure"]["kind"] == "cancelled" and "SIGTERM" in result["failure"]["message"]
    checkpoint = Path(result["checkpoint"])
    assert checkpoint.name == f"checkpoint-{result['steps']}" and (checkpoint / "trainer_state.json").is_file()
    assert 3 <= result["steps"] < 100
    assert not (spec.run_dir / "adapter").exists()


def test_missing_model_fails_the_preflight_as_invalid_config(make_run_spec, tmp_path):
    spec = make_run_spec(base_model=str(tmp_path / "no-such-model"))
    assert run_worker(spec) == worker.EXIT_FAIL
    result = _result(spec.run_dir)
    assert result["failure"]["kind"] == "invalid_config"
    assert "no-such-model" in result["failure"]["message"] and "does not exist" in result["failure"]["message"]
    assert not _events(spec.run_dir, "preflight_ok")


@pytest.mark.parametrize(("fields", "needle"), [
    ({"config": {"learning_rate": 5.0}}, "learning_rate"),
    ({"config": {"method": "dpo"}}, "dataset_format"),
    ({"config": {"target_modules": ["no_such_proj"]}}, "preflight failed"),
    ({"task_name": "ftbench/mini/sentimnet"}, "sentiment"),
])
def test_bad_config_data_or_task_is_invalid_config_naming_the_cause(make_run_spec, fields, needle):
    config = fields.pop("config", None)
    spec = make_run_spec(config=config, **fields)
    assert run_worker(spec) == worker.EXIT_FAIL
    failure = _result(spec.run_dir)["failure"]
    assert failure["kind"] == "invalid_config" and needle in failure["message"]


def test_a_dataset_row_missing_its_columns_is_invalid_config(make_run_spec, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "Review: fine\nSentiment:"}) + "\n")
    spec = make_run_spec(dataset_file=bad)
    assert run_worker(spec) == worker.EXIT_FAIL
    failure = _result(spec.run_dir)["failure"]
    assert failure["kind"] == "invalid_config" and "line 1" in failure["message"] and "completion" in failure["message"]


def test_out_of_memory_in_training_ends_the_run_as_oom_with_the_batch_size(make_run_spec, monkeypatch):
    import torch

    real_build = worker._build_trainer

    def build(cfg, *args, **kwargs):
        trainer = real_build(cfg, *args, **kwargs)
        if cfg.max_steps != 1:
            def train(*a, **k):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

            trainer.train = train
        return trainer

    monkeypatch.setattr(worker, "_build_trainer", build)
    spec = make_run_spec(config={"batch_size": 8, "max_steps": 5})
    assert run_worker(spec) == worker.EXIT_FAIL
    result = _result(spec.run_dir)
    assert result["failure"]["kind"] == "oom" and result["batch_size"] == 8
    assert "batch size 8" in result["failure"]["message"]


def test_out_of_memory_is_recognised_by_type_message_or_cause():
    import torch

    assert classify_exception(torch.OutOfMemoryError("x")) == "oom"
    assert classify_exception(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")) == "oom"
    assert classify_exception(RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: 1 GB")) == "oom"
    try:
        try:
            raise torch.OutOfMemoryError("inner")
        except torch.OutOfMemoryError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert classify_exception(outer) == "oom"
    assert classify_exception(ValueError("shape mismatch")) == "crash"


def _preference_file(task, path: Path) -> Path:
    from ftbench.data import read_rows

    flip = {"positive": "negative", "negative": "positive"}
    rows = [{"prompt": task.prompt_template.format(input=r["text"]), "chosen": " " + r["label"],
             "rejected": " " + flip[r["label"]]} for r in read_rows(task, "clean")[:64]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _messages_file(task, path: Path) -> Path:
    from ftbench.data import read_rows

    rows = [{"messages": [{"role": "user", "content": task.prompt_template.format(input=r["text"])},
                          {"role": "assistant", "content": r["label"]}]} for r in read_rows(task, "clean")[:64]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("method", "adapter", "fmt"), [
    ("sft", "full", "prompt_completion"),
    ("sft", "lora", "messages"),
    ("dpo", "lora", "preference"),
    ("dpo", "full", "preference"),
])
def test_each_method_adapter_and_format_trains_and_publishes(make_run_spec, tiny_sentiment_model, tmp_path,
                                                             method, adapter, fmt):
    task = tiny_sentiment_model.task
    data = {"preference": lambda: _preference_file(task, tmp_path / "pref.jsonl"),
            "messages": lambda: _messages_file(task, tmp_path / "msgs.jsonl")}.get(fmt)
    fields = {"dataset_file": data(), "dataset_format": fmt} if data else {}
    spec = make_run_spec(config={"method": method, "adapter": adapter, "max_steps": 3, "batch_size": 4,
                                 "learning_rate": 1e-3}, **fields)
    assert run_worker(spec) == 0, _result(spec.run_dir)["failure"]
    result = _result(spec.run_dir)
    assert result["steps"] == 3 and result["tokens"] > 0
    published = spec.run_dir / "adapter"
    assert (published / "_COMPLETE").is_file()
    assert (published / ("adapter_config.json" if adapter == "lora" else "config.json")).is_file()
    from trex_mcp.execution.models import load_model

    model, _ = load_model("tiny:100k", models_dir=tiny_sentiment_model.models_dir, task=task, adapter_dir=published)
    assert model is not None


def test_warm_start_continues_from_the_parent_adapter(trained_run, make_run_spec):
    spec = make_run_spec(config={**LEARNING_CONFIG, "max_steps": 3, "warm_start": True},
                         warm_start_adapter=trained_run.run_dir / "adapter")
    assert run_worker(spec) == 0
    result = _result(spec.run_dir)
    assert result["warm_started"] is True
    parent_first = _events(trained_run.run_dir, "step")[0]["loss"]
    child_first = _events(spec.run_dir, "step")[0]["loss"]
    assert child_first < parent_first / 2


def test_warm_start_from_an_incomplete_adapter_is_invalid_config(make_run_spec, tmp_path):
    half = tmp_path / "half-written"
    half.mkdir()
    spec = make_run_spec(warm_start_adapter=half)
    assert run_worker(spec) == worker.EXIT_FAIL
    failure = _result(spec.run_dir)["failure"]
    assert failure["kind"] == "invalid_config" and "incomplete" in failure["message"]


def test_a_warm_start_without_an_adapter_is_invalid_config_not_a_silent_fresh_start(make_run_spec):
    spec = make_run_spec(config={**LEARNING_CONFIG, "max_steps": 3, "warm_start": True})
    assert run_worker(spec) == worker.EXIT_FAIL
    failure = _result(spec.run_dir)["failure"]
    assert failure["kind"] == "invalid_config" and "warm_start" in failure["message"]


def test_an_unreadable_spec_is_reported_next_to_it(tmp_path):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"run_id": "x"}))
    assert worker.main([str(spec_file)]) == worker.EXIT_FAIL
    assert _result(tmp_path)["failure"]["kind"] == "invalid_config"
    assert worker.main([]) == worker.EXIT_USAGE


def test_a_baseline_run_only_evaluates_the_base_model(make_run_spec, tmp_path):
    spec = make_run_spec(train=False, evaluate=True, eval_limit=20, config={},
                         dataset_file=tmp_path / "never-read.jsonl")
    assert run_worker(spec) == 0
    result = _result(spec.run_dir)
    assert result["status"] == "complete" and result["steps"] == 0 and result["adapter_dir"] is None
    assert result["metric"] == "accuracy" and result["score"] <= 0.6 and result["eval_n"] == 20
    assert len((spec.run_dir / "predictions.jsonl").read_text().splitlines()) == 20
    assert not (spec.run_dir / "adapter").exists()
