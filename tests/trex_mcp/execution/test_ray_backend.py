"""The Ray backend (issue 12): unit checks against a stand-in job client, then a real single-node Ray cluster.

The cluster tests share one head (2 CPUs, everything on 127.0.0.1, usage stats off, its own temp dir) started by
`examples/ray/local_head.py`, which also stops it: SIGTERM/SIGKILL to its own process group and descendants,
never `ray stop` (that stops every Ray cluster of the user on the machine). They are skipped, with the reason,
only where Ray is not installed. Their runs are real `tiny:100k` LoRA SFT runs of the same worker the local
backend runs: one round through the MCP server, and a kill -9 of a server-like process whose jobs the next
manager re-attaches (one is then cancelled, the other finishes and is recorded).

Run as a script (`python test_ray_backend.py <json>`), this file is that server-like process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest

from tree_store import FailureKind, SQLiteTreeStore, State
from trex_mcp.execution.backends.base import BackendError
from trex_mcp.execution.backends.ray import RayBackend, normalise_address
from trex_mcp.execution.manager import JobManager
from trex_mcp.execution.spec import RunSpec
from trex_mcp.settings import Settings

REPO = Path(__file__).resolve().parents[3]
# A worker's heartbeat thread can stall for seconds while torch imports on a loaded 2-core machine; the stale
# check is not what these tests are about.
STALE_GRACE_S = 20.0
TINY_ROUND = {"max_steps": 20, "learning_rate": 0.005, "batch_size": 16, "max_length": 128, "scheduler": "constant"}


def _load_local_head() -> Any:
    name = "trex_examples_ray_local_head"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "examples" / "ray" / "local_head.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def ray_status(backend: RayBackend, handle: str) -> str:
    return str(backend.client().get_job_status(handle).value)


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Any]:
    pytest.importorskip("ray.job_submission", reason="Ray is not installed; the Ray backend needs "
                        "pip install 'trex-mcp[ray]' (ray[default]>=2.40)")
    head = _load_local_head().LocalHead(num_cpus=2).start()
    try:
        head.wait_ready(timeout_s=150)
        yield head
    finally:
        head.stop(grace_s=1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def backends() -> Iterator[list[RayBackend]]:
    made: list[RayBackend] = []
    yield made
    for backend in made:
        backend.close()


# ------------------------------------------------------------------------------------------- without a cluster


class FakeJobClient:
    """The four JobSubmissionClient calls the backend makes, recorded, with states set by the test."""

    def __init__(self) -> None:
        self.submitted: dict[str, dict[str, Any]] = {}
        self.states: dict[str, tuple[str, int | None, str]] = {}
        self.stopped: list[str] = []

    def submit_job(self, **options: Any) -> str:
        self.submitted[options["submission_id"]] = options
        self.states[options["submission_id"]] = ("PENDING", None, "")
        return str(options["submission_id"])

    def get_job_info(self, handle: str) -> Any:
        if handle not in self.states:
            raise RuntimeError(f"Request failed with status code 404: Job {handle} does not exist.")
        status, code, message = self.states[handle]
        options = self.submitted.get(handle, {})
        return SimpleNamespace(status=status, driver_exit_code=code, message=message,
                               entrypoint=options.get("entrypoint", ""), metadata=options.get("metadata", {}))

    def stop_job(self, handle: str) -> bool:
        self.stopped.append(handle)
        return True

    def get_job_logs(self, handle: str) -> str:
        return f"ray's own log of {handle}\n"


def test_a_ray_client_address_is_refused_and_host_port_gets_http() -> None:
    assert normalise_address("127.0.0.1:8265") == "http://127.0.0.1:8265"
    assert normalise_address("http://head:8265/") == "http://head:8265"
    with pytest.raises(BackendError, match="dashboard address"):
        normalise_address("ray://head:10001")


def test_capacity_is_gpu_slots_on_a_gpu_cluster_and_cpu_slots_otherwise_never_more_than_the_cluster_holds() -> None:
    def capacity(resources: dict[str, float], **kwargs: Any) -> tuple[int, int]:
        backend = RayBackend("http://127.0.0.1:1", client=FakeJobClient(), resources=resources, **kwargs)
        return backend.capacity(), len(backend.devices())

    assert capacity({"CPU": 64, "GPU": 8}) == (8, 8)
    assert capacity({"CPU": 64, "GPU": 8}, gpus_per_run=2) == (4, 8)
    assert capacity({"CPU": 64, "GPU": 8}, capacity=3) == (3, 8)  # the setting caps GPU slots
    assert capacity({"CPU": 64, "GPU": 8}, capacity=20) == (8, 8)  # but never raises them
    assert capacity({"CPU": 4, "GPU": 8}, cpus_per_run=2) == (2, 8)  # CPUs bound too
    assert capacity({"CPU": 16}) == (1, 0)  # CPU-only cluster: the configured CPU slots, default 1
    assert capacity({"CPU": 16}, capacity=5) == (5, 0)
    assert capacity({"CPU": 2}, capacity=5) == (2, 0)


def test_submit_quotes_the_command_sends_no_secrets_and_asks_ray_for_the_managers_gpus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backends: list[RayBackend]) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_canary_value_123")
    monkeypatch.setenv("WANDB_API_KEY", "canary-key-456")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake = FakeJobClient()
    backend = RayBackend("http://127.0.0.1:1", client=fake, refresh_s=0.01)
    backends.append(backend)
    run_dir = tmp_path / "run; touch $(id)"
    info = backend.submit("run-1", [sys.executable, "-m", "trex_mcp.execution.worker", str(run_dir / "spec.json")],
                          run_dir, {"CUDA_VISIBLE_DEVICES": "ray-gpu-0,ray-gpu-1", "EXTRA": "x"})

    options = fake.submitted[info.handle]
    assert shlex.split(options["entrypoint"])[-1] == str(run_dir / "spec.json")  # one word, however named
    assert options["entrypoint_num_gpus"] == 2 and options["entrypoint_num_cpus"] == 1
    env_vars = options["runtime_env"]["env_vars"]
    assert env_vars["EXTRA"] == "x" and env_vars["HF_HUB_OFFLINE"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in env_vars  # Ray owns the physical devices
    assert "canary" not in json.dumps(options)
    assert info.pid == -1 and info.to_job()["executor"] == "ray"


def test_poll_follows_the_cluster_and_maps_exit_codes_and_signals(tmp_path: Path,
                                                                   backends: list[RayBackend]) -> None:
    fake = FakeJobClient()
    backend = RayBackend("http://127.0.0.1:1", client=fake, refresh_s=0.01)
    backends.append(backend)
    handles = [backend.submit(f"run-{i}", [sys.executable, "w.py"], tmp_path / str(i), {}).handle for i in range(4)]
    assert all(backend.poll(h).alive for h in handles)  # PENDING is alive

    fake.states.update({handles[0]: ("SUCCEEDED", 0, ""), handles[1]: ("FAILED", 3, "exit 3"),
                        handles[2]: ("FAILED", 128 + signal.SIGKILL, "killed")})
    del fake.states[handles[3]]  # the cluster forgot it (head restarted)

    wait_until(lambda: not any(backend.poll(h).alive for h in handles), 5, "the refresher")
    assert [backend.poll(h).returncode for h in handles] == [0, 3, -signal.SIGKILL, None]
    assert backend.poll("unknown").alive is False


def test_attach_takes_only_a_live_job_of_the_same_cluster_and_spec(tmp_path: Path,
                                                                    backends: list[RayBackend]) -> None:
    fake = FakeJobClient()
    first = RayBackend("http://127.0.0.1:1", client=fake)
    backends.append(first)
    job = first.submit("run-1", [sys.executable, "w.py", str(tmp_path / "spec.json")], tmp_path, {}).to_job()
    later = RayBackend("http://127.0.0.1:1", client=fake)
    backends.append(later)

    assert later.attach({**job, "ray_address": "http://elsewhere:8265"}) is False
    assert later.attach({**job, "cmd_marker": "/other/spec.json"}) is False
    assert later.attach({k: v for k, v in job.items() if k != "executor"}) is False  # a local job's record
    fake.states[job["handle"]] = ("RUNNING", None, "")
    assert later.attach(job) is True
    later.cancel(str(job["handle"]), 10.0)
    assert fake.stopped == [job["handle"]]
    fake.states[job["handle"]] = ("SUCCEEDED", 0, "")
    assert later.attach(job) is False  # ended: the manager finishes it from its run folder


def test_the_entry_wrapper_copies_output_to_train_log_and_passes_the_exit_code(tmp_path: Path) -> None:
    code = "import sys; print('hello from the worker'); sys.exit(7)"
    done = subprocess.run([sys.executable, "-m", "trex_mcp.execution.backends.ray", "--run-dir", str(tmp_path), "--",
                           sys.executable, "-c", code], capture_output=True, timeout=60, cwd=REPO)

    assert done.returncode == 7
    assert b"hello from the worker" in done.stdout
    assert "hello from the worker" in (tmp_path / "train.log").read_text()
    missing = subprocess.run([sys.executable, "-m", "trex_mcp.execution.backends.ray", "--run-dir",
                              str(tmp_path / "absent"), "--", sys.executable, "-c", "pass"],
                             capture_output=True, timeout=60, cwd=REPO)
    assert missing.returncode == 3 and b"shared by the server and every Ray node" in missing.stderr


# ------------------------------------------------------------------------------------------- on a real cluster
# These start a real Ray head (about 15 s) and real training jobs: CI runs them in its slow stage.


@pytest.mark.slow
def test_after_a_kill_9_of_the_server_a_new_manager_reattaches_its_ray_jobs_cancels_one_and_records_the_other(
        ray_head: Any, trex_home: Path, tmp_path: Path, run_spec_factory: Callable[..., RunSpec],
        backends: list[RayBackend]) -> None:
    db = tmp_path / "store.db"
    # The survivor is the tiny round (20 steps, then the validation score); the victim would train for long.
    specs = {name: json.loads(run_spec_factory(trex_home / "runs" / name, config={**TINY_ROUND, "max_steps": steps},
                                               evaluate=name == "survivor", heartbeat_s=1.0).model_dump_json())
             for name, steps in (("survivor", 20), ("victim", 5000))}
    args = {"db": str(db), "home": str(trex_home), "address": ray_head.address, "specs": specs}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with (tmp_path / "server.log").open("wb") as server_log:
        server = subprocess.Popen([sys.executable, __file__, json.dumps(args)], stdout=subprocess.PIPE,
                                  stderr=server_log, env=env, cwd=REPO)
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 150)
        line = server.stdout.readline() if ready else b""
        assert line, f"the server printed nothing:\n{(tmp_path / 'server.log').read_text()[-3000:]}"
        info = json.loads(line)
        os.kill(server.pid, signal.SIGKILL)  # the server dies while its workers run on the cluster
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)

    store = SQLiteTreeStore(db)
    settings = Settings(home=trex_home, executor="ray", ray_address=ray_head.address, capacity=2, heartbeat_s=0.5)
    backend = RayBackend.from_settings(settings)
    backends.append(backend)
    manager = JobManager(store, settings, backend=backend, poll_s=0.1, min_stale_grace_s=STALE_GRACE_S)
    try:
        report = manager.reconcile()

        survivor, victim = info["survivor"], info["victim"]
        assert sorted(report.reattached) == sorted([survivor["run"], victim["run"]]), report
        assert sorted(manager.running()) == sorted(report.reattached)

        cancelled = manager.cancel(victim["run"])  # a job this manager did not start, found through attach

        assert cancelled.state == "PRUNED" and cancelled.failure_kind == FailureKind.CANCELLED.value
        wait_until(lambda: ray_status(backend, victim["handle"]) == "STOPPED", 60, "Ray to stop the cancelled job")
        finished = wait_until(lambda: (r := store.get_run(survivor["run"])).state.is_finished() and r, 150,
                              "the re-attached run")
        assert finished.state is State.COMPLETE, (finished.failure, manager.log_tail(survivor["run"]))
        assert finished.score is not None and finished.attempt == 1 and finished.metrics["steps"] == 20
        assert finished.job["handle"] == survivor["handle"] and finished.job["executor"] == "ray"
        assert Path(finished.artifacts["adapter_dir"], "_COMPLETE").is_file()
        assert manager.log_tail(survivor["run"])  # the worker's output reached <run_dir>/train.log
        assert "train_s" in finished.cost and "overhead_s" in finished.cost
        wait_until(lambda: ray_status(backend, survivor["handle"]) == "SUCCEEDED", 60, "the job to end")
        wait_until(lambda: not manager.running(), 30, "both slots to be released")
    finally:
        manager.close(timeout_s=2)
        store.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_one_run_round_runs_on_the_ray_cluster_through_the_mcp_server(ray_head: Any, trex_home: Path) -> None:
    from mcp import Client

    from trex_mcp.server import build_server, close_server

    settings = Settings(home=trex_home, executor="ray", ray_address=ray_head.address, capacity=2, heartbeat_s=0.5)
    server = build_server(settings)
    try:
        backend = server.trex_lab().jobs.backend  # type: ignore[attr-defined]
        assert isinstance(backend, RayBackend), "Lab.jobs must build RayBackend.from_settings when executor='ray'"
        async with Client(server) as client:
            async def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
                return dict(result.structured_content or {})

            async def wait(node_id: str) -> dict[str, Any]:
                with anyio.fail_after(240):
                    while not (status := await call("wait_round", {"node_id": node_id, "timeout_s": 20}))["done"]:
                        pass
                return status

            tree = await call("create_tree", {"task": "ftbench/mini/sentiment", "budget": {
                "max_rounds": 1, "runs_per_round": 1, "max_samples_per_round": 300}})
            root = await wait(tree["root_node_id"])
            assert root["state"] == "COMPLETE", root
            plan = {"strategy_kind": "refine_data", "direction": "train on the clean source",
                    "hypothesis": "clean, correctly labelled reviews teach the label format",
                    "runs": [{"label": "clean", "recipe": {"sources": [{"kind": "task", "name": "clean"}]},
                              "config": TINY_ROUND}]}
            node = await call("propose_round", {"tree_id": tree["tree_id"], "parent_id": root["node_id"],
                                                "plan": plan})
            await call("launch_round", {"node_id": node["node_id"]})
            status = await wait(node["node_id"])

            assert status["state"] == "COMPLETE" and status["score"] is not None, status
            run = await call("get_run", {"run_id": status["runs"][0]["run_id"]})
            assert run["state"] == "COMPLETE"
            log = await call("get_run_log", {"run_id": run["run_id"]})
            assert log["log"]
        ray_runs = server.trex_lab().store.find_runs(state=State.COMPLETE)  # type: ignore[attr-defined]
        assert len(ray_runs) == 2 and all(r.job["executor"] == "ray" for r in ray_runs)
    finally:
        close_server(server)


# ------------------------------------------------------------------------------------------- server child


def _server_child(raw: str) -> int:
    """Own a JobManager on the Ray backend, submit one run per spec, print {name: {"run", "handle"}} once every
    worker has started, then idle until killed (at most 120 s)."""
    args = json.loads(raw)
    store = SQLiteTreeStore(Path(args["db"]))
    settings = Settings(home=Path(args["home"]), executor="ray", ray_address=args["address"], capacity=2,
                        heartbeat_s=0.5)
    settings.ensure_dirs()
    manager = JobManager(store, settings, backend=RayBackend.from_settings(settings), poll_s=0.1,
                         metrics_interval_s=0.2, min_stale_grace_s=STALE_GRACE_S)
    assert manager.capacity == 2  # no GPUs: the configured CPU slots, which the 2-CPU head can hold
    tree = store.create_tree("ray kill -9", task_name="mini/sentiment", higher_is_better=True)
    node = store.add_node(tree.id, None)
    runs: dict[str, str] = {}
    for name, raw_spec in args["specs"].items():
        run_id = store.add_run(node.id, config=raw_spec["config"]).id
        spec = RunSpec.model_validate({**raw_spec, "run_id": run_id, "tree_id": tree.id, "node_id": node.id,
                                       "run_dir": str(settings.runs_dir / run_id)})
        manager.submit(run_id, spec)
        runs[name] = run_id
    # Both workers have started (their heartbeat reached the store); they are still importing torch.
    wait_until(lambda: all(store.get_run(r).heartbeat_at for r in runs.values()), 120, "the workers to start")
    print(json.dumps({name: {"run": r, "handle": store.get_run(r).job["handle"]} for name, r in runs.items()}),
          flush=True)
    time.sleep(120)
    return 0


if __name__ == "__main__":
    sys.exit(_server_child(sys.argv[1]))
