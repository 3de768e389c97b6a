"""JobManager with stand-in workers: queueing, finishing, failures, cancel, timeout, stale, retries, secrets."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import trex_mcp.execution.models  # noqa: F401 - imported by any server before its first submit (recipes, models)
import trex_mcp.recipes.config  # noqa: F401
from tree_store import FailureKind, InMemoryTreeStore, Run, State
from trex_mcp.execution.backends.local import LocalBackend
from trex_mcp.execution.manager import JobError, JobManager
from trex_mcp.settings import Settings

_spec = importlib.util.spec_from_file_location("trex_jobs_support", Path(__file__).parent / "children" / "support.py")
assert _spec is not None and _spec.loader is not None
support = sys.modules.get("trex_jobs_support") or importlib.util.module_from_spec(_spec)
if "trex_jobs_support" not in sys.modules:
    sys.modules["trex_jobs_support"] = support
    _spec.loader.exec_module(support)

FAKE_ARGV = support.FAKE_ARGV
wait_until = support.wait_until


@pytest.fixture
def env(tmp_path: Path, trex_home: Path) -> Iterator[dict[str, Any]]:
    store = InMemoryTreeStore()
    settings = Settings(home=trex_home, capacity=1, max_retry=3, run_timeout_s=60, heartbeat_s=0.2)
    settings.ensure_dirs()
    shared = tmp_path / "shared"
    shared.mkdir()
    dataset = tmp_path / "data.jsonl"
    dataset.write_text('{"prompt": "p", "completion": " c"}\n')
    lab = support.Lab(store, settings.runs_dir, shared, dataset)
    managers: list[JobManager] = []
    finished: list[Run] = []

    def make(**kwargs: Any) -> JobManager:
        kwargs.setdefault("worker_argv", FAKE_ARGV)
        kwargs.setdefault("grace_s", 0.5)
        kwargs.setdefault("poll_s", 0.02)
        kwargs.setdefault("on_finish", finished.append)
        capacity = kwargs.pop("capacity", 1)
        kwargs.setdefault("backend", LocalBackend(capacity=capacity, devices=[]))
        manager = JobManager(store, settings, **kwargs)
        managers.append(manager)
        return manager

    yield {"store": store, "settings": settings, "lab": lab, "make": make, "finished": finished,
           "shared": shared}
    for manager in managers:
        manager.close(timeout_s=2)
    support.kill_children(shared)


def final(store: InMemoryTreeStore, run_id: str, timeout_s: float = 10.0) -> Run:
    return wait_until(lambda: (r := store.get_run(run_id)).state.is_finished() and r, timeout_s,
                      f"run {run_id} to finish")


def test_submit_returns_at_once_and_a_good_run_completes_with_score_artifacts_and_cost(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    t0 = time.monotonic()
    handle = manager.submit(run.id, lab.spec(run, "ok"))
    assert time.monotonic() - t0 < 1.0
    assert handle.state == "RUNNING" and handle.queue_position is None
    assert (Path(handle.run_dir) / "spec.json").is_file()
    done = final(store, run.id)
    assert done.state is State.COMPLETE and done.score == 0.75
    assert done.metrics["accuracy"] == 0.75 and done.metrics["steps"] == 3
    assert done.metrics["progress"]["step"] == 3
    assert Path(done.artifacts["adapter_dir"], "_COMPLETE").is_file()
    assert done.cost["wall_s"] > 0 and done.cost["tokens"] == 1234 and "overhead_s" in done.cost
    assert done.job["pid"] > 0 and done.job["status"] == "running" and done.job["argv"][-1].endswith("spec.json")
    wait_until(lambda: [r.id for r in env["finished"]] == [run.id], what="on_finish")
    status = manager.status(run.id)
    assert status.state == "COMPLETE" and status.attempt == 1 and status.elapsed_s is not None


def test_two_runs_with_capacity_one_never_overlap_and_start_in_submission_order(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"](capacity=1)
    runs = [lab.run() for _ in range(3)]
    handles = [manager.submit(r.id, lab.spec(r, "exclusive")) for r in runs]
    assert [h.state for h in handles] == ["RUNNING", "WAITING", "WAITING"]
    assert [h.queue_position for h in handles] == [None, 1, 2]
    assert manager.status(runs[2].id).queue_position == 2
    done = [final(store, r.id) for r in runs]
    assert all(r.state is State.COMPLETE for r in done)
    assert not list(env["shared"].glob("overlap-*"))
    # store timestamps: each run started after the previous one finished
    for before, after in zip(done, done[1:], strict=False):
        assert before.finished_at is not None and after.started_at is not None
        assert after.started_at >= before.finished_at
    order = [line.split()[:2] for line in (env["shared"] / "order").read_text().splitlines()]
    assert order == [[kind, r.id] for r in runs for kind in ("start", "end")]


def test_admission_control_never_runs_more_than_capacity(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"](capacity=2)
    runs = [lab.run() for _ in range(5)]
    for r in runs:
        manager.submit(r.id, lab.spec(r, "ok"))
    peak = 0

    def all_done() -> bool:
        nonlocal peak
        peak = max(peak, len(store.find_runs(state=State.RUNNING)))
        return all(store.get_run(r.id).state is State.COMPLETE for r in runs)

    wait_until(all_done, 20, "five runs")
    assert 1 <= peak <= 2


def test_cancel_of_a_queued_run_prunes_it_at_once(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"](capacity=1)
    first, second = lab.run(), lab.run()
    manager.submit(first.id, lab.spec(first, "loop"))
    manager.submit(second.id, lab.spec(second, "ok"))
    status = manager.cancel(second.id)
    assert status.state == "PRUNED" and status.failure_kind == "cancelled"
    assert store.get_run(second.id).state is State.PRUNED
    assert manager.queued() == []
    manager.cancel(first.id)


def test_cancel_of_a_running_job_signals_within_2s_records_cancelled_and_leaves_no_process(
        env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"](grace_s=0.5)
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "spawn"))  # ignores SIGTERM and has a grandchild
    pid = lab.pid(run.id)
    grandchild = int(wait_until(lambda: (env["shared"] / f"grandchild-{run.id}").exists() and
                                (env["shared"] / f"grandchild-{run.id}").read_text(), what="grandchild"))
    wait_until(lambda: (env["shared"] / f"ready-{run.id}").exists(), what="ready")
    t0 = time.monotonic()
    status = manager.cancel(run.id)
    assert time.monotonic() - t0 < 2.0
    assert status.state == "PRUNED" and status.failure_kind == "cancelled"
    stored = store.get_run(run.id)
    assert stored.failure is not None and stored.failure.kind is FailureKind.CANCELLED
    wait_until(lambda: not support.group_members(pid), 5, "process group gone")
    assert not support.pid_alive(grandchild)
    wait_until(lambda: manager.running() == [], 5, "slot released")
    assert store.find_runs(state=State.WAITING) == []  # cancelled runs are not retried


def test_a_run_past_its_wall_clock_limit_is_reported_timeout_within_5s(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"](grace_s=0.5)
    run = lab.run()
    t0 = time.monotonic()
    manager.submit(run.id, lab.spec(run, "ignore_term"), timeout_s=1.0)
    pid = lab.pid(run.id)
    done = final(store, run.id, timeout_s=5)
    assert time.monotonic() - t0 < 5.0
    assert done.state is State.FAIL and done.failure is not None and done.failure.kind is FailureKind.TIMEOUT
    assert "wall-clock limit of 1 s" in done.failure.message
    assert done.cost["wall_s"] >= 1.0
    wait_until(lambda: not support.group_members(pid), 5, "timed-out group killed")
    assert store.find_runs(state=State.WAITING) == []


def test_a_crash_fails_with_a_log_tail_and_is_retried_exactly_max_retry_times(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "crash"))

    def chain_done() -> list[Run]:
        runs = store.find_runs(node_id=lab.node.id)
        return runs if len(runs) == 4 and all(r.state.is_finished() for r in runs) else []

    runs = wait_until(chain_done, 20, "four crashed attempts")
    assert [r.attempt for r in runs] == [1, 2, 3, 4]
    assert [r.retry_of for r in runs] == [None, runs[0].id, runs[1].id, runs[2].id]
    assert all(r.state is State.FAIL and r.failure and r.failure.kind is FailureKind.CRASH for r in runs)
    tail = runs[0].failure.log_tail.splitlines()  # type: ignore[union-attr]
    assert 0 < len(tail) <= 50 and "boom: simulated crash" in tail[-1]
    assert "exited with code 1" in runs[0].failure.message  # type: ignore[union-attr]
    assert [r.job["restart_count"] for r in runs] == [0, 1, 2, 3]
    assert all(r.job["from_scratch"] for r in runs[1:])  # J6: no checkpoint -> scratch, and recorded
    status = manager.status(runs[3].id)
    assert status.attempt == 4 and status.restart_count == 3 and status.retry_of == runs[2].id
    wait_until(lambda: len(env["finished"]) == 4, what="one callback per finished attempt")


def test_a_retry_resumes_from_the_latest_complete_checkpoint_of_the_previous_attempt(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "checkpoint_crash"))
    retry = wait_until(lambda: next((r for r in store.find_runs(node_id=lab.node.id)
                                     if r.retry_of == run.id and r.state.is_finished()), None), 10, "the retry")
    first = store.get_run(run.id)
    assert first.failure is not None and first.failure.kind is FailureKind.CRASH
    assert "SIGKILL" not in first.failure.message and "code 9" in first.failure.message
    assert retry.state is State.COMPLETE and retry.metrics["resumed_from_step"] == 2
    assert retry.job["resumed_from"].endswith("checkpoints/checkpoint-2") and not retry.job["from_scratch"]
    assert retry.attempt == 2 and retry.job["restart_count"] == 1
    assert not (Path(retry.job["run_dir"]) / "checkpoints" / "checkpoint-4").exists()  # incomplete: skipped
    assert Path(retry.job["run_dir"]) != Path(first.job["run_dir"])


def test_out_of_memory_in_the_log_is_reported_oom_and_not_retried(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "oom"))
    done = final(store, run.id)
    assert done.failure is not None and done.failure.kind is FailureKind.OOM
    assert "batch_size" in done.failure.message
    assert store.find_runs(state=State.WAITING) == []


def test_a_failure_reported_by_the_worker_keeps_its_kind_and_message(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "invalid"))
    done = final(store, run.id)
    assert done.failure is not None and done.failure.kind is FailureKind.INVALID_CONFIG
    assert done.failure.message == "base_model: no such model 'x/y'"
    assert "adapter_dir" not in done.artifacts
    assert store.find_runs(state=State.WAITING) == []


@pytest.mark.parametrize(("fields", "cause"), [
    ({"config": {"learning_rate": 5.0}}, "config.learning_rate"),
    ({"config": {"method": "grpo"}}, "config.method"),
    ({"dataset_file": "/nonexistent/data.jsonl"}, "dataset_file"),
    ({"base_model": "/nonexistent/model"}, "base_model"),
    ({"base_model": "tiny:999"}, "tiny:999"),
])
def test_bad_input_fails_fast_as_invalid_config_without_starting_a_process(
        env: dict[str, Any], fields: dict[str, Any], cause: str) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    t0 = time.monotonic()
    handle = manager.submit(run.id, lab.spec(run, "ok", **fields))
    assert time.monotonic() - t0 < 1.0
    assert handle.state == "FAIL"
    done = store.get_run(run.id)
    assert done.failure is not None and done.failure.kind is FailureKind.INVALID_CONFIG
    assert cause in done.failure.message
    assert not (Path(handle.run_dir) / "train.log").exists()
    assert manager.running() == [] and manager.queued() == []


def test_complete_without_the_adapter_marker_is_not_presented_as_done(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "no_adapter"))
    done = final(store, run.id)
    assert done.state is State.FAIL and "adapter_dir" not in done.artifacts
    assert done.failure is not None and "_COMPLETE" in done.failure.message


def test_heartbeat_older_than_twice_the_interval_fails_stale_not_before(env: dict[str, Any]) -> None:
    """Reliability J1 with an injected clock: H=1, grace=2; RUNNING at t=1.9, FAIL(stale) at t=3.0."""
    lab, store = env["lab"], env["store"]
    now = [time.time()]
    manager = env["make"](clock=lambda: now[0], monitor=False)
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "hang", heartbeat_s=1.0))
    run_dir = Path(store.get_run(run.id).job["run_dir"])
    beat = float(wait_until(lambda: (run_dir / "heartbeat").exists() and (run_dir / "heartbeat").read_text(),
                            what="first heartbeat"))
    now[0] = beat + 1.0
    manager.tick()
    assert store.get_run(run.id).heartbeat_at == beat + 1.0  # relayed to the store
    now[0] = beat + 1.9
    manager.tick()
    assert store.get_run(run.id).state is State.RUNNING
    now[0] = beat + 3.0
    manager.tick()
    done = store.get_run(run.id)
    assert done.state is State.FAIL and done.failure is not None and done.failure.kind is FailureKind.STALE
    retry = store.find_runs(state=State.WAITING) or store.find_runs(state=State.RUNNING)
    assert retry and retry[0].retry_of == run.id and retry[0].attempt == 2
    manager.cancel(retry[0].id)


def test_a_worker_that_wrote_its_result_but_hangs_on_exit_completes_and_is_stopped(env: dict[str, Any]) -> None:
    lab, store = env["lab"], env["store"]
    manager = env["make"](exit_grace_s=0.5, min_stale_grace_s=0.2)
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "linger", heartbeat_s=0.1))
    pid = lab.pid(run.id)
    done = final(store, run.id)
    assert done.state is State.COMPLETE and done.score == 0.75  # not stale: the result was already written
    wait_until(lambda: not support.group_members(pid), 5, "lingering worker stopped")


def test_progress_and_heartbeat_show_in_status_while_running(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"](metrics_interval_s=0.05)
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "loop"))
    status = wait_until(lambda: (s := manager.status(run.id)).progress.step and s.progress.step >= 3 and s,
                        what="progress")
    assert status.state == "RUNNING" and status.progress.loss == 0.5 and status.elapsed_s is not None
    assert status.heartbeat_age_s is not None and status.heartbeat_age_s < 5
    wait_until(lambda: store.get_run(run.id).metrics.get("progress", {}).get("step"), what="metrics in store")
    assert store.get_run(run.id).heartbeat_at is not None
    manager.cancel(run.id)


def test_a_failing_callback_never_stops_the_monitor(env: dict[str, Any]) -> None:
    lab, store = env["lab"], env["store"]
    calls: list[str] = []

    def bad_callback(run: Run) -> None:
        calls.append(run.id)
        raise RuntimeError("callback bug")

    manager = env["make"](on_finish=bad_callback)
    first, second = lab.run(), lab.run()
    manager.submit(first.id, lab.spec(first, "ok"))
    manager.submit(second.id, lab.spec(second, "ok"))
    assert final(store, second.id).state is State.COMPLETE
    wait_until(lambda: calls == [first.id, second.id], what="both callbacks")


def test_a_slow_callback_does_not_delay_other_runs(env: dict[str, Any]) -> None:
    lab, store = env["lab"], env["store"]
    release = threading.Event()
    manager = env["make"](on_finish=lambda run: release.wait(10), capacity=1)
    first, second = lab.run(), lab.run()
    manager.submit(first.id, lab.spec(first, "ok"))
    manager.submit(second.id, lab.spec(second, "ok"))
    assert final(store, second.id).state is State.COMPLETE  # while the first callback still blocks
    release.set()


def test_secrets_never_reach_the_worker_env_job_records_or_log_tails(env: dict[str, Any],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-9f8e7d6c")
    monkeypatch.setenv("HF_TOKEN", "hf_canary_5a4b3c2d")
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "secrets"))
    done = final(store, run.id)
    names = set(json.loads((env["shared"] / f"env-{run.id}.json").read_text()))
    assert "OPENAI_API_KEY" not in names and "HF_TOKEN" in names
    record = json.dumps([done.job, done.metrics, done.artifacts, done.cost], default=str)
    assert "canary" not in record
    tail = "\n".join(manager.log_tail(run.id, 50))
    assert "hf_canary_5a4b3c2d" not in tail and "fake worker" in tail


def test_a_run_finished_outside_the_manager_has_its_worker_stopped(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "loop"))
    pid = lab.pid(run.id)
    wait_until(lambda: store.get_run(run.id).heartbeat_at is not None, what="first relay")
    from tree_store import Failure

    store.finish_run(run.id, State.PRUNED, failure=Failure(FailureKind.CANCELLED, "pruned by the lab"))
    wait_until(lambda: not support.group_members(pid), 5, "worker stopped")
    wait_until(lambda: manager.running() == [], 5, "slot released")


def test_submit_refuses_unknown_or_finished_runs_and_mismatched_specs(env: dict[str, Any]) -> None:
    lab, manager = env["lab"], env["make"]()
    run, other = lab.run(), lab.run()
    with pytest.raises(JobError, match="must equal"):
        manager.submit(run.id, lab.spec(other, "ok"))
    manager.submit(run.id, lab.spec(run, "ok"))
    final(env["store"], run.id)
    with pytest.raises(JobError, match="only WAITING runs"):
        manager.submit(run.id, lab.spec(run, "ok"))
    with pytest.raises(JobError, match="not in the store"):
        manager.status("no-such-run")


def test_close_leaves_running_workers_alive(env: dict[str, Any]) -> None:
    lab, store, manager = env["lab"], env["store"], env["make"]()
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "loop"))
    pid = lab.pid(run.id)
    manager.close()
    assert support.pid_alive(pid) and store.get_run(run.id).state is State.RUNNING


@pytest.mark.parametrize("score", ["float('nan')", "None"])
def test_an_evaluated_run_without_a_finite_score_never_completes(env: dict[str, Any], tmp_path: Path,
                                                                  score: str) -> None:
    script = tmp_path / "nan_worker.py"
    script.write_text(
        "import json, os, sys\n"
        "spec = json.load(open(sys.argv[-1])); d = spec['run_dir']\n"
        "os.makedirs(d + '/adapter'); open(d + '/adapter/_COMPLETE', 'w').write('ok')\n"
        f"open(d + '/result.json', 'w').write(json.dumps({{'status': 'complete', 'score': {score},"
        " 'metric': 'accuracy', 'train_s': 0.1, 'eval_s': 0.1}))\n")
    lab, store = env["lab"], env["store"]
    manager = env["make"](worker_argv=[sys.executable, str(script)])
    run = lab.run()
    manager.submit(run.id, lab.spec(run, "ok"))
    done = final(store, run.id)
    assert done.state is State.FAIL and done.failure is not None and done.failure.kind is FailureKind.NAN_LOSS
    assert done.score is None or math.isnan(done.score)


def test_a_real_tiny_lora_sft_run_goes_from_submit_to_adapter_on_disk(
        env: dict[str, Any], make_run_spec: Any) -> None:
    """The real worker (`python -m trex_mcp.execution.worker`) through the manager: one short LoRA SFT."""
    lab, store = env["lab"], env["store"]
    manager = env["make"](worker_argv=None, poll_s=0.05)
    run = lab.run()
    spec = make_run_spec(run_id=run.id, tree_id=run.tree_id, node_id=run.node_id,
                         run_dir=env["settings"].runs_dir / run.id, config={"max_steps": 8}, evaluate=True,
                         eval_limit=8, heartbeat_s=2.0)
    t0 = time.monotonic()
    manager.submit(run.id, spec)
    done = final(store, run.id, timeout_s=120)
    elapsed = time.monotonic() - t0
    assert done.state is State.COMPLETE, done.failure
    adapter = Path(done.artifacts["adapter_dir"])
    assert (adapter / "_COMPLETE").is_file() and (adapter / "adapter_config.json").is_file()
    assert done.metrics["steps"] == 8 and done.metrics["progress"]["step"] == 8
    assert done.score is not None and 0.0 <= done.score <= 1.0
    assert done.cost["train_s"] > 0 and done.cost["tokens"] > 0 and done.cost["wall_s"] <= elapsed + 1
    assert Path(done.artifacts["predictions"]).is_file()


@pytest.mark.slow
def test_a_real_worker_refuses_an_unknown_hub_model_as_invalid_config(env: dict[str, Any], make_run_spec: Any
                                                                      ) -> None:
    lab, store = env["lab"], env["store"]
    manager = env["make"](worker_argv=None, poll_s=0.05)
    run = lab.run()
    spec = make_run_spec(run_id=run.id, tree_id=run.tree_id, node_id=run.node_id,
                         run_dir=env["settings"].runs_dir / run.id, base_model="no-such-org/no-such-model",
                         heartbeat_s=2.0)
    manager.submit(run.id, spec)
    done = final(store, run.id, timeout_s=60)
    assert done.state is State.FAIL and done.failure is not None
    assert done.failure.kind is FailureKind.INVALID_CONFIG and "no-such-org/no-such-model" in done.failure.message
    assert "adapter_dir" not in done.artifacts and not (Path(done.job["run_dir"]) / "adapter").exists()


@pytest.mark.slow
def test_a_real_run_handed_to_a_warm_worker_completes_without_reimporting_torch(
        env: dict[str, Any], make_run_spec: Any) -> None:
    lab, store = env["lab"], env["store"]
    backend = LocalBackend(capacity=1, devices=[], warm_module="trex_mcp.execution.worker")
    manager = env["make"](worker_argv=None, poll_s=0.05, backend=backend)
    wait_until(lambda: backend.warm_ready(0.1), 120, "spare imports")
    run = lab.run()
    spec = make_run_spec(run_id=run.id, tree_id=run.tree_id, node_id=run.node_id,
                         run_dir=env["settings"].runs_dir / run.id, config={"max_steps": 4}, heartbeat_s=2.0)
    manager.submit(run.id, spec)
    done = final(store, run.id, timeout_s=120)
    assert done.state is State.COMPLETE, done.failure
    assert done.job["warm"] is True and done.cost["timings"]["import_s"] < 2.0
    assert (Path(done.artifacts["adapter_dir"]) / "_COMPLETE").is_file()
