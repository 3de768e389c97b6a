"""The test-split permit: the held-out test split is reachable only from the finalisation path.

The search must never be steered by the test split, so every entry point that could score the test split
(`evaluate_model`, `evaluate`, `base_score`) refuses `split="test"` unless it is handed a `TestSplitPermit` for
the same task. A permit can only be minted by `mint_test_split_permit(tree)`, and only for a tree whose status
is ``"finished"``; the lab calls it once a search is over, to write the final report.

How the guarantee is kept:
- `TestSplitPermit.__init__` demands a module-private key; building one any other way raises `EvaluationError`.
- A permit names the tree and the task it was minted for; a permit for another task is refused.
- A permit is read-only and cannot be pickled or copied, so it is never re-targeted, and never travels to a
  training worker or into a cache.

What it does not cover: this is a guard against mistakes inside one trusted process (a planner or a tool that
asks for test scores mid-search), not a security boundary against code that imports this module's internals.
"""

from __future__ import annotations

from typing import Any, Protocol

from trex_mcp.evaluation.errors import EvaluationError

__all__ = ["FinishedTree", "TestSplitPermit", "check_split_access", "mint_test_split_permit"]

_MINT_KEY = object()


class FinishedTree(Protocol):
    """What `mint_test_split_permit` reads from a tree record (tree_store's `Tree` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def task_name(self) -> str: ...


class TestSplitPermit:
    """Leave to evaluate on the held-out test split of one task, for one finished tree (read-only)."""

    __test__ = False  # not a pytest test class, despite the name
    __slots__ = ("_key", "task_name", "tree_id")

    tree_id: str
    task_name: str

    def __init__(self, *, tree_id: str, task_name: str, _key: object = None) -> None:
        if _key is not _MINT_KEY:
            raise EvaluationError("a TestSplitPermit cannot be built directly", field="permit",
                                  hint="the test split is used only for the final report; "
                                  "call mint_test_split_permit(tree) once the tree is finished")
        object.__setattr__(self, "tree_id", tree_id)
        object.__setattr__(self, "task_name", task_name)
        object.__setattr__(self, "_key", _key)

    def __setattr__(self, name: str, value: Any) -> None:
        raise EvaluationError("a TestSplitPermit is read-only", field="permit")

    def __delattr__(self, name: str) -> None:
        raise EvaluationError("a TestSplitPermit is read-only", field="permit")

    def __reduce__(self) -> Any:
        raise EvaluationError("a TestSplitPermit cannot be pickled or copied", field="permit",
                              hint="mint a permit in the process that runs the final evaluation")

    def __repr__(self) -> str:
        return f"TestSplitPermit(tree_id={self.tree_id!r}, task_name={self.task_name!r})"

    def is_valid(self) -> bool:
        """True for a permit minted by `mint_test_split_permit`."""
        return getattr(self, "_key", None) is _MINT_KEY


def mint_test_split_permit(tree: FinishedTree) -> TestSplitPermit:
    """Mint a permit for `tree`'s task. Raises `EvaluationError` unless `tree.status == "finished"`."""
    if tree.status != "finished":
        raise EvaluationError(f"tree {tree.id} is '{tree.status}', not 'finished'; the test split is used only "
                              "for the final report", field="split",
                              hint="use split='validation' while searching; finish the tree first")
    return TestSplitPermit(tree_id=tree.id, task_name=_bare_name(tree.task_name), _key=_MINT_KEY)


def _bare_name(name: str) -> str:
    return name.removeprefix("ftbench/")


def check_split_access(split: str, task_name: str, permit: TestSplitPermit | None) -> None:
    """Raise `EvaluationError` for an unknown split, or for the test split without a valid permit."""
    if split == "validation":
        return
    if split != "test":
        raise EvaluationError(f"unknown split '{split}'", field="split",
                              hint="use 'validation' (search) or 'test' (final report only)")
    if not isinstance(permit, TestSplitPermit) or not permit.is_valid():
        raise EvaluationError("the test split needs a TestSplitPermit; it is used only for the final report",
                              field="split", hint="use split='validation' while searching")
    if permit.task_name != _bare_name(task_name):
        raise EvaluationError(f"the permit was minted for task '{permit.task_name}', not '{task_name}'",
                              field="permit", hint="mint a permit from the finished tree of this task")
