"""Tidy tree layout: x/y positions for drawing a search tree.

A simple Reingold-Tilford layout: each subtree is laid out on its own, then sibling subtrees are pushed right
just far enough that their contours keep `sep` apart at every depth, and a parent sits centred over its first
and last child. Result: no two nodes on one level overlap, subtrees never interleave, a parent is always above
its children, and the drawing is narrower than one leaf per column.

Guarantees: pure, deterministic (children keep the order they are given in), iterative (a chain of any depth
does not hit the recursion limit), O(n * height). Nodes whose parent is unknown become extra roots, laid out
side by side. Not covered: the extra pass of full Reingold-Tilford that spreads small middle subtrees evenly.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Shape:
    """A laid-out subtree in coordinates relative to its root (root at x = 0)."""

    left: list[float] = field(default_factory=lambda: [0.0])  # leftmost x per relative depth
    right: list[float] = field(default_factory=lambda: [0.0])  # rightmost x per relative depth
    child_offsets: list[float] = field(default_factory=list)  # x of each child relative to this root


@dataclass(frozen=True)
class Position(Generic[K]):
    """Where one node is drawn: `x` across, `depth` down (root = 0)."""

    key: K
    x: float
    depth: int


def _merge(shapes: list[_Shape], sep: float) -> tuple[list[float], list[float], list[float]]:
    """Place sibling shapes left to right; return their shifts and the combined left/right contours."""
    shifts: list[float] = []
    acc_left: list[float] = []
    acc_right: list[float] = []
    for shape in shapes:
        shift = 0.0
        if shifts:
            common = min(len(acc_right), len(shape.left))
            shift = max(acc_right[d] - shape.left[d] + sep for d in range(common))
        shifts.append(shift)
        for d, value in enumerate(shape.right):
            if d < len(acc_right):
                acc_right[d] = value + shift
            else:
                acc_right.append(value + shift)
        for d in range(len(acc_left), len(shape.left)):
            acc_left.append(shape.left[d] + shift)
    return shifts, acc_left, acc_right


def tidy_layout(edges: Iterable[tuple[K, K | None]], *, sep: float = 1.0) -> dict[K, Position[K]]:
    """Lay out a forest given as `(node, parent)` pairs in child order.

    Returns one `Position` per node. Minimum x is 0; sibling leaves are `sep` apart. A parent that is not
    itself in `edges` (or None) makes the node a root. Raises ValueError on a cycle or a duplicate node.
    """
    pairs = list(edges)
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("tidy_layout: a node appears twice")
    known = set(keys)
    children: dict[K, list[K]] = {k: [] for k in keys}
    roots: list[K] = []
    for key, parent in pairs:
        if parent is None or parent not in known or parent == key:
            roots.append(key)
        else:
            children[parent].append(key)

    shapes: dict[K, _Shape] = {}
    # Iterative post-order: a node's shape is built once all its children's shapes exist.
    stack: list[tuple[K, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        key, expanded = stack.pop()
        if not expanded:
            stack.append((key, True))
            stack.extend((c, False) for c in reversed(children[key]))
            continue
        kids = children[key]
        if not kids:
            shapes[key] = _Shape()
            continue
        shifts, acc_left, acc_right = _merge([shapes[c] for c in kids], sep)
        mid = (shifts[0] + shifts[-1]) / 2
        shapes[key] = _Shape(
            left=[0.0, *(v - mid for v in acc_left)],
            right=[0.0, *(v - mid for v in acc_right)],
            child_offsets=[s - mid for s in shifts],
        )
        for c in kids:  # children's contours are no longer needed once merged
            shapes[c].left = shapes[c].right = []
    if len(shapes) != len(keys):
        raise ValueError("tidy_layout: the parent links contain a cycle")

    # Roots side by side, then absolute positions top-down.
    root_shapes = [shapes[r] for r in roots]
    root_shifts, _, _ = _merge(root_shapes, sep * 2) if roots else ([], [], [])
    out: dict[K, Position[K]] = {}
    walk: list[tuple[K, float, int]] = [(r, s, 0) for r, s in zip(roots, root_shifts, strict=True)]
    while walk:
        key, x, depth = walk.pop()
        out[key] = Position(key, x, depth)
        for child, offset in zip(children[key], shapes[key].child_offsets, strict=True):
            walk.append((child, x + offset, depth + 1))
    min_x = min((p.x for p in out.values()), default=0.0)
    return {k: Position(k, p.x - min_x, p.depth) for k, p in out.items()}
