"""The detector's profiles (engine/anomaly/profiles.py): every slot is scored with the richest
profile its history supports — `recent` after three hours, `daily` after two days, `weekly`
after two weeks — a 90 % traffic drop for 45 minutes is caught with each of them, and a
normal week raises at most one false anomaly per series with each of them; and the daemon's
tracker, fetching 1m steps into 5-minute slots, agrees with backtest at 1m.

The traffic is not closed-form: daily and weekly waves, Poisson counts per slot and a slow
level wander of 10 % (an AR(1) on the log scale with a one-hour correlation time — busy and
quiet hours beyond the average day), as rendered by tests/corpus/counters.py. Two shapes of
week: the scenario generator's smooth weekly wave, and abrupt weekends (Saturday and Sunday
at 55 % of a weekday from midnight), the hard case for a profile that has not seen a week.
"""

from __future__ import annotations

import numpy as np
import pytest
from corpus.counters import Job, increments
from test_anomaly_live import DROP as LIVE_DROP
from test_anomaly_live import SeasonalSource, run, service_slos

from engine.anomaly.live import LiveAnomalyTracker
from engine.anomaly.profiles import DAILY, NO_PROFILE, PROFILES, RECENT, WEEKLY
from engine.anomaly.scoring import (
    AnomalyParams,
    detect,
    intervals,
    scale_floor,
    signal_values,
)
from engine.anomaly.series import anomaly_series, score_step_rates
from engine.backtest.replay import fetch_history, make_plan
from engine.demo.load import Incident
from engine.spec.durations import Duration

RES = 300
HOUR = 3600
DAY = 86_400
WEEK = 7 * DAY
PER_DAY = DAY // RES
MONDAY = 1_704_067_200  # 2024-01-01 00:00 UTC
FIRST_SLOT = MONDAY // RES
PARAMS = AnomalyParams()


def slot_traffic(job: Job, n_slots: int, weekends: bool = False) -> np.ndarray:
    """Requests per second in each 5-minute slot from MONDAY on."""
    offsets = RES * np.arange(n_slots + 1, dtype=np.float64)
    requests, _ = increments(job, offsets)
    rate = requests[1:] / RES
    if weekends:
        weekday = (offsets[1:] // DAY) % 7
        rate = rate * np.where(weekday >= 5, 0.55, 1.0)
    return rate


def traffic(total: np.ndarray) -> np.ndarray:
    return signal_values("traffic", np.zeros_like(total), total, RES)


def score(totals: np.ndarray, params: AnomalyParams = PARAMS):
    rows = np.atleast_2d(totals)
    floors = [scale_floor("traffic", 0.001)] * rows.shape[0]
    low = ["low"] * rows.shape[0]
    return detect(traffic(rows), FIRST_SLOT, low, floors, params, counts=[True] * len(low))


def test_each_slot_gets_the_richest_profile_its_history_supports() -> None:
    """Three weeks of traffic with a day missing in week two: nothing for three hours, then
    recent, daily from two days on, weekly from two weeks on — except where the weekly
    history runs into the hole (back to daily), and no profile where there is no data."""
    n = 3 * WEEK // RES
    total = slot_traffic(Job("api", rps=30, seed=1), n)
    hole = slice(9 * PER_DAY, 10 * PER_DAY)
    total[hole] = np.nan
    profile = score(total).profile[0]
    assert set(profile[: 3 * HOUR // RES].tolist()) == {NO_PROFILE}
    assert set(profile[3 * HOUR // RES : 2 * PER_DAY].tolist()) == {RECENT}
    assert set(profile[2 * PER_DAY + 36 : 9 * PER_DAY].tolist()) == {DAILY}
    assert set(profile[hole].tolist()) == {NO_PROFILE}
    week_three = profile[2 * WEEK // RES :]
    # A week after the hole, the same time of week has one value of two: daily again.
    after_hole = slice(16 * PER_DAY - 14 * PER_DAY, 17 * PER_DAY - 14 * PER_DAY)
    assert set(week_three[after_hole].tolist()) == {DAILY}
    assert np.mean(week_three == WEEKLY) > 0.85
    assert [PROFILES[c] for c in (RECENT, DAILY, WEEKLY)] == ["recent", "daily", "weekly"]


# Where a drop falls so that each profile scores it: day 1 (recent), day 5 (daily: after two
# days, before two weeks), day 16 (weekly).
DAY_OF = {"recent": 1, "daily": 5, "weekly": 16}


@pytest.mark.parametrize("profile", ["recent", "daily", "weekly"])
@pytest.mark.parametrize("hour", [3, 8, 14, 20])
@pytest.mark.parametrize("rps", [30.0, 1.0])
def test_a_ninety_percent_drop_for_45_minutes_is_caught_with_any_profile(
    profile: str, hour: int, rps: float
) -> None:
    """At night, on the morning ramp, at the peak and on the evening decline; at 30 and at
    1 request per second: fired within `min_duration` + one slot, by the expected profile."""
    start = DAY_OF[profile] * DAY + hour * HOUR + 20 * 60
    job = Job(
        "api", rps=rps, seed=hour, incidents=[Incident(start, start + 45 * 60, rps_factor=0.1)]
    )
    n = (DAY_OF[profile] + 1) * PER_DAY
    scores = score(slot_traffic(job, n))
    found = [
        iv for iv in intervals(scores) if MONDAY + start <= iv.start <= MONDAY + start + 45 * 60
    ]
    assert len(found) == 1, (profile, hour, rps)
    # Detection: min_duration (10 min) of 5-minute slots, scored once complete.
    assert found[0].start <= MONDAY + start + 15 * 60
    column = int(found[0].start // RES) - FIRST_SLOT - 1
    assert scores.profile_name(0, column) == profile
    assert found[0].peak_score > 2 * PARAMS.sensitivity


# The incident engine's default `resolve_after`: an anomaly that clears and fires again
# within it stays one incident, one notification — one false alarm, as the on-call sees it.
RESOLVE_AFTER = 15 * 60


def _false_alarms_per_week(weekends: bool, params: AnomalyParams, seed: int) -> np.ndarray:
    """Five weeks of normal traffic at 30, 3 and 0.3 requests per second: false alarms
    (anomalies, those less than `RESOLVE_AFTER` apart counted once) per series and week."""
    n = 5 * WEEK // RES
    totals = np.vstack(
        [
            slot_traffic(Job("api", rps=rps, seed=100 * seed + k), n, weekends)
            for k, rps in enumerate((30.0, 3.0, 0.3))
        ]
    )
    counts = np.zeros((3, 5), dtype=int)
    last_end: dict[int, float] = {}
    for iv in sorted(intervals(score(totals, params)), key=lambda iv: (iv.series, iv.start)):
        if iv.start - last_end.get(iv.series, -np.inf) > RESOLVE_AFTER:
            counts[iv.series, int((iv.start - MONDAY) // WEEK)] += 1
        last_end[iv.series] = np.inf if iv.end is None else iv.end
    return counts


@pytest.mark.parametrize("weekends", [False, True], ids=["smooth-week", "abrupt-weekends"])
@pytest.mark.parametrize(
    "profiles",
    [("recent",), ("recent", "daily"), ("recent", "daily", "weekly")],
    ids=["recent-only", "up-to-daily", "all"],
)
def test_a_normal_week_raises_at_most_one_false_anomaly_per_series(
    weekends: bool, profiles: tuple[str, ...]
) -> None:
    """Every week from the first hours on, whichever profiles may be used: three series,
    three noise draws, five weeks each."""
    params = AnomalyParams(profiles=profiles)  # type: ignore[arg-type]
    counts = np.stack([_false_alarms_per_week(weekends, params, seed) for seed in range(3)])
    assert counts.max() <= 1, counts
    # And far fewer on average: most weeks have none.
    assert counts.mean() <= 0.5


def test_young_profiles_only_score_the_slots_the_caller_reads() -> None:
    """`score_from` spares the young profiles' work on history nobody reads; the slots that
    are read score exactly as with everything computed."""
    n = 10 * PER_DAY
    totals = np.vstack([slot_traffic(Job("api", rps=rps, seed=3), n) for rps in (30.0, 2.0)])
    y = traffic(totals)
    floors = [0.05, 0.05]
    full = detect(y, FIRST_SLOT, ["low", "low"], floors, PARAMS)
    cut = n - 40
    part = detect(y, FIRST_SLOT, ["low", "low"], floors, PARAMS, score_from=cut)
    np.testing.assert_array_equal(part.score[:, cut:], full.score[:, cut:])
    np.testing.assert_array_equal(part.profile[:, cut:], full.profile[:, cut:])
    assert np.all(np.isnan(part.score[:, :cut]))


def test_an_error_outage_on_the_first_day_is_an_error_anomaly() -> None:
    """A new service's error ratio jumps from 0.1 % to 5 % for half an hour on its first
    day: the recent profile reports it; the traffic, unchanged, raises nothing."""
    start = DAY + 11 * HOUR
    job = Job(
        "api",
        rps=20,
        error_ratio=0.001,
        seed=5,
        incidents=[Incident(start, start + 30 * 60, error_ratio=0.05)],
    )
    n = 2 * PER_DAY
    offsets = RES * np.arange(n + 1, dtype=np.float64)
    requests, errors = increments(job, offsets)
    total, bad = requests[1:] / RES, errors[1:] / RES
    y = np.vstack([traffic(total), signal_values("errors", bad, total, RES)])
    floors = [scale_floor("traffic", 0.001), scale_floor("errors", 0.001)]
    scores = detect(y, FIRST_SLOT, ["low", "high"], floors, PARAMS)
    found = intervals(scores)
    assert [iv.series for iv in found] == [1]
    assert MONDAY + start < found[0].start <= MONDAY + start + 15 * 60
    column = int(found[0].start // RES) - FIRST_SLOT - 1
    assert scores.profile_name(1, column) == "recent"


def test_the_live_tracker_at_a_one_minute_step_agrees_with_backtest() -> None:
    """The daemon's tracker fetches 1m steps and keeps 5-minute slot averages; backtest at
    1m forms its slots from the same steps. Through a drop and a 20-minute scrape gap, both
    report the same state, score and profile at every slot."""
    source = SeasonalSource(MONDAY - 3 * WEEK, weeks=10)
    source.drop_from, source.drop_until = LIVE_DROP, LIVE_DROP + 90 * 60
    source.gap = (LIVE_DROP + 3 * HOUR, LIVE_DROP + 3 * HOUR + 20 * 60)
    slos = service_slos()
    start, end = LIVE_DROP - HOUR, LIVE_DROP + 4 * HOUR
    step = Duration.parse("1m")
    rates = fetch_history(source, slos, make_plan(slos, start, end, step, None))
    batch = {}
    for group in score_step_rates(
        anomaly_series(slos), {slos[0].id: 0}, rates.times, 60, rates.bad, rates.total
    ):
        for a, item in enumerate(group.series):
            batch[item.key] = (group.scores, a)
    tracker = LiveAnomalyTracker(source, slos, step=step)
    for k in range(8):
        if tracker.update(start - 600 + k).warming == 0:
            break
    fired = compared = 0
    for now, update in run(tracker, start, end, RES):
        for state in update.states:
            scores, a = batch[state.series.key]
            (column,) = scores.state_index(np.array([now]))
            assert state.active == bool(scores.active[a, column])
            assert state.profile == scores.profile_name(a, column)
            expected = scores.score[a, column]
            assert (state.score is None) == bool(np.isnan(expected))
            if state.score is not None:
                assert state.score == pytest.approx(expected, rel=1e-9, abs=1e-9)
            compared += 1
            fired += state.active
    assert fired > 10 and compared == 2 * (round((end - start) / RES) + 1)
    assert [c[1] for c in source.calls[-3:]] == [60.0] * 3
