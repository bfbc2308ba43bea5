"""Talking time from sampled speech levels (flexvoice.sip.talk): no SIP, an explicit clock."""

from __future__ import annotations

import pytest

from flexvoice.sip.talk import HANGOVER, THRESHOLD, TalkChange, TalkMeter

pytestmark = pytest.mark.unit

LOUD, QUIET = THRESHOLD + 10, 0


def feed(meter: TalkMeter, levels: list[int], start: float = 0.0) -> list[tuple[float, TalkChange]]:
    changes = []
    for n, level in enumerate(levels):
        now = start + n * 0.1
        change = meter.sample(now, level)
        if change is not None:
            changes.append((round(now, 2), change))
    return changes


def test_a_spurt_counts_from_a_sample_before_its_first_loud_one_to_its_last() -> None:
    meter = TalkMeter()
    changes = feed(meter, [QUIET] * 5 + [LOUD] * 20 + [QUIET] * 10)
    assert changes == [(0.5, TalkChange(True, 0.0)), (2.9, TalkChange(False, 2.0))]
    assert meter.seconds == pytest.approx(2.0)


def test_pauses_shorter_than_the_hangover_belong_to_the_spurt() -> None:
    meter = TalkMeter()
    pause = int(HANGOVER * 10) - 1
    changes = feed(meter, [LOUD] * 10 + [QUIET] * pause + [LOUD] * 10 + [QUIET] * 10)
    assert [c.talking for _, c in changes] == [True, False]
    assert meter.seconds == pytest.approx(2.0 + pause * 0.1)


def test_spurts_add_up_and_a_level_under_the_threshold_is_silence() -> None:
    meter = TalkMeter()
    feed(meter, [LOUD] * 5 + [QUIET] * 10 + [THRESHOLD - 1] * 10 + [LOUD] * 5 + [QUIET] * 10)
    assert meter.seconds == pytest.approx(1.0)


def test_leaving_mid_spurt_ends_it_and_a_gap_in_sampling_counts_at_most_half_a_second() -> None:
    meter = TalkMeter()
    assert meter.stop() is None  # not talking: nothing to report
    meter.sample(0.0, QUIET)
    assert meter.sample(10.0, LOUD) == TalkChange(True, 0.0)  # the worker was busy 10 s
    meter.sample(10.1, LOUD)
    assert meter.stop() == TalkChange(False, 0.6)
    assert not meter.talking
