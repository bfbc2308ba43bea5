"""Which node dials a queue's agent for a caller (flexvoice.cluster.agents.pick_dialler), and
the offer's wire form. The dial across nodes itself runs in tests/test_cluster.py (two
nodes, the edge, sipp callers and agents)."""

from __future__ import annotations

from flexvoice.cluster.agents import Offer, _attempt, pick_dialler


def test_the_node_with_the_most_free_slots_dials_the_caller_s_own_on_a_tie() -> None:
    assert pick_dialler("a", {"a": 3, "b": 6}) == "b"
    assert pick_dialler("a", {"a": 6, "b": 6, "c": 2}) == "a"
    assert pick_dialler("c", {"a": 6, "b": 6, "c": 2}) == "a"  # the first by name
    assert pick_dialler("a", {"a": 0}) == "a"


def test_a_node_not_beating_yet_dials_for_itself() -> None:
    assert pick_dialler("a", {}) == "a"
    assert pick_dialler("a", {"b": 8}) == "a"


def test_the_configured_node_dials_while_it_serves() -> None:
    assert pick_dialler("a", {"a": 8, "b": 1}, preferred="b") == "b"
    assert pick_dialler("a", {"a": 8, "c": 1}, preferred="b") == "a"  # b is not serving


def test_an_offer_travels_as_json_and_an_outcome_becomes_the_dial_s_attempt() -> None:
    offer = Offer("ab" * 12, "bakery", "CA1", "+3225559004", 20.0, None, "sip:x@h:1")
    assert Offer.decode(offer.encode()) == offer
    busy = _attempt("+3225559004", {"outcome": "busy", "sip_status": 486, "reason": "Busy"})
    assert (busy.outcome, busy.sip_status) == ("busy", 486)
    odd = _attempt("+3225559004", {"outcome": "nonsense", "sip_status": 480})
    assert odd.outcome == "no-answer"  # from the status when the word is not one of ours
