"""Call statistics without SIP: calls played into the real call registry (SQLite) as the SIP
layer and the flow runtime report them; rollups, time zones, recomputation, restarts, the live
board, and the REST API (roles, accounts, CSV)."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flexvoice.appkeys import CALLS, STATISTICS
from flexvoice.calls import CallRegistry
from flexvoice.statistics.collector import Collector
from flexvoice.statistics.facts import call_facts
from flexvoice.statistics.live import LiveBoard, merge
from flexvoice.statistics.period import QueryError, offset_pieces, plan
from flexvoice.statistics.query import ask
from flexvoice.statistics.question import make_question
from flexvoice.statistics.rollup import (
    DAY_QUARTERS,
    differences,
    ensure_schema,
    read_rows,
    recompute,
)
from flexvoice.storage.sqlite import connect
from tests.apikit import running_api
from tests.statskit import (
    World,
    abandoned_in_menu,
    abandoned_in_queue,
    answered_by_agent,
    answered_in_queue,
    busy_no_branch,
    caller_hangs_up,
    continuity,
    random_script,
    rerouted_then_answered,
    world,
)

DAY = "2026-03-02"


def figures(w: World, group_by: str = "", tz: str = "UTC", **filters: str) -> dict[str, object]:
    answer = ask(w.conn, make_question("acme", DAY, DAY, tz, group_by, **filters))
    return answer.totals


def test_each_scripted_call_counts_as_the_script_implies() -> None:
    w = world()
    w.call(answered_by_agent(talk=30))  # answered 6.6 s after arrival, talks 30 s
    w.call(abandoned_in_menu())
    w.call(abandoned_in_queue(wait=7))
    w.call(busy_no_branch("busy"))
    w.call(busy_no_branch("no-answer"))
    w.call(rerouted_then_answered())  # answered 3.5 s after arrival, talks 10 s
    w.call(continuity())
    w.call(answered_in_queue(wait=12, talk=40))  # answered 12.3 s after arrival
    t = figures(w)
    assert (t["offered"], t["answered"], t["abandoned"]) == (8, 3, 2)
    assert (t["busy"], t["no_answer"], t["failed"], t["redirected"]) == (1, 1, 0, 1)
    assert (t["rerouted"], t["ended_in_flow"]) == (1, 0)
    assert t["talk_s"] == 80.0
    assert t["avg_speed_of_answer_s"] == round((6.6 + 3.5 + 12.3) / 3, 1)
    assert (t["queue_entered"], t["queue_answered"], t["queue_abandoned"]) == (2, 1, 1)
    assert t["avg_wait_s"] == 9.5 and t["avg_queue_answer_s"] == 12.0
    assert t["service_level"] == 0.5  # 12 s <= 20 s answered; the 7 s one left
    assert t["p90_wait_s"] == 15.0  # the 12 s wait's bin is 10-15 s

    steps = ask(w.conn, make_question("acme", DAY, DAY, "UTC", "step")).rows
    menu = next(r for r in steps if r["step"] == "menu")
    assert (menu["entered"], menu["abandoned"], menu["drop_off_rate"]) == (5, 1, 0.2)
    assert menu["options"] == {"1": 1, "2": 1, "3": 2}
    line = next(r for r in steps if r["step"] == "line")
    assert (line["entered"], line["abandoned"]) == (2, 1)

    outcomes = ask(w.conn, make_question("acme", DAY, DAY, "UTC", "outcome")).rows
    assert {r["outcome"]: r["calls"] for r in outcomes} == {
        "answered": 3,
        "abandoned": 2,
        "busy": 1,
        "no_answer": 1,
        "redirected": 1,
    }


def test_facts_say_where_a_caller_left_and_ignore_the_flows_wrap_up() -> None:
    w = world()
    call_id = w.call([*abandoned_in_queue(wait=7), (0.5, "step", {"step": "x", "verb": "play"})])
    facts = call_facts(w.registry.get(call_id), w.registry.events(call_id))
    assert (facts.outcome, facts.end_step) == ("abandoned", "line")
    assert [(q.queue, q.wait, q.result) for q in facts.queues] == [("support", 7.0, "abandoned")]
    assert [s.step for s in facts.steps] == ["menu", "line"]


def test_a_call_counts_once_even_when_ended_twice() -> None:
    w = world()
    call_id = w.call(answered_by_agent())
    w.registry.call_event(call_id, "ended", {"sip_status": 200, "cause": "normal"})
    assert figures(w)["offered"] == 1
    assert not differences(read_rows(w.conn), recompute(w.conn, w.registry))


def test_late_march_call_is_april_in_brussels() -> None:
    w = world()
    w.call(abandoned_in_menu(), at=datetime(2026, 3, 31, 23, 30, tzinfo=UTC))
    utc = ask(w.conn, make_question("acme", "2026-03-01", "2026-04-30", "UTC", "date,month"))
    assert [(r["date"], r["month"], r["offered"]) for r in utc.rows] == [
        ("2026-03-31", "2026-03", 1)
    ]
    bxl = ask(
        w.conn,
        make_question("acme", "2026-03-01", "2026-04-30", "Europe/Brussels", "date,month,hour"),
    )
    assert [(r["date"], r["month"], r["hour"]) for r in bxl.rows] == [("2026-04-01", "2026-04", 1)]
    march = make_question("acme", "2026-03-01", "2026-03-31", "Europe/Brussels")
    april = make_question("acme", "2026-04-01", "2026-04-01", "Europe/Brussels")
    assert ask(w.conn, march).totals["offered"] == 0
    assert ask(w.conn, april).totals["offered"] == 1
    # 23:30 UTC is 05:15 the next day in Kathmandu (+5:45), and a Wednesday.
    ktm = ask(
        w.conn, make_question("acme", "2026-04-01", "2026-04-01", "Asia/Kathmandu", "hour,dow")
    )
    assert [(r["hour"], r["dow"]) for r in ktm.rows] == [(5, "wed")]


def test_number_by_quarter_hour_of_day_over_several_days() -> None:
    """Which number rang at lunch time: the same local quarter hour adds up across days."""
    w = world()
    for day, minute, number in ((2, 5, "+3226001000"), (3, 14, "+3226001000"),
                                (3, 20, "+3226001001"), (4, 50, "+3226001000")):  # fmt: skip
        at = datetime(2026, 3, day, 11, minute, tzinfo=UTC)  # 12:xx in Brussels
        w.call(abandoned_in_menu(), at=at, number=number)
    q = make_question("acme", "2026-03-01", "2026-03-31", "Europe/Brussels", "number,quarter")
    assert [(r["number"], r["quarter"], r["offered"]) for r in ask(w.conn, q).rows] == [
        ("+3226001000", "12:00", 2),
        ("+3226001000", "12:45", 1),
        ("+3226001001", "12:15", 1),
    ]


def test_time_of_day_over_months_reads_the_day_quarter_grain_and_old_databases_get_it(
    tmp_path: Path,
) -> None:
    w = world(str(tmp_path / "stats.db"))
    rng = random.Random(7)
    for _ in range(200):
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 150 * 86400))
        w.call(abandoned_in_menu(), at=at, number=rng.choice(["+3226001000", "+3226001001"]))
    for tz in ("Asia/Kathmandu", "Europe/Brussels", "America/St_Johns"):
        for group in ("number,quarter", "hour", "flow,hour"):
            q = make_question("acme", "2026-01-10", "2026-05-20", tz, group)
            read = [
                grain
                for a, b, off in offset_pieces(q.start, q.end, ZoneInfo(tz))
                for grain, *_ in plan(a, b, q.group_by, off)
            ]
            assert DAY_QUARTERS in read, (tz, group, read)
            # The same answer as reading every quarter hour of the period.
            assert ask(w.conn, q).rows == ask(w.conn, q, grains=(900,)).rows, (tz, group)
    # A database kept from before the grain gets it from its 15-minute rows at start.
    w.conn.execute(f"DELETE FROM stats_calls WHERE grain = {DAY_QUARTERS}")
    for table in ("stats_flows", "stats_queues", "stats_steps", "stats_menu"):
        w.conn.execute(f"DELETE FROM {table} WHERE grain = {DAY_QUARTERS}")
    assert differences(read_rows(w.conn), recompute(w.conn, w.registry))
    w.conn.execute("DELETE FROM schema_migrations WHERE component = 'statistics' AND version = 2")
    w.conn.migrated.clear()  # as a restart would: the schema is checked once per connection
    ensure_schema(w.conn)
    assert not differences(read_rows(w.conn), recompute(w.conn, w.registry))


def test_daylight_saving_change_is_cut_where_it_happens() -> None:
    pieces = offset_pieces(
        datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 30, 22, tzinfo=UTC),
        ZoneInfo("Europe/Brussels"),
    )  # fmt: skip
    change = int(datetime(2026, 3, 29, 1, tzinfo=UTC).timestamp())
    assert [(b, off) for _, b, off in pieces] == [(change, 3600), (pieces[-1][1], 7200)]
    w = world()
    # 00:30 UTC is 01:30 CET; 01:30 UTC is 03:30 CEST (02:00-03:00 does not exist that day).
    for hour in (0, 1):
        w.call(abandoned_in_menu(), at=datetime(2026, 3, 29, hour, 30, tzinfo=UTC))
    rows = ask(w.conn, make_question("acme", "2026-03-29", "2026-03-29", "Europe/Brussels", "hour"))
    assert [(r["hour"], r["offered"]) for r in rows.rows] == [(1, 1), (3, 1)]


def test_by_date_in_half_hour_zones_reads_hours_and_splits_the_midnight_hour() -> None:
    """India's day starts at 18:30 UTC, Nepal's at 18:15: the hour holding it is read per 15
    minutes, the other 23 from the hour grain, and calls either side land on their day."""
    w = world()
    for minute in (5, 20, 29, 30, 44, 50):
        w.call(abandoned_in_menu(), at=datetime(2026, 3, 9, 18, minute, tzinfo=UTC))
    w.call(abandoned_in_menu(), at=datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    for tz, before in (("Asia/Kolkata", 3), ("Asia/Kathmandu", 1)):
        q = make_question("acme", "2026-03-01", "2026-03-31", tz, "date")
        pieces = [p for a, b, off in offset_pieces(q.start, q.end, ZoneInfo(tz)) for p in
                  plan(a, b, q.group_by, off)]  # fmt: skip
        assert [p.grain for p in pieces if p.skip_hour == 18] == [3600], pieces
        assert [len(p.only) for p in pieces if p.only] == [4 * 30], pieces
        rows = {r["date"]: r["offered"] for r in ask(w.conn, q).rows}
        assert rows == {"2026-03-09": before, "2026-03-10": 7 - before}, (tz, rows)
        assert ask(w.conn, q).rows == ask(w.conn, q, grains=(900,)).rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_zone_and_grouping_matches_counting_call_by_call(seed: int) -> None:
    """The rollups at 15 min / 1 h / 1 day answer what converting each call's start does."""
    rng = random.Random(seed)
    w = world()
    starts = []
    for _ in range(150):
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 200 * 86400))
        starts.append(at)
        w.call(abandoned_in_menu(), at=at)
    zones = ("Europe/Brussels", "Asia/Kathmandu", "Asia/Kolkata", "America/St_Johns")
    for tz in (*zones, "Australia/Lord_Howe"):
        zi = ZoneInfo(tz)
        for group in ("date", "hour", "quarter", "dow", "month", ""):
            q = make_question("acme", "2026-02-01", "2026-06-30", tz, group)
            got = {r.get(group, "all"): r["offered"] for r in ask(w.conn, q).rows}
            want: dict[object, int] = {}
            for at in starts:
                local = at.astimezone(zi)
                if not q.start <= at < q.end:
                    continue
                key = {
                    "date": local.date().isoformat(),
                    "hour": local.hour,
                    "quarter": f"{local.hour:02d}:{local.minute // 15 * 15:02d}",
                    "dow": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()],
                    "month": local.date().isoformat()[:7],
                    "": "all",
                }[group]
                want[key] = want.get(key, 0) + 1
            assert got == want, (tz, group)


def test_rollups_equal_a_recomputation_after_random_calls_and_crashes(tmp_path: Path) -> None:
    db = tmp_path / "stats.db"
    w = world(str(db))
    rng = random.Random(16)
    for i in range(300):
        at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 30 * 86400))
        number = rng.choice(["+3226001000", "+3226001001"])
        account = rng.choice(["acme", "acme", "other"])
        if i % 25 == 0:
            # The node dies between the call's end and its rollup: the listener is not there.
            w.registry.listeners.clear()
            at = datetime(2026, 3, 30, tzinfo=UTC) + timedelta(seconds=rng.randrange(86400))
            w.call(random_script(rng), at=at, number=number, account=account)
            w.registry.listeners.append(w.collector.listener)
        else:
            w.call(random_script(rng), at=at, number=number, account=account)
    stored, computed = read_rows(w.conn), recompute(w.conn, w.registry)
    assert differences(stored, computed), "the crashed calls are missing before the restart"
    w.conn.close()
    # A restarted node: a new registry and collector on the same database catch up.
    conn = connect(db)
    registry = CallRegistry(conn)
    collector = Collector(conn, registry, clock=lambda: datetime(2026, 4, 2, tzinfo=UTC))
    assert collector.catch_up() == 12
    assert not differences(read_rows(conn), recompute(conn, registry))
    assert collector.catch_up() == 0  # nothing twice
    offered = ask(conn, make_question("acme", "2026-03-01", "2026-03-31")).totals["offered"]
    others = ask(conn, make_question("other", "2026-03-01", "2026-03-31")).totals["offered"]
    assert offered + others == 300


def test_an_account_sees_only_its_own() -> None:
    w = world()
    w.call(answered_by_agent(), account="acme")
    w.call(abandoned_in_menu(), account="other", number="+3226002000")
    assert figures(w, "number")["offered"] == 1
    other = ask(w.conn, make_question("other", DAY, DAY, "UTC", "number"))
    assert [r["number"] for r in other.rows] == ["+3226002000"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("2026-03-01", "2026-03-31", "Mars/Olympus"), "is not a time zone"),
        (("2026-03-01", "2026-02-01", "UTC"), "must come after"),
        (("2026-03-01T08:10", "2026-03-02", "UTC"), "quarter hour"),
        (("01/03/2026", "2026-03-02", "UTC"), "is not a date"),
        (("2020-01-01", "2026-03-02", "UTC"), "longer than"),
        (("2026-03-01", "2026-03-02", "UTC", "number,week"), "'week' is not a grouping"),
        (("2026-03-01", "2026-03-02", "UTC", "queue,step"), "one of them at a time"),
        (("1935-01-01", "1935-06-01", "Africa/Monrovia"), "not a whole quarter hour"),
    ],
)
def test_questions_it_cannot_answer_are_said_plainly(args: tuple[str, ...], said: str) -> None:
    with pytest.raises(QueryError, match=said):
        make_question("acme", *args)  # type: ignore[arg-type]


def test_live_board_follows_calls_queues_and_agents() -> None:
    now = [datetime(2026, 3, 2, 9, tzinfo=UTC)]
    board = LiveBoard(lambda: now[0])
    w = world()
    w.registry.listeners.append(board.listener)
    script = abandoned_in_queue(wait=7)
    call = w.registry.create(
        account="acme", direction="inbound", from_number="+3225550100",
        to_number="+3226001000", flow="main",
    )  # fmt: skip
    for _, kind, data in script[:-1]:
        w.registry.call_event(call.id, kind, data)
    now[0] += timedelta(seconds=5)
    snap = board.snapshot("acme")
    assert snap["calls_up"] == 1
    assert snap["by_number"] == [{"number": "+3226001000", "flow": "main", "calls": 1}]
    assert snap["queues"] == [{"queue": "support", "waiting": 1, "longest_wait_s": 5.0}]
    assert (snap["agents_ringing"], snap["agents_talking"]) == (1, 0)
    assert snap["calls_per_minute"][-1] == 1 and snap["calls_last_hour"] == 1
    assert board.snapshot("other")["calls_up"] == 0
    w.registry.call_event(call.id, *caller_hangs_up(0)[1:])
    snap = board.snapshot("acme")
    assert (snap["calls_up"], snap["queues"], snap["agents"]) == (0, [], [])
    now[0] += timedelta(minutes=61)
    assert board.snapshot("acme")["calls_last_hour"] == 0
    both = merge([("n1", snap), ("n2", snap)])
    assert both["calls_per_minute"][-1] == 2 and [n["node"] for n in both["nodes"]] == ["n1", "n2"]


# ---- over HTTP ------------------------------------------------------------------------------


async def test_api_roles_accounts_json_and_csv(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        registry = api.app[CALLS]
        for account, number in (("acme", "+3226001000"), ("other", "+3226002000")):
            call = registry.create(
                account=account, direction="inbound", from_number="+3225550100",
                to_number=number, flow="support",
            )  # fmt: skip
            for _, kind, data in answered_by_agent(talk=30):
                registry.call_event(call.id, kind, data)
        today = datetime.now(UTC).date().isoformat()
        path = f"/v1/statistics/calls?from={today}&to={today}&group_by=number"
        for role, status in [
            ("admin", 200), ("analyst", 200), ("manager", 200), ("developer", 403),
            ("finance", 403),
        ]:  # fmt: skip
            r = await api.client.get(path, headers=api.auth(f"acme:{role}"))
            assert r.status == status, (role, await r.text())
        r = await api.client.get(path, headers=api.auth("acme:manager"))
        doc = await r.json()
        assert [(row["number"], row["offered"], row["answered"]) for row in doc["rows"]] == [
            ("+3226001000", 1, 1)
        ]
        r = await api.client.get(path + "&format=csv", headers=api.auth("other:analyst"))
        assert r.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(await r.text())))
        assert [(row["number"], row["offered"]) for row in rows] == [("+3226002000", "1")]
        r = await api.client.get(
            f"/v1/statistics/calls?from={today}&to={today}&tz=Mars/Olympus",
            headers=api.auth("acme:analyst"),
        )
        doc = await r.json()
        assert r.status == 400 and "not a time zone" in doc["detail"], doc
        r = await api.client.get("/v1/statistics/live", headers=api.auth("acme:analyst"))
        live = await r.json()
        assert r.status == 200 and live["calls_up"] == 0 and live["calls_last_hour"] == 1
        r = await api.client.get("/v1/statistics/live", headers=api.auth("acme:developer"))
        assert r.status == 403


@pytest.mark.process  # two nodes share a real redis-server
async def test_nodes_sharing_redis_see_each_others_live_calls(
    tmp_path: Path,
    redis_url: str,
) -> None:
    extra = f"redis: {{enabled: true, url: '{redis_url}'}}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_api(tmp_path / "a", extra_config=extra) as a,
        running_api(tmp_path / "b", extra_config=extra) as b,
    ):
        for api, queue_calls in ((a, 1), (b, 2)):
            registry = api.app[CALLS]
            for _ in range(queue_calls):
                call = registry.create(
                    account="acme", direction="inbound", from_number="+3225550100",
                    to_number="+3226001000", flow="support",
                )  # fmt: skip
                for _, kind, data in abandoned_in_queue()[:-1]:  # still waiting
                    registry.call_event(call.id, kind, data)
            await api.app[STATISTICS].publish()
        r = await b.client.get("/v1/statistics/live", headers=b.auth("acme:manager"))
        live = await r.json()
        assert live["calls_up"] == 3 and live["queues"][0]["waiting"] == 3, live
        assert sorted(n["calls_up"] for n in live["nodes"]) == [1, 2]
        r = await b.client.get("/v1/statistics/live", headers=b.auth("other:manager"))
        assert (await r.json())["calls_up"] == 0
