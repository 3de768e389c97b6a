"""Ray backend figures: overhead per run against the local backend on the same tiny run, and Ray's own latencies.

Run: `python benchmarks/bench_ray.py [--runs 3] [--steps 20]` (CPU, offline; needs `pip install 'ray[default]'`;
about two minutes). It starts a throwaway Ray head on loopback (examples/ray/local_head.py: 2 CPUs, usage stats
off), trains the same `tiny:100k` LoRA SFT run of the mini sentiment task through a JobManager with each backend,
alternating local / Ray so that both see the same machine load, and stops the head.

Overhead per run = (submit -> result recorded in the store) - (train_s + eval_s from result.json); it includes
the worker's own start-up (imports, model load, preflight), which is the same for both backends, so the
difference between the two rows is what Ray adds; "overhead-import" takes out the worker's import time, the
noisiest part on a loaded machine. "slot held after" is how long the run's slot stays taken once its result is
recorded (the worker's interpreter exit, plus Ray noticing it). Ray-only rows: head start, the one-off capacity
probe, `attach`, and `cancel` to Ray's STOPPED.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples" / "ray"))

from local_head import LocalHead  # noqa: E402

from tree_store import InMemoryTreeStore, Run, State  # noqa: E402
from trex_mcp.execution.backends.base import Backend  # noqa: E402
from trex_mcp.execution.backends.local import LocalBackend  # noqa: E402
from trex_mcp.execution.backends.ray import RayBackend  # noqa: E402
from trex_mcp.execution.manager import JobManager  # noqa: E402
from trex_mcp.execution.spec import RunSpec  # noqa: E402
from trex_mcp.settings import Settings  # noqa: E402

SENTIMENT = "ftbench/mini/sentiment"


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"{what}: not within {timeout_s} s")


class Bench:
    def __init__(self, root: Path, address: str, steps: int) -> None:
        from ftbench.data import read_rows
        from ftbench.registry import load_task
        from trex_mcp.execution.models import resolve_model

        self.settings = Settings(home=root / "home", executor="ray", ray_address=address, capacity=1,
                                 heartbeat_s=0.5)
        self.settings.ensure_dirs()
        task = load_task(SENTIMENT)
        resolve_model("tiny:100k", models_dir=self.settings.models_dir, task=task)  # built once, not timed
        self.dataset = root / "clean.jsonl"
        rows = [{"prompt": task.prompt_template.format(input=r[task.input_field], **r),
                 "completion": " " + str(r[task.target_field])} for r in read_rows(task, "clean")]
        self.dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.config = {"max_steps": steps, "learning_rate": 0.005, "batch_size": 16, "max_length": 128,
                       "scheduler": "constant"}
        self.store = InMemoryTreeStore()
        tree = self.store.create_tree("bench", task_name="mini/sentiment", higher_is_better=True)
        self.tree_id, self.node_id = tree.id, self.store.add_node(tree.id, None).id

    def spec(self, run_id: str, **config: Any) -> RunSpec:
        return RunSpec.model_validate({
            "run_id": run_id, "tree_id": self.tree_id, "node_id": self.node_id, "task_name": SENTIMENT,
            "base_model": "tiny:100k", "dataset_file": self.dataset, "dataset_format": "prompt_completion",
            "config": {**self.config, **config}, "run_dir": self.settings.runs_dir / run_id,
            "models_dir": self.settings.models_dir, "heartbeat_s": 0.5, "evaluate": True})

    def one_run(self, backend: Backend) -> dict[str, float]:
        manager = JobManager(self.store, self.settings, backend=backend, poll_s=0.05)
        try:
            run_id = self.store.add_run(self.node_id, config=self.config).id
            t0 = time.time()
            manager.submit(run_id, self.spec(run_id))
            t_call = time.time() - t0
            run: Run = wait_until(lambda: (r := self.store.get_run(run_id)).state.is_finished() and r, 300, "run")
            if run.state is not State.COMPLETE:
                raise RuntimeError(f"run {run_id} ended {run.state.value}: {run.failure}")
            assert run.finished_at is not None
            result = json.loads((self.settings.runs_dir / run_id / "result.json").read_text())
            figures = {"call": t_call, "to_result": run.finished_at - t0, "train_eval": result["train_s"] + result["eval_s"],
                       "import": float(result.get("timings", {}).get("import_s", 0.0))}
            figures["overhead"] = figures["to_result"] - figures["train_eval"]
            figures["beyond_import"] = figures["overhead"] - figures["import"]
            wait_until(lambda: not manager.running(), 60, "slot release")
            figures["slot_lag"] = time.time() - run.finished_at
            return figures
        finally:
            manager.close(timeout_s=2)

    def cancel_and_attach(self, backend: RayBackend) -> dict[str, float]:
        manager = JobManager(self.store, self.settings, backend=backend, poll_s=0.05)
        try:
            run_id = self.store.add_run(self.node_id).id
            manager.submit(run_id, self.spec(run_id, max_steps=5000))
            wait_until(lambda: (self.store.get_run(run_id).metrics.get("progress") or {}).get("step"), 300, "steps")
            job = self.store.get_run(run_id).job
            other = RayBackend(backend.address)
            t0 = time.time()
            attached = other.attach(job)
            t_attach = time.time() - t0
            other.close()
            if not attached:
                raise RuntimeError("attach refused a live job")
            t0 = time.time()
            manager.cancel(run_id)
            t_call = time.time() - t0
            wait_until(lambda: backend.client().get_job_status(str(job["handle"])).value == "STOPPED", 60, "stop")
            return {"attach": t_attach, "cancel_call": t_call, "cancel_stopped": time.time() - t0}
        finally:
            manager.close(timeout_s=2)


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.1f}-{max(values):.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per backend (alternating)")
    parser.add_argument("--steps", type=int, default=20, help="max_steps of the tiny run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trex-bench-ray-") as tmp:
        t0 = time.time()
        head = LocalHead(num_cpus=2).start()
        try:
            head.wait_ready(timeout_s=180)
            t_head = time.time() - t0
            print(f"Ray head ready in {t_head:.1f} s at {head.address}", file=sys.stderr, flush=True)
            bench = Bench(Path(tmp), head.address, args.steps)
            ray_backend = RayBackend(head.address)
            t0 = time.time()
            capacity = ray_backend.capacity()
            t_probe = time.time() - t0
            rows: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
            for i in range(args.runs):
                for name in ("local", "ray"):
                    backend: Backend = LocalBackend(capacity=1, devices=[]) if name == "local" else ray_backend
                    rows[name].append(bench.one_run(backend))
                    print(f"  run {i + 1} {name}: {rows[name][-1]}", file=sys.stderr, flush=True)
            extra = bench.cancel_and_attach(ray_backend)
            ray_backend.close()
        finally:
            head.stop(grace_s=3)

    print(f"\nRay backend vs local: tiny:100k LoRA SFT, {args.steps} steps + validation eval, "
          f"{args.runs} runs each, median (min-max) seconds; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs\n")
    columns = (("call", "submit() call"), ("to_result", "submit->result"), ("train_eval", "train+eval"),
               ("overhead", "overhead"), ("import", "worker import"), ("beyond_import", "overhead-import"),
               ("slot_lag", "slot held after"))
    header = f"{'backend':<8} " + " ".join(f"{title:>19}" for _, title in columns)
    print(header)
    print("-" * len(header))
    for name, runs in rows.items():
        print(f"{name:<8} " + " ".join(f"{fmt([r[k] for r in runs]):>19}" for k, _ in columns))
    for key, what in (("overhead", "overhead"), ("beyond_import", "overhead beyond the worker's imports"),
                      ("slot_lag", "slot held after the result")):
        local = statistics.median(r[key] for r in rows["local"])
        ray = statistics.median(r[key] for r in rows["ray"])
        print(f"Ray adds {ray - local:+.2f} s of {what} per run (median {ray:.2f} s vs {local:.2f} s local)")
    print("\nRay-only figures")
    for label, value in (("head start (ray start --head, to job API answering)", f"{t_head:.1f} s"),
                         ("capacity probe (state API, once per manager)", f"{t_probe:.2f} s -> {capacity} slot(s)"),
                         ("attach (get_job_info of a live job)", f"{extra['attach']:.2f} s"),
                         ("cancel() call (stop_job)", f"{extra['cancel_call']:.2f} s"),
                         ("cancel -> Ray STOPPED", f"{extra['cancel_stopped']:.2f} s")):
        print(f"  {label:<55} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
