"""Training configuration: one typed, bounded `TrainConfig`, and the only mapping to TRL and PEFT objects.

What this module guarantees: every number in a `TrainConfig` is range-checked, unknown keys are refused, and
combinations TRL would reject late (packing with DPO, LoRA settings on a full fine-tune) are refused early with
the field named. `to_trl_config` and `to_peft_config` are the only places in trex_mcp that know TRL's and
PEFT's field names (checked against trl 1.16 / transformers 5.24 / peft 0.21).

What it does not do: load models or check that `target_modules` exist in a given architecture (the training
worker's preflight step finds that out on a few rows before any expensive launch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trex_mcp.recipes.errors import RecipeError

if TYPE_CHECKING:  # heavy imports stay out of module import time
    from peft import LoraConfig
    from trl import DPOConfig, SFTConfig

__all__ = ["TrainConfig", "check_dataset_format", "parse_train_config", "to_peft_config", "to_trl_config"]

Method = Literal["sft", "dpo"]
Adapter = Literal["lora", "full"]
Precision = Literal["fp32", "bf16", "fp16"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_min_lr"]

_MODULE_NAME = r"^[A-Za-z0-9_.\-]{1,64}$"


class TrainConfig(BaseModel):
    """How one run trains: method, adapter, optimisation and checkpointing. Every number is bounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(default="sft", description="'sft' (supervised fine-tuning) or 'dpo' (preference training; "
                           "needs a preference-format dataset).")
    adapter: Adapter = Field(default="lora", description="'lora' trains a low-rank adapter; 'full' trains every weight.")
    lora_r: int = Field(default=8, ge=1, le=256, description="LoRA rank.")
    lora_alpha: int = Field(default=16, ge=1, le=1024, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(default=0.05, ge=0.0, le=0.5, description="Dropout on the LoRA input.")
    target_modules: Literal["all-linear"] | list[str] = Field(default="all-linear", description="Modules that get LoRA weights: 'all-linear' or names such as ['q_proj', 'v_proj'].")
    modules_to_save: list[str] = Field(
        default_factory=list, max_length=16,
        description="Extra modules trained in full next to a LoRA adapter (e.g. ['lm_head']); helps tiny models.")
    learning_rate: float = Field(default=2e-4, gt=0.0, le=1.0, description="Peak learning rate.")
    epochs: float = Field(default=1.0, gt=0.0, le=20.0, description="Passes over the dataset (ignored when max_steps is set).")
    max_steps: int | None = Field(default=None, ge=1, le=1_000_000,
                                  description="Optimizer steps; overrides epochs when set.")
    batch_size: int = Field(default=8, ge=1, le=1024, description="Per-device training batch size.")
    grad_accum: int = Field(default=1, ge=1, le=256, description="Gradient accumulation steps.")
    max_length: int = Field(default=512, ge=8, le=131_072, description="Longest tokenised example; longer ones are "
                            "truncated. With packing, the block size.")
    scheduler: Scheduler = Field(default="linear", description="Learning-rate schedule.")
    warmup_ratio: float = Field(default=0.0, ge=0.0, le=0.5, description="Fraction of training steps spent warming up.")
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, gt=0.0, le=100.0, description="Gradient clipping norm.")
    packing: bool = Field(default=False, description="Pack several short examples into one sequence (SFT only).")
    beta: float = Field(default=0.1, gt=0.0, le=10.0, description="DPO temperature (how far from the reference); DPO only.")
    seed: int = Field(default=42, ge=0, le=2**31 - 1, description="Random seed for weights, data order and dropout.")
    precision: Precision = Field(default="fp32", description="Training precision on GPU; CPU always trains in fp32.")
    save_steps: int = Field(default=100, ge=1, le=1_000_000, description="Checkpoint interval in optimizer steps.")
    save_total_limit: int = Field(default=2, ge=1, le=20, description="Checkpoints kept on disk (oldest removed first).")
    warm_start: bool = Field(default=False, description="Continue from the parent run's adapter (or weights) instead "
                             "of the base model.")

    @field_validator("target_modules", "modules_to_save")
    @classmethod
    def _module_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            import re

            for name in value:
                if not re.match(_MODULE_NAME, name):
                    raise ValueError(f"module name {name!r} must be 1-64 letters, digits, '_', '.', '-'")
            if len(set(value)) != len(value):
                raise ValueError("module names must be unique")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> TrainConfig:
        if self.method == "dpo" and self.packing:
            raise ValueError("packing: DPO does not pack examples; set packing to false")
        if isinstance(self.target_modules, list) and not self.target_modules and self.adapter == "lora":
            raise ValueError("target_modules: LoRA needs at least one module, or 'all-linear'")
        if self.adapter == "full" and self.modules_to_save:
            raise ValueError("modules_to_save: only meaningful with adapter 'lora' (a full fine-tune trains all)")
        return self

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step on one device."""
        return self.batch_size * self.grad_accum

    @property
    def dataset_format(self) -> Literal["prompt_completion", "messages", "preference"] | None:
        """The dataset format the method requires, or None when any SFT format works."""
        return "preference" if self.method == "dpo" else None


def parse_train_config(data: dict[str, Any] | TrainConfig) -> TrainConfig:
    """Validate a plain dict into a `TrainConfig`.

    Raises `RecipeError` naming the first offending field and its allowed range.
    """
    if isinstance(data, TrainConfig):
        return data
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        from trex_mcp.recipes.recipe import _error_field

        field, msg = _error_field(exc, "config")
        got = exc.errors()[0].get("input")
        shown = f" (got {got!r})" if not isinstance(got, dict) else ""
        raise RecipeError(f"{field}: {msg}{shown}", field=field,
                          hint="fix the value; see the TrainConfig field descriptions for bounds") from exc


def check_dataset_format(cfg: TrainConfig, dataset_format: str) -> None:
    """Refuse a dataset whose row format the training method cannot use (DPO needs preference rows; SFT cannot
    train on them). Raises `RecipeError` naming 'config.method'."""
    if cfg.method == "dpo" and dataset_format != "preference":
        raise RecipeError(f"config.method: DPO needs a preference dataset, got '{dataset_format}'",
                          field="config.method", hint="build the recipe with format 'preference', or use sft")
    if cfg.method == "sft" and dataset_format == "preference":
        raise RecipeError("config.method: SFT cannot train on preference rows", field="config.method",
                          hint="use method 'dpo', or build the recipe as prompt_completion or messages")


def _common_kwargs(cfg: TrainConfig, output_dir: str, use_cpu: bool) -> dict[str, Any]:
    bf16 = (not use_cpu) and cfg.precision == "bf16"
    fp16 = (not use_cpu) and cfg.precision == "fp16"
    return {
        "output_dir": output_dir,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps if cfg.max_steps is not None else -1,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "max_length": cfg.max_length,
        "lr_scheduler_type": cfg.scheduler,
        # transformers 5 dropped warmup_ratio: a float in [0, 1) given as warmup_steps is a ratio.
        "warmup_steps": cfg.warmup_ratio if cfg.warmup_ratio > 0 else 0,
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "bf16": bf16,
        "fp16": fp16,
        "use_cpu": use_cpu,
        # TRL defaults to checkpointing activations, which only slows small models down (about 1.6x on CPU).
        "activation_checkpointing": False,
        "report_to": "none",
        "disable_tqdm": True,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": cfg.save_steps,
        "save_total_limit": cfg.save_total_limit,
        "eval_strategy": "no",
        "dataloader_num_workers": 0,
        "trust_remote_code": False,
    }


def to_trl_config(cfg: TrainConfig, output_dir: str | Any, *, use_cpu: bool) -> SFTConfig | DPOConfig:
    """Build TRL's `SFTConfig` or `DPOConfig` for `cfg`, writing checkpoints under `output_dir`.

    CPU-safe defaults: no bf16/fp16 on CPU, no activation checkpointing, no reporting, no tqdm, a log line
    every step, checkpoints every `cfg.save_steps` steps. Imports trl (seconds); call it in the worker.
    """
    kwargs = _common_kwargs(cfg, str(output_dir), use_cpu)
    if cfg.method == "dpo":
        from trl import DPOConfig

        return DPOConfig(beta=cfg.beta, **kwargs)
    from trl import SFTConfig

    return SFTConfig(packing=cfg.packing, **kwargs)


def to_peft_config(cfg: TrainConfig) -> LoraConfig | None:
    """PEFT's `LoraConfig` for a LoRA run, or None for a full fine-tune. Imports peft (seconds)."""
    if cfg.adapter != "lora":
        return None
    from peft import LoraConfig, TaskType

    target: str | list[str] = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=target,
        modules_to_save=list(cfg.modules_to_save) or None,
        task_type=TaskType.CAUSAL_LM,
        bias="none",
    )
