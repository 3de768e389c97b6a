"""`DataRecipe`: a typed, validated statement of how to build one training dataset.

A recipe names its sources (local files under the data roots, Hub datasets, or a task's own training sources),
how rows become TRL training rows (format plus templates), and an ordered list of operators (filters,
deduplication, sampling). Mixture weights, a shuffle seed and a sample cap finish it.

What this module guarantees: a recipe that validates is self-consistent (templates only name plain columns,
weights are given for all sources or none, labels are unique, format-specific options match the format).
What it does not check: that files exist, columns exist or a Hub dataset is reachable; `materialize` does that
against the task and settings, and names the field when something is wrong.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trex_mcp.recipes.errors import RecipeError

__all__ = [
    "DataRecipe",
    "Dedupe",
    "FilterLength",
    "FilterRegex",
    "FilterValue",
    "FormatName",
    "HubSource",
    "LocalSource",
    "Mapping",
    "Operator",
    "Sample",
    "Source",
    "TaskSource",
    "parse_recipe",
    "template_fields",
]

FormatName = Literal["prompt_completion", "messages", "preference"]
FileFormat = Literal["auto", "json", "jsonl", "csv", "parquet"]
Scalar = str | int | float | bool

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")
_LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"

#: Names an operator's `field` resolves against the formatted training row: 'formatted' is all its text (prompt,
#: completion, chosen, rejected, message contents); the others are its TRL fields. Any other name is a source
#: column (after renames); rename a source column that clashes with one of these to reach it.
OUTPUT_FIELDS = ("formatted", "prompt", "completion", "chosen", "rejected", "messages")
_FIELD_DOC = ("'formatted' (all text of the training row), a training-row field (prompt, completion, chosen, "
              "rejected, messages) or a source column (after renames).")


def template_fields(template: str) -> list[str]:
    """Column names a template uses. Raises ValueError for anything but plain `{column}` references."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a valid format string ({exc}); write literal braces as '{{{{' and '}}}}'") from exc
    for _literal, name, spec, _conversion in parsed:
        if name is None:
            continue
        if not name or not _IDENT.match(name):
            raise ValueError(f"template field {{{name}}} must be a plain column name (letters, digits, '_', '-'); "
                             "positional, attribute and index references are not allowed")
        if spec and "{" in spec:
            raise ValueError(f"template field {{{name}}}: nested fields in the format spec are not allowed")
        names.append(name)
    return names


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SourceBase(_Strict):
    label: str | None = Field(default=None, pattern=_LABEL, description="Name used in reports and counts; defaults to "
                              "the file stem, the Hub id or the task source name.")
    weight: float | None = Field(default=None, gt=0.0, le=1000.0, allow_inf_nan=False,
                                 description="Mixture weight; give it for every source or for none.")
    columns: dict[str, str] = Field(default_factory=dict, max_length=64,
                                    description="Renames applied on load: {source column: new name}.")
    max_rows: int | None = Field(default=None, ge=1, le=10_000_000, description="Read at most this many rows.")

    @field_validator("columns")
    @classmethod
    def _plain_names(cls, value: dict[str, str]) -> dict[str, str]:
        for old, new in value.items():
            if not old or len(old) > 128:
                raise ValueError(f"column {old!r}: names must be 1-128 characters")
            if not _IDENT.match(new):
                raise ValueError(f"rename target {new!r} must be a plain name (letters, digits, '_', '-')")
        if len(set(value.values())) != len(value):
            raise ValueError("two columns are renamed to the same name")
        return value


class LocalSource(_SourceBase):
    """A JSON, JSONL, CSV or Parquet file under the configured data roots."""

    kind: Literal["local"] = "local"
    path: str = Field(min_length=1, max_length=4096, description="Absolute path, or relative to a data root.")
    file_format: FileFormat = Field(default="auto", description="File format; 'auto' uses the extension.")

    def default_label(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", self.path.replace("\\", "/").rsplit("/", 1)[-1].split(".")[0])
        return (stem or "local").lstrip("_.-")[:64] or "local"


class HubSource(_SourceBase):
    """A Hugging Face Hub dataset split, pinned by revision for reproducibility."""

    kind: Literal["hub"] = "hub"
    id: str = Field(pattern=_HUB_ID.pattern, description="Hub dataset id 'org/name'.")
    config: str | None = Field(default=None, max_length=128, description="Dataset config (subset) name.")
    split: str = Field(default="train", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-\[\]:%]+$",
                       description="Split, e.g. 'train' or 'train[:10%]'.")
    revision: str | None = Field(default=None, max_length=128, pattern=r"^[A-Za-z0-9_.\-/]+$",
                                 description="Commit or tag; without it the cache key cannot see upstream changes.")

    def default_label(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.\-]", "_", self.id.split("/")[-1])[:64]


class TaskSource(_SourceBase):
    """One of the task's own training sources, by name (e.g. 'clean', 'noisy')."""

    kind: Literal["task"] = "task"
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$",
                      description="Name of a training source declared by the task.")

    def default_label(self) -> str:
        return self.name


Source = Annotated[LocalSource | HubSource | TaskSource, Field(discriminator="kind")]


class Mapping(_Strict):
    """How a source row becomes a training row. Templates are Python format strings over the row's columns;
    `{input}` is the task's input field and `{target}` its target text (lists joined by the label separator)."""

    prompt: str | None = Field(default=None, min_length=1, max_length=4000,
                               description="Prompt template; default: the task's prompt_template.")
    completion: str | None = Field(default=None, min_length=1, max_length=4000,
                                   description="Completion template; default ' {target}' ('{target}' for messages).")
    system: str | None = Field(default=None, min_length=1, max_length=4000,
                               description="System message template (messages format only).")
    messages_column: str | None = Field(default=None, pattern=_IDENT.pattern,
                                        description="Column already holding a list of {role, content} "
                                        "(messages format only); templates are then unused.")
    chosen: str | None = Field(default=None, min_length=1, max_length=4000,
                               description="Preferred answer template (preference); default '{chosen}'.")
    rejected: str | None = Field(default=None, min_length=1, max_length=4000,
                                 description="Dispreferred answer template (preference); default '{rejected}'.")
    rejected_from_choices: bool = Field(default=False, description="Preference only: chosen is ' {target}', rejected is "
                                        "a different label from the task's choices (seeded).")

    @field_validator("prompt", "completion", "system", "chosen", "rejected")
    @classmethod
    def _valid_template(cls, value: str | None) -> str | None:
        if value is not None:
            template_fields(value)
        return value


class FilterLength(_Strict):
    """Keep rows whose length is within [min, max]."""

    op: Literal["filter_length"] = "filter_length"
    field: str = Field(default="formatted", pattern=_IDENT.pattern, description=_FIELD_DOC)
    unit: Literal["chars", "words", "tokens"] = Field(default="chars", description="'tokens' uses the base model's tokenizer.")
    min: int | None = Field(default=None, ge=0, le=10_000_000, description="Shortest length kept.")
    max: int | None = Field(default=None, ge=1, le=10_000_000, description="Longest length kept.")

    @model_validator(mode="after")
    def _bounds(self) -> FilterLength:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self


class FilterValue(_Strict):
    """Keep rows whose column equals a value or is one of several (or the opposite with negate)."""

    op: Literal["filter_value"] = "filter_value"
    column: str = Field(min_length=1, max_length=128, description="Source column (after renames).")
    equals: Scalar | None = Field(default=None, description="Keep rows whose column equals this.")
    one_of: list[Scalar] | None = Field(default=None, min_length=1, max_length=1000, description="Keep rows whose column "
                                        "is one of these.")
    negate: bool = Field(default=False, description="Drop the matching rows instead of keeping them.")

    @model_validator(mode="after")
    def _one_test(self) -> FilterValue:
        if (self.equals is None) == (self.one_of is None):
            raise ValueError("give exactly one of 'equals' or 'one_of'")
        return self


class FilterRegex(_Strict):
    """Keep rows whose field matches (or does not match) a regular expression."""

    op: Literal["filter_regex"] = "filter_regex"
    field: str = Field(default="formatted", pattern=_IDENT.pattern, description=_FIELD_DOC)
    pattern: str = Field(min_length=1, max_length=500, description="Python regular expression (re.search).")
    keep: Literal["match", "no_match"] = Field(default="match", description="Which rows to keep.")
    ignore_case: bool = Field(default=False, description="Case-insensitive matching.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class Dedupe(_Strict):
    """Remove exact or near-duplicate rows (keeps the first of each group)."""

    op: Literal["dedupe"] = "dedupe"
    method: Literal["exact", "minhash", "ngram"] = Field(default="exact", description="'exact' on normalised text; "
                                                         "'minhash' estimated Jaccard; 'ngram' exact Jaccard over "
                                                         "word n-grams (MinHash-LSH candidates).")
    field: str = Field(default="formatted", pattern=_IDENT.pattern, description="Field compared. " + _FIELD_DOC)
    threshold: float = Field(default=0.8, ge=0.3, le=1.0, description="Jaccard similarity at which rows are duplicates.")
    ngram: int = Field(default=3, ge=1, le=16, description="Word n-gram size of the shingles.")
    num_perm: int = Field(default=64, ge=16, le=512, description="MinHash permutations.")


class Sample(_Strict):
    """Keep a random sample of n rows (all rows when there are fewer)."""

    op: Literal["sample"] = "sample"
    n: int = Field(ge=1, le=10_000_000, description="Rows to keep.")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Sampling seed; default the recipe's seed.")


Operator = Annotated[FilterLength | FilterValue | FilterRegex | Dedupe | Sample, Field(discriminator="op")]


class DataRecipe(_Strict):
    """Sources, format, operators and limits of one training dataset."""

    sources: list[Source] = Field(min_length=1, max_length=16, description="Where rows come from.")
    format: FormatName = Field(default="prompt_completion", description="TRL row format: prompt_completion "
                               "({prompt, completion}), messages ({messages}) or preference "
                               "({prompt, chosen, rejected}, for DPO).")
    mapping: Mapping = Field(default=Mapping(), description="Templates building training rows from columns.")
    operators: list[Operator] = Field(default_factory=list, max_length=32,
                                      description="Applied in order after formatting.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed for sampling, mixture and shuffle.")
    shuffle: bool = Field(default=True, description="Shuffle the final rows with the seed.")
    max_samples: int | None = Field(default=None, ge=1, le=50_000, description="Cap on rows; default the task's "
                                    "budgets.max_samples_per_round.")
    decontaminate: bool = Field(default=True, description="Remove rows that overlap the task's validation/test data.")
    contamination_threshold: float = Field(default=0.8, ge=0.5, le=1.0, description="Share of an evaluation item's "
                                           "words found, in order, in a training row at which the row is removed.")
    description: str = Field(default="", max_length=2000, description="Free text; not part of the cache key.")

    @model_validator(mode="after")
    def _coherent(self) -> DataRecipe:
        weights = [s.weight for s in self.sources]
        given = [w is not None for w in weights]
        if any(given) and not all(given):
            missing = [i for i, g in enumerate(given) if not g]
            raise ValueError(f"sources[{missing[0]}].weight: mixture weights must be given for every source or "
                             "for none")
        labels = self.labels()
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"sources: two sources share the label '{dupes[0]}'; set 'label' on one of them")
        m = self.mapping
        if self.format != "messages" and (m.messages_column or m.system):
            raise ValueError("mapping.messages_column: messages_column and system are only used with format "
                             "'messages'")
        if self.format != "preference" and (m.chosen or m.rejected or m.rejected_from_choices):
            raise ValueError("mapping.chosen: chosen, rejected and rejected_from_choices are only used with "
                             "format 'preference'")
        if self.format == "preference" and m.completion:
            raise ValueError("mapping.completion: preference rows use 'chosen' and 'rejected' instead")
        if m.rejected_from_choices and m.rejected:
            raise ValueError("mapping.rejected: give either a rejected template or rejected_from_choices")
        if m.messages_column and (m.prompt or m.completion):
            raise ValueError("mapping.messages_column: the column already holds messages; drop prompt/completion")
        return self

    def labels(self) -> list[str]:
        """The label of every source, in order."""
        return [s.label or s.default_label() for s in self.sources]

    def uses_tokens(self) -> bool:
        """True when an operator measures length in tokens (the build then needs the tokenizer)."""
        return any(isinstance(op, FilterLength) and op.unit == "tokens" for op in self.operators)

    def cache_key_data(self) -> dict[str, Any]:
        """What of the recipe goes into the content hash (everything but the description)."""
        return self.model_dump(mode="json", exclude={"description"})


_UNION_TAGS = {"local", "hub", "task", "filter_length", "filter_value", "filter_regex", "dedupe", "sample"}


def parse_recipe(data: dict[str, Any] | DataRecipe) -> DataRecipe:
    """Validate a plain dict into a `DataRecipe`.

    Raises `RecipeError` naming the first offending field (e.g. 'recipe.sources.0.weight') and what to do.
    """
    if isinstance(data, DataRecipe):
        return data
    try:
        return DataRecipe.model_validate(data)
    except ValidationError as exc:
        field, msg = _error_field(exc, "recipe")
        raise RecipeError(f"{field}: {msg}", field=field,
                          hint="fix that field; see the DataRecipe field descriptions") from exc


def _error_field(exc: ValidationError, root: str) -> tuple[str, str]:
    """(dotted field, message) of the first error; model-level errors name their field as 'a[1].b: ...'."""
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    parts = [str(p) for p in err["loc"] if str(p) not in _UNION_TAGS]
    named = re.match(r"^([A-Za-z_][\w.\[\]]*): ", msg)
    if named:
        parts.append(re.sub(r"\[(\d+)\]", r".\1", named.group(1)))
        msg = msg[named.end():]
    return ".".join([root, *parts]), msg
