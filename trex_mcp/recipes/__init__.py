"""Data recipes, training configs and integrity (contamination) checks.

Public surface: `DataRecipe` (what data, how formatted, which operators), `materialize` (build once per content
hash, atomically), `preview`, `check_contamination`, `TrainConfig` with `to_trl_config` / `to_peft_config`
(the only code that knows TRL's and PEFT's field names), and `RecipeError`. Importing this package is cheap:
datasets, pyarrow, numpy, trl and peft are imported inside the functions that need them.
"""

from trex_mcp.recipes.config import (
    TrainConfig,
    check_dataset_format,
    parse_train_config,
    to_peft_config,
    to_trl_config,
)
from trex_mcp.recipes.contamination import ContaminationReport, check_contamination
from trex_mcp.recipes.errors import RecipeError
from trex_mcp.recipes.materialize import BuiltDataset, materialize
from trex_mcp.recipes.operators import OperatorCount
from trex_mcp.recipes.preview import RecipePreview, preview
from trex_mcp.recipes.recipe import DataRecipe, parse_recipe

__all__ = [
    "BuiltDataset",
    "ContaminationReport",
    "DataRecipe",
    "OperatorCount",
    "RecipeError",
    "RecipePreview",
    "TrainConfig",
    "check_contamination",
    "check_dataset_format",
    "materialize",
    "parse_recipe",
    "parse_train_config",
    "preview",
    "to_peft_config",
    "to_trl_config",
]
