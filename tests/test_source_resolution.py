"""The finest evaluation step follows the scrape interval (engine.evaluation.resolution), and the
cache flags SLOs whose fine steps are empty while coarse ones have data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from engine.evaluation.cache import DEFAULT_TIERS, Tier
from engine.evaluation.evaluator import Evaluator, sparse_fine_steps_message
from engine.evaluation.resolution import (
    ResolutionError,
    check_step,
    fine_step_for,
    minimum_step,
    resolution_for,
    tiers_for,
)
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

D = Duration.parse
HOUR = 3600
T0 = (1_700_000_000 // HOUR) * HOUR


def slos_with(*rule_sets: list[dict[str, Any]] | None, period: str = "30d") -> list[SLO]:
    bodies = []
    for i, rules in enumerate(rule_sets):
        body: dict[str, Any] = {
            "name": f"s{i}",
            "objective": 99.9,
            "period": period,
            "sli": {
                "events": {"bad": "sum(rate(e[{{window}}]))", "total": "sum(rate(t[{{window}}]))"}
            },
        }
        if rules is not None:
            body["alerting"] = {"burn_rates": rules}
        bodies.append(body)
    return ServiceSpec.model_validate(
        {"apiVersion": "slo-engine/v1", "service": "api", "slos": bodies}
    ).slo_records()


def page(long: str, short: str) -> dict[str, Any]:
    return {"severity": "page", "long_window": long, "short_window": short, "factor": 14.4}


DEFAULT = slos_with(None)


@pytest.mark.parametrize(
    ("scrape", "fine", "tiers"),
    [
        ("1s", "1m", ("1m", "5m", "1h")),
        ("15s", "1m", ("1m", "5m", "1h")),
        ("30s", "1m", ("1m", "5m", "1h")),  # exactly two samples per 1m step
        ("45s", "1m40s", ("1m40s", "5m", "1h")),
        ("60s", "2m30s", ("2m30s", "5m", "1h")),
        ("75s", "2m30s", ("2m30s", "5m", "1h")),
        ("90s", "5m", ("5m", "1h")),  # fine and middle tiers merge
        ("2m", "5m", ("5m", "1h")),
        ("150s", "5m", ("5m", "1h")),
    ],
)
def test_fine_step_for_the_default_policy(scrape: str, fine: str, tiers: tuple[str, ...]) -> None:
    resolution = resolution_for(DEFAULT, D(scrape))
    assert resolution.fine_step == D(fine)
    assert tuple(str(t.step) for t in resolution.tiers) == tiers
    # Every tier step holds at least two scrapes, and the fine step divides every window.
    assert all(t.step >= minimum_step(D(scrape)) for t in resolution.tiers)
    for window in (D(w) for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")):
        assert window.ms % resolution.fine_step.ms == 0


def test_default_scrape_interval_keeps_the_historical_tiers() -> None:
    assert resolution_for(DEFAULT).tiers == DEFAULT_TIERS


def test_merged_tiers_keep_the_longer_retention() -> None:
    (fine, coarse) = tiers_for(D("5m"))
    assert fine == Tier(D("5m"), D("3d1h"))
    assert coarse == DEFAULT_TIERS[2]


def test_a_fine_step_off_the_5m_grid_gets_a_least_common_multiple_middle_tier() -> None:
    # Page-only policy with 4m/8m short windows: 60 s scrapes → 2m steps, then 10m, 1h.
    slos = slos_with([page("1h", "4m"), page("6h", "8m")])
    resolution = resolution_for(slos, D("60s"))
    assert [str(t.step) for t in resolution.tiers] == ["2m", "10m", "1h"]


def test_custom_short_windows_allow_coarse_scrapes() -> None:
    rules = [
        page("1h", "10m"),
        page("6h", "30m"),
        {"severity": "ticket", "long_window": "1d", "short_window": "2h", "factor": 3},
    ]
    assert fine_step_for(slos_with(rules), D("5m")) == D("10m")


def test_a_5m_short_window_with_5m_scrapes_is_a_clear_error() -> None:
    slos = slos_with(None, [page("1h", "10m")])
    with pytest.raises(ResolutionError) as info:
        fine_step_for(slos, D("5m"))
    message = str(info.value)
    assert "5m scrape interval" in message
    assert "at least 10m" in message
    # Names the SLO with the 5m window, not the one that already fits.
    assert "api/s0: window 5m is not a whole number of 10m steps" in message
    assert "api/s1" not in message
    assert "short window of at least 10m" in message


def test_scrapes_too_rare_for_the_hour_window_are_an_error() -> None:
    with pytest.raises(ResolutionError, match="scrape at least every 30m"):
        fine_step_for(DEFAULT, D("31m"))


def test_windows_without_a_common_step_name_the_slo() -> None:
    # 60 s scrapes need ≥ 2m steps: 7m shares none with an hour, so s1 is named.
    slos = slos_with(None, [page("1h", "7m")])
    with pytest.raises(ResolutionError, match="api/s1: window 7m"):
        fine_step_for(slos, D("60s"))


@pytest.mark.parametrize(
    ("step", "scrape", "error"),
    [
        ("1m", "15s", None),
        ("30s", "15s", None),  # a hand-picked finer step is fine when it holds 2 scrapes
        ("2m30s", "60s", None),
        ("5m", "60s", None),
        ("1m", "60s", "shorter than 2 × the scrape interval"),
        ("1m", "60s", "--step 2m30s"),
        ("2m", "60s", "window 5m is not a whole number of 2m steps"),
    ],
)
def test_backtest_step_rule(step: str, scrape: str, error: str | None) -> None:
    if error is None:
        check_step(D(step), D(scrape), DEFAULT)
    else:
        with pytest.raises(ResolutionError, match=error.replace("×", ".").replace("-", ".")):
            check_step(D(step), D(scrape), DEFAULT)


# ------------------------------------------------------------------ the evaluator's grid


class SteadySource:
    """1 % errors at 100 req/s, exact per step; `sparse_below` makes steps shorter than it
    empty (what rate() returns over a range holding one sample)."""

    def __init__(self, sparse_below: int = 0, dead: Sequence[str] = ()) -> None:
        self.sparse_below = sparse_below
        self.dead = set(dead)
        self.steps: set[int] = set()

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        s = int(step.seconds)
        self.steps.add(s)
        times = np.arange(start, end + s / 2, s)
        total = np.full((len(slos), times.size), 100.0)
        bad = np.full((len(slos), times.size), 1.0)
        for row, slo in enumerate(slos):
            if s < self.sparse_below or slo.id in self.dead:
                total[row] = bad[row] = np.nan
        return StepRates(step, times, bad, total, {})


def test_evaluator_at_60s_scrapes_evaluates_on_the_2m30s_grid() -> None:
    source = SteadySource()
    evaluator = Evaluator(DEFAULT, source, scrape_interval=D("60s"))
    (result,) = evaluator.evaluate(T0 + 7 * 60 + 31)
    assert result.evaluated_at == T0 + 7 * 60 + 30  # floored to 150 s
    assert source.steps == {150, 300, 3600}
    for window, value in result.windows.items():
        assert value.total == pytest.approx(100.0 * window.seconds, rel=1e-9), str(window)
        assert value.error_ratio == pytest.approx(0.01)
    assert result.recent_window == D("2m30s")
    assert evaluator.sparse_fine_steps() == {}


def test_sparse_fine_steps_flags_blind_short_windows_and_keeps_no_data() -> None:
    # What 60 s scrapes do to a 1m grid: 1m steps empty, 5m and 1h steps fine.
    evaluator = Evaluator(slos_with(None, None), SteadySource(sparse_below=300, dead=["api/s1"]))
    (blind, dead) = evaluator.evaluate(T0 + 3 * HOUR)
    assert blind.windows[D("5m")].error_ratio is None  # no data, never 0
    assert blind.windows[D("6h")].error_ratio is None
    assert blind.windows[D("1d")].error_ratio == pytest.approx(0.01)
    sparse = evaluator.sparse_fine_steps()
    # The dead SLO has no data anywhere: "no data", not a sampling problem.
    assert sparse == {"api/s0": 0.0}
    assert dead.status == "no_data"
    message = sparse_fine_steps_message("api/s0", 0.0, evaluator.resolution, "scrape_interval")
    assert "1m evaluation steps" in message
    assert "less often than every 30s" in message
    assert "Set scrape_interval" in message


def test_patchy_fine_steps_are_measured_as_a_share() -> None:
    class Patchy(SteadySource):
        def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float):
            rates = super().fetch(slos, step, start, end)
            if step.seconds == 60:  # every third minute has one sample (45 s scrapes)
                holes = (rates.times // 60) % 3 != 0
                rates.total[:, holes] = np.nan
            return rates

    evaluator = Evaluator(DEFAULT, Patchy())
    evaluator.evaluate(T0 + 3 * HOUR)
    (coverage,) = evaluator.cache.fine_step_coverage()
    assert coverage == pytest.approx(1 / 3, abs=0.01)
    assert set(evaluator.sparse_fine_steps()) == {"api/s0"}


def test_set_slos_switches_grid_or_refuses_and_keeps_the_old_set() -> None:
    source = SteadySource()
    evaluator = Evaluator(DEFAULT, source, scrape_interval=D("2m"))
    assert evaluator.resolution.fine_step == D("5m")
    evaluator.evaluate(T0 + HOUR)
    four = slos_with([page("1h", "4m"), page("6h", "8m")])
    evaluator.set_slos(four)
    assert [str(t.step) for t in evaluator.resolution.tiers] == ["4m", "20m", "1h"]
    (result,) = evaluator.evaluate(T0 + HOUR)
    assert result.windows[D("4m")].error_ratio == pytest.approx(0.01)
    assert 240 in source.steps
    ten = slos_with([page("1h", "10m"), page("6h", "30m")])
    with pytest.raises(ResolutionError):
        Evaluator(DEFAULT, source, scrape_interval=D("5m"))
    evaluator = Evaluator(ten, source, scrape_interval=D("5m"))
    with pytest.raises(ResolutionError, match="window 5m"):
        evaluator.set_slos(DEFAULT)
    assert evaluator.slos == tuple(ten)
    assert evaluator.resolution.fine_step == D("10m")
