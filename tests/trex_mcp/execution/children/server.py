"""A server-like process that owns a JobManager, for the kill -9 test.

`python server.py <store.db> <trex_home> <shared_dir> <dataset.jsonl>`: opens the SQLite store, submits three
runs with stand-in workers (`ok`, `wait`, `wait`), waits until the first is COMPLETE and the other two RUNNING
with a heartbeat relayed, prints one JSON line {"tree", "node", "runs": {"done", "alive", "doomed"}} and then
idles until it is killed (at most 60 s).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tree_store import SQLiteTreeStore, State
from trex_mcp.execution.backends.local import LocalBackend
from trex_mcp.execution.manager import JobManager
from trex_mcp.execution.spec import RunSpec
from trex_mcp.settings import Settings

FAKE_WORKER = Path(__file__).parent / "fake_worker.py"


def main() -> int:
    store_path, home, shared, dataset = (Path(a) for a in sys.argv[1:5])
    store = SQLiteTreeStore(store_path)
    settings = Settings(home=home, capacity=3, heartbeat_s=0.2, max_retry=3, run_timeout_s=120)
    settings.ensure_dirs()
    manager = JobManager(store, settings, backend=LocalBackend(capacity=3, devices=[]),
                         worker_argv=[sys.executable, str(FAKE_WORKER)], poll_s=0.02, metrics_interval_s=0.05)
    tree = store.create_tree("kill9", task_name="mini/sentiment", higher_is_better=True)
    node = store.add_node(tree.id, None)
    runs = {}
    for name, mode in (("done", "ok"), ("alive", "wait"), ("doomed", "wait")):
        run = store.add_run(node.id, config={"learning_rate": 1e-4})
        spec = RunSpec.model_validate({
            "run_id": run.id, "tree_id": tree.id, "node_id": node.id, "task_name": f"child:{mode}",
            "base_model": "tiny:100k", "dataset_file": dataset, "dataset_format": "prompt_completion",
            "config": {"learning_rate": 1e-4}, "run_dir": settings.runs_dir / run.id, "models_dir": shared,
            "heartbeat_s": 0.2, "evaluate": False})
        manager.submit(run.id, spec)
        runs[name] = run.id
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = store.get_run(runs["done"]).state is State.COMPLETE
        live = [store.get_run(runs[n]) for n in ("alive", "doomed")]
        if done and all(r.state is State.RUNNING and r.job.get("pid") and r.metrics.get("progress") for r in live):
            break
        time.sleep(0.02)
    else:
        print(json.dumps({"error": "runs did not reach the expected states"}), flush=True)
        return 1
    print(json.dumps({"tree": tree.id, "node": node.id, "runs": runs}), flush=True)
    time.sleep(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
