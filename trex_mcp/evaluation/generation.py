"""Batched greedy generation and log-likelihood choice scoring over an in-memory model and tokenizer.

Generation: prompts are sorted by length and batched with left padding; decoding is greedy; a row stops at
any end token the tokenizer knows (its eos, `<|im_end|>`, `<|endoftext|>`, ...) and, when the task's answers
are single-line, at the first newline. A completion that reaches `max_new_tokens` without stopping is marked
`truncated`. The tokenizer's padding and truncation sides and the model's train/eval mode are restored
afterwards, so the training worker can pass its live objects.

Choice scoring: log P(" " + choice | prompt), summed over the continuation's tokens (lm-eval's `acc`), with
the context/continuation split done the way lm-eval does it (encode the whole string, then cut).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Completion", "choice_loglikelihoods", "clean_completion", "generate_completions", "stop_token_ids"]

#: End-of-turn tokens of common chat formats; whichever the tokenizer knows also stops generation.
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>")


@dataclass(frozen=True)
class Completion:
    """A generated answer: `text` cut at its stop, `raw` as decoded (special tokens kept), `truncated` when
    generation hit `max_new_tokens` without an end token or a newline stop."""

    text: str
    raw: str
    truncated: bool


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Ids of every end token the tokenizer knows (eos first)."""
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    for value in eos if isinstance(eos, list) else [eos]:
        if isinstance(value, int) and value not in ids:
            ids.append(value)
    unk = tokenizer.unk_token_id
    vocab = tokenizer.get_vocab()
    for token in END_TOKENS:
        token_id = vocab.get(token)
        if isinstance(token_id, int) and token_id != unk and token_id not in ids:
            ids.append(token_id)
    return ids


def clean_completion(text: str, *, stop_at_newline: bool) -> str:
    """Cut `text` at the first newline (when asked) and strip surrounding whitespace."""
    if stop_at_newline:
        text = text.lstrip(" \t")
        text = text.split("\n", 1)[0]
    return text.strip()


@contextlib.contextmanager
def _inference(model: Any, tokenizer: Any, *, padding_side: str) -> Iterator[None]:
    import torch

    saved = (tokenizer.padding_side, tokenizer.truncation_side, model.training)
    tokenizer.padding_side = padding_side
    tokenizer.truncation_side = "left"
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = saved[0], saved[1]
        model.train(saved[2])


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _max_positions(model: Any) -> int | None:
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def _pad_id(tokenizer: Any, stops: list[int]) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return stops[0] if stops else 0


def generate_completions(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int,
                         stop_at_newline: bool, batch_size: int = 32) -> list[Completion]:
    """Greedy completions of `prompts`, in their order (see the module docstring)."""
    from transformers import GenerationConfig

    stops = stop_token_ids(tokenizer)
    pad_id = _pad_id(tokenizer, stops)
    limit = _max_positions(model)
    max_prompt = max(1, limit - max_new_tokens) if limit else None
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=stops or None, pad_token_id=pad_id,
                              stop_strings=["\n"] if stop_at_newline else None)
    results: list[Completion | None] = [None] * len(prompts)
    with _inference(model, tokenizer, padding_side="left"):
        device = _device(model)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in index], return_tensors="pt", padding=True,
                            truncation=max_prompt is not None, max_length=max_prompt).to(device)
            out = model.generate(**enc, generation_config=config,
                                 tokenizer=tokenizer if stop_at_newline else None)
            new = out[:, enc["input_ids"].shape[1]:].tolist()
            for row, i in zip(new, index, strict=True):
                results[i] = _completion(row, tokenizer, stops, pad_id, max_new_tokens, stop_at_newline)
    return [c for c in results if c is not None]


def _completion(ids: list[int], tokenizer: Any, stops: list[int], pad_id: int, max_new_tokens: int,
                stop_at_newline: bool) -> Completion:
    stop_at = next((k for k, t in enumerate(ids) if t in stops), None)
    body = ids[:stop_at] if stop_at is not None else ids
    if stop_at is None and pad_id not in stops:  # rows that finished early are right-padded with pad_id
        while body and body[-1] == pad_id:
            body = body[:-1]
    text = tokenizer.decode(body, skip_special_tokens=True)
    raw = tokenizer.decode(ids[:stop_at + 1] if stop_at is not None else body, skip_special_tokens=False)
    stopped = stop_at is not None or (stop_at_newline and "\n" in text) or len(body) < max_new_tokens
    return Completion(text=clean_completion(text, stop_at_newline=stop_at_newline), raw=raw,
                      truncated=not stopped)


def choice_loglikelihoods(model: Any, tokenizer: Any, prompts: Sequence[str], choices: Sequence[str], *,
                          batch_size: int = 32) -> list[list[float]]:
    """log P(" " + choice | prompt) for every prompt (rows) and choice (columns)."""
    import torch

    pairs: list[tuple[list[int], int]] = []  # (full ids, continuation length)
    limit = _max_positions(model)
    for prompt in prompts:
        context_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        for choice in choices:
            whole = tokenizer(prompt + " " + choice, add_special_tokens=True)["input_ids"]
            cont = max(1, len(whole) - len(context_ids))
            if limit and len(whole) > limit:
                whole = whole[-limit:]
            pairs.append((whole, min(cont, len(whole) - 1)))
    scores = [0.0] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]))
    pad_id = _pad_id(tokenizer, stop_token_ids(tokenizer))
    with _inference(model, tokenizer, padding_side="right"):
        device = _device(model)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            width = max(len(pairs[i][0]) for i in index)
            ids = torch.full((len(index), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(index), width), dtype=torch.long)
            for r, i in enumerate(index):
                seq = pairs[i][0]
                ids[r, :len(seq)] = torch.tensor(seq)
                mask[r, :len(seq)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)
            for r, i in enumerate(index):
                seq, cont = pairs[i]
                positions = torch.arange(len(seq) - cont - 1, len(seq) - 1)
                targets = torch.tensor(seq[len(seq) - cont:])
                scores[i] = float(logprobs[r, positions, targets].sum())
    k = len(choices)
    return [scores[j * k:(j + 1) * k] for j in range(len(prompts))]
