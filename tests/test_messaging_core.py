"""Messaging without I/O: parts and encodings against metering's segment rules, the
worst-of-parts status, receipts and their ids in other number bases."""

from __future__ import annotations

import dataclasses

import pytest

from flexvoice.api.models import MessageResource
from flexvoice.messaging.context import Context
from flexvoice.messaging.model import id_keys, message_status, parse_receipt
from flexvoice.messaging.store import MessageRow
from flexvoice.messaging.text import ESM_UDHI, decode, encoding_of, split
from flexvoice.metering.sms import segments

BODIES = [
    ("", "GSM-7"),
    ("hello", "GSM-7"),
    ("a" * 160, "GSM-7"),
    ("a" * 161, "GSM-7"),
    ("a" * 306, "GSM-7"),
    ("a" * 307, "GSM-7"),
    ("€" * 80, "GSM-7"),  # extension characters: two septets each
    ("x" + "€" * 80, "GSM-7"),
    ("Приём" * 14, "UCS-2"),  # 70 single
    ("Приём" * 15, "UCS-2"),
    ("😀" * 35, "UCS-2"),  # two UTF-16 units each
    ("😀" * 36, "UCS-2"),
    ("Grüße aus Brüssel, à bientot! {ok} [1] ~ ^ | \\ " * 20, "GSM-7"),
    ("Grüße aus Brüssel, à bientôt! " * 20, "UCS-2"),
]


@pytest.mark.parametrize(("body", "expected"), BODIES)
def test_parts_match_metering_and_round_trip(body: str, expected: str) -> None:
    encoding, parts = split(body, 42)
    assert len(parts) == segments(body)
    assert encoding == expected
    texts = []
    for i, part in enumerate(parts):
        text, concat = decode(part.payload, part.data_coding, part.esm_class)
        texts.append(text)
        if len(parts) > 1:
            assert part.esm_class & ESM_UDHI
            assert concat == (42, len(parts), i + 1)
            limit = 153 if encoding == "GSM-7" else 134
            assert len(part.payload) - 6 <= limit
        else:
            assert concat is None and part.esm_class == 0
    assert "".join(texts) == body


def test_escape_pair_and_surrogates_never_cut() -> None:
    body = "a" * 152 + "€" + "b" * 10  # the escape would fall on 153, its code on 154
    _, parts = split(body, 1)
    assert len(parts) == 2
    assert parts[0].payload[-1] != 0x1B
    assert decode(parts[1].payload, 0, ESM_UDHI)[0].startswith("€")
    _, parts = split("a" * 66 + "😀" * 3, 1)  # UCS-2; the emoji straddles unit 67
    assert all(len(p.payload[6:]) % 2 == 0 for p in parts)
    assert "".join(decode(p.payload, 8, ESM_UDHI)[0] for p in parts) == "a" * 66 + "😀" * 3


def test_encoding_of() -> None:
    assert encoding_of("Café {ok} €5") == "GSM-7"
    assert encoding_of("Ça va?") == "GSM-7"  # Ç is in the basic table
    assert encoding_of("ça va?") == "UCS-2"  # ç is not
    assert encoding_of("hi 😀") == "UCS-2"


def test_worst_part_decides() -> None:
    assert message_status(["queued", "queued"]) == "queued"
    assert message_status(["sent", "queued"]) == "sending"
    assert message_status(["sent", "sent"]) == "sent"
    assert message_status(["delivered", "sent"]) == "sent"
    assert message_status(["delivered", "delivered"]) == "delivered"
    # A later part's success does not hide an earlier part's failure, in either order.
    assert message_status(["undelivered", "delivered"]) == "undelivered"
    assert message_status(["delivered", "undelivered"]) == "undelivered"
    assert message_status(["failed", "delivered", "undelivered"]) == "failed"


def test_receipts() -> None:
    r = parse_receipt(
        "id:0000123456 sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 "
        "stat:DELIVRD err:000 text:hello"
    )
    assert r is not None and r.gateway_id == "0000123456" and r.status == "delivered"
    r = parse_receipt("ID:77 SUB:001 DLVRD:000 STAT:undeliv ERR:001")
    assert r is not None and r.status == "undelivered" and r.error_code == 30003
    r = parse_receipt("stat:REJECTD", receipted_id="abc")
    assert r is not None and r.gateway_id == "abc" and r.error_code == 30007
    # The TLVs win over the text.
    r = parse_receipt("id:1 stat:DELIVRD", receipted_id="1f", message_state=5)
    assert r is not None and (r.gateway_id, r.status) == ("1f", "undelivered")
    assert parse_receipt("not a receipt") is None


def test_id_keys_meet_across_bases() -> None:
    submitted = set(id_keys("1e240"))  # hex in submit_sm_resp
    receipted = set(id_keys("0000123456"))  # decimal with zeros in the receipt
    assert submitted & receipted == {"#123456"}
    assert id_keys("ABC-1") == ("=abc-1",)


def test_a_message_resource_is_what_its_model_says() -> None:
    """POST /v1/messages answers resource() as built (not validated per message): it must
    be exactly what MessageResource validates and dumps, for every kind of row."""
    queued = MessageRow(
        "SM1", "acme", "outbound", "api", "+3226001000", "+32475123456", "hi", "GSM-7", 1,
        "queued", "smpp", None, None, "0.095", None, "https://x.example/cb", 0,
        1764600000.123, 1764600000.123, None, 1764686400.0,
    )  # fmt: skip
    failed = dataclasses.replace(
        queued, status="failed", error_code=21610, error_message="opted out", price_eur=None,
        sent_at=1764600001.5,
    )  # fmt: skip
    inbound = dataclasses.replace(queued, direction="inbound", status="received", body="日本")
    context = Context()
    for row in (queued, failed, inbound):
        shown = context.resource(row)
        assert MessageResource.model_validate(shown).model_dump(by_alias=True) == shown
        assert list(shown) == list(MessageResource.model_validate(shown).model_dump(by_alias=True))
