"""Window coverage, the arithmetic: covered seconds over window length across the cache's
tiers (1m, 5m, 1h, the oldest coarse step prorated), NaN for no data, the partial label,
and the JSON and status-page contracts. A scripted in-memory source whose series exists only
inside given spans gives the exact answers; tests/test_window_coverage.py runs the same on a
real Prometheus."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
from harness.specs import events_slo

from engine.api.status_page import slo_row
from engine.evaluation.burn import evaluate_window_events
from engine.evaluation.cache import MultiResolutionCache
from engine.evaluation.coverage import window_coverage
from engine.evaluation.instant import COVERAGE_SAMPLES, coverage_samples
from engine.evaluation.result import PARTIAL_BELOW, SLOEvaluation, WindowValue, is_partial
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO

D = Duration.parse
MINUTE, HOUR, DAY = 60, 3600, 86400
T0 = (1_700_000_000 // DAY) * DAY  # midnight: on every tier's grid


class SpanSource:
    """10 events/s, 1 % bad, in steps ending inside (start, end] of an SLO's spans; no data
    (NaN) elsewhere — a series that did not exist yet, or a scrape gap."""

    def __init__(self, spans: dict[str, list[tuple[float, float]]]) -> None:
        self.spans = spans

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        s = step.seconds
        times = np.arange(start, end + s / 2, s)
        total = np.full((len(slos), times.size), np.nan)
        for row, slo in enumerate(slos):
            for lo, hi in self.spans.get(slo.id, []):
                # A step has data when it lies wholly inside the span (rate() needs its
                # scrapes); a step the span only touches reads as missing.
                total[row, (times - s >= lo) & (times <= hi)] = 10.0
        return StepRates(step, times, total * 0.01, total)


def evaluate(spans: dict[str, list[tuple[float, float]]], *slos: SLO) -> dict[str, SLOEvaluation]:
    cache = MultiResolutionCache(SpanSource(spans), slos)
    return {e.slo.name: e for e in evaluate_window_events(slos, cache.refresh(T0))}


def coverage(result: SLOEvaluation) -> dict[str, float | None]:
    return {str(w): v.coverage for w, v in sorted(result.windows.items())}


def test_window_coverage_divides_clips_and_keeps_no_data_unjudged() -> None:
    windows = (D("5m"), D("1h"))
    covered = np.array([[300.0, 1800.0], [300.0, 0.0], [310.0, np.nan]])
    total = np.array([[5.0, 10.0], [np.nan, np.nan], [1.0, 2.0]])
    got = window_coverage(covered, windows, total)
    assert got[0].tolist() == [1.0, 0.5]
    assert np.isnan(got[1]).all()  # no events at all: not judged, not 0
    assert got[2, 0] == 1.0 and np.isnan(got[2, 1])  # rounding past the window: clipped
    with pytest.raises(ValueError, match="3 coverage columns for 2 windows"):
        window_coverage(np.zeros((1, 3)), windows, np.zeros((1, 3)))


def test_a_series_starting_inside_a_window_covers_its_share_at_every_tier() -> None:
    slo = events_slo("young")
    results = evaluate({slo.id: [(T0 - 36 * HOUR, T0)]}, slo)
    got = coverage(results["young"])
    # 1m steps (≤ 6h), the 5m tier (1d, 3d) and the 1h tier (30d) give the exact share.
    assert got["5m"] == got["6h"] == got["1d"] == 1.0
    assert got["3d"] == pytest.approx(36 / 72)
    assert got["30d"] == pytest.approx(36 / 720)
    assert results["young"].budget_partial
    assert results["young"].budget_coverage == got["30d"]


def test_a_gap_counts_its_length_only() -> None:
    slo = events_slo("gap")
    spans = [(T0 - 40 * DAY, T0 - 40 * MINUTE), (T0 - 30 * MINUTE, T0)]
    got = coverage(evaluate({slo.id: spans}, slo)["gap"])
    assert got["5m"] == got["30m"] == 1.0
    assert got["1h"] == pytest.approx(50 / 60)
    assert got["1d"] == pytest.approx(1 - 10 / 1440)
    assert got["30d"] == pytest.approx(1 - 10 / (30 * 1440), abs=1e-3)
    assert not evaluate({slo.id: spans}, slo)["gap"].budget_partial  # 10 min of 30 d


def test_the_oldest_coarse_step_is_prorated() -> None:
    """A 30d window ending at 00:30 starts inside an hour step: half of that step counts."""
    slo = events_slo("full")
    at = T0 + 30 * MINUTE
    cache = MultiResolutionCache(SpanSource({slo.id: [(T0 - 40 * DAY, at)]}), [slo])
    (result,) = evaluate_window_events([slo], cache.refresh(at))
    assert coverage(result)["30d"] == pytest.approx(1.0)
    # And where the prorated step holds no data, exactly its covered half is missing.
    start = at - 30 * DAY + 30 * MINUTE  # the step (start − 1h, start] is absent
    cache = MultiResolutionCache(SpanSource({slo.id: [(start, at)]}), [slo])
    (result,) = evaluate_window_events([slo], cache.refresh(at))
    assert coverage(result)["30d"] == pytest.approx(1 - 0.5 * HOUR / (30 * DAY))


def test_no_series_is_null_everywhere_and_never_partial() -> None:
    slo = events_slo("ghost")
    result = evaluate({}, slo)["ghost"]
    assert result.status == "no_data"
    assert set(coverage(result).values()) == {None}
    body = result.to_json()
    assert body["coverage"] == dict.fromkeys(body["error_ratio"])
    assert body["budget"] == {"remaining": None, "partial": False, "coverage": None}


def test_json_contract() -> None:
    slo = events_slo("young", period="28d")
    result = evaluate({slo.id: [(T0 - 3 * DAY, T0)]}, slo)["young"]
    body = result.to_json()
    assert list(body["coverage"]) == list(body["error_ratio"])
    assert body["coverage"]["1h"] == 1.0
    assert body["coverage"]["28d"] == pytest.approx(3 / 28)
    assert body["budget"] == {
        "remaining": body["error_budget_remaining"],
        "partial": True,
        "coverage": pytest.approx(3 / 28),
    }
    assert body["error_budget_remaining"] == pytest.approx(1 - 0.01 / 0.001)


def test_partial_threshold() -> None:
    assert not is_partial(None) and not is_partial(1.0) and not is_partial(PARTIAL_BELOW)
    assert is_partial(PARTIAL_BELOW - 1e-6) and is_partial(0.0)


def test_status_page_row_labels_a_partial_budget_only() -> None:
    slo = events_slo("young", period="28d")
    period = slo.period

    def row(coverage: float | None) -> str | None:
        value = WindowValue(1.0, 1000.0, 0.001, 1.0, coverage)
        ev = SLOEvaluation(slo, T0, "ok", {period: value}, error_budget_remaining=0.5)
        return slo_row(ev).partial_text

    assert row(3 / 28) == "partial: measured over 10.7 % of the 28d period"
    assert row(0.995) is None and row(1.0) is None and row(None) is None


def test_one_shot_sampling_steps() -> None:
    """At most 120 instants per window, on the fine grid, dividing the window evenly."""
    windows = [D(w) for w in ("5m", "1h", "2h", "6h", "1d", "3d", "28d", "30d")]
    got = coverage_samples(windows, D("1m"))
    assert [str(s) for s in got] == ["1m", "1m", "1m", "3m", "12m", "36m", "5h36m", "6h"]
    coarse = coverage_samples(windows, D("2m30s"))
    assert [str(s) for s in coarse][:4] == ["2m30s", "2m30s", "2m30s", "5m"]
    for window, step in zip(windows, coarse, strict=True):
        assert window.ms % step.ms == 0 and step.ms % D("2m30s").ms == 0
        assert window.ms // step.ms <= COVERAGE_SAMPLES


def test_status_page_row_names_the_partial_windows() -> None:
    slo = events_slo("young", period="28d")

    def value(coverage: float | None) -> WindowValue:
        return WindowValue(1.0, 1000.0, 0.001, 1.0, coverage)

    windows = {D("5m"): value(1.0), D("1h"): value(0.5), D("6h"): value(1 / 12)}
    ev = SLOEvaluation(slo, T0, "ok", {**windows, slo.period: value(0.01)})
    assert slo_row(ev).coverage_text == "data for 50 % of the last 1h, 8.3 % of the last 6h"
    full = SLOEvaluation(slo, T0, "ok", {D("1h"): value(1.0), D("6h"): value(None)})
    assert slo_row(full).coverage_text is None


def test_replicas_publish_coverage_and_read_old_states_as_not_judged() -> None:
    """A shard's published evaluation (engine.daemon.fleet) keeps each window's coverage,
    so the leader's API shows what the shard measured; a state published before coverage
    existed (four numbers per window) reads back as not judged."""
    from engine.daemon.fleet import evaluation_from, evaluation_json
    from engine.store.coordination import PublishedState

    slo = events_slo("young", period="28d")
    result = evaluate({slo.id: [(T0 - 3 * DAY, T0)]}, slo)["young"]
    state = PublishedState(slo.id, "r1", 0.0, T0, "ok", evaluation_json(result), "[]")
    back = evaluation_from(slo, state)
    assert back.windows == result.windows
    assert back.budget_partial and back.budget_coverage == pytest.approx(3 / 28)
    data = json.loads(evaluation_json(result))
    data["w"] = [window[:5] for window in data["w"]]  # name + bad, total, ratio, burn
    old_state = PublishedState(slo.id, "r1", 0.0, T0, "ok", json.dumps(data), "[]")
    assert evaluation_from(slo, old_state).windows[D("1h")].coverage is None


def test_windows_are_cut_into_segments_at_the_next_shorter_window() -> None:
    from engine.source.window_coverage import _segments, _wrapper

    fine = D("2m30s")
    windows = [D(w) for w in ("1d", "5m", "30d", "1h", "6h", "1h")]  # any order, repeats
    segments, last = _segments(windows, coverage_samples(windows, fine), fine)
    assert [(str(s.offset), str(s.length), str(s.step)) for s in segments] == [
        ("0s", "5m", "2m30s"),
        ("5m", "55m", "2m30s"),
        ("1h", "5h", "5m"),
        ("6h", "18h", "15m"),
        ("1d", "29d", "6h"),
    ]
    assert last == [3, 0, 4, 1, 2, 1]
    assert "[17h59m59s999ms:15m] offset 6h)" in _wrapper(segments[3])("x")
    assert _wrapper(segments[0])("x").endswith("[4m59s999ms:2m30s])")


def test_a_segment_is_never_sampled_coarser_than_its_window() -> None:
    from engine.source.window_coverage import _segments

    fine = D("1m")
    for names in [("25m", "1d"), ("7m", "13h"), ("1h", "1d", "7d"), ("59m", "1d", "30d")]:
        windows = [D(w) for w in names]
        steps = coverage_samples(windows, fine)
        segments, last = _segments(windows, steps, fine)
        for window, step, index in zip(windows, steps, last, strict=True):
            segment = segments[index]
            assert segment.offset.ms + segment.length.ms == window.ms
            assert segment.length.ms % segment.step.ms == 0  # whole instants, exactly
            assert segment.step.ms <= step.ms
    # 1d − 25m = 1415m = 5 × 283m: the 1d window's 12m does not tile it, 5m does.
    segments, _ = _segments([D("25m"), D("1d")], coverage_samples([D("25m"), D("1d")], fine), fine)
    assert str(segments[1].step) == "5m"
