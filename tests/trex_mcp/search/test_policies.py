"""Tree policies on hand-built trees."""

import random

import pytest

from tree_store import InMemoryTreeStore, State
from trex_mcp.search.policies import NoCandidateError, select


def _tree(store, rewards):
    """A root (baseline) with one child per reward, all COMPLETE and backed up; returns (tree, root, children)."""
    tree = store.create_tree("t", task_name="ftbench/mini/sentiment", higher_is_better=True)
    root = store.add_node(tree.id, None, strategy_kind="baseline")
    store.claim_node(root.id)
    store.finish_node(root.id, State.COMPLETE, score=0.5, reward=0.0)
    store.backpropagate(root.id, 0.0)
    children = []
    for reward in rewards:
        child = store.add_node(tree.id, root.id, strategy_kind="refine_data")
        store.claim_node(child.id)
        store.finish_node(child.id, State.COMPLETE, score=0.5 + reward / 2, reward=reward)
        store.backpropagate(child.id, reward)
        children.append(store.get_node(child.id))
    return tree, store.get_node(root.id), children


def test_uct_with_no_exploration_picks_the_best_reward():
    store = InMemoryTreeStore()
    tree, _root, children = _tree(store, [0.2, 0.8, 0.5])
    choice = select(store.list_nodes(tree.id), policy="uct", c=0.0)
    assert choice.node_id == children[1].id


def test_uct_with_large_exploration_prefers_the_least_visited_node():
    store = InMemoryTreeStore()
    tree, root, children = _tree(store, [0.2, 0.8, 0.5])
    # Give the best child many visits from descendants: exploitation alone would still pick it.
    for _ in range(6):
        grandchild = store.add_node(tree.id, children[1].id)
        store.claim_node(grandchild.id)
        store.finish_node(grandchild.id, State.FAIL, score=None)
        store.backpropagate(grandchild.id, 0.8)
    low_c = select(store.list_nodes(tree.id), policy="uct", c=0.0)
    high_c = select(store.list_nodes(tree.id), policy="uct", c=5.0)
    assert low_c.node_id == children[1].id
    assert high_c.node_id != children[1].id
    assert high_c.candidates[0].bonus > low_c.candidates[0].bonus


def test_vetoed_nodes_are_never_chosen_by_any_policy():
    store = InMemoryTreeStore()
    tree, _root, children = _tree(store, [0.2, 0.9])
    store.set_flags(children[1].id, vetoed=True)
    nodes = store.list_nodes(tree.id)
    for policy in ("uct", "greedy"):
        assert select(nodes, policy=policy, c=0.0).node_id != children[1].id
    rng = random.Random(0)
    assert all(select(nodes, policy="random", rng=rng).node_id != children[1].id for _ in range(50))


def test_pinned_nodes_are_preferred_over_better_ones():
    store = InMemoryTreeStore()
    tree, _root, children = _tree(store, [0.1, 0.9])
    store.set_flags(children[0].id, pinned=True)
    choice = select(store.list_nodes(tree.id), policy="greedy")
    assert choice.node_id == children[0].id
    assert "pinned" in choice.reason


def test_running_and_failed_nodes_are_not_candidates():
    store = InMemoryTreeStore()
    tree = store.create_tree("t", task_name="x", higher_is_better=True)
    root = store.add_node(tree.id, None)
    with pytest.raises(NoCandidateError):
        select(store.list_nodes(tree.id), policy="uct")
    store.claim_node(root.id)
    store.finish_node(root.id, State.FAIL, score=None)
    with pytest.raises(NoCandidateError):
        select(store.list_nodes(tree.id), policy="greedy")


def test_greedy_picks_the_highest_own_reward_and_random_is_seeded():
    store = InMemoryTreeStore()
    tree, _root, children = _tree(store, [0.3, 0.6, 0.4])
    nodes = store.list_nodes(tree.id)
    assert select(nodes, policy="greedy").node_id == children[1].id
    first = [select(nodes, policy="random", rng=random.Random(7)).node_id for _ in range(3)]
    second = [select(nodes, policy="random", rng=random.Random(7)).node_id for _ in range(3)]
    assert first == second
