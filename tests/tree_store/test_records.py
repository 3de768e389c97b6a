"""Records, score comparison and the JSON codec (pure functions, no store)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tree_store import Failure, FailureKind, State, decode_json, encode_json, is_better, score_key
from tree_store.codec import dumps, loads

NAN = float("nan")


def test_only_complete_fail_and_pruned_are_finished() -> None:
    assert [s.value for s in State if s.is_finished()] == ["COMPLETE", "FAIL", "PRUNED"]


@pytest.mark.parametrize(
    ("a", "b", "higher", "expected"),
    [
        (0.9, 0.5, True, True),
        (0.5, 0.9, True, False),
        (0.5, 0.9, False, True),
        (0.5, 0.5, True, False),
        (0.1, None, True, True),
        (0.1, NAN, False, True),
        (-1e9, float("-inf"), True, True),
        (None, 0.1, True, False),
        (NAN, 0.1, True, False),
        (float("inf"), 0.1, True, False),
        (NAN, None, True, False),
    ],
)
def test_is_better_follows_direction_and_treats_missing_or_non_finite_as_worst(
    a: float | None, b: float | None, higher: bool, expected: bool
) -> None:
    assert is_better(a, b, higher) is expected


def test_score_key_sorts_best_first_and_invalid_last() -> None:
    scores = [0.2, None, 0.9, NAN, 0.5]
    assert sorted(scores, key=lambda s: score_key(s, True))[:3] == [0.9, 0.5, 0.2]
    assert sorted(scores, key=lambda s: score_key(s, False))[:3] == [0.2, 0.5, 0.9]


def test_failure_accepts_kind_strings_and_trims_the_log_to_fifty_lines() -> None:
    f = Failure("oom", "CUDA out of memory", log_tail="\n".join(str(i) for i in range(80)))  # type: ignore[arg-type]
    assert f.kind is FailureKind.OOM
    assert f.log_tail.splitlines() == [str(i) for i in range(30, 80)]
    assert Failure.from_dict(f.to_dict()) == f
    assert len(Failure(FailureKind.CRASH, "x", log_tail="y" * 100_000).log_tail) == 8_000


def test_only_server_restarts_and_cancellations_are_infrastructure_failures() -> None:
    assert {k.value for k in FailureKind if k.is_infrastructure()} == {"server_restart", "cancelled"}


def test_failure_kinds_match_the_reliability_checklist() -> None:
    expected = {
        "oom",
        "nan_loss",
        "timeout",
        "crash",
        "stale",
        "server_restart",
        "invalid_config",
        "cancelled",
    }
    assert {k.value for k in FailureKind} == expected


json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["$float", "$escaped", "a", "b", ""]) | st.text(), children, max_size=4
        )
    ),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _refuse(token: str) -> Any:
    raise AssertionError(f"non-strict JSON token {token}")


@given(json_data)
def test_codec_round_trips_any_json_data_exactly_through_strict_json(value: Any) -> None:
    text = dumps(value)
    json.loads(text, parse_constant=_refuse)  # strict JSON: no NaN / Infinity tokens
    assert _same(loads(text), value)
    assert _same(decode_json(encode_json(value)), value)
