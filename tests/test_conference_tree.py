"""A conference room's tree of parts without SIP (flexvoice.conference.tree): where parts
hang, which are cut off, and the rebuild around a worker that died."""

from __future__ import annotations

import itertools

import pytest

from flexvoice.conference.tree import (
    RETRIES,
    RETRY_AFTER,
    Link,
    Move,
    NoSlot,
    Retry,
    Rooted,
    Stranded,
    Tree,
    Unlink,
)


def chain(*placements: str) -> Tree:
    """root -> a -> b -> ... (each part below the one before)."""
    tree = Tree(placements[0])
    for parent, child in itertools.pairwise(placements):
        tree.linked(child, parent)
    return tree


def shape(tree: Tree) -> dict[str, tuple[str | None, int]]:
    return {p.placement: (p.parent, p.depth) for p in tree.parts.values()}


def test_a_new_part_hangs_below_the_shallowest_part_with_a_free_slot() -> None:
    tree = Tree("w0")
    assert tree.place("w1", {"w0": 2}) == [Link("w0", "w1")]
    tree.linked("w1", "w0")
    assert tree.place("w2", {"w0": 1, "w1": 1}) == [Link("w0", "w2")]  # depth 0 first
    tree.linked("w2", "w0")
    assert tree.place("w3", {"w0": 0, "w1": 1, "w2": 1}) == [Link("w1", "w3")]  # ties: name
    tree.linked("w3", "w1")
    assert shape(tree)["w3"] == ("w1", 2) and tree.depth() == 2
    with pytest.raises(NoSlot):
        tree.place("w4", {"w0": 0, "w1": 0, "w2": 0, "w3": 0})
    with pytest.raises(ValueError):
        tree.place("w1", {"w0": 1})


def grow(tree: Tree, parts: int, relays: int) -> list[Link | Move]:
    """Parts w01.. with two participants each join a room rooted on w0 (two participants),
    with `relays` relay workers r0..; every action is carried out as the service does."""
    used = {"w0": 2}
    relay_names = [f"r{i:02}" for i in range(relays)]
    done: list[Link | Move] = []
    for n in range(1, parts + 1):
        child = f"w{n:02}"
        free = {
            p: 4 - used.get(p, 0) - (p != tree.root) - len(tree.children(p)) for p in tree.parts
        }
        slots = {r: free.get(r, 4) for r in relay_names}
        for action in tree.place(child, free, slots):
            if isinstance(action, Move):
                parent = tree.parts[action.part].parent
                assert parent is not None
                tree.detach(action.part)
                tree.linked(action.relay, parent)
                tree.linked(action.part, action.relay)
            else:
                tree.linked(action.child, action.parent)
            done.append(action)
        used[child] = 2
    return done


def test_relays_are_the_inside_of_the_tree_filled_breadth_first() -> None:
    """Two participants per worker: 50 participants (25 parts) with 12 relays. The first relay
    hangs below the root as the hub; parts hang below relays; a full set of relays takes a
    spare relay in place of the shallowest leaf (a Move): no part has a part below it, and
    any two participants are at most 6 hops apart (8 with relays in alternate levels)."""
    tree = Tree("w0")
    actions = grow(tree, 24, relays=12)
    relays = {p for p in tree.parts if p.startswith("r")}
    assert len(relays) == 12 and tree.children("w0") == ["r11"]  # the hub
    assert all(not tree.children(p) for p in tree.parts if p.startswith("w") and p != "w0")
    assert sum(isinstance(a, Move) for a in actions) == 11
    parts = [p for p in tree.parts if p.startswith("w")]
    assert max(tree.hops(a, b) for a in parts for b in parts) == 6
    assert max(tree.hops("w0", b) for b in parts) == 4


def test_without_a_spare_relay_a_part_hangs_below_a_part() -> None:
    tree = Tree("w0")
    grow(tree, 6, relays=1)  # the hub takes 3, then the shallowest parts with a free slot
    assert set(tree.children("w0")) == {"r00", "w04"} and len(tree.children("r00")) == 3
    assert tree.parts["w05"].parent == "w04" and tree.parts["w06"].parent == "w01"
    assert tree.place("x", {"w0": 1}, {"r9": 1}) == [Link("w0", "x")]  # a relay needs 2 slots


def test_an_inner_worker_lost_hangs_the_parts_below_it_back_on_the_root() -> None:
    tree = chain("w0", "w1", "w2", "w3")
    used = {"w0": 2, "w1": 2, "w2": 2, "w3": 2}
    actions = tree.link_ended("w1", {"w1"}, used, {"w0": 1, "w2": 1, "w3": 1})
    # w1's uplink (its live end on w0) and w2's uplink (to the dead w1) are hung up, then w2,
    # with w3 still below it, hangs below the root.
    assert actions == [Unlink("w1"), Unlink("w2"), Link("w0", "w2")]
    assert "w1" not in tree.parts
    tree.linked("w2", "w0")
    assert shape(tree) == {"w0": (None, 0), "w2": ("w0", 1), "w3": ("w2", 2)}


def test_the_root_lost_makes_the_part_holding_most_participants_the_root() -> None:
    tree = Tree("w0")
    for child in ("w1", "w2", "w3"):
        tree.linked(child, "w0")
    tree.linked("w4", "w3")
    used = {"w0": 1, "w1": 2, "w2": 1, "w3": 1, "w4": 2}  # w3's subtree holds 3
    actions = tree.link_ended("w2", {"w0"}, used, {"w1": 1, "w2": 1, "w3": 1, "w4": 1})
    assert set(actions[:3]) == {Unlink("w1"), Unlink("w2"), Unlink("w3")}
    assert actions[3] == Rooted("w3")
    assert tree.root == "w3"
    # w1 (2 participants) first: the root's one free slot, then w2 below w4 (depth 1).
    assert actions[4:] == [Link("w3", "w1"), Link("w4", "w2")]


def test_an_orphan_holding_nobody_is_cut_off_and_nothing_is_linked_for_it() -> None:
    tree = chain("w0", "w1", "w2", "w3")
    used = {"w0": 1, "w1": 1, "w2": 0, "w3": 0}  # w2 only relayed for w3, which emptied
    actions = tree.link_ended("w1", {"w1"}, used, {"w0": 3})
    assert actions == [Unlink("w1"), Unlink("w2"), Unlink("w3")]
    assert set(tree.parts) == {"w0"}


def test_a_refused_link_is_tried_again_then_its_participants_are_cut_off() -> None:
    tree = chain("w0", "w1", "w2")
    used = {"w0": 2, "w1": 2, "w2": 2}
    assert tree.link_ended("w1", {"w1"}, used, {"w0": 1}) == [
        Unlink("w1"),
        Unlink("w2"),
        Link("w0", "w2"),
    ]
    assert tree.link_failed("w2", {"w0": 1}) == [Retry("w2", RETRY_AFTER)]
    assert tree.retry("w2", used, {"w0": 1}) == [Link("w0", "w2")]
    assert tree.prune({"w0": 2}, ended=False) == []  # a part being linked is not idle
    for _ in range(RETRIES - 2):
        assert tree.link_failed("w2", {"w0": 1}) == [Retry("w2", RETRY_AFTER)]
        tree.retry("w2", used, {"w0": 1})
    assert tree.link_failed("w2", {"w0": 1}) == [Stranded(frozenset({"w2"}))]
    assert set(tree.parts) == {"w0"}
    assert tree.link_failed("w2", {"w0": 1}) == []  # news about a part gone: nothing


def test_orphans_of_one_rebuild_share_the_free_slots_they_are_given() -> None:
    tree = Tree("w0")
    tree.linked("w1", "w0")
    tree.linked("w2", "w1")
    tree.linked("w3", "w1")
    used = {"w0": 2, "w2": 2, "w3": 1}
    actions = tree.link_ended("w2", {"w1"}, used, {"w0": 1, "w2": 0, "w3": 1})
    # one slot on the root: w2 (more participants) takes it; w3 hangs below nobody yet
    # (w2 is not connected until its link is up) and is tried again.
    assert actions == [Unlink("w1"), Unlink("w2"), Unlink("w3"), Link("w0", "w2"), Retry("w3", 1.0)]
    tree.linked("w2", "w0")
    assert tree.retry("w3", used, {"w0": 0, "w2": 1}) == [Link("w2", "w3")]


def test_a_link_cut_between_live_workers_is_made_again() -> None:
    tree = chain("w0", "w1", "w2")
    used = {"w0": 2, "w1": 2, "w2": 2}
    assert tree.link_ended("w2", set(), used, {"w0": 1, "w1": 1}) == [
        Unlink("w2"),
        Link("w0", "w2"),
    ]
    assert tree.link_ended("w9", set(), used, {}) == []  # not a part of the room


def test_idle_parts_are_cut_off_relays_stay_and_an_ended_room_keeps_only_its_root() -> None:
    tree = chain("w0", "w1", "w2")
    tree.linked("w3", "w0")
    assert tree.prune({"w0": 1, "w1": 0, "w2": 1, "w3": 0}, ended=False) == [Unlink("w3")]
    assert set(tree.parts) == {"w0", "w1", "w2"}  # w1 relays for w2
    assert tree.prune({"w0": 1, "w1": 0, "w2": 0}, ended=False) == [Unlink("w2"), Unlink("w1")]
    tree = chain("w0", "w1")
    assert tree.prune({"w0": 1, "w1": 1}, ended=True) == [Unlink("w1")]
    assert set(tree.parts) == {"w0"}
