"""The I/O-free parts of the SIP layer: wire protocol, digit collection, outcome mapping."""

from __future__ import annotations

import json

import pytest

from flexvoice.digitcollector import DigitCollector
from flexvoice.sip.leg import number_of, outcome_for
from flexvoice.sip.protocol import COMMANDS, EVENTS, ProtocolError, decode, encode


def test_protocol_round_trip_and_refusals() -> None:
    line = encode("play", call="w0.1.1", play="play7", files=["/a.wav"], loop=False)
    msg = decode(line, COMMANDS)
    assert (msg.t, msg.call, msg.get("files")) == ("play", "w0.1.1", ["/a.wav"])
    with pytest.raises(ProtocolError, match="unexpected message type 'play'"):
        decode(line, EVENTS)  # a command where events are expected
    with pytest.raises(ProtocolError, match="not JSON"):
        decode(b"{nope\n", EVENTS)
    with pytest.raises(ProtocolError, match="'call' must be a string"):
        decode(b'{"t": "dtmf", "call": 5}', EVENTS)
    with pytest.raises(ProtocolError, match="unknown message type"):
        encode("explode")


def test_an_encoded_line_is_compact_ascii_json_on_one_line() -> None:
    fields = {
        "call": "w3.41.7",
        "from": '"Zoë" <sip:+32470@x>',
        "reason": "line\nbreak\u2028and\ttab",
        "seconds": 1.25,
        "stopped": None,
        "talking": True,
        "files": ["/a.wav", {"k": -2}],
    }
    line = encode("state", **fields)
    assert line == (json.dumps({"t": "state", **fields}, separators=(",", ":")) + "\n").encode()
    assert line.count(b"\n") == 1 and line.isascii()
    assert decode(line, EVENTS).fields == fields
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode("state", call="c", when=object())


def test_digits_terminator_max_and_timeouts_with_an_injected_clock() -> None:
    c = DigitCollector(max_digits=4, first_timeout=5, inter_digit_timeout=2, terminators="#")
    c.start(100.0)
    assert c.deadline() == 105.0
    c.tick(104.9)
    assert c.done is None
    c.feed("1", 104.9)
    assert c.deadline() == pytest.approx(106.9)
    c.feed("2", 106.0)
    c.feed("#", 106.5)
    assert (c.digits, c.done) == ("12", "terminator")

    c = DigitCollector(max_digits=2, first_timeout=5, inter_digit_timeout=2)
    c.start(0.0, already="7")  # typed while the prompt played
    c.feed("3", 1.0)
    assert (c.digits, c.done) == ("73", "max_digits")

    c = DigitCollector(max_digits=3, first_timeout=5, inter_digit_timeout=2)
    c.start(0.0)
    c.feed("9", 1.0)
    c.tick(3.0)
    assert (c.digits, c.done) == ("9", "timeout")
    c.feed("8", 3.1)  # too late: nothing changes
    assert c.digits == "9"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(486, "busy"), (600, "busy"), (603, "busy"), (480, "no-answer"), (408, "no-answer"),
     (487, "canceled"), (404, "failed"), (503, "failed"), (500, "failed")],
)  # fmt: skip
def test_sip_status_maps_to_twilio_outcomes(status: int, outcome: str) -> None:
    assert outcome_for(status) == outcome


def test_number_of_sip_uris() -> None:
    assert number_of("<sip:+3225550100@127.0.0.1>;tag=abc") == "+3225550100"
    assert number_of("sip:+3225551234@127.0.0.1:5070;transport=udp") == "+3225551234"
    assert number_of('"Bakery" <sip:0225551234@host>') == "0225551234"
    assert number_of("tel:+3225551234") == "+3225551234"
