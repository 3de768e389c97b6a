"""Training-worker figures on CPU: end-to-end wall time of real tiny runs, and how much of it is imports.

Run: python benchmarks/bench_training.py [--only lora-100k] [--steps 60]

Each row runs `python -m trex_mcp.execution.worker spec.json` in a fresh subprocess (as the job manager does) on
the mini/sentiment 'clean' rows, in a temporary folder, offline, with one torch thread. Columns:
- wall: the subprocess from spawn to exit; worker: the worker's own clock (result.json `wall_s`);
- startup: wall - worker (interpreter start, pydantic and trex imports, exit/teardown);
- import: torch/transformers/trl/peft/datasets imports inside the worker; preflight: the one-step check (model
  build on first use, trainer set-up); train: the training loop; eval: validation scoring (100 rows);
- cpu: CPU seconds of the worker process (result.json `device_s` on CPU); score: validation accuracy.
The first row also builds the tiny model (under preflight); later rows reuse it. DPO from the random base learns
to rank the labels but never makes them the generated text, so its generative score of 0 is expected.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftbench.data import read_rows  # noqa: E402
from ftbench.registry import load_task  # noqa: E402
from trex_mcp.execution.spec import RunSpec  # noqa: E402

CASES: dict[str, dict[str, Any]] = {
    "lora-100k": {"model": "tiny:100k", "config": {"modules_to_save": ["embed_tokens"]}},
    "lora-100k-plain": {"model": "tiny:100k", "config": {}},
    "full-100k": {"model": "tiny:100k", "config": {"adapter": "full", "learning_rate": 3e-3}},
    "lora-2m": {"model": "tiny:2m", "config": {"modules_to_save": ["embed_tokens"]}},
    "dpo-lora-100k": {"model": "tiny:100k", "config": {"method": "dpo", "learning_rate": 1e-3}, "dpo": True},
}


def _data(folder: Path) -> tuple[Path, Path]:
    task = load_task("ftbench/mini/sentiment")
    rows = read_rows(task, "clean")
    flip = {"positive": "negative", "negative": "positive"}
    sft, pref = folder / "sft.jsonl", folder / "pref.jsonl"
    sft.write_text("".join(json.dumps({"prompt": task.prompt_template.format(input=r["text"]),
                                       "completion": " " + r["label"]}) + "\n" for r in rows))
    pref.write_text("".join(json.dumps({"prompt": task.prompt_template.format(input=r["text"]),
                                        "chosen": " " + r["label"], "rejected": " " + flip[r["label"]]}) + "\n"
                            for r in rows))
    return sft, pref


def _bare_imports() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, trl, peft, datasets; trl.SFTTrainer; "
                    "import peft.tuners.lora"], check=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                       "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    work = Path(tempfile.mkdtemp(prefix="trex-bench-training-"))
    sft, pref = _data(work)
    print(f"bare `import torch, transformers, trl, peft, datasets` in a fresh interpreter: {_bare_imports():.1f} s")
    header = ("case", "wall", "worker", "startup", "import", "preflight", "train", "eval", "cpu", "steps/s",
              "score")
    print(" | ".join(f"{h:>9}" for h in header))
    for name in args.only or list(CASES):
        case = CASES[name]
        config = {"learning_rate": 5e-3, "max_steps": args.steps, "batch_size": 16, "scheduler": "constant",
                  "max_length": 64, "lora_dropout": 0.0, **case["config"]}
        spec = RunSpec(run_id=name, tree_id="bench", node_id="bench", task_name="ftbench/mini/sentiment",
                       base_model=case["model"], dataset_file=pref if case.get("dpo") else sft,
                       dataset_format="preference" if case.get("dpo") else "prompt_completion", config=config,
                       run_dir=work / name, models_dir=work / "models", heartbeat_s=5, evaluate=True)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "trex_mcp.execution.worker", str(spec.write())],
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        result = json.loads((spec.run_dir / "result.json").read_text())
        if proc.returncode != 0:
            print(f"{name}: failed: {result.get('failure')}\n{proc.stderr[-2000:]}")
            continue
        t = result["timings"]
        row = (name, f"{wall:.1f}", f"{result['wall_s']:.1f}", f"{wall - result['wall_s']:.1f}",
               f"{t['import_s']:.1f}", f"{t['preflight_s']:.1f}", f"{t['train_s']:.1f}", f"{result['eval_s']:.1f}",
               f"{result['device_s']:.1f}", f"{result['steps'] / max(t['train_s'], 1e-9):.1f}",
               f"{result['score']:.2f}")
        print(" | ".join(f"{c:>9}" for c in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
