"""The daemon's live anomaly tracker on a scripted, seasonal source: chunked cold fill,
incremental updates, the documented detection delay, quiet seasonality, gaps, hot reload,
and agreement with backtest's anomaly path on the same data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from engine.alerting.alerts import anomaly_alerts
from engine.anomaly.live import (
    BYTES_PER_SLOT,
    CHUNK_SLOTS,
    LiveAnomalyTracker,
    window_slots,
)
from engine.anomaly.scoring import AnomalyParams
from engine.anomaly.series import anomaly_series, score_step_rates
from engine.backtest.replay import fetch_history, make_plan, replay
from engine.evaluation.source import SourceUnavailable, StepRates
from engine.incidents.classify import classify_alert
from engine.incidents.config import SeverityRules
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

RES = 300
MIN = 60
HOUR = 3600
DAY = 86_400
WEEK = 7 * DAY
PER_DAY = DAY // RES
PER_WEEK = WEEK // RES
# 2024-01-01T00:00:00Z, a Monday: traffic starts here, so "weekend" is Saturday and Sunday.
MONDAY = 1_704_067_200
# Three weeks of history later, at 14:00 (the daily peak): where the drop happens.
DROP = MONDAY + 3 * WEEK + 14 * HOUR


def seasonal_rate(slot_times: np.ndarray, base: float) -> np.ndarray:
    """Requests per second with a strong daily cycle (night at 20 % of the 14:00 peak) and
    quieter weekends (55 % of a weekday)."""
    hour = (slot_times % DAY) / HOUR
    daily = 0.6 + 0.4 * np.cos(2 * np.pi * (hour - 14) / 24)
    weekday = ((slot_times - MONDAY) // DAY) % 7
    return base * daily * np.where(weekday >= 5, 0.55, 1.0)


class SeasonalSource:
    """An `EventSource` over scripted per-slot traffic: seasonal, Poisson noise, no errors.

    Data starts at `begin` (nothing before: NaN). Every SLO of a service sees the service's
    traffic. Scriptable: a traffic drop to `drop_factor` over [drop_from, drop_until)
    (prorated inside a slot), a gap without any data, an error outage for some SLOs, and a
    `broken` predicate that makes a fetch raise. Rates for a step (t − step, t] average the
    slots it covers, so 1m, 5m and 1h grids all describe the same traffic.
    """

    def __init__(
        self, begin: int = MONDAY, weeks: int = 6, bases: dict[str, float] | None = None
    ) -> None:
        self.begin = begin
        self.bases = bases or {}
        n = weeks * PER_WEEK
        self.slot_times = begin + RES * np.arange(n)
        self._noise: dict[str, np.ndarray] = {}
        self._n = n
        self.drop_from = math.inf
        self.drop_until = math.inf
        self.drop_factor = 0.1
        self.drop_services: set[str] | None = None  # None: every service
        self.gap: tuple[float, float] | None = None
        self.outage: set[str] = set()
        self.outage_from = math.inf
        self.broken: Any = None  # callable(slos, step, start, end) -> Exception | None
        self.calls: list[tuple[tuple[str, ...], float, float, float]] = []
        self.http_requests = 0

    def slot_traffic(self, service: str) -> np.ndarray:
        if service not in self._noise:
            base = self.bases.get(service, 40.0)
            rate = seasonal_rate(self.slot_times, base)
            seed = sum(service.encode())
            self._noise[service] = np.random.default_rng(seed).poisson(rate * RES) / RES
        traffic = self._noise[service].copy()
        if self.drop_services is not None and service not in self.drop_services:
            return self._gap(traffic)
        # Share of each slot inside the drop, so a drop may start mid-slot.
        lo = np.clip(self.drop_from - self.slot_times, 0, RES)
        hi = np.clip(self.drop_until - self.slot_times, 0, RES)
        inside = (hi - lo) / RES
        traffic *= 1 - (1 - self.drop_factor) * inside
        return self._gap(traffic)

    def _gap(self, traffic: np.ndarray) -> np.ndarray:
        if self.gap is not None:
            missing = (self.slot_times + RES > self.gap[0]) & (self.slot_times < self.gap[1])
            traffic[missing] = np.nan
        return traffic

    def _per_step(self, slot_values: np.ndarray, times: np.ndarray, step: float) -> np.ndarray:
        first = np.floor((times - step - self.begin) / RES).astype(np.int64)
        last = np.ceil((times - self.begin) / RES).astype(np.int64)  # exclusive
        valid = ~np.isnan(slot_values)
        sums = np.concatenate([[0.0], np.cumsum(np.where(valid, slot_values, 0.0))])
        counts = np.concatenate([[0], np.cumsum(valid)])
        a = np.clip(first, 0, self._n)
        b = np.clip(last, 0, self._n)
        n = counts[b] - counts[a]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(n > 0, (sums[b] - sums[a]) / np.maximum(n, 1), np.nan)
        # Steps reaching before the data began have none for the part before it.
        return np.where(first < 0, np.nan, out)

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        self.calls.append((tuple(s.id for s in slos), step.seconds, start, end))
        self.http_requests += 1
        if self.broken is not None:
            error = self.broken(slos, step, start, end)
            if error is not None:
                raise error
        step_s = step.seconds
        n = math.floor((end - start) / step_s + 1e-9) + 1 if end >= start else 0
        times = start + step_s * np.arange(n, dtype=np.float64)
        total = np.empty((len(slos), n))
        bad = np.zeros((len(slos), n))
        for row, slo in enumerate(slos):
            total[row] = self._per_step(self.slot_traffic(slo.service), times, step_s)
            if slo.id in self.outage:
                bad[row, times > self.outage_from] = total[row, times > self.outage_from]
        bad[np.isnan(total)] = np.nan
        return StepRates(step=step, times=times, bad=bad, total=total)

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        self.http_requests += 1
        return [{"metric": {}, "value": [at, "1"]}]


def service_slos(
    service: str = "checkout",
    tier: str = "critical",
    anomaly: dict[str, Any] | None = None,
    n: int = 1,
) -> list[SLO]:
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": service,
            "tier": tier,
            "anomaly": {"enabled": True} if anomaly is None else anomaly,
            "slos": [
                {
                    "name": f"s{i}",
                    "objective": 99.9,
                    "sli": {
                        "events": {
                            "bad": f'sum(rate(x{{job="{service}",code="500"}}[{{{{window}}}}]))',
                            "total": f'sum(rate(x{{job="{service}",n="{i}"}}[{{{{window}}}}]))',
                        }
                    },
                }
                for i in range(n)
            ],
        }
    )
    return spec.slo_records()


def run(tracker: LiveAnomalyTracker, start: float, end: float, every: float = MIN):
    """Updates from `start` to `end` (inclusive) every `every` seconds: (now, update)."""
    now = start
    while now <= end:
        yield now, tracker.update(now)
        now += every


def firing(update) -> dict[str, bool]:
    return {s.series.key: s.active for s in update.states}


# ---------------------------------------------------------------------------------------


def test_window_covers_what_the_newest_state_reads_and_memory_is_bounded() -> None:
    item_traffic = anomaly_series(service_slos())[0]
    # 3w weekly profile + 2 × 7 days + band − 1 + min_duration − 1 slot + 30m sustained + 1.
    assert window_slots(item_traffic) == 6048 + 4032 + 11 + 1 + 7 == 10_099
    longer = anomaly_series(service_slos(anomaly={"enabled": True, "history": "4w"}))[0]
    assert window_slots(longer) == 10_099 + PER_WEEK
    tracker = LiveAnomalyTracker(SeasonalSource(), service_slos(n=2))
    tracker.update(DROP)
    # Two SLO rows (each its own traffic query); traffic and errors of one SLO share a row.
    assert len(tracker.series) == 4
    assert tracker.nbytes == 2 * 10_099 * BYTES_PER_SLOT == 2 * 161_584
    # Services without anomaly detection cost nothing.
    off = LiveAnomalyTracker(SeasonalSource(), service_slos(anomaly={"enabled": False}))
    assert off.series == () and off.nbytes == 0
    assert off.update(DROP).states == ()


def test_cold_fill_is_chunked_then_only_new_steps_are_fetched() -> None:
    source = SeasonalSource()
    slos = service_slos(n=2)
    tracker = LiveAnomalyTracker(source, slos)
    now = DROP - HOUR + 17  # mid-slot: the newest complete slot ended 17 s ago
    end = DROP - HOUR
    first = tracker.update(now)
    # Three one-week chunks per update, both SLOs in each request, oldest first, at 5m.
    assert [c[0] for c in source.calls] == [("checkout/s0", "checkout/s1")] * 3
    assert {c[1] for c in source.calls} == {RES}
    starts = [c[2] for c in source.calls]
    assert starts[0] == end - (10_099 - 1) * RES
    assert all(c[3] - c[2] == (CHUNK_SLOTS - 1) * RES for c in source.calls)
    assert starts == sorted(starts)
    assert first.requests == 3 and first.warming == 4 and first.firing == ()
    source.calls.clear()
    second = tracker.update(now + 30)
    # The rest of the window: 10,099 slots = 5 full chunks and 19 steps.
    assert len(source.calls) == 3 and source.calls[-1][3] == end
    # (from the last step already fetched: refetched steps are counted too)
    assert second.fetched_steps == 10_099 - 3 * CHUNK_SLOTS + 2
    assert second.warming == 0 and all(s.slot_end == end for s in second.states)
    source.calls.clear()
    # Same slot: nothing to fetch. Next slot: the new step plus the last two again (late
    # scrapes), like the evaluation cache.
    assert tracker.update(now + 60).requests == 0
    assert source.calls == []
    tracker.update(now + RES)
    assert [(c[2], c[3]) for c in source.calls] == [(end - RES, end + RES)]


def test_traffic_drop_to_ten_percent_fires_after_min_duration_and_not_before() -> None:
    """Three weeks of daily- and weekly-seasonal traffic, then traffic falls to 10 % with no
    errors at all: the traffic anomaly fires exactly `min_duration` (10 min) after the drop
    began, on a cycle every minute; errors stay quiet; sustained 30 min after firing."""
    source = SeasonalSource()
    source.drop_from, source.drop_until = DROP, DROP + 2 * HOUR
    tracker = LiveAnomalyTracker(source, service_slos())
    fired_at = sustained_at = None
    for now, update in run(tracker, DROP - 2 * HOUR, DROP + HOUR):
        state = {s.series.signal: s for s in update.states}
        assert not state["errors"].active
        if now < DROP - HOUR:
            continue  # cold fill done well before the drop
        assert update.warming == 0
        if state["traffic"].active and fired_at is None:
            fired_at = now
            assert state["traffic"].score is not None and state["traffic"].score > 20
        if state["traffic"].sustained and sustained_at is None:
            sustained_at = now
        if now < DROP + 10 * MIN:
            assert not state["traffic"].active, now - DROP
    assert fired_at == DROP + 10 * MIN
    assert sustained_at == fired_at + 30 * MIN
    (alert,) = anomaly_alerts(update.states, DROP + HOUR)
    assert alert.labels["signal"] == "traffic" and alert.severity == "anomaly"
    assert alert.sustained and classify_alert(alert, SeverityRules()).severity.value == "SEV3"


def test_a_drop_starting_mid_slot_fires_within_min_duration_plus_one_slot() -> None:
    source = SeasonalSource()
    source.drop_from, source.drop_until = DROP + 150, DROP + 2 * HOUR
    tracker = LiveAnomalyTracker(source, service_slos())
    fired_at = None
    for now, update in run(tracker, DROP - HOUR, DROP + 30 * MIN):
        if firing(update)["checkout/s0:traffic"] and fired_at is None:
            fired_at = now
    assert fired_at is not None
    assert source.drop_from + 10 * MIN - RES <= fired_at <= source.drop_from + 10 * MIN + RES


def test_normal_daily_and_weekly_swings_raise_nothing() -> None:
    """Sunday of week three to Monday evening of week four, one update per slot: weekend lows,
    the Monday morning ramp and nightly troughs are all normal for their time of week."""
    source = SeasonalSource(bases={"checkout": 40.0, "search": 3.0})
    slos = service_slos() + service_slos("search", tier="standard")
    tracker = LiveAnomalyTracker(source, slos)
    peak = -math.inf
    scored = 0
    sunday, monday_evening = MONDAY + 2 * WEEK + 6 * DAY + 6 * HOUR, MONDAY + 3 * WEEK + 18 * HOUR
    for _, update in run(tracker, sunday, monday_evening, RES):
        assert update.firing == ()
        for state in update.states:
            if state.score is not None:
                scored += 1
                peak = max(peak, state.score)
    assert scored > 0.9 * 4 * (36 * 12)
    assert peak < AnomalyParams().sensitivity


def test_missing_data_never_raises_an_anomaly() -> None:
    """The scrape target vanishes for an hour (no samples, not zero traffic): no score, no
    anomaly — while the same hour at zero traffic is one."""
    source = SeasonalSource()
    source.gap = (DROP, DROP + HOUR)
    tracker = LiveAnomalyTracker(source, service_slos())
    for now, update in run(tracker, DROP - HOUR, DROP + HOUR, RES):
        assert update.firing == ()
        if DROP + RES <= now <= DROP + HOUR:
            assert all(s.score is None for s in update.states)
    source.gap = None
    source.drop_from, source.drop_until, source.drop_factor = DROP, DROP + HOUR, 0.0
    fresh = LiveAnomalyTracker(source, service_slos())
    updates = [update for _, update in run(fresh, DROP - HOUR, DROP + 30 * MIN, RES)]
    assert firing(updates[-1])["checkout/s0:traffic"]


def test_hot_reload_keeps_surviving_history_and_fills_new_rows() -> None:
    source = SeasonalSource()
    tracker = LiveAnomalyTracker(source, service_slos())
    tracker.update(DROP - HOUR)
    tracker.update(DROP - HOUR + 30)
    assert tracker.update(DROP - HOUR + 60).warming == 0
    one_row = tracker.nbytes

    # Another service turns anomaly detection on: only its row is filled; checkout keeps
    # its history and keeps being scored meanwhile.
    source.calls.clear()
    tracker.set_slos(service_slos() + service_slos("search", tier="standard"))
    update = tracker.update(DROP - HOUR + RES)
    by_service = {s.series.slo.service: s.ready for s in update.states}
    assert by_service == {"checkout": True, "search": False}
    checkout_calls = [c for c in source.calls if c[0] == ("checkout/s0",)]
    assert [(c[2], c[3]) for c in checkout_calls] == [(DROP - HOUR - RES, DROP - HOUR + RES)]
    assert tracker.nbytes == 2 * one_row
    tracker.update(DROP - HOUR + RES + 30)
    assert tracker.update(DROP - HOUR + RES + 60).warming == 0

    # checkout's query changes: its old history is for other data, so it is filled again.
    changed = [replace(s, sli=service_slos("other")[0].sli) for s in service_slos()]
    tracker.set_slos(changed + service_slos("search", tier="standard"))
    update = tracker.update(DROP - HOUR + 2 * RES)
    assert {s.series.slo.service: s.ready for s in update.states} == {
        "checkout": False,
        "search": True,
    }

    # Anomaly detection switched off everywhere: nothing watched, memory released.
    tracker.set_slos(service_slos(anomaly={"enabled": False}))
    assert tracker.update(DROP).states == () and tracker.nbytes == 0


def test_failures_keep_what_was_fetched_and_retry_from_there() -> None:
    source = SeasonalSource()
    slos = service_slos(n=2)
    tracker = LiveAnomalyTracker(source, slos)
    tracker.update(DROP - HOUR)
    tracker.update(DROP - HOUR + 30)

    # The whole source is gone: update raises, the window is kept.
    source.broken = lambda *a: SourceUnavailable("connection refused (scripted)")
    with pytest.raises(SourceUnavailable):
        tracker.update(DROP - HOUR + RES)
    source.broken = None
    source.calls.clear()
    assert tracker.update(DROP - HOUR + RES + 1).warming == 0
    assert [(c[2], c[3]) for c in source.calls] == [(DROP - HOUR - RES, DROP - HOUR + RES)]

    # One SLO's query fails: that one is not scored (and asked again from the same step),
    # the other goes on.
    class Partial(SeasonalSource):
        def fetch(self, slos, step, start, end):  # type: ignore[no-untyped-def]
            rates = super().fetch(slos, step, start, end)
            if "checkout/s1" in {s.id for s in slos}:
                rates.errors["checkout/s1"] = "bad_data: parse error (scripted)"
            return rates

    partial = Partial()
    tracker = LiveAnomalyTracker(partial, slos)
    for now in (DROP, DROP + 30, DROP + 60):
        update = tracker.update(now)
    ready = {s.series.slo.id: s.ready for s in update.states}
    assert ready == {"checkout/s0": True, "checkout/s1": False}
    assert update.errors == {"checkout/s1": "bad_data: parse error (scripted)"}
    # The failed SLO stopped at its first chunk: asked again for it every update.
    assert partial.calls[-1][0] == ("checkout/s1",) and partial.calls[-1][2] < DROP - 4 * WEEK


@pytest.mark.parametrize("backtest_step", ["5m", "1m"])
def test_live_tracker_agrees_with_backtest_on_the_same_data(backtest_step: str) -> None:
    """Backtest replays 28 hours through its anomaly path (`replay` over `fetch_history`);
    the tracker, updated every 5 minutes from a cold start on the same source, reports the
    same firing state, sustained flag and score at every step.

    Six weeks of traffic precede the drop, more than the tracker's window, so a window
    missing anything the newest state depends on would show here as a different score."""
    source = SeasonalSource(MONDAY - 3 * WEEK, weeks=10, bases={"checkout": 40.0, "search": 6.0})
    source.drop_from, source.drop_until = DROP, DROP + 90 * MIN
    source.outage, source.outage_from = {"search/s0"}, DROP + 5 * HOUR
    slos = service_slos(n=2) + service_slos(
        "search",
        tier="standard",
        anomaly={"enabled": True, "sensitivity": 3, "history": "2w", "sustained": "15m"},
    )
    start, end = DROP - 20 * HOUR, DROP + 8 * HOUR
    # A warm-up longer than the default (35 days 1h35m): more history changes nothing.
    plan = make_plan(slos, start, end, Duration.parse(backtest_step), Duration.parse("6w"))
    rates = fetch_history(source, slos, plan)
    result = replay(slos, rates, plan)
    intervals = [a for a in result.alerts if a.severity == "anomaly"]
    # Backtest's anomaly state at each step, from the same public functions it uses.
    series = anomaly_series(slos)
    rows = {s.id: i for i, s in enumerate(slos)}
    batch: dict[str, tuple[Any, np.ndarray, int]] = {}
    for group in score_step_rates(
        series, rows, rates.times, rates.step.seconds, rates.bad, rates.total
    ):
        sustained = group.sustained()
        for a, item in enumerate(group.series):
            batch[item.key] = (group.scores, sustained[a], a)

    def backtest_active(item, t: float) -> bool:
        return any(
            iv.slo_id == item.slo.id
            and iv.signal == item.signal
            and iv.start <= t
            and (iv.end is None or t < iv.end)
            for iv in intervals
        )

    tracker = LiveAnomalyTracker(source, slos)
    for k in range(5):  # the cold fill, a few chunks per update, before the first step
        if tracker.update(start - 10 * MIN + k).warming == 0:
            break
    compared = fired = sustained_seen = 0
    for now, update in run(tracker, start, end, RES):
        assert update.warming == 0
        for state in update.states:
            item = state.series
            scores, sustained, a = batch[item.key]
            (column,) = scores.state_index(np.array([now]))
            assert state.active == backtest_active(item, now) == bool(scores.active[a, column])
            assert state.sustained == bool(sustained[column])
            expected = scores.score[a, column]
            if np.isnan(expected):
                assert state.score is None
            else:
                assert state.score == pytest.approx(expected, rel=1e-9, abs=1e-9)
            compared += 1
            fired += state.active
            sustained_seen += state.sustained
    assert compared == len(series) * (round((end - start) / RES) + 1)
    # The comparison covered firing and sustained anomalies, not just quiet data: the
    # traffic drop on checkout and the error outage on search.
    assert fired > 20 and sustained_seen > 10
    kinds = {(iv.slo_id.split("/")[0], iv.signal) for iv in intervals}
    assert ("checkout", "traffic") in kinds and ("search", "errors") in kinds


def _backtest_scores(
    slos: list[SLO], source: SeasonalSource, plan: Any
) -> tuple[Any, dict[str, tuple[Any, np.ndarray, int]]]:
    """Replay `plan`, and backtest's anomaly state from the public functions it uses:
    key -> (scores, sustained row, row index)."""
    rates = fetch_history(source, slos, plan)
    result = replay(slos, rates, plan)
    rows = {s.id: i for i, s in enumerate(slos)}
    batch = {}
    for group in score_step_rates(
        anomaly_series(slos), rows, rates.times, rates.step.seconds, rates.bad, rates.total
    ):
        for a, item in enumerate(group.series):
            batch[item.key] = (group.scores, group.sustained()[a], a)
    return result, batch


@pytest.mark.parametrize(("backtest_step", "offset"), [("5m", 0), ("1m", 2 * MIN)])
def test_backtest_default_warmup_gives_the_first_step_the_live_window(
    backtest_step: str, offset: int
) -> None:
    """Backtest's default warm-up holds exactly the tracker's window before the first step:
    every slot the first state reads is scored as with unlimited history, and that state
    (score, firing, sustained) equals the live tracker's.

    The replay starts 95 minutes into a traffic drop, so the first state (slot 15:30–15:35)
    is firing and sustained. Its `sustained` reads the 7 slots back to 14:55, the last slot
    of the previous hour band, whose scale pools that band from 14:00: the worst case the
    window is sized for. Sparse traffic (0.2 req/s) keeps the residual scale above its floor,
    so any history cut from those pools changes a score. Ten weeks of data, so a warm-up
    too short cuts real history."""
    source = SeasonalSource(MONDAY - 3 * WEEK, weeks=10, bases={"checkout": 0.2, "search": 40.0})
    source.drop_from, source.drop_until = DROP, DROP + 3 * HOUR
    slos = service_slos() + service_slos(
        "search", tier="standard", anomaly={"enabled": True, "history": "2w"}
    )
    start = DROP + HOUR + 35 * MIN + offset
    step = Duration.parse(backtest_step)
    plan = make_plan(slos, start, start + HOUR, step, None)
    # The longest window (3w history: 10,099 slots) reaches back from the end of the last
    # slot completed at `start`: the part of the current slot already elapsed comes on top.
    longest = max(window_slots(item) for item in anomaly_series(slos))
    assert longest == 10_099
    assert plan.warmup == Duration.of_seconds(longest * RES + offset)
    result, batch = _backtest_scores(slos, source, plan)
    _, unlimited = _backtest_scores(
        slos, source, make_plan(slos, start, start + HOUR, step, Duration.parse("7w"))
    )
    first = np.array([plan.start])
    for item in anomaly_series(slos):
        scores, sustained, a = batch[item.key]
        long_scores, long_sustained, b = unlimited[item.key]
        (column,) = scores.state_index(first)
        (long_column,) = long_scores.state_index(first)
        # The slots whose breaches the first state's `active` and `sustained` read.
        reads = item.history_slots - item.params.lookback_slots
        assert reads == 8
        np.testing.assert_allclose(
            scores.score[a, column - reads + 1 : column + 1],
            long_scores.score[b, long_column - reads + 1 : long_column + 1],
            rtol=1e-12,
            atol=0,
        )
        assert scores.active[a, column] == long_scores.active[b, long_column]
        assert sustained[column] == long_sustained[long_column]
        # The traffic drop fires (and is sustained); errors stay quiet.
        assert sustained[column] == (item.signal == "traffic")

    tracker = LiveAnomalyTracker(source, slos)
    for k in range(5):  # the cold fill, a few chunks per update
        if tracker.update(start + k).warming == 0:
            break
    fired = sustained_seen = 0
    for now, update in run(tracker, start, start + 3 * RES, RES):
        assert update.warming == 0
        for state in update.states:
            scores, sustained, a = batch[state.series.key]
            (column,) = scores.state_index(np.array([now]))
            assert state.active == bool(scores.active[a, column])
            assert state.sustained == bool(sustained[column])
            assert state.score is not None
            assert state.score == pytest.approx(scores.score[a, column], rel=1e-12, abs=1e-12)
            fired += state.active
            sustained_seen += state.sustained
    # Both services' traffic anomalies are firing and sustained from the first step on.
    assert fired == sustained_seen == 2 * 4
    firing_from = {a.slo_id: a.start for a in result.alerts if a.severity == "anomaly"}
    assert firing_from == {"checkout/s0": plan.start, "search/s0": plan.start}


def test_scoring_in_blocks_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Series are scored a block at a time to bound memory; any block size, same states."""
    import engine.anomaly.live as live

    source = SeasonalSource(bases={"checkout": 40.0, "search": 3.0})
    source.drop_from, source.drop_until, source.drop_services = DROP, DROP + HOUR, {"search"}
    slos = service_slos(n=2) + service_slos(
        "search", tier="standard", anomaly={"enabled": True, "history": "2w"}
    )

    def states_at(block: int) -> list[Any]:
        monkeypatch.setattr(live, "SCORE_BLOCK", block)
        tracker = LiveAnomalyTracker(source, slos)
        updates = [u for _, u in run(tracker, DROP - 2 * MIN, DROP + 20 * MIN, RES)]
        return [u.states for u in updates]

    blocked = states_at(1)
    assert blocked == states_at(16)
    assert any(s.active for s in blocked[-1])
