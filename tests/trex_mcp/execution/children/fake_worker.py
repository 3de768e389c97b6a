"""A stand-in training worker for the job-manager tests: `python fake_worker.py [mode] <run_dir>/spec.json`.

It speaks the worker's file protocol (heartbeat, progress.jsonl, adapter/_COMPLETE, result.json last) without
importing torch, so a test run takes milliseconds. The mode comes from the optional first argument, else from the
spec's task_name when it reads `child:<mode>`. `models_dir` from the spec is used as a scratch folder shared by
all children of one test (overlap detection, release files, pid files).

Every mode that waits gives up after MAX_LIFE_S so a failed test never leaves processes behind for long.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

MAX_LIFE_S = 60.0
T0 = time.time()


def write_json(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Beat:
    def __init__(self, run_dir: Path, interval: float) -> None:
        self.path = run_dir / "heartbeat"
        self.interval = interval
        self.stop = threading.Event()

    def beat(self) -> None:
        write_json(self.path, time.time())

    def start(self) -> None:
        self.beat()

        def loop() -> None:
            while not self.stop.wait(self.interval):
                self.beat()

        threading.Thread(target=loop, daemon=True).start()


def progress(run_dir: Path, **event: object) -> None:
    with (run_dir / "progress.jsonl").open("a") as fh:
        fh.write(json.dumps({**event, "t": time.time()}) + "\n")


def complete(run_dir: Path, *, score: float = 0.75, steps: int = 3, extra: dict | None = None,
             adapter: bool = True) -> None:
    if adapter:
        tmp = run_dir / ".tmp-adapter"
        tmp.mkdir(exist_ok=True)
        (tmp / "adapter_model.safetensors").write_bytes(b"fake")
        (tmp / "_COMPLETE").write_text("ok\n")
        os.replace(tmp, run_dir / "adapter")
    (run_dir / "predictions.jsonl").write_text(json.dumps({"id": "1", "prediction": "positive"}) + "\n")
    wall = time.time() - T0
    write_json(run_dir / "result.json", {
        "status": "complete", "failure": None, "score": score, "metric": "accuracy",
        "metrics": {"accuracy": score}, "train_loss": 0.5, "steps": steps, "tokens": 1234,
        "train_s": round(wall / 2, 3), "eval_s": round(wall / 4, 3), "wall_s": round(wall, 3),
        "device_s": round(wall, 3), "batch_size": 2, **(extra or {}),
    })


def wait_for(path: Path, beat: Beat | None = None) -> bool:
    while time.time() - T0 < MAX_LIFE_S:
        if path.exists():
            return True
        time.sleep(0.02)
    return False


def main() -> int:
    args = sys.argv[1:]
    spec_path = Path(args[-1])
    spec = json.loads(spec_path.read_text())
    run_dir = Path(spec["run_dir"])
    shared = Path(spec["models_dir"])
    shared.mkdir(parents=True, exist_ok=True)
    mode = args[0] if len(args) > 1 else str(spec["task_name"]).removeprefix("child:")
    beat = Beat(run_dir, float(spec["heartbeat_s"]))
    print(f"fake worker {os.getpid()} mode={mode} run={spec['run_id']}", flush=True)
    (shared / f"pid-{spec['run_id']}").write_text(str(os.getpid()))

    if mode == "ok":
        beat.start()
        progress(run_dir, event="phase", phase="train")
        for step in (1, 2, 3):
            progress(run_dir, event="step", step=step, loss=1.0 / step, lr=1e-4, tokens_per_s=100.0, tokens=10)
        complete(run_dir)
        return 0

    if mode == "exclusive":  # proves no two runs of one test overlap: O_EXCL on a shared busy file
        beat.start()
        busy = shared / "busy"
        try:
            fd = os.open(busy, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            (shared / f"overlap-{spec['run_id']}").write_text("another run was active")
            return 3
        with (shared / "order").open("a") as fh:
            fh.write(f"start {spec['run_id']} {time.time()}\n")
        # Work long enough that a concurrently started run would find the busy file.
        time.sleep(0.3)
        with (shared / "order").open("a") as fh:
            fh.write(f"end {spec['run_id']} {time.time()}\n")
        os.close(fd)
        os.unlink(busy)
        complete(run_dir)
        return 0

    if mode == "wait":  # runs (with heartbeats and steps) until <shared>/release appears, then completes
        beat.start()
        step = 0

        def steps() -> None:
            nonlocal step
            while time.time() - T0 < MAX_LIFE_S:
                step += 1
                progress(run_dir, event="step", step=step, loss=1.0, lr=1e-4, tokens_per_s=10.0, tokens=1)
                time.sleep(0.1)

        threading.Thread(target=steps, daemon=True).start()
        if not wait_for(shared / "release"):
            return 4
        complete(run_dir)
        return 0

    if mode in ("loop", "ignore_term", "spawn"):
        if mode == "ignore_term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if mode == "spawn":  # a grandchild in the same process group, to prove the whole group is stopped
            child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({MAX_LIFE_S})"])
            (shared / f"grandchild-{spec['run_id']}").write_text(str(child.pid))
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        beat.start()
        (shared / f"ready-{spec['run_id']}").write_text("1")
        step = 0
        while time.time() - T0 < MAX_LIFE_S:
            step += 1
            progress(run_dir, event="step", step=step, loss=0.5, tokens=1)
            time.sleep(0.05)
        return 5

    if mode == "hang":  # one heartbeat, then silence while still alive
        beat.beat()
        (shared / f"ready-{spec['run_id']}").write_text("1")
        time.sleep(MAX_LIFE_S)
        return 6

    if mode == "linger":  # writes its result, then hangs on exit without heartbeats (a stuck teardown)
        beat.beat()
        complete(run_dir)
        time.sleep(MAX_LIFE_S)
        return 7

    if mode == "crash":
        beat.start()
        for i in range(80):
            print(f"log line {i}")
        raise RuntimeError("boom: simulated crash")

    if mode == "oom":
        beat.start()
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
        return 1

    if mode == "invalid":
        write_json(run_dir / "result.json", {
            "status": "fail", "failure": {"kind": "invalid_config", "message": "base_model: no such model 'x/y'"},
            "score": None, "steps": 0, "tokens": 0, "train_s": 0.0, "eval_s": 0.0, "wall_s": 0.1})
        return 1

    if mode == "no_adapter":
        beat.start()
        complete(run_dir, adapter=False)
        return 0

    if mode == "checkpoint_crash":  # crash after one complete and one half-written checkpoint; resume on retry
        beat.start()
        checkpoints = run_dir / "checkpoints"
        resumed = (checkpoints / "checkpoint-2" / "trainer_state.json").is_file()
        if resumed:
            progress(run_dir, event="resume", checkpoint="checkpoint-2", step=2)
            complete(run_dir, steps=4, extra={"resumed_from_step": 2})
            return 0
        (checkpoints / "checkpoint-2").mkdir(parents=True)
        (checkpoints / "checkpoint-2" / "adapter_model.safetensors").write_bytes(b"w2")
        (checkpoints / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
        (checkpoints / "checkpoint-4").mkdir()  # interrupted save: no trainer_state.json
        print("killed during save", flush=True)
        os._exit(9)

    if mode == "secrets":
        beat.start()
        print(f"env names: {sorted(os.environ)}")
        print(f"hf token in env: {os.environ.get('HF_TOKEN')}")
        (shared / f"env-{spec['run_id']}.json").write_text(json.dumps(sorted(os.environ)))
        complete(run_dir)
        return 0

    print(f"unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
