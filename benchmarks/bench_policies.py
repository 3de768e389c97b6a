"""Tree policies compared: UCT, greedy and random with the heuristic planner, at equal budgets, over seeds.

Run: `python benchmarks/bench_policies.py` (CPU, offline). Defaults: `--tasks mini/sentiment --rounds 3 --runs 2
--seeds 3`. Every search is a real autonomous search (`AutonomousDriver` through the in-memory MCP client):
baseline, `--rounds` rounds of `--runs` runs chosen by the policy, then the best node scored once on the test
split. The table gives, per task and policy, the best validation score and the test score of the best node
(mean and sample standard deviation over seeds), the normalised gain on test, and the depth the tree reached.

Cost control: a run is determined by its inputs (config with its seed, dataset content, base model, and for a
warm start the run it continues from), so a run whose inputs were already trained by an earlier search of this
benchmark is not trained again: its result folder is copied (`--no-reuse` turns this off). Policies therefore
share their common prefix (the baseline and the first round are the same for every policy at a given seed),
which also makes the comparison paired: differences come from the policies' choices, not from training noise.
Wall times in the table are those of the search with reuse, not of a cold search.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import anyio  # noqa: E402

from tree_store import State  # noqa: E402
from trex_mcp.agents.driver import AutonomousDriver, DriverOptions  # noqa: E402
from trex_mcp.execution.backends.base import JobInfo  # noqa: E402
from trex_mcp.execution.backends.local import LocalBackend  # noqa: E402
from trex_mcp.execution.manager import DEFAULT_WORKER_ARGV, JobManager  # noqa: E402
from trex_mcp.lab import Lab  # noqa: E402
from trex_mcp.server import build_server, close_server  # noqa: E402
from trex_mcp.settings import Settings  # noqa: E402

_COPIED = ("result.json", "predictions.jsonl", "progress.jsonl")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunCache:
    """Finished run folders by the identity of their inputs, shared by every search of the benchmark."""

    def __init__(self, *, reuse: bool) -> None:
        self.reuse = reuse
        self.lock = threading.Lock()
        self.dirs_by_key: dict[str, list[Path]] = {}
        self.key_by_dir: dict[Path, str] = {}
        self.trained = 0
        self.reused = 0

    def key(self, spec: dict[str, Any]) -> str | None:
        warm = spec.get("warm_start_adapter")
        warm_key = None
        if warm:
            warm_key = self.key_by_dir.get(Path(warm).parent.resolve())
            if warm_key is None:
                return None  # continues from a run this cache did not see: its inputs are unknown
        dataset = Path(str(spec["dataset_file"]))
        blob = {"train": spec.get("train", True), "config": spec.get("config"), "base_model": spec.get("base_model"),
                "task": spec.get("task_name"), "evaluate": spec.get("evaluate", True),
                "eval_limit": spec.get("eval_limit"), "warm": warm_key,
                "data": _sha256(dataset) if dataset.is_file() and dataset.stat().st_size else "empty"}
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()

    def source(self, key: str) -> Path | None:
        """A folder with a complete result for `key`, if any."""
        for candidate in self.dirs_by_key.get(key, []):
            try:
                result = json.loads((candidate / "result.json").read_text())
            except (OSError, ValueError):
                continue
            if result.get("status") == "complete" and (
                    result.get("train") is False or (candidate / "adapter" / "_COMPLETE").is_file()):
                return candidate
        return None


class ReusingBackend(LocalBackend):
    """LocalBackend that, for a run whose inputs were already trained, copies that run's results instead.

    The copy is finished by a no-op process, so the job manager reads the outcome from the run folder exactly
    as after a real worker. Only complete results are reused; failures are re-run.
    """

    def __init__(self, cache: RunCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cache = cache

    def submit(self, run_id: str, argv: list[str], run_dir: Path, env: dict[str, str]) -> JobInfo:
        try:
            spec = json.loads(Path(argv[-1]).read_text())
        except (OSError, ValueError):
            return super().submit(run_id, argv, run_dir, env)
        cache = self.cache
        run_dir = run_dir.resolve()
        with cache.lock:
            key = cache.key(spec)
            source = cache.source(key) if (key and cache.reuse) else None
            if key:
                cache.key_by_dir[run_dir] = key
                cache.dirs_by_key.setdefault(key, []).append(run_dir)
            if source is None:
                cache.trained += 1
            else:
                cache.reused += 1
        if source is None:
            return super().submit(run_id, argv, run_dir, env)
        run_dir.mkdir(parents=True, exist_ok=True)
        if (source / "adapter").is_dir():
            shutil.copytree(source / "adapter", run_dir / "adapter", dirs_exist_ok=True)
        for name in _COPIED:
            if (source / name).is_file():
                text = (source / name).read_text().replace(str(source), str(run_dir))
                text = text.replace(source.name, run_dir.name)  # the run id inside result.json
                (run_dir / name).write_text(text)
        return super().submit(run_id, [sys.executable, "-c", "pass"], run_dir, env)


class BenchLab(Lab):
    """A Lab whose job manager uses the given backend."""

    def __init__(self, settings: Settings, backend: ReusingBackend) -> None:
        self.backend = backend
        super().__init__(settings)

    @property
    def jobs(self) -> JobManager:
        with self._lock:
            if self._jobs is None:
                self._jobs = JobManager(self.store, self.settings, backend=self.backend,
                                        on_finish=self._on_run_finished)
            return self._jobs


def run_one(settings: Settings, cache: RunCache, task: str, policy: str, seed: int, rounds: int, runs: int, *,
            warm_worker: bool, limit_s: float) -> dict[str, Any]:
    """`policy` is 'uct', 'greedy', 'random', or 'uct@C' for UCT with exploration constant C (default 1.0)."""
    """One whole search; returns its summary plus the tree's shape. Raises TimeoutError past `limit_s`."""
    backend = ReusingBackend(cache, capacity=settings.capacity,
                             warm_module=DEFAULT_WORKER_ARGV[2] if warm_worker else None)
    lab = BenchLab(settings, backend)
    server = build_server(settings, lab=lab)
    name, _, c = policy.partition("@")
    options = DriverOptions(task=task, planner="heuristic", policy=name, rounds=rounds, runs_per_round=runs,
                            seed=seed, quiet=True, exploration=float(c) if c else 1.0)
    driver = AutonomousDriver(server, options, lab=lab, out=io.StringIO())
    started = time.monotonic()

    async def bounded() -> dict[str, Any] | None:
        with anyio.fail_after(limit_s):
            return await driver.run()

    try:
        summary = anyio.run(bounded)
        if summary is None:
            raise RuntimeError(f"{task} {policy} seed {seed}: the search stopped: {driver.error}")
        # Read the tree's shape through the lab's own store (a second store on the same file is not needed).
        nodes = lab.store.list_nodes(summary["tree_id"])
        root = next(n for n in nodes if n.parent_id is None)
        shape = {"depth": max(n.depth for n in nodes),
                 "failed_rounds": sum(1 for n in nodes if n.state == State.FAIL),
                 "root_children": sum(1 for n in nodes if n.parent_id == root.id)}
    finally:
        close_server(server)
    return {**summary, **shape, "policy": policy, "seed": seed, "bench_wall_s": time.monotonic() - started}


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def print_table(results: list[dict[str, Any]], policies: list[str]) -> None:
    header = (f"{'task':<16} {'policy':<8} {'n':>2}  {'best validation':>15}  {'test (best node)':>16}  "
              f"{'gain (test)':>13}  {'depth':>5}  {'root kids':>9}  {'wall s':>7}")
    print(header)
    print("-" * len(header))
    for task in dict.fromkeys(r["task"] for r in results):
        for policy in policies:
            rows = [r for r in results if r["task"] == task and r["policy"] == policy]
            if not rows:
                continue
            print(f"{task.removeprefix('ftbench/'):<16} {policy:<8} {len(rows):>2}  "
                  f"{_mean_sd([r['best_validation'] for r in rows]):>15}  {_mean_sd([r['test'] for r in rows]):>16}  "
                  f"{_mean_sd([r['normalised_gain'] for r in rows]):>13}  "
                  f"{statistics.fmean(r['depth'] for r in rows):>5.1f}  "
                  f"{statistics.fmean(r['root_children'] for r in rows):>9.1f}  "
                  f"{statistics.fmean(r['bench_wall_s'] for r in rows):>7.0f}")
        base = [r for r in results if r["task"] == task]
        print(f"{'':<16} base model: validation {base[0]['base_validation']:.3f}, test {base[0]['base_test']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="mini/sentiment", help="comma-separated tasks (default mini/sentiment)")
    parser.add_argument("--policies", default="uct,greedy,random",
                        help="comma-separated policies; 'uct@0.2' sets UCT's exploration constant (default 1.0)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds after the baseline (default 3)")
    parser.add_argument("--runs", type=int, default=2, help="runs per round (default 2)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--capacity", type=int, default=1, help="concurrent training runs (default 1)")
    parser.add_argument("--home", type=Path, default=None, help="trex home (default: a temporary folder)")
    parser.add_argument("--no-reuse", action="store_true", help="train every run, even when its inputs repeat")
    parser.add_argument("--warm-worker", action="store_true",
                        help="keep a spare worker with torch imported (saves the import per run)")
    parser.add_argument("--limit", type=float, default=1200.0, help="longest one search may take, in seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write every search's summary here")
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="trex-bench-policies-"))
    settings = Settings(home=home, capacity=args.capacity, heartbeat_s=2.0)
    cache = RunCache(reuse=not args.no_reuse)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    failures: list[str] = []
    for task in tasks:
        for seed in range(args.seeds):
            for policy in policies:
                try:
                    result = run_one(settings, cache, task, policy, seed, args.rounds, args.runs,
                                     warm_worker=args.warm_worker, limit_s=args.limit)
                except Exception as exc:  # one broken search must not lose the others' figures
                    failures.append(f"{task} {policy} seed {seed}: {type(exc).__name__}: {str(exc)[:300]}")
                    print(f"[{time.monotonic() - started:6.0f}s] FAILED {failures[-1]}", file=sys.stderr, flush=True)
                    continue
                results.append(result)
                print(f"[{time.monotonic() - started:6.0f}s] {task} {policy:<8} seed {seed}: best validation "
                      f"{result['best_validation']:.3f} (node #{result['best_node']}), test {result['test']:.3f}, "
                      f"depth {result['depth']}, root children {result['root_children']}, "
                      f"{result['bench_wall_s']:.0f}s", file=sys.stderr, flush=True)
    print(f"\nPolicies at equal budgets: heuristic planner, {args.rounds} rounds x {args.runs} runs after the "
          f"baseline, seeds 0..{args.seeds - 1}; mean ± sample sd over seeds")
    print_table(results, policies)
    print(f"\nruns trained: {cache.trained}, reused (identical inputs): {cache.reused}; total wall "
          f"{time.monotonic() - started:.0f}s; home {home}")
    for failure in failures:
        print(f"search failed (left out of the table): {failure}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
