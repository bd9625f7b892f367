"""The multi-resolution cache against a fake in-memory source with known traffic.

The fake computes each step's rate exactly from an analytic cumulative event count, so the
ground truth of any window is known; the real Prometheus adapter is tested elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from engine.evaluation.cache import DEFAULT_TIERS, MultiResolutionCache, Tier
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.source import SourceUnavailable, StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

D = Duration.parse
HOUR, DAY = 3600, 86400
# An instant on an exact hour, far enough from the epoch that 30 days of history exist.
T0 = (1_700_000_000 // HOUR) * HOUR


def make_slo(name: str, objective: str = "99.9", period: str = "30d") -> SLO:
    body: dict[str, Any] = {
        "name": name,
        "objective": objective,
        "period": period,
        "sli": {"events": {"bad": "sum(rate(e[{{window}}]))", "total": "sum(rate(t[{{window}}]))"}},
    }
    spec = ServiceSpec.model_validate(
        {"apiVersion": "slo-engine/v1", "service": "api", "slos": [body]}
    )
    return spec.slo_records()[0]


def cumulative(slo_id: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Events since T0 − 60 d: a daily traffic swing of ±40 % and a 7h error-ratio wave."""
    scale = 1 + (sum(map(ord, slo_id)) % 7)
    x = np.asarray(t, dtype=np.float64) - (T0 - 60 * DAY)
    total = 50.0 * scale * (x - 0.4 * DAY / (2 * math.pi) * np.cos(2 * math.pi * x / DAY))
    period = 7 * HOUR
    bad = 0.02 * scale * (x - 0.3 * period / (2 * math.pi) * np.cos(2 * math.pi * x / period))
    return bad, total


@dataclass
class Call:
    ids: tuple[str, ...]
    step: int
    start: int
    end: int

    @property
    def points(self) -> int:
        return (self.end - self.start) // self.step + 1


class FunctionSource:
    """An EventSource whose rates are exact interval averages of `cumulative`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.failing: dict[str, str] = {}
        self.unavailable_for_step: int | None = None
        # Steps ending at or after `now` come back half-counted, like a late scrape.
        self.now: float | None = None

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        s = int(step.seconds)
        self.calls.append(Call(tuple(x.id for x in slos), s, int(start), int(end)))
        if self.unavailable_for_step == s:
            raise SourceUnavailable("503 from upstream after 3 retries")
        times = np.arange(start, end + s / 2, s)
        bad = np.empty((len(slos), times.size))
        total = np.empty((len(slos), times.size))
        for row, slo in enumerate(slos):
            b1, t1 = cumulative(slo.id, times)
            b0, t0 = cumulative(slo.id, times - s)
            bad[row], total[row] = (b1 - b0) / s, (t1 - t0) / s
        if self.now is not None:
            late = times >= self.now
            bad[:, late] *= 0.5
            total[:, late] *= 0.5
        errors = {x.id: self.failing[x.id] for x in slos if x.id in self.failing}
        for row, slo in enumerate(slos):
            if slo.id in errors:
                bad[row] = total[row] = np.nan
        return StepRates(step, times, bad, total, errors)


def fine_ground_truth(slo: SLO, at: int, window: Duration) -> tuple[float, float]:
    """Plain sum of the 1m-resolution data over (at − window, at]."""
    minutes = at - 60 * np.arange(window.ms // 60_000)[::-1]
    rates = FunctionSource().fetch([slo], D("1m"), float(minutes[0]), float(minutes[-1]))
    return float(rates.bad.sum() * 60), float(rates.total.sum() * 60)


def assert_matches_truth(cache: MultiResolutionCache, events, rel: float) -> float:
    worst = 0.0
    for s, slo in enumerate(cache.slos):
        for w, window in enumerate(events.windows):
            bad, total = fine_ground_truth(slo, int(events.at), window)
            assert events.total[s, w] == pytest.approx(total, rel=rel), (slo.id, str(window))
            assert events.bad[s, w] == pytest.approx(bad, rel=rel), (slo.id, str(window))
            worst = max(worst, abs(events.bad[s, w] / bad - 1), abs(events.total[s, w] / total - 1))
    return worst


@pytest.mark.parametrize("offset", [0, 37 * 60 + 25, 5 * 60, 59 * 60 + 59])
def test_composed_windows_match_the_finest_resolution_within_half_a_percent(offset: int) -> None:
    slos = [make_slo("a"), make_slo("b", objective="99", period="28d")]
    cache = MultiResolutionCache(FunctionSource(), slos)
    events = cache.refresh(T0 + offset)
    assert events.at == (T0 + offset) // 60 * 60  # floored to the finest step
    assert [str(w) for w in events.windows] == [
        "5m",
        "30m",
        "1h",
        "2h",
        "6h",
        "1d",
        "3d",
        "28d",
        "30d",
    ]
    worst = assert_matches_truth(cache, events, rel=0.005)
    assert worst < 1e-3


def test_warm_cycles_stay_exact_and_fetch_only_new_steps() -> None:
    source = FunctionSource()
    slos = [make_slo("a"), make_slo("b")]
    cache = MultiResolutionCache(source, slos)
    at = T0 + 60  # one minute past the hour and past a 5m boundary
    cache.refresh(at)
    cold = source.calls[:]
    assert [(c.step, c.points) for c in cold] == [(60, 420), (300, 876), (3600, 721)]
    assert all(c.ids == ("api/a", "api/b") for c in cold)  # one batched call per tier
    assert cold[0].end == at and cold[2].end == T0

    source.calls.clear()
    cache.refresh(at + 60)
    # Only the finest tier advanced: the new minute plus the two newest known ones again.
    assert [(c.step, c.start, c.end) for c in source.calls] == [(60, at - 60, at + 60)]

    source.calls.clear()
    events = cache.refresh(T0 + 5 * 60)  # crosses a 5m boundary
    assert [(c.step, c.start, c.end) for c in source.calls] == [
        (60, at, T0 + 300),
        (300, T0 - 300, T0 + 300),
    ]
    assert_matches_truth(cache, events, rel=0.005)

    # An hour of one-minute cycles: ~one small call per cycle, never a long span.
    source.calls.clear()
    for minute in range(6, 66):
        events = cache.refresh(T0 + minute * 60)
    assert len(source.calls) == 60 + 12 + 1
    assert max(c.points for c in source.calls) == 3
    assert_matches_truth(cache, events, rel=0.005)


def test_warm_cost_does_not_grow_with_window_length() -> None:
    def warm_calls(period: str) -> list[tuple[int, int]]:
        source = FunctionSource()
        cache = MultiResolutionCache(source, [make_slo("a", period=period)])
        cache.refresh(T0)
        source.calls.clear()
        for minute in range(1, 121):
            cache.refresh(T0 + minute * 60)
        return [(c.step, c.points) for c in source.calls]

    assert warm_calls("90d") == warm_calls("7d") == warm_calls("30d")


def test_cold_start_chunks_long_spans() -> None:
    source = FunctionSource()
    tiers = (Tier(D("1m"), D("10d")), Tier(D("1h"), D("30d1h")))
    cache = MultiResolutionCache(source, [make_slo("a")], tiers, max_points=11_000)
    events = cache.refresh(T0)
    fine = [c for c in source.calls if c.step == 60]
    assert [c.points for c in fine] == [11_000, 14_400 - 11_000]
    assert fine[1].start == fine[0].end + 60 and fine[1].end == T0
    assert all(c.points <= 11_000 for c in source.calls)
    assert_matches_truth(cache, events, rel=0.005)


def test_memory_per_slo_at_a_30d_period_is_under_64_kib() -> None:
    slos = [make_slo(f"s{i}") for i in range(100)]
    cache = MultiResolutionCache(FunctionSource(), slos)
    per_slo = cache.nbytes / len(slos)
    assert per_slo <= 64 * 1024
    assert per_slo == (420 + 876 + 721) * (8 + 8 + 1)  # 34,289 bytes
    assert cache.tier_lengths == (420, 876, 721)


def test_longer_periods_grow_the_coarse_tier() -> None:
    cache = MultiResolutionCache(FunctionSource(), [make_slo("a", period="90d")])
    assert cache.tier_lengths == (420, 876, 90 * 24 + 1)


def test_late_newest_step_is_corrected_by_the_refetch() -> None:
    source = FunctionSource()
    slo = make_slo("a")
    cache = MultiResolutionCache(source, [slo])
    source.now = T0 - 300
    cache.refresh(T0 - 300)
    source.now = T0
    events = cache.refresh(T0)
    # Only the newest minute (fetched as it ended) is short; every older step was re-fetched
    # or read from a settled coarse step.
    b1, t1 = cumulative(slo.id, np.array([T0]))
    b0, t0 = cumulative(slo.id, np.array([T0 - 60]))
    newest_bad, newest_total = float(b1[0] - b0[0]), float(t1[0] - t0[0])
    for w, window in enumerate(events.windows):
        bad, total = fine_ground_truth(slo, T0, window)
        assert events.total[0, w] == pytest.approx(total - newest_total / 2, rel=1e-9), str(window)
        assert events.bad[0, w] == pytest.approx(bad - newest_bad / 2, rel=1e-9), str(window)


def test_failed_slo_is_reported_and_fetched_again_next_cycle() -> None:
    source = FunctionSource()
    slos = [make_slo("a"), make_slo("b")]
    cache = MultiResolutionCache(source, slos)
    cache.refresh(T0)
    source.failing = {"api/b": "bad_data: unknown function"}
    source.calls.clear()
    events = cache.refresh(T0 + 60)
    assert events.errors == {"api/b": "bad_data: unknown function"}
    source.failing = {}
    source.calls.clear()
    events = cache.refresh(T0 + 120)
    assert events.errors == {}
    # b is asked again from its older mark in its own call; a continues from its mark.
    assert [(c.ids, c.start, c.end) for c in source.calls] == [
        (("api/b",), T0 - 60, T0 + 120),
        (("api/a",), T0, T0 + 120),
    ]
    assert_matches_truth(cache, events, rel=0.005)


def test_unavailable_source_reports_errors_then_recovers() -> None:
    source = FunctionSource()
    slos = [make_slo("a"), make_slo("b")]
    evaluator = Evaluator(slos, source)
    evaluator.evaluate(T0)
    source.unavailable_for_step = 300  # the finest tier gets through, the 5m tier does not
    failed = evaluator.evaluate(T0 + 300)
    assert {r.status for r in failed} == {"error"}
    assert all("503" in (r.error or "") for r in failed)
    source.unavailable_for_step = None
    recovered = evaluator.evaluate(T0 + 360)
    assert {r.status for r in recovered} == {"ok"}
    events = evaluator.cache.refresh(T0 + 360)
    assert_matches_truth(evaluator.cache, events, rel=0.005)


def test_slo_set_changes_between_cycles() -> None:
    source = FunctionSource()
    a, b, c = make_slo("a"), make_slo("b"), make_slo("c", period="28d")
    cache = MultiResolutionCache(source, [a, b])
    cache.refresh(T0)
    source.calls.clear()
    cache.set_slos([b, c])
    events = cache.refresh(T0)
    # Only the new SLO is filled; b keeps its steps; a is gone.
    assert [(x.ids, x.step, x.points) for x in source.calls] == [
        (("api/c",), 60, 420),
        (("api/c",), 300, 876),
        (("api/c",), 3600, 721),
    ]
    assert events.slo_ids == ("api/b", "api/c")
    assert D("28d") in events.windows
    assert_matches_truth(cache, events, rel=0.005)
    assert cache.nbytes == 2 * (420 + 876 + 721) * 17


def test_time_going_backwards_starts_over() -> None:
    source = FunctionSource()
    cache = MultiResolutionCache(source, [make_slo("a")])
    cache.refresh(T0)
    source.calls.clear()
    events = cache.refresh(T0 - DAY)
    assert [c.points for c in source.calls] == [420, 876, 721]
    assert_matches_truth(cache, events, rel=0.005)


def test_tiers_are_validated() -> None:
    with pytest.raises(ValueError, match="multiple of the previous"):
        MultiResolutionCache(
            FunctionSource(), [make_slo("a")], (Tier(D("2m"), D("7h")), Tier(D("5m"), D("3d")))
        )
    with pytest.raises(ValueError, match="at least two steps of the next tier"):
        MultiResolutionCache(
            FunctionSource(), [make_slo("a")], (Tier(D("1m"), D("1h")), Tier(D("1h"), D("31d")))
        )
    assert DEFAULT_TIERS[0].step == D("1m")


def test_recent_window_is_the_newest_minute_and_evaluations_carry_it() -> None:
    slos = [make_slo("a"), make_slo("b")]
    source = FunctionSource()
    cache = MultiResolutionCache(source, slos)
    events = cache.refresh(T0 + 37 * 60 + 25)
    assert events.recent_window == D("1m")
    for s, slo in enumerate(slos):
        bad, total = fine_ground_truth(slo, int(events.at), D("1m"))
        assert events.recent_total[s] == pytest.approx(total, rel=1e-12)
        assert events.recent_bad[s] == pytest.approx(bad, rel=1e-12)
        assert "1m" not in [str(w) for w in events.windows]  # not a policy window
    # Through the Evaluator (the daemon's path): a top-level `recent`, not a window key.
    source.failing = {"api/b": "bad_data: unknown function"}
    a, b = Evaluator(slos, source).evaluate(T0 + 37 * 60 + 25)
    bad, total = fine_ground_truth(slos[0], int(a.evaluated_at), D("1m"))
    assert a.recent_window == D("1m")
    assert a.recent.error_ratio == pytest.approx(bad / total, rel=1e-12)
    body = a.to_json()
    assert body["recent"]["window"] == "1m"
    assert body["recent"]["events"] == {
        "bad": pytest.approx(bad, rel=1e-12),
        "total": pytest.approx(total, rel=1e-12),
    }
    assert body["recent"]["burn_rate"] == pytest.approx(bad / total / 0.001, rel=1e-9)
    assert "1m" not in body["error_ratio"] and "1m" not in body["events"]
    # A failed SLO reports no recent numbers either — never a stale or zero ratio.
    assert b.status == "error"
    assert b.to_json()["recent"] == {
        "window": "1m",
        "error_ratio": None,
        "burn_rate": None,
        "events": None,
    }


def test_recent_window_on_a_coarser_finest_tier_is_its_newest_step() -> None:
    tiers = (Tier(D("5m"), D("3d1h")), Tier(D("1h"), D("30d1h")))
    slo = make_slo("a")
    events = MultiResolutionCache(FunctionSource(), [slo], tiers).refresh(T0 + 600)
    assert events.recent_window == D("5m")
    bad, total = fine_ground_truth(slo, int(events.at), D("5m"))
    assert events.recent_total[0] == pytest.approx(total, rel=1e-6)
    assert events.recent_bad[0] == pytest.approx(bad, rel=1e-6)
