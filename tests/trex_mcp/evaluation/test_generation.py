"""Batched generation and choice scoring on the real tiny model."""

from __future__ import annotations

from typing import Any

import pytest

from ftbench.spec import TaskSpec
from trex_mcp.evaluation.data import load_examples
from trex_mcp.evaluation.generation import choice_loglikelihoods, generate_completions, stop_token_ids


def test_stop_tokens_include_eos_and_chat_end_tokens(base_model: tuple[Any, Any]) -> None:
    _, tok = base_model
    stops = stop_token_ids(tok)
    assert stops[0] == tok.eos_token_id
    assert tok.convert_tokens_to_ids("<|im_end|>") in stops
    assert tok.convert_tokens_to_ids("<|endoftext|>") in stops


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(sentiment: TaskSpec,
                                                                    base_model: tuple[Any, Any]) -> None:
    model, tok = base_model
    prompts = [ex.prompt for ex in load_examples(sentiment, "validation", limit=6)]
    batched = generate_completions(model, tok, prompts, max_new_tokens=6, stop_at_newline=True, batch_size=4)
    single = [generate_completions(model, tok, [p], max_new_tokens=6, stop_at_newline=True)[0] for p in prompts]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.truncated for c in batched] == [c.truncated for c in single]


def test_generation_restores_the_tokenizer_and_model_state(base_model: tuple[Any, Any]) -> None:
    model, tok = base_model
    tok.padding_side = "right"
    model.train()
    generate_completions(model, tok, ["Review: fine\nSentiment:"], max_new_tokens=2, stop_at_newline=True)
    assert tok.padding_side == "right" and model.training


def test_an_answer_that_never_stops_is_marked_truncated(base_model: tuple[Any, Any]) -> None:
    model, tok = base_model  # the untrained model does not produce an end token within 3 tokens
    out = generate_completions(model, tok, ["Review: fine\nSentiment:"] * 3, max_new_tokens=3,
                               stop_at_newline=False)
    assert all(c.truncated for c in out)


def test_choice_loglikelihood_equals_a_direct_computation(base_model: tuple[Any, Any]) -> None:
    import torch

    model, tok = base_model
    prompt = "Review: it was great\nSentiment:"
    got = choice_loglikelihoods(model, tok, [prompt, prompt + " x"], ["positive", "negative"], batch_size=3)
    context = tok(prompt)["input_ids"]
    for column, choice in enumerate(["positive", "negative"]):
        whole = tok(prompt + " " + choice)["input_ids"]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0].float(), dim=-1)
        expected = sum(float(logprobs[k - 1, whole[k]]) for k in range(len(context), len(whole)))
        assert got[0][column] == pytest.approx(expected, abs=1e-4)
    assert len(got) == 2 and all(len(row) == 2 for row in got)
