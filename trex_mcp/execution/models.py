"""Model resolution: `tiny:` offline models, Hub ids and local folders, base + adapter loading.

`tiny:<size>` ids resolve without network to a randomly initialised `LlamaForCausalLM` whose tokenizer is a
byte-level BPE trained on the task's local texts. A tiny model is built once per (size, task name, task
version) under `models_dir/<size>-<task slug>-v<version>/` and reused afterwards.

What this module guarantees:
- The same tiny id and task always give the same weights and the same tokenizer (everything is seeded, the
  corpus is read in a fixed order).
- A tiny model folder is either absent or complete: it is built in a temporary folder, `_COMPLETE` is
  written last, then the folder is renamed into place. Concurrent builders (threads or processes) serialise on
  an `fcntl.flock` lock file, so they never corrupt each other; the kernel releases the lock if a builder dies.
- Every load passes `trust_remote_code=False`; no argument of this module can change that.

What it does not cover: it does not download anything itself (Hub ids go through the normal transformers
loaders, which honour `HF_HUB_OFFLINE`), and it does not check that a Hub id exists before loading it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trex_mcp.atomic import COMPLETE_MARKER, new_tmp_dir, publish_dir
from trex_mcp.errors import TrexError

if TYPE_CHECKING:
    from ftbench.spec import TaskSpec

__all__ = [
    "ADAPTER_META_FILE",
    "COMPLETE_MARKER",
    "TINY_SIZES",
    "ModelError",
    "TinyArch",
    "build_tokenizer",
    "is_tiny",
    "load_model",
    "load_tokenizer",
    "read_adapter_meta",
    "resolve_model",
    "tiny_corpus",
    "write_adapter_meta",
]


class ModelError(TrexError):
    """A model id, folder or adapter that cannot be resolved or loaded."""


@dataclass(frozen=True)
class TinyArch:
    """Architecture of one tiny size (a small Llama)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int = 2048


#: Tiny sizes; `tiny:<key>` selects one. Parameter counts assume the full vocabulary is reached.
TINY_SIZES: dict[str, TinyArch] = {
    "100k": TinyArch(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=512),
    "2m": TinyArch(hidden_size=256, intermediate_size=512, num_hidden_layers=3, num_attention_heads=8,
                   num_key_value_heads=4, vocab_size=1024),
}

#: Written by the training worker next to an adapter: which base model id and task it was trained on.
ADAPTER_META_FILE = "trex_adapter.json"

_TINY_PREFIX = "tiny:"
_TINY_SEED = 1234
_LOGIT_SCALE = 4.0
_BUILD_FORMAT = 2  # bump when the build recipe changes (invalidates nothing on disk; recorded in the manifest)
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-]*$")

PAD_TOKEN = "<pad>"  # noqa: S105 - a vocabulary token, not a secret
EOS_TEXT_TOKEN = "<|endoftext|>"  # noqa: S105
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
_SPECIALS = [PAD_TOKEN, EOS_TEXT_TOKEN, IM_START, IM_END]

#: ChatML; `{% generation %}` marks assistant text so TRL's `assistant_only_loss` works.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_GENERIC_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A model learns from examples; the validation split steers the search.",
    "Question: what is the answer? Answer: the answer is yes.",
    "Review: the film was wonderful and the acting was great.\nSentiment: positive",
    "Review: the food was cold and the service was slow.\nSentiment: negative",
    "Summarise the following note in one sentence.",
    "The patient reported mild pain, fever and a cough for three days.",
    "Label the text with one of the following categories: yes, no, maybe.",
    "system user assistant: You are a helpful assistant. Please answer briefly.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000, first, second, third, then, finally.",
    "Events happened in this order: first the rain, then the flood, finally the repair.",
    "positive negative neutral true false correct incorrect good bad",
]


# ---------------------------------------------------------------------------------------------- ids


def is_tiny(model_id: str) -> bool:
    """True when `model_id` names a built-in offline tiny model (`tiny:<size>`)."""
    return model_id.startswith(_TINY_PREFIX)


def _tiny_size(model_id: str) -> str:
    size = model_id[len(_TINY_PREFIX):]
    if size not in TINY_SIZES:
        known = ", ".join(f"tiny:{s}" for s in TINY_SIZES)
        raise ModelError(f"unknown tiny model '{model_id}'", field="base_model", hint=f"use one of: {known}")
    return size


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "task"


def _tiny_dir_name(size: str, task: TaskSpec | None) -> str:
    if task is None:
        return f"{size}-generic"
    return f"{size}-{_slug(task.name)}-v{task.version}"


# ------------------------------------------------------------------------------------------ corpus


def _as_text(value: Any, separator: str) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return separator.join(str(v) for v in value)
    return str(value)


def tiny_corpus(task: TaskSpec | None) -> list[str]:
    """The texts a tiny tokenizer is trained on, in a fixed order.

    With a task: the prompt template, the choices, every local training source's rows formatted with the prompt
    template and followed by their target, the validation prompts (never test data), plus a small generic corpus. Without a task: the generic corpus.
    Unreadable sources raise `ModelError`.
    """
    texts = list(_GENERIC_CORPUS)
    if task is None:
        return texts
    from ftbench.data import read_rows

    sep = task.evaluation.label_separator
    texts.append(task.prompt_template)
    texts.append(task.prompt_template.replace("{input}", ""))
    if task.evaluation.choices:
        texts.extend(task.evaluation.choices)
        texts.append(" ".join(f" {c}" for c in task.evaluation.choices))
    sources = [(s, True) for s in task.data.train] + [(task.data.validation, False)]
    for source, with_target in sources:
        if source.kind != "local":
            continue
        try:
            rows = read_rows(task, source)
        except (OSError, ValueError) as exc:  # ftbench's DataError is a ValueError
            raise ModelError(f"cannot read source '{source.name}' of task {task.name} to train the tiny "
                             f"tokenizer: {exc}", field="task") from exc
        for row in rows:
            text = _prompt(task, row, _as_text(row.get(task.input_field), sep))
            if with_target:
                text += " " + _as_text(row.get(task.target_field), sep)
            texts.append(text)
    return [t for t in texts if t]


def _prompt(task: TaskSpec, row: dict[str, Any], text: str) -> str:
    """The row as the model sees it (so template words become single tokens); the bare text if it won't format."""
    try:
        return task.prompt_template.format(**{**row, "input": text})
    except (KeyError, IndexError, ValueError):
        return text


# -------------------------------------------------------------------------------------- tiny build


def build_tokenizer(corpus: list[str], *, vocab_size: int, max_length: int) -> Any:
    """A byte-level BPE trained on `corpus`, wrapped for transformers: `<pad>`, `<|im_end|>` as eos, ChatML template.

    Deterministic for a given corpus order. Used for tiny models, and by scripts that build test models.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_TOKEN, eos_token=IM_END,
                                 additional_special_tokens=[IM_START, EOS_TEXT_TOKEN])
    hf.chat_template = CHAT_TEMPLATE
    hf.model_max_length = max_length
    return hf


def _build_model(arch: TinyArch, tokenizer: Any) -> Any:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads,
        max_position_embeddings=arch.max_position_embeddings,
        initializer_range=0.1,  # 0.02 leaves LoRA on a random model stuck near uniform logits
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_SEED)
        model = LlamaForCausalLM(config)
    with torch.no_grad():
        # With unit final-norm weights and frozen tied embeddings of norm ~0.1*sqrt(d), logits stay below ~6, which
        # caps how confident a LoRA-tuned tiny model can get (its loss plateaus near 1.5). A larger final-norm
        # weight lifts that cap; measured on mini/sentiment, LoRA loss 1.6 -> 0.6, full fine-tuning unchanged.
        model.model.norm.weight.fill_(_LOGIT_SCALE)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    return model.float().eval()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive `fcntl.flock` on `path` (created if missing); released by the kernel if we die."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _build_tiny(final: Path, size: str, task: TaskSpec | None) -> None:
    arch = TINY_SIZES[size]
    corpus = tiny_corpus(task)
    tmp = new_tmp_dir(final)
    try:
        tokenizer = build_tokenizer(corpus, vocab_size=arch.vocab_size, max_length=arch.max_position_embeddings)
        model = _build_model(arch, tokenizer)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        manifest = {
            "model_id": f"{_TINY_PREFIX}{size}",
            "task": task.name if task else None,
            "task_version": task.version if task else None,
            "corpus_sha256": hashlib.sha256("\n\x00".join(corpus).encode()).hexdigest(),
            "corpus_texts": len(corpus),
            "vocab_size": len(tokenizer),
            "parameters": sum(p.numel() for p in model.parameters()),
            "seed": _TINY_SEED,
            "build_format": _BUILD_FORMAT,
        }
        (tmp / "trex_tiny.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        publish_dir(tmp, final)  # `_COMPLETE` last, then one atomic rename
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _resolve_tiny(model_id: str, models_dir: Path, task: TaskSpec | None) -> Path:
    size = _tiny_size(model_id)
    models_dir = Path(models_dir).expanduser().resolve()
    final = models_dir / _tiny_dir_name(size, task)
    if (final / COMPLETE_MARKER).is_file():
        return final
    with _file_lock(models_dir / f".{final.name}.lock"):
        if (final / COMPLETE_MARKER).is_file():  # another builder finished while we waited
            return final
        if final.exists():  # a folder without its marker is debris from an older layout or a manual copy
            shutil.rmtree(final)
        _build_tiny(final, size, task)
    return final


# --------------------------------------------------------------------------------------- resolution


def resolve_model(model_id: str, *, models_dir: Path, task: TaskSpec | None = None) -> str:
    """Resolve a model id to what the transformers loaders accept.

    Returns the local folder of a built tiny model (building it on first use), the absolute path of an existing
    local model folder, or a Hub id (`org/name`) unchanged. Raises `ModelError` for an unknown tiny size, a
    missing local folder or a string that is neither.
    """
    model_id = model_id.strip()
    if not model_id:
        raise ModelError("model id is empty", field="base_model", hint="give 'tiny:100k', 'org/name' or a folder")
    if is_tiny(model_id):
        return str(_resolve_tiny(model_id, models_dir, task))
    path = Path(model_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"local model folder {path} has no config.json", field="base_model",
                             hint="point at a folder written by save_pretrained")
        return str(path.resolve())
    looks_local = model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1
    if _HUB_ID.match(model_id) and not path.exists():
        return model_id
    if looks_local or path.exists():
        raise ModelError(f"local model folder '{model_id}' does not exist", field="base_model",
                         hint="check the path, or use a Hub id 'org/name' or 'tiny:100k'")
    raise ModelError(f"'{model_id}' is not a model id", field="base_model",
                     hint="use 'tiny:100k', 'tiny:2m', a Hub id 'org/name' or a local model folder")


def _is_missing_model_error(exc: BaseException) -> bool:
    text = str(exc)
    return any(s in text for s in ("does not appear to have", "not a valid model identifier", "offline mode",
                                   "OfflineModeIsEnabled", "Can't load", "couldn't connect", "outgoing traffic"))


def load_tokenizer(model_id: str, *, models_dir: Path, task: TaskSpec | None = None) -> Any:
    """Load the tokenizer of `model_id` (see `resolve_model`), with a pad token set.

    Returns a transformers tokenizer. Raises `ModelError` when it cannot be resolved or loaded.
    """
    return _load_tokenizer_from(resolve_model(model_id, models_dir=models_dir, task=task), model_id)


def _load_tokenizer_from(source: str, model_id: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the tokenizer of '{model_id}': {exc}", field="base_model",
                         hint="check the id; offline, only cached Hub models and local folders load") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16, "auto": "auto"}
    if dtype not in names:
        raise ModelError(f"unknown dtype '{dtype}'", field="dtype", hint=f"use one of {sorted(names)}")
    return names[dtype]


def write_adapter_meta(adapter_dir: Path, *, base_model: str, task: TaskSpec | None, adapter: str) -> None:
    """Record which base model id (and task) an adapter or fine-tuned model folder belongs to."""
    meta = {"base_model": base_model, "task": task.name if task else None,
            "task_version": task.version if task else None, "adapter": adapter}
    (Path(adapter_dir) / ADAPTER_META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_adapter_meta(adapter_dir: Path) -> dict[str, Any] | None:
    """The metadata written by `write_adapter_meta`, or None when the folder has none."""
    path = Path(adapter_dir) / ADAPTER_META_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}", field="adapter_dir") from exc
    return data if isinstance(data, dict) else None


def _check_adapter_base(adapter_dir: Path, model_id: str, resolved: str) -> None:
    """Raise `ModelError` when the adapter was trained on another base model than `model_id`."""
    meta = read_adapter_meta(adapter_dir)
    if meta is not None and meta.get("base_model"):
        trained_on = str(meta["base_model"])
        same = trained_on == model_id or (
            not is_tiny(trained_on) and Path(trained_on).expanduser().is_dir()
            and str(Path(trained_on).expanduser().resolve()) == resolved)
        if not same:
            raise ModelError(f"adapter {adapter_dir} was trained on '{trained_on}', not on '{model_id}'",
                             field="adapter_dir", hint=f"load it with model_id='{trained_on}'")
        return
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        return
    try:
        base = json.loads(config_path.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path} is not valid JSON: {exc}", field="adapter_dir") from exc
    if not base:
        return
    base = str(base)
    if base in (model_id, resolved) or Path(base).name == Path(resolved).name:
        return
    raise ModelError(f"adapter {adapter_dir} was trained on '{base}', not on '{model_id}'", field="adapter_dir",
                     hint="load the adapter with the base model it was trained on")


def load_model(model_id: str, *, models_dir: Path, task: TaskSpec | None = None, adapter_dir: Path | None = None,
               merge: bool = False, dtype: Any = None, trainable: bool = False) -> tuple[Any, Any]:
    """Load `(model, tokenizer)` for `model_id`, optionally with a trained adapter on top.

    `adapter_dir` may hold a PEFT adapter (loaded onto the base; merged into it when `merge` is true) or a fully
    fine-tuned model folder (loaded instead of the base, after checking that it came from the same base).
    `dtype` is a torch dtype or one of 'fp32', 'bf16', 'fp16', 'auto'; default float32 weights as saved.
    `trainable` loads a PEFT adapter with its weights trainable (to continue training it); the model is then
    left in train mode, otherwise in eval mode.
    Remote code is never trusted. Raises `ModelError` for an unresolvable id, a load failure, or an adapter
    trained on another base model.
    """
    from transformers import AutoModelForCausalLM

    resolved = resolve_model(model_id, models_dir=models_dir, task=task)
    torch_dtype = _torch_dtype(dtype)
    weights_from = resolved
    adapter_path = Path(adapter_dir).expanduser().resolve() if adapter_dir is not None else None
    is_peft = False
    if adapter_path is not None:
        if not adapter_path.is_dir():
            raise ModelError(f"adapter folder {adapter_path} does not exist", field="adapter_dir")
        _check_adapter_base(adapter_path, model_id, resolved)
        is_peft = (adapter_path / "adapter_config.json").is_file()
        if not is_peft:
            if not (adapter_path / "config.json").is_file():
                raise ModelError(f"{adapter_path} holds neither a PEFT adapter (adapter_config.json) nor a model "
                                 "(config.json)", field="adapter_dir")
            weights_from = str(adapter_path)
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(weights_from, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load model '{model_id}' from {weights_from}: {exc}", field="base_model",
                         hint="check the id; offline, only cached Hub models and local folders load") from exc
    has_own_tokenizer = adapter_path is not None and (adapter_path / "tokenizer_config.json").is_file()
    tokenizer = _load_tokenizer_from(str(adapter_path) if has_own_tokenizer else resolved, model_id)
    if is_peft and adapter_path is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=trainable and not merge)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelError(f"adapter {adapter_path} does not fit base model '{model_id}': {exc}",
                             field="adapter_dir", hint="load the adapter with the base model it was trained on"
                             ) from exc
        if merge:
            model = model.merge_and_unload()
    if not trainable:
        model.eval()
    return model, tokenizer
