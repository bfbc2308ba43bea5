"""Golden cases of issue 5, each worked out by hand in the comments (prices: flexio-payu and
vms-smart-routing as in metering/tariffs; VAT 21 %)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from flexvoice.metering.sms import segments
from flexvoice.metering.store import UsageStore
from flexvoice.metering.tariffs import load_tariffs
from tests.metering_helpers import amount, call, copy_tariffs, lines, make_store, sms

D = Decimal


def test_call_increments_every_started_minute(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    report = store.ingest(
        [
            call("a", 59),  # 1 started minute: 0.37
            call("b", 60),  # exactly 1 minute: 0.37
            call("c", 61),  # 2 started minutes: 0.74
            call("d", 0),  # answered, 0 s: nothing started, 0
            call("e", None),  # never answered: costs nothing
        ]
    )
    assert (report.imported, report.rejected, report.unrated) == (5, [], [])
    detail = {d.event_id: d for d in store.detail("2024-03")}
    assert [detail[f"{c}:leg"].quantity for c in "abcde"] == [D(1), D(1), D(2), D(0), D(0)]
    assert detail["c:leg"].amount == D("0.74")
    assert detail["e:leg"].amount == 0
    st = lines(store.statement("2024-03"))
    line = st[("acme", "voice_out_mobile")]
    assert (line.quantity, line.unit_price, line.amount) == (D(4), D("0.37"), D("1.48"))
    # 1.48 x 0.21 = 0.3108 -> 0.31
    assert st[("acme", "vat")].amount == D("0.31")
    assert st[("acme", "total")].amount == D("1.79")


def test_fixed_inbound_and_recording_prices(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.ingest(
        [
            call("f", 125, to="+3212345678"),  # fixed: 3 minutes x 0.095 = 0.285
            call("i", 600, direction="inbound", to="+3225551234"),  # 10 min x 0.0045 = 0.045
            {
                "id": "c1:rec-1",
                "account": "acme",
                "kind": "recording",
                "call_id": "c1",
                "started_at": "2024-03-05T10:00:00+01:00",
                "ended_at": "2024-03-05T10:04:00.5+01:00",  # 240.5 s: 5 minutes x 0.0025
            },
        ]
    )
    st = store.statement("2024-03")
    assert amount(st, "acme", "voice_out_fixed") == D("0.29")  # 0.285 rounds half up
    assert amount(st, "acme", "voice_in") == D("0.05")  # 0.045 rounds half up
    assert lines(st)[("acme", "recording")].quantity == D(5)
    assert amount(st, "acme", "recording") == D("0.01")  # 0.0125
    # subtotal 0.29 + 0.05 + 0.01 = 0.35; VAT 0.0735 -> 0.07
    assert amount(st, "acme", "subtotal") == D("0.35")
    assert amount(st, "acme", "vat") == D("0.07")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a" * 160, 1),  # GSM-7 single
        ("a" * 161, 2),  # concatenated: 153 per part
        ("a" * 306, 2),  # 2 x 153
        ("a" * 307, 3),
        ("a" * 158 + "€", 1),  # € is an extension character: 2 septets, 160 in all
        ("a" * 159 + "€", 2),  # 161 septets
        ("a" * 159 + "{", 2),
        ("ж" * 70, 1),  # UCS-2 single
        ("ж" * 71, 2),  # UCS-2: 67 per part
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("😀", 1),  # one emoji: UCS-2, 2 units
        ("a" * 69 + "😀", 2),  # 71 UTF-16 units
        ("", 1),
    ],
)
def test_sms_segments(body: str, expected: int) -> None:
    assert segments(body) == expected


def test_sms_statement_rounds_the_sum_once(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    no_body = {k: v for k, v in sms("s3", "").items() if k != "body"}
    report = store.ingest([sms("s1", "a" * 160), sms("s2", "a" * 161), {**no_body, "segments": 3}])
    assert (report.imported, report.rejected) == (3, [])
    line = lines(store.statement("2024-03"))[("acme", "sms")]
    # 6 segments x 0.095 = 0.57 (three per-SMS roundings would give 0.10 + 0.19 + 0.29 = 0.58)
    assert (line.quantity, line.amount) == (D(6), D("0.57"))


def test_number_active_one_day_is_a_full_month(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    number = {
        "id": "n1",
        "account": "acme",
        "kind": "number",
        "number": "+3225551234",
        "active_from": "2024-02-29T09:00:00+01:00",
        "active_to": "2024-03-01T00:00:00+01:00",  # midnight Brussels: nothing of March
    }
    again = {
        **number,
        "id": "n2",
        "active_from": "2024-02-10T09:00:00+01:00",
        "active_to": "2024-02-11T09:00:00+01:00",
    }
    store.ingest([number, again])
    feb = lines(store.statement("2024-02"))
    assert (feb[("acme", "number")].quantity, feb[("acme", "number")].amount) == (D(1), D("0.80"))
    assert ("acme", "number") not in lines(store.statement("2024-03"))
    assert store.statement("2024-01") == []
    notes = {d.event_id: d.note for d in store.detail("2024-02")}
    assert notes == {"n1": "already charged this month by event 'n2'", "n2": ""}


def test_open_number_is_charged_every_month_until_deactivated(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.ingest(
        [
            {
                "id": "n1",
                "account": "acme",
                "kind": "number",
                "number": "+3225551234",
                # 23:30 UTC on 31 March is 1 April in Brussels
                "active_from": "2024-03-31T22:30:00+00:00",
                "active_to": None,
            }
        ]
    )
    assert ("acme", "number") not in lines(store.statement("2024-03"))
    for month in ("2024-04", "2025-12"):
        assert amount(store.statement(month), "acme", "number") == D("0.80")


def test_closing_an_open_number_with_the_same_id_ends_its_charges(tmp_path: Path) -> None:
    # The engine writes a number's period when it is added and the same event with
    # active_to when it is removed: April and May charged, June not.
    store = make_store(tmp_path)
    opened = {
        "id": "num:+3225551234:1",
        "account": "acme",
        "kind": "number",
        "number": "+3225551234",
        "active_from": "2024-04-10T09:00:00+02:00",
        "active_to": None,
    }
    assert store.ingest([opened]).imported == 1
    closed = {**opened, "active_to": "2024-05-20T12:00:00+02:00"}
    report = store.ingest([closed])
    assert (report.imported, report.rejected) == (1, [])
    assert store.ingest([closed]).duplicates == 1  # closing twice changes nothing
    for month, charged in (("2024-04", True), ("2024-05", True), ("2024-06", False)):
        found = ("acme", "number") in lines(store.statement(month))
        assert found == charged, month
    # Anything else about the event may not change, nor an end once set.
    moved = {**closed, "active_to": "2024-07-01T00:00:00+02:00"}
    renumbered = {**opened, "id": "num:+3225551234:1", "number": "+3225559999"}
    report = store.ingest([moved, renumbered])
    assert [r.event_id for r in report.rejected] == ["num:+3225551234:1"] * 2
    assert ("acme", "number") not in lines(store.statement("2024-06"))


def test_designer_started_on_the_30th(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.ingest(
        [
            {
                "id": "d1",
                "account": "acme",
                "kind": "designer",
                "active_from": "2024-04-30T15:00:00+02:00",
                "active_to": "2024-05-02T10:00:00+02:00",
            }
        ]
    )
    assert store.statement("2024-03") == []
    for month in ("2024-04", "2024-05"):  # every started calendar month: 30 each
        st = store.statement(month)
        assert amount(st, "acme", "designer") == D("30.00")
        assert amount(st, "acme", "total") == D("36.30")
    assert store.statement("2024-06") == []


def _reroutes(n: int, day: str = "2024-03-05") -> list[dict[str, object]]:
    return [
        {
            "id": f"r{i}:reroute",
            "account": "vms",
            "kind": "reroute",
            "number": "+3225551234",
            "at": f"{day}T10:{i // 60 % 60:02d}:{i % 60:02d}+01:00",
        }
        for i in range(n)
    ]


def test_trm_minimum_true_up(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.ingest(_reroutes(10))
    st = lines(store.statement("2024-03"))
    assert st[("vms", "reroute")].amount == D("0.40")  # 10 x 0.04
    assert st[("vms", "reroute_minimum")].amount == D("14.60")  # 15 - 0.40
    assert st[("vms", "subtotal")].amount == D("15.00")
    assert st[("vms", "vat")].amount == D("3.15")
    assert st[("vms", "total")].amount == D("18.15")
    assert st[("vms", "reroute_minimum")].as_dict() == {
        "account": "vms",
        "month": "2024-03",
        "service": "reroute_minimum",
        "row": "minimum",
        "quantity": "1",
        "unit": "month",
        "unit_price_eur": "14.60",
        "amount_eur": "14.60",
    }


def test_trm_above_minimum_has_no_true_up(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.ingest(_reroutes(400))  # 400 x 0.04 = 16.00 > 15
    st = lines(store.statement("2024-03"))
    assert st[("vms", "reroute")].amount == D("16.00")
    assert ("vms", "reroute_minimum") not in st
    assert st[("vms", "total")].amount == D("19.36")  # 16 + 3.36


def test_tariff_version_change_mid_month(tmp_path: Path) -> None:
    folder = copy_tariffs(tmp_path)
    path = folder / "flexio-payu.yaml"
    text = path.read_text()
    services = text.partition("  - valid_from: 2024-01-01\n")[2]
    new = services.replace('price: "0.37"', 'price: "0.40"')
    path.write_text(f"{text}  - valid_from: 2024-03-15\n{new}")
    store = make_store(tmp_path, folder)
    store.ingest(
        [
            call("old", 60, start="2024-03-14T23:30:00+01:00"),  # 14 March in Brussels: 0.37
            call("new", 60, start="2024-03-15T00:30:00+01:00"),  # from 15 March: 0.40
            call("utc", 60, start="2024-03-14T23:30:00+00:00"),  # 00:30 on the 15th: 0.40
        ]
    )
    detail = {d.event_id: d for d in store.detail("2024-03")}
    assert detail["old:leg"].unit_price == D("0.37")
    assert detail["old:leg"].tariff_version == "flexio-payu@2024-01-01"
    assert detail["new:leg"].unit_price == D("0.40")
    assert detail["utc:leg"].tariff_version == "flexio-payu@2024-03-15"
    line = lines(store.statement("2024-03"))[("acme", "voice_out_mobile")]
    # 0.37 + 0.40 + 0.40 = 1.17; the line mixes two prices, so it shows none
    assert (line.quantity, line.unit_price, line.amount) == (D(3), None, D("1.17"))


def test_duplicate_ids_count_once(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    event = call("dup", 61)
    first = store.ingest([event])
    reordered = dict(reversed(list(event.items())))  # same content, other key order
    second = store.ingest([event, reordered])
    assert (first.imported, first.duplicates) == (1, 0)
    assert (second.imported, second.duplicates, second.rejected) == (0, 2, [])
    assert amount(store.statement("2024-03"), "acme", "voice_out_mobile") == D("0.74")


def test_conflicting_duplicate_is_rejected_and_changes_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.ingest([call("x", 61)])
    before = store.export("2024-03", detail=True)
    report = store.ingest([call("y", 5), call("x", 3600)])
    assert report.imported == 1
    [rejected] = report.rejected
    assert (rejected.line, rejected.event_id) == (2, "x:leg")
    assert "different content" in rejected.reason
    after = {d.event_id: d.amount for d in store.detail("2024-03")}
    assert after == {"x:leg": D("0.74"), "y:leg": D("0.37")}
    assert before in store.export("2024-03", detail=True)  # x's row is byte-identical


def test_unrated_destination_is_listed_then_rated_by_rerate(tmp_path: Path) -> None:
    folder = copy_tariffs(tmp_path)
    store = make_store(tmp_path, folder)
    report = store.ingest([call("fr", 61, to="+33612345678"), call("be", 61)])
    assert report.imported == 2
    [unrated] = report.unrated
    assert unrated.event_id == "fr:leg"
    assert "FR mobile is not priced by flexio-payu@2024-01-01" in unrated.reason
    st = lines(store.statement("2024-03"))
    key = ("acme", "unrated: outbound call to FR mobile is not priced by flexio-payu@2024-01-01")
    assert st[key].quantity == 1
    assert st[("acme", "subtotal")].amount == D("0.74")  # not silently free: listed apart
    assert store.rerate("2024-03").changed == 0

    path = folder / "flexio-payu.yaml"
    path.write_text(path.read_text().replace("[BE mobile]", "[BE mobile, FR mobile]"))
    store = UsageStore(store.conn, load_tariffs(folder))
    first = store.rerate("2024-03")
    assert (first.changed, first.unrated) == (1, 0)
    assert store.rerate("2024-03").changed == 0  # rating twice changes nothing
    assert amount(store.statement("2024-03"), "acme", "voice_out_mobile") == D("1.48")


def test_vat_rounds_half_up_once_on_the_subtotal(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.ingest(
        [
            {
                "id": f"v{i}",
                "account": "acme",
                "kind": "verification",
                "to": "+32470123456",
                "channel": "sms",
                "requested_at": "2024-03-05T10:00:00+01:00",
            }
            for i in range(10)
        ]
    )
    st = store.statement("2024-03")
    assert amount(st, "acme", "verification") == D("0.50")  # 10 x 0.05
    assert amount(st, "acme", "vat") == D("0.11")  # 0.105 half up (half-even would say 0.10)
    assert amount(st, "acme", "total") == D("0.61")


def test_conference_setups(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    rooms = [
        {
            "id": f"conf{i}",
            "account": "acme",
            "kind": "conference",
            "room": "sales",
            "started_at": "2024-03-05T10:00:00+01:00",
        }
        for i in range(7)
    ]
    store.ingest(rooms)
    # 7 x 0.0072 = 0.0504 -> 0.05
    assert amount(store.statement("2024-03"), "acme", "conference") == D("0.05")


def test_export_is_the_same_whatever_the_import_order(tmp_path: Path) -> None:
    events = [
        call("b", 61),
        call("a", 59, to="+3212345678"),
        call("c", 61, to="+33612345678"),
        sms("s", "hello"),
        {
            "id": "n1",
            "account": "acme",
            "kind": "number",
            "number": "+3225551234",
            "active_from": "2024-01-01T00:00:00+01:00",
            "active_to": None,
        },
        *_reroutes(3),
    ]
    first = make_store(tmp_path / "one")
    second = make_store(tmp_path / "two")
    first.ingest(events)
    second.ingest(list(reversed(events)))
    for fmt in ("csv", "json"):
        for detail in (False, True):
            assert first.export("2024-03", fmt=fmt, detail=detail) == second.export(
                "2024-03", fmt=fmt, detail=detail
            )
    assert b"vms,2024-03,reroute_minimum,1,month,14.88,14.88" in first.export("2024-03")


def test_same_id_with_active_to_closes_an_open_number(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    opened = {
        "id": "number:+3225551234:1",
        "account": "acme",
        "kind": "number",
        "number": "+3225551234",
        "active_from": "2024-02-10T09:00:00+01:00",
        "active_to": None,
    }
    store.ingest([opened])
    assert amount(store.statement("2024-06"), "acme", "number") == D("0.80")  # still open
    closed = {**opened, "active_to": "2024-03-15T12:00:00+01:00"}
    report = store.ingest([closed])
    assert (report.imported, report.closed, report.rejected) == (1, 1, [])
    assert store.ingest([closed]).duplicates == 1
    assert amount(store.statement("2024-03"), "acme", "number") == D("0.80")
    assert store.statement("2024-04") == []
    moved = {**closed, "active_to": "2024-05-01T12:00:00+02:00"}  # a second, other end
    [rejected] = store.ingest([moved]).rejected
    assert "different content" in rejected.reason
    reopened = {**closed, "active_from": "2024-01-01T00:00:00+01:00"}
    assert store.ingest([reopened]).rejected  # only active_to may be filled in


def test_pricer_prices_one_call_like_the_statement(tmp_path: Path) -> None:
    # The REST API's price of one call (flexvoice.api.pricing) is metering's rating.
    from flexvoice.api.pricing import TariffPricer
    from flexvoice.callevent import call_event

    store = make_store(tmp_path)
    pricer = TariffPricer(store.conn, store.tariffs)
    started, answered = "2024-03-05T10:00:00+01:00", "2024-03-05T10:00:05+01:00"
    ended = "2024-03-05T10:01:06+01:00"  # 61 s: two started minutes

    def price(account: str, direction: str, to: str) -> tuple[int, Decimal | None]:
        event = call_event(
            call_id="CA1", account=account, direction=direction, caller="+3225550100",
            callee=to, started_at=started, answered_at=answered, ended_at=ended,
        )  # fmt: skip
        assert event is not None
        p = pricer.price_usage(event)
        return p.billable_seconds, p.price_eur

    assert price("acme", "outbound", "+32470123456") == (120, D("0.74"))
    assert price("acme", "outbound", "+3212345678") == (120, D("0.19"))
    assert price("acme", "inbound", "+3225551234") == (120, D("0.009"))
    assert price("acme", "outbound", "+33612345678")[1] is None  # unrated destination
    assert price("ghost", "outbound", "+32470123456")[1] is None


def test_rerate_in_small_chunks_covers_every_event(tmp_path: Path) -> None:
    folder = copy_tariffs(tmp_path)
    store = make_store(tmp_path, folder)
    events = [call(f"fr{i}", 61, to="+33612345678") for i in range(5)]
    events += [call(f"be{i}", 61) for i in range(4)]
    store.ingest(events)
    unchanged = store.rerate("2024-03", chunk=2)
    assert (unchanged.events, unchanged.changed, unchanged.unrated) == (9, 0, 5)
    path = folder / "flexio-payu.yaml"
    path.write_text(path.read_text().replace("[BE mobile]", "[BE mobile, FR mobile]"))
    store = UsageStore(store.conn, load_tariffs(folder))
    done = store.rerate("2024-03", chunk=2)
    assert (done.events, done.changed, done.unrated) == (9, 5, 0)
    assert amount(store.statement("2024-03"), "acme", "voice_out_mobile") == D("6.66")  # 18 x 0.37
