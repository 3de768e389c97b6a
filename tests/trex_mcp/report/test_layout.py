from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trex_mcp.report.layout import tidy_layout


def _preorder(edges: list[tuple[int, int | None]]) -> list[int]:
    children: dict[int | None, list[int]] = defaultdict(list)
    for key, parent in edges:
        children[parent].append(key)
    order: list[int] = []
    stack = list(reversed(children[None]))
    while stack:
        key = stack.pop()
        order.append(key)
        stack.extend(reversed(children[key]))
    return order


@st.composite
def random_trees(draw: st.DrawFn) -> list[tuple[int, int | None]]:
    size = draw(st.integers(1, 60))
    parents = [draw(st.integers(0, i - 1)) for i in range(1, size)]
    return [(0, None), *((i, p) for i, p in enumerate(parents, start=1))]


@settings(max_examples=80, deadline=None)
@given(random_trees())
def test_tidy_layout_never_overlaps_keeps_sibling_order_and_centres_parents(edges: list[tuple[int, int | None]]) -> None:
    pos = tidy_layout(edges)
    assert set(pos) == {k for k, _ in edges}
    assert min(p.x for p in pos.values()) == 0
    order = {k: i for i, k in enumerate(_preorder(edges))}
    by_depth: dict[int, list[int]] = defaultdict(list)
    for key, parent in edges:
        assert pos[key].depth == (0 if parent is None else pos[parent].depth + 1)
        by_depth[pos[key].depth].append(key)
    for keys in by_depth.values():
        keys.sort(key=order.__getitem__)  # left to right in tree order
        xs = [pos[k].x for k in keys]
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(xs, xs[1:], strict=False))
    kids: dict[int, list[int]] = defaultdict(list)
    for key, parent in edges:
        if parent is not None:
            kids[parent].append(key)
    for parent, children in kids.items():
        assert pos[parent].x == pytest.approx((pos[children[0]].x + pos[children[-1]].x) / 2)


def test_tidy_layout_packs_subtrees_closer_than_one_column_per_leaf() -> None:
    # two deep chains under one root with bushy tops: contours let the bottoms tuck in
    edges: list[tuple[int, int | None]] = [(0, None), (1, 0), (2, 0), (3, 1), (4, 1), (5, 1), (6, 2), (7, 2), (8, 2)]
    pos = tidy_layout(edges)
    assert max(p.x for p in pos.values()) == pytest.approx(5.0)
    assert pos[0].x == pytest.approx(2.5)


def test_tidy_layout_handles_a_chain_deeper_than_the_recursion_limit() -> None:
    edges = [(i, i - 1 if i else None) for i in range(1500)]
    pos = tidy_layout(edges)
    assert pos[1499].depth == 1499
    assert {p.x for p in pos.values()} == {0.0}


def test_tidy_layout_puts_orphans_beside_the_root_as_extra_roots() -> None:
    pos = tidy_layout([("a", None), ("b", "a"), ("c", "missing")])
    assert pos["c"].depth == 0
    assert pos["c"].x > pos["a"].x


def test_tidy_layout_rejects_duplicates_and_cycles() -> None:
    with pytest.raises(ValueError, match="twice"):
        tidy_layout([(1, None), (1, None)])
    with pytest.raises(ValueError, match="cycle"):
        tidy_layout([(0, None), (1, 2), (2, 1)])


def test_tidy_layout_is_empty_for_no_nodes() -> None:
    assert tidy_layout([]) == {}
