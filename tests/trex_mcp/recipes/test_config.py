from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trex_mcp.recipes import RecipeError, TrainConfig, parse_train_config, to_peft_config, to_trl_config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", 5.0), ("learning_rate", 0.0), ("epochs", 0), ("epochs", 100), ("max_steps", 0),
        ("batch_size", 0), ("batch_size", 5000), ("grad_accum", 0), ("lora_r", 0), ("lora_r", 1024),
        ("lora_alpha", 0), ("lora_dropout", 0.9), ("max_length", 4), ("warmup_ratio", 0.9), ("seed", -1),
        ("save_steps", 0), ("beta", 0.0), ("method", "grpo"), ("precision", "int8"), ("scheduler", "magic"),
        ("target_modules", ["q_proj;rm -rf"]), ("not_a_field", 1),
    ],
)
def test_train_config_out_of_bounds_value_is_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(RecipeError) as info:
        parse_train_config({field: value})
    assert info.value.field is not None and field in info.value.field
    assert field in str(info.value)


def test_train_config_refuses_packing_for_dpo() -> None:
    with pytest.raises(ValidationError, match="packing"):
        TrainConfig(method="dpo", packing=True)


def test_train_config_refuses_modules_to_save_on_a_full_finetune() -> None:
    with pytest.raises(ValidationError, match="modules_to_save"):
        TrainConfig(adapter="full", modules_to_save=["lm_head"])


def test_train_config_round_trips_through_json() -> None:
    cfg = TrainConfig(method="dpo", lora_r=4, target_modules=["q_proj", "v_proj"], max_steps=30, warm_start=True)
    assert parse_train_config(cfg.model_dump(mode="json")) == cfg
    assert cfg.effective_batch_size == cfg.batch_size * cfg.grad_accum


def test_to_trl_config_gives_sft_config_with_cpu_safe_defaults(tmp_path: Path) -> None:
    cfg = TrainConfig(learning_rate=1e-3, max_steps=7, batch_size=4, grad_accum=2, max_length=128,
                      scheduler="cosine", warmup_ratio=0.1, packing=True, seed=3, precision="bf16", save_steps=5)
    args = to_trl_config(cfg, tmp_path / "out", use_cpu=True)
    assert type(args).__name__ == "SFTConfig"
    assert (args.learning_rate, args.max_steps, args.per_device_train_batch_size) == (1e-3, 7, 4)
    assert (args.gradient_accumulation_steps, args.max_length, args.packing, args.seed) == (2, 128, True, 3)
    assert args.warmup_steps == 0.1 and str(args.lr_scheduler_type.value) == "cosine"
    assert args.bf16 is False and args.fp16 is False  # CPU always trains in fp32
    assert args.activation_checkpointing is False and args.gradient_checkpointing is False
    assert args.report_to in ([], "none", ["none"]) and args.disable_tqdm is True
    assert str(args.save_strategy.value) == "steps" and args.save_steps == 5 and args.logging_steps == 1
    assert args.use_cpu is True and args.trust_remote_code is False
    assert args.output_dir == str(tmp_path / "out")


def test_to_trl_config_gives_dpo_config_with_beta_and_epochs(tmp_path: Path) -> None:
    args = to_trl_config(TrainConfig(method="dpo", beta=0.3, epochs=2.0), tmp_path, use_cpu=True)
    assert type(args).__name__ == "DPOConfig"
    assert args.beta == 0.3 and args.num_train_epochs == 2.0 and args.max_steps == -1


def test_to_peft_config_maps_lora_fields_and_is_none_for_full_finetune() -> None:
    lora = to_peft_config(TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj"],
                                      modules_to_save=["lm_head"]))
    assert lora is not None
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (4, 8, 0.0)
    assert set(lora.target_modules) == {"q_proj"} and set(lora.modules_to_save) == {"lm_head"}
    assert str(lora.task_type.value) == "CAUSAL_LM"
    assert to_peft_config(TrainConfig(adapter="full")) is None


def test_dataset_format_must_suit_the_training_method() -> None:
    from trex_mcp.recipes import check_dataset_format

    check_dataset_format(TrainConfig(method="dpo"), "preference")
    check_dataset_format(TrainConfig(), "messages")
    for cfg, fmt in ((TrainConfig(method="dpo"), "prompt_completion"), (TrainConfig(), "preference")):
        with pytest.raises(RecipeError) as info:
            check_dataset_format(cfg, fmt)
        assert info.value.field == "config.method"
