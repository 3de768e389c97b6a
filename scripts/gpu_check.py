"""GPU check: LoRA SFT of a locally built ~200M-parameter model in bf16, through the real training worker.

    python scripts/gpu_check.py                      # on a CUDA machine; needs no network
    python scripts/gpu_check.py --peak-tflops 312    # e.g. an A100 (default: H100/H200 989 TFLOPs bf16 dense)
    python scripts/gpu_check.py --cpu-smoke          # exercise the script itself on CPU (tiny model, 3 steps)

Phase 1 builds a randomly initialised Llama (or Qwen3) model of about 200M parameters with a locally trained
byte-level tokenizer, writes it to a folder, and trains a LoRA adapter on it for 50 steps in bf16 by running
`python -m trex_mcp.execution.worker spec.json` in a subprocess (the same path the job manager uses). It prints
tokens per second over the steady-state steps and the model FLOPs utilisation, MFU = 6 * N * tokens/s / peak
(the usual 6N convention; LoRA skips weight gradients of the frozen base, so the FLOPs actually executed are
nearer 4N per token). Phase 2 fine-tunes `tiny:2m` on mini/sentiment on the GPU and evaluates it, checking that
bf16 training and GPU evaluation learn. It exits non-zero with a message when there is no CUDA device or a phase
fails. Expected duration: 1-3 minutes on an H100/H200.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
DEFAULT_PEAK = 989.0


def _fail(message: str, code: int = 1) -> None:
    print(f"gpu_check: FAIL: {message}", file=sys.stderr)
    sys.exit(code)


def _peak_tflops(name: str, override: float | None) -> tuple[float, str]:
    if override is not None:
        return override, "--peak-tflops"
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value, f"{key} table value"
    return DEFAULT_PEAK, "default (H100/H200); pass --peak-tflops for this device"


def _build_model(folder: Path, arch: str, smoke: bool) -> int:
    """Save a random model + tokenizer under `folder`; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    from trex_mcp.execution import models

    tokenizer = models.build_tokenizer(models.tiny_corpus(None) * 4, vocab_size=1024, max_length=4096)
    if smoke:
        dims: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                "num_attention_heads": 4, "num_key_value_heads": 2}
    else:
        dims = {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 16, "num_attention_heads": 16,
                "num_key_value_heads": 8}
    common = {"vocab_size": 32_000, "max_position_embeddings": 4096, "tie_word_embeddings": True,
              "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None,
              "initializer_range": 0.02, **dims}
    torch.manual_seed(0)
    if arch == "qwen3":
        model: Any = Qwen3ForCausalLM(Qwen3Config(head_dim=dims["hidden_size"] // dims["num_attention_heads"],
                                                  **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def _write_rows(path: Path, rows: int, words: int) -> None:
    import random

    from trex_mcp.execution.models import tiny_corpus

    rng = random.Random(0)
    vocab = " ".join(tiny_corpus(None)).split()
    with path.open("w") as fh:
        for _ in range(rows):
            prompt = " ".join(rng.choice(vocab) for _ in range(words))
            completion = " " + " ".join(rng.choice(vocab) for _ in range(words // 4))
            fh.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")


def _run_worker(spec: Any, label: str, timeout: float) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    spec_file = spec.write()
    log = spec.run_dir / "train.log"
    started = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run([sys.executable, "-m", "trex_mcp.execution.worker", str(spec_file)], stdout=fh,
                              stderr=subprocess.STDOUT, timeout=timeout, check=False,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - started
    result_file = spec.run_dir / "result.json"
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if proc.returncode != 0 or result.get("status") != "complete":
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        _fail(f"{label}: worker exited {proc.returncode}, result {result.get('failure')}\n--- train.log tail ---\n{tail}")
    progress = [json.loads(x) for x in (spec.run_dir / "progress.jsonl").read_text().splitlines()]
    return result, progress, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["llama", "qwen3"], default="llama")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-words", type=int, default=400, help="words per prompt (about 1.5 tokens each)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak bf16 dense TFLOPs")
    parser.add_argument("--workdir", type=Path, default=None, help="keep artifacts here (default: a temp dir)")
    parser.add_argument("--cpu-smoke", action="store_true", help="run a tiny version on CPU to test the script")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    smoke = args.cpu_smoke
    if not torch.cuda.is_available() and not smoke:
        _fail("no CUDA device: torch.cuda.is_available() is False (torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda}); run this on a GPU machine", code=2)
    if smoke:
        args.steps, args.batch_size, args.seq_words = 3, 2, 20
    device_name = torch.cuda.get_device_name(0) if not smoke else "cpu (smoke test)"
    peak, peak_source = _peak_tflops(device_name, args.peak_tflops)
    print(f"device: {device_name}; torch {torch.__version__}; peak bf16 {peak:.0f} TFLOPs ({peak_source})")

    from trex_mcp.execution.spec import RunSpec

    work = args.workdir or Path(tempfile.mkdtemp(prefix="trex-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    # Phase 1: throughput of LoRA SFT in bf16 on a ~200M model.
    model_dir = work / f"{args.arch}-random"
    n_params = _build_model(model_dir, args.arch, smoke)
    data = work / "rows.jsonl"
    _write_rows(data, args.steps * args.batch_size + 32, args.seq_words)
    print(f"phase 1: {args.arch} with {n_params / 1e6:.1f}M parameters; LoRA r=16 all-linear, "
          f"{args.steps} steps x batch {args.batch_size}, bf16")
    spec = RunSpec(run_id="gpu-check", tree_id="gpu-check", node_id="throughput", task_name="ftbench/mini/sentiment",
                   base_model=str(model_dir), dataset_file=data, dataset_format="prompt_completion",
                   config={"adapter": "lora", "lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-4,
                           "max_steps": args.steps, "batch_size": args.batch_size, "max_length": 1024,
                           "precision": "bf16", "save_steps": max(1, args.steps // 2), "scheduler": "constant"},
                   run_dir=work / "run-throughput", models_dir=work / "models", heartbeat_s=5, evaluate=True,
                   eval_limit=16, gpus=0 if smoke else 1)
    result, progress, wall = _run_worker(spec, "phase 1", timeout=420)
    steps = [e for e in progress if e["event"] == "step"]
    steady = steps[max(1, len(steps) // 5):] or steps  # skip warm-up steps (kernel selection, allocator)
    tps = statistics.median(e["tokens_per_s"] for e in steady)
    tokens_per_step = statistics.mean(e["tokens"] for e in steady)
    mfu = 6 * n_params * tps / (peak * 1e12)
    print(f"  tokens/s (median of steps {steady[0]['step']}-{steady[-1]['step']}): {tps:,.0f}; "
          f"tokens/step {tokens_per_step:,.0f}; MFU (6N) {100 * mfu:.1f}%")
    print(f"  loss {steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}; train {result['train_s']:.1f}s, worker wall "
          f"{result['wall_s']:.1f}s (subprocess {wall:.1f}s); timings {result.get('timings')}")
    if torch.cuda.is_available():
        print(f"  eval on {result.get('eval_n')} validation rows: {result.get('eval_s')}s (random model, score "
              f"{result.get('score')})")

    # Phase 2: a tiny model learns mini/sentiment with bf16 LoRA on the GPU, and GPU evaluation scores it.
    from ftbench.data import read_rows
    from ftbench.registry import load_task

    task = load_task("ftbench/mini/sentiment")
    sft = work / "sentiment.jsonl"
    sft.write_text("".join(json.dumps({"prompt": task.prompt_template.format(input=r["text"]),
                                       "completion": " " + r["label"]}) + "\n" for r in read_rows(task, "clean")))
    spec2 = RunSpec(run_id="gpu-check-2", tree_id="gpu-check", node_id="learning", task_name="ftbench/mini/sentiment",
                    base_model="tiny:2m" if not smoke else "tiny:100k", dataset_file=sft,
                    dataset_format="prompt_completion",
                    config={"adapter": "lora", "modules_to_save": ["embed_tokens"], "learning_rate": 5e-3,
                            "max_steps": 80 if not smoke else 3, "batch_size": 16, "max_length": 64,
                            "scheduler": "constant", "precision": "bf16", "lora_dropout": 0.0},
                    run_dir=work / "run-learning", models_dir=work / "models", heartbeat_s=5, evaluate=True,
                    gpus=0 if smoke else 1)
    result2, _, wall2 = _run_worker(spec2, "phase 2", timeout=240)
    print(f"phase 2: {spec2.base_model} LoRA bf16 on mini/sentiment: validation {result2['metric']} "
          f"{result2['score']:.2f}; train loss {result2['train_loss']:.3f}; wall {wall2:.1f}s")
    if not smoke and result2["score"] < 0.7:
        _fail(f"phase 2: expected validation accuracy >= 0.7 after bf16 LoRA, got {result2['score']:.2f}")
    print(f"gpu_check: OK in {time.perf_counter() - t0:.0f}s (artifacts in {work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
