"""RunSpec: the worker's input file."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trex_mcp.execution.spec import RunSpec

BASE = {"run_id": "r1", "tree_id": "t1", "node_id": "n1", "task_name": "ftbench/mini/sentiment",
        "base_model": "tiny:100k", "dataset_file": "/data/x.jsonl", "dataset_format": "prompt_completion",
        "config": {"learning_rate": 1e-3}, "run_dir": "/runs/r1", "models_dir": "/models"}


def test_spec_round_trips_through_its_json_file(tmp_path):
    spec = RunSpec.model_validate({**BASE, "run_dir": tmp_path / "r1"})
    path = spec.write()
    assert path == tmp_path / "r1" / "spec.json"
    again = RunSpec.read(path)
    assert again == spec and again.evaluate is True and again.warm_start_adapter is None


@pytest.mark.parametrize("change", [{"surprise": 1}, {"dataset_format": "csv"}, {"heartbeat_s": 0},
                                    {"run_id": "../escape"}, {"eval_limit": 0}])
def test_spec_refuses_unknown_keys_bad_formats_and_out_of_range_values(change):
    with pytest.raises(ValidationError):
        RunSpec.model_validate({**BASE, **change})
