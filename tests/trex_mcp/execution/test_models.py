"""Model resolution: tiny offline models, Hub ids and local folders, adapters, no remote code."""

from __future__ import annotations

import inspect
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trex_mcp.execution.models import (
    ADAPTER_META_FILE,
    COMPLETE_MARKER,
    TINY_SIZES,
    ModelError,
    load_model,
    load_tokenizer,
    resolve_model,
    write_adapter_meta,
)


def _state(model_dir: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


def test_same_tiny_id_and_task_build_identical_weights_and_tokenizer_in_different_dirs(tmp_path, tiny_sentiment_model):
    import torch

    task = tiny_sentiment_model.task
    again = resolve_model("tiny:100k", models_dir=tmp_path / "other", task=task)
    assert Path(again) != tiny_sentiment_model.path
    first, second = _state(str(tiny_sentiment_model.path)), _state(again)
    assert first.keys() == second.keys() and first
    for name in first:
        assert torch.equal(first[name], second[name]), name
    tok_a = load_tokenizer("tiny:100k", models_dir=tiny_sentiment_model.models_dir, task=task)
    tok_b = load_tokenizer("tiny:100k", models_dir=tmp_path / "other", task=task)
    assert tok_a.get_vocab() == tok_b.get_vocab()
    assert json.loads((Path(again) / "tokenizer.json").read_text())["model"]["merges"] == json.loads(
        (tiny_sentiment_model.path / "tokenizer.json").read_text())["model"]["merges"]


def test_tiny_model_is_built_once_under_size_task_and_version_and_then_reused(tiny_sentiment_model):
    task = tiny_sentiment_model.task
    path = tiny_sentiment_model.path
    assert path.name == f"100k-{task.name.replace('/', '-')}-v{task.version}"
    assert (path / COMPLETE_MARKER).is_file()
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny:100k", models_dir=tiny_sentiment_model.models_dir, task=task) == str(path)
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    manifest = json.loads((path / "trex_tiny.json").read_text())
    assert 50_000 < manifest["parameters"] < 150_000
    assert manifest["task"] == task.name


def test_concurrent_builders_produce_one_complete_folder_and_no_temp_debris(tmp_path, sentiment_task):
    models_dir = tmp_path / "models"
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: resolve_model("tiny:100k", models_dir=models_dir, task=sentiment_task),
                              range(4)))
    assert len(set(paths)) == 1
    assert (Path(paths[0]) / COMPLETE_MARKER).is_file()
    leftovers = [p.name for p in models_dir.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_tiny_tokenizer_has_chatml_template_pad_token_and_im_end_as_eos(tiny_sentiment_model):
    model, tok = load_model("tiny:100k", models_dir=tiny_sentiment_model.models_dir, task=tiny_sentiment_model.task)
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token == "<pad>" and tok.pad_token_id != tok.eos_token_id
    assert tok.convert_tokens_to_ids("<|im_start|>") != tok.unk_token_id
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                                   tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n"
    ids = tok("Review: a wonderful film\nSentiment: positive")["input_ids"]
    assert tok.decode(ids) == "Review: a wonderful film\nSentiment: positive"
    assert len(tok) <= TINY_SIZES["100k"].vocab_size
    assert model.generation_config.eos_token_id == tok.eos_token_id  # generation stops at <|im_end|>
    assert model.config.tie_word_embeddings


def test_tiny_without_a_task_uses_a_generic_corpus(tmp_path):
    path = resolve_model("tiny:100k", models_dir=tmp_path, task=None)
    assert Path(path).name == "100k-generic"


def test_tiny_2m_has_about_two_million_parameters(tmp_path):
    model, _ = load_model("tiny:2m", models_dir=tmp_path)
    assert 1_500_000 < sum(p.numel() for p in model.parameters()) < 2_500_000


def test_unknown_tiny_size_is_refused_with_the_known_sizes(tmp_path):
    with pytest.raises(ModelError, match="tiny:100k"):
        resolve_model("tiny:70b", models_dir=tmp_path)


def test_hub_ids_pass_through_and_local_folders_are_checked(tmp_path, tiny_sentiment_model):
    assert resolve_model("Qwen/Qwen3-1.7B", models_dir=tmp_path) == "Qwen/Qwen3-1.7B"
    assert resolve_model(str(tiny_sentiment_model.path), models_dir=tmp_path) == str(tiny_sentiment_model.path)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"), models_dir=tmp_path)
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path), models_dir=tmp_path)
    with pytest.raises(ModelError, match="not a model id"):
        resolve_model("not a model", models_dir=tmp_path)


def test_trust_remote_code_cannot_be_turned_on(tmp_path):
    for fn in (load_model, load_tokenizer):
        assert "trust_remote_code" not in inspect.signature(fn).parameters
        with pytest.raises(TypeError):
            fn("tiny:100k", models_dir=tmp_path, trust_remote_code=True)  # type: ignore[call-arg]
    # A folder that asks for custom code is refused, and the code never runs.
    folder = tmp_path / "remote"
    folder.mkdir()
    canary = tmp_path / "canary"
    (folder / "modeling_evil.py").write_text(f"open({str(canary)!r}, 'w').write('ran')\n")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil", "architectures": ["EvilForCausalLM"],
        "auto_map": {"AutoConfig": "modeling_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilModel"}}))
    with pytest.raises(ModelError):
        load_model(str(folder), models_dir=tmp_path)
    assert not canary.exists()


def _save_lora(model_dir: str, out: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(out)


def test_adapter_loads_onto_its_base_and_is_refused_on_another(tmp_path, tiny_sentiment_model):
    models_dir, task = tiny_sentiment_model.models_dir, tiny_sentiment_model.task
    adapter = tmp_path / "adapter"
    _save_lora(str(tiny_sentiment_model.path), adapter)
    write_adapter_meta(adapter, base_model="tiny:100k", task=task, adapter="lora")
    model, _ = load_model("tiny:100k", models_dir=models_dir, task=task, adapter_dir=adapter)
    assert type(model).__name__ == "PeftModelForCausalLM"
    merged, _ = load_model("tiny:100k", models_dir=models_dir, task=task, adapter_dir=adapter, merge=True)
    assert type(merged).__name__ == "LlamaForCausalLM"
    with pytest.raises(ModelError, match="trained on 'tiny:100k'"):
        load_model("tiny:2m", models_dir=models_dir, task=task, adapter_dir=adapter)
    # Without trex's metadata, the base recorded by PEFT is compared.
    os.remove(adapter / ADAPTER_META_FILE)
    with pytest.raises(ModelError, match="trained on"):
        load_model("tiny:2m", models_dir=models_dir, task=task, adapter_dir=adapter)
    with pytest.raises(ModelError, match="does not exist"):
        load_model("tiny:100k", models_dir=models_dir, task=task, adapter_dir=tmp_path / "nope")
