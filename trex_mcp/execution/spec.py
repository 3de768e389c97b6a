"""`RunSpec`: everything a training worker needs to run one Run, written as `<run_dir>/spec.json`.

The job manager writes the spec; `python -m trex_mcp.execution.worker <run_dir>/spec.json` reads it. The spec is
self-contained: the worker needs no store access. `config` stays a plain dict here (validated into a
`TrainConfig` by the worker, so a bad config becomes an `invalid_config` failure with the field named rather than
a crash before the worker can report anything).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trex_mcp.atomic import atomic_write_text

__all__ = ["DatasetFormat", "RunSpec"]

DatasetFormat = Literal["prompt_completion", "messages", "preference"]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"


class RunSpec(BaseModel):
    """One training run, as handed to the worker process."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(pattern=_ID, description="Run id in the tree store.")
    tree_id: str = Field(pattern=_ID, description="Tree the run belongs to.")
    node_id: str = Field(pattern=_ID, description="Node the run belongs to.")
    task_name: str = Field(min_length=1, max_length=300,
                           description="FT-Bench task name ('ftbench/mini/sentiment') or path to a task YAML.")
    task_snapshot: dict[str, Any] | None = Field(
        None, description="The task spec as a dict (as stored on the tree); used instead of the registry when set.")
    base_model: str = Field(min_length=1, max_length=500,
                            description="Model to fine-tune: 'tiny:<size>', a Hub id 'org/name' or a local folder.")
    dataset_file: Path = Field(description="JSONL of TRL rows produced by the recipe's materialise step.")
    dataset_format: DatasetFormat = Field(description="Row format of dataset_file.")
    config: dict[str, Any] = Field(default_factory=dict, description="TrainConfig as a plain dict.")
    warm_start_adapter: Path | None = Field(
        None, description="Parent run's adapter (or fine-tuned model) folder to continue from; None trains the base.")
    run_dir: Path = Field(description="The run's folder: progress, heartbeat, checkpoints, adapter, result.")
    models_dir: Path = Field(description="Where `tiny:` models are built and cached.")
    heartbeat_s: float = Field(10.0, gt=0, le=600, description="Seconds between heartbeat file touches.")
    train: bool = Field(True, description="False for a baseline run: no training, the base model (or the "
                        "warm-start adapter) is only evaluated; dataset_file is then not read.")
    evaluate: bool = Field(True, description="Score the trained model on the task's validation split.")
    eval_limit: int | None = Field(None, ge=1, le=1_000_000, description="Validation examples to score; None = all.")
    checkpoint_steps: int | None = Field(
        None, ge=1, le=1_000_000, description="Checkpoint interval in steps; overrides config.save_steps when set.")
    keep_checkpoints: bool = Field(False, description="Keep checkpoints/ after a complete run (they are only "
                                   "needed to resume; full fine-tunes of real models take many GB each).")
    gpus: int = Field(0, ge=0, le=64, description="GPUs the run was given (0 = CPU); >1 is launched by accelerate.")
    nan_patience: int = Field(3, ge=1, le=100, description="Consecutive non-finite losses that stop the run.")
    preflight_rows: int = Field(4, ge=1, le=1024, description="Rows used by the one-step preflight.")

    @classmethod
    def read(cls, path: Path | str) -> RunSpec:
        """Load a spec from a JSON file. Raises `OSError` or `pydantic.ValidationError`."""
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))

    def write(self, path: Path | str | None = None) -> Path:
        """Write the spec as JSON (atomically) to `path`, default `<run_dir>/spec.json`; returns the path."""
        target = Path(path) if path is not None else self.run_dir / "spec.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, self.model_dump_json(indent=2))
        return target
