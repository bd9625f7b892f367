"""Every-step evaluation: detection times from the SRE Workbook, and agreement with the
single-instant path the daemon uses."""

from __future__ import annotations

import numpy as np
import pytest
from harness.specs import events_slo

from engine.evaluation.burn import STATUS_CODE, evaluate_window_events
from engine.evaluation.cache import WindowEvents
from engine.evaluation.series import evaluate_series, iter_series, window_steps
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO

D = Duration.parse
START = 1_700_000_000.0


def incident_rates(error_ratio: float, onset: int, recovery: int | None, steps: int) -> StepRates:
    """100 requests/s at 1 s steps; `error_ratio` of them fail from step `onset` on."""
    times = START + np.arange(steps, dtype=float)
    total = np.full((1, steps), 100.0)
    bad = np.zeros((1, steps))
    bad[0, onset:recovery] = 100.0 * error_ratio
    return StepRates(D("1s"), times, bad, total, {})


def first_firing(result, rule_name: str) -> int | None:
    r = [rule.name for rule in result.rules[0]].index(rule_name)
    hits = np.flatnonzero(result.firing[0, r])
    return int(hits[0]) if hits.size else None


ONSET = 7 * 3600  # 7 h of clean traffic first, so every page window starts clean


def test_total_outage_pages_after_52_seconds_and_clears_5_minutes_after_recovery() -> None:
    recovery = ONSET + 600
    result = evaluate_series([events_slo()], incident_rates(1.0, ONSET, recovery, recovery + 900))
    # 1h at 14.4 × 0.1 %: d/3600 > 0.0144 → d > 51.84 s; the step ending 52 s in fires.
    assert first_firing(result, "page-1h-5m") - ONSET + 1 == 52
    r = [rule.name for rule in result.rules[0]].index("page-1h-5m")
    last = int(np.flatnonzero(result.firing[0, r])[-1])
    # Clears once the 5m window's bad share falls to 1.44 %: 295.68 s after recovery.
    assert last - recovery + 1 == 295
    assert result.status_at(0, ONSET + 100) == "page"
    assert result.status_at(0, ONSET - 1) == "ok"


def test_two_percent_errors_page_on_the_1h_rule_after_43_minutes_and_6h_after_108() -> None:
    # REFERENCE.md says the 1h rule "never" fires at 2 %; by its own detection-time formula
    # (budget ÷ error ratio × window × factor = 0.001/0.02 × 1h × 14.4) it fires at 43.2 min.
    result = evaluate_series([events_slo()], incident_rates(0.02, ONSET, None, ONSET + 7000))
    assert first_firing(result, "page-1h-5m") - ONSET + 1 == 2593  # 43.2 min = 2592 s, strict >
    assert first_firing(result, "page-6h-30m") - ONSET + 1 == 6481  # 108 min


def test_one_percent_errors_never_page_on_the_1h_rule_and_page_6h_after_216_minutes() -> None:
    result = evaluate_series([events_slo()], incident_rates(0.01, ONSET, None, ONSET + 13_500))
    assert first_firing(result, "page-1h-5m") is None  # 10× < 14.4×
    assert first_firing(result, "page-6h-30m") - ONSET + 1 == 12_961  # 216 min


def test_window_not_a_multiple_of_the_step_is_rejected() -> None:
    with pytest.raises(ValueError, match="whole number of 7m steps"):
        window_steps([D("1h")], D("7m"))


def random_rates(slos: list[SLO], steps: int, seed: int) -> StepRates:
    rng = np.random.default_rng(seed)
    times = START + 60.0 * np.arange(steps)
    total = rng.choice([0.05, 2.0, 50.0], size=(len(slos), 1)) * rng.uniform(
        0.5, 1.5, (len(slos), steps)
    )
    ratio = np.where(rng.random((len(slos), steps)) < 0.02, 0.5, 0.0005)
    bad = total * ratio
    total[rng.random(total.shape) < 0.03] = np.nan
    bad[rng.random(bad.shape) < 0.2] = np.nan  # no error series yet: counts as 0 bad
    return StepRates(D("1m"), times, bad, total, {})


def test_every_step_path_agrees_with_the_single_instant_path() -> None:
    slos = [
        events_slo("a"),
        events_slo("b", objective="99"),
        events_slo("c", objective="99.5", period="7d"),
        events_slo("d", alerting={"low_traffic": {"enabled": False}}),
    ]
    rates = random_rates(slos, 3000, seed=5)
    result = evaluate_series(slos, rates)
    counts_bad = np.where(np.isnan(rates.bad), 0.0, rates.bad) * 60
    counts_bad[np.isnan(rates.total)] = np.nan
    counts_total = rates.total * 60
    steps = window_steps(result.windows, rates.step)
    for t in (0, 59, 300, 1500, 2999):
        bad = np.array(
            [[np.nansum(counts_bad[s, max(0, t - k + 1) : t + 1]) for k in steps] for s in range(4)]
        )
        total = np.array(
            [
                [np.nansum(counts_total[s, max(0, t - k + 1) : t + 1]) for k in steps]
                for s in range(4)
            ]
        )
        events = WindowEvents(
            at=float(rates.times[t]),
            windows=result.windows,
            bad=bad,
            total=total,
            errors={},
            slo_ids=tuple(s.id for s in slos),
        )
        instant = evaluate_window_events(slos, events)
        for s, evaluation in enumerate(instant):
            assert result.status_at(s, t) == evaluation.status, (s, t)
            for w, window in enumerate(result.windows):
                value = evaluation.windows.get(window)
                if value is not None and value.error_ratio is not None:
                    assert result.error_ratio[s, w, t] == pytest.approx(value.error_ratio, rel=1e-9)
            expected_budget = evaluation.error_budget_remaining
            assert result.budget_remaining[s, t] == pytest.approx(expected_budget, rel=1e-9)
            fired = {a.long_window for a in evaluation.alerts}
            series_fired = {
                rule.long_window for r, rule in enumerate(result.rules[s]) if result.fire[s, r, t]
            }
            assert fired == series_fired
    assert (result.status == STATUS_CODE["page"]).any()


def test_chunks_equal_one_pass() -> None:
    slos = [
        events_slo(f"s{i}", objective=o)
        for i, o in enumerate(["99.9", "99", "99.95", "95", "99.9"])
    ]
    rates = random_rates(slos, 800, seed=9)
    whole = evaluate_series(slos, rates)
    seen = 0
    for rows, part in iter_series(slos, rates, chunk=2):
        seen += len(part.slo_ids)
        np.testing.assert_array_equal(part.fire, whole.fire[rows])
        np.testing.assert_array_equal(part.held, whole.held[rows])
        np.testing.assert_array_equal(part.status, whole.status[rows])
        np.testing.assert_allclose(part.burn_rate, whole.burn_rate[rows], equal_nan=True)
    assert seen == len(slos)


def test_failed_and_silent_slos_never_alert() -> None:
    slos = [events_slo("failed"), events_slo("silent"), events_slo("burning")]
    steps = 200
    times = START + 60.0 * np.arange(steps)
    total = np.full((3, steps), 10.0)
    bad = np.full((3, steps), 10.0)  # everything fails
    total[0] = bad[0] = np.nan
    total[1] = bad[1] = np.nan
    rates = StepRates(D("1m"), times, bad, total, {"api/failed": "bad_data: parse error"})
    result = evaluate_series(slos, rates)
    assert not result.fire[:2].any()
    assert {result.status_at(0, t) for t in range(steps)} == {"error"}
    assert {result.status_at(1, t) for t in range(steps)} == {"no_data"}
    assert result.status_at(2, steps - 1) == "page"
    assert result.errors == {"api/failed": "bad_data: parse error"}


def test_recent_window_is_the_newest_minute_at_every_step() -> None:
    rates = incident_rates(1.0, ONSET, None, ONSET + 400)
    result = evaluate_series([events_slo()], rates)
    assert result.recent_window == D("1m")  # 60 one-second steps
    # Steps are (t − 1 s, t]: the step at ONSET + k − 1 ends k seconds into the outage.
    for seconds in (1, 30, 52, 60, 61, 300):
        t = ONSET + seconds - 1
        bad = 100.0 * min(seconds, 60)
        assert result.recent_total[0, t] == pytest.approx(6000.0)
        assert result.recent_bad[0, t] == pytest.approx(bad)
    # The first page (52 s in): the newest minute is 52/60 bad, the 5m window 52/300.
    page = first_firing(result, "page-1h-5m")
    five = result.windows.index(D("5m"))
    assert result.recent_bad[0, page] / result.recent_total[0, page] == pytest.approx(52 / 60)
    assert result.error_ratio[0, five, page] == pytest.approx(52 / 300)


def test_recent_window_on_coarse_steps_is_the_newest_step() -> None:
    slos = [events_slo("a")]
    rates = random_rates(slos, 500, seed=3)
    coarse = StepRates(
        D("5m"), rates.times[4::5], rates.bad[:, 4::5], rates.total[:, 4::5], rates.errors
    )
    result = evaluate_series(slos, coarse)
    assert result.recent_window == D("5m")
    five = result.windows.index(D("5m"))
    np.testing.assert_array_equal(result.recent_total[0], result.total[0, five])
    np.testing.assert_array_equal(result.recent_bad[0], result.bad[0, five])
