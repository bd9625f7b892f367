"""One evaluation instant: statuses, precedence, held alerts and the JSON contract."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
from harness.specs import events_slo

from engine.evaluation.burn import STATUSES, evaluate_window_events, status_codes
from engine.evaluation.cache import WindowEvents
from engine.evaluation.decisions import evaluation_windows
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.policy import policy_for
from engine.evaluation.result import WindowValue
from engine.evaluation.source import SourceUnavailable, StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO

D = Duration.parse
AT = 1_700_000_040.0


def events_for(
    slos: Sequence[SLO], ratios: list[dict[str, float] | None], total: float = 1e6, errors=None
):
    """Window sums where each SLO has the given error ratio per window (default 0)."""
    windows = evaluation_windows([policy_for(s) for s in slos])
    bad = np.full((len(slos), len(windows)), np.nan)
    tot = np.full((len(slos), len(windows)), np.nan)
    for s, ratio in enumerate(ratios):
        if ratio is None:
            continue
        for w, window in enumerate(windows):
            tot[s, w] = total
            bad[s, w] = total * ratio.get(str(window), 0.0)
    return WindowEvents(AT, windows, bad, tot, errors or {}, tuple(s.id for s in slos))


def test_status_of_each_kind() -> None:
    slos = [events_slo(n) for n in ("ok", "ticket", "page", "exhausted", "no-data", "failed")]
    ratios = [
        {},
        {"1d": 0.004, "2h": 0.004},  # 4× over a day: ticket
        {"1h": 0.02, "5m": 0.02},  # 20×: page
        {"30d": 0.0011},  # period overspent, nothing burning now
        None,
        {"1h": 0.5, "5m": 0.5},
    ]
    events = events_for(slos, ratios, errors={"api/failed": "query failed: 422 many-to-many"})
    results = evaluate_window_events(slos, events)
    assert [r.status for r in results] == ["ok", "ticket", "page", "exhausted", "no_data", "error"]
    failed = results[-1]
    assert failed.error == "query failed: 422 many-to-many"
    assert failed.alerts == () and failed.error_budget_remaining is None
    assert all(v.error_ratio is None for v in failed.windows.values())
    assert results[3].error_budget_remaining == pytest.approx(-0.1)
    assert results[0].evaluated_at == AT


def test_precedence() -> None:
    t, f = np.array(True), np.array(False)
    order = [
        ((t, f, t, t, t), "error"),
        ((f, f, t, t, t), "no_data"),
        ((f, t, t, t, t), "page"),
        ((f, t, f, t, t), "exhausted"),
        ((f, t, f, f, t), "ticket"),
        ((f, t, f, f, f), "ok"),
    ]
    for flags, expected in order:
        assert STATUSES[int(status_codes(*flags))] == expected


def test_windows_are_the_policy_windows_plus_period() -> None:
    slos = [events_slo("a"), events_slo("b", period="28d")]
    result = evaluate_window_events(slos, events_for(slos, [{}, {}]))
    expected = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    assert [str(w) for w in sorted(result[0].windows)] == [*expected, "30d"]
    assert [str(w) for w in sorted(result[1].windows)] == [*expected, "28d"]
    body = result[1].to_json()
    assert list(body["error_ratio"]) == [*expected, "28d"]
    assert body["events"]["28d"] == {"bad": 0.0, "total": 1e6}


def test_held_alerts_are_listed_but_do_not_page() -> None:
    slos = [events_slo("quiet")]
    events = events_for(slos, [{"1h": 0.1, "5m": 0.1, "6h": 0.1, "30m": 0.1}], total=10)
    (result,) = evaluate_window_events(slos, events)
    assert result.status == "ok"
    held = [a for a in result.alerts if a.held == "low_traffic"]
    assert {str(a.long_window) for a in held} == {"1h", "6h"}
    assert held[0].held_reason.startswith("low traffic: 1 bad of 10 events in 1h, p=0.135")
    assert result.firing == ()


def test_time_to_exhaustion_projects_the_1h_burn() -> None:
    slos = [events_slo("a")]
    events = events_for(slos, [{"1h": 0.02, "5m": 0.02, "30d": 0.0005}])
    (result,) = evaluate_window_events(slos, events)
    # Half the budget left, burning at 20×: 0.5 × 30 d ÷ 20 = 18 h.
    assert result.time_to_exhaustion == pytest.approx(18 * 3600)
    assert result.windows[D("1h")].burn_rate == pytest.approx(20)


def test_slo_without_the_1h_window_still_gets_a_projection() -> None:
    slo = events_slo(
        "custom",
        alerting={
            "burn_rates": [
                {"severity": "page", "long_window": "2h", "short_window": "10m", "factor": 10}
            ]
        },
    )
    events = events_for([slo], [{"1h": 0.01}])
    (result,) = evaluate_window_events([slo], events)
    assert D("1h") not in result.windows  # not a window of its policy
    assert result.time_to_exhaustion == pytest.approx(30 * 86400 / 10, rel=1e-6)


class Unreachable:
    def fetch(self, slos, step, start, end) -> StepRates:
        raise SourceUnavailable("connection refused: 127.0.0.1:9")


def test_unreachable_source_makes_every_slo_an_error_never_ok() -> None:
    slos = [events_slo("a"), events_slo("b")]
    results = Evaluator(slos, Unreachable()).evaluate(AT + 17)
    assert [r.status for r in results] == ["error", "error"]
    assert all("connection refused" in (r.error or "") for r in results)
    assert results[0].evaluated_at == AT  # floored to the 1m grid
    assert results[0].to_json()["error_ratio"] == {}


def test_rows_are_matched_by_id_and_missing_ones_rejected() -> None:
    a, b = events_slo("a"), events_slo("b")
    events = events_for([a, b], [{"1h": 0.5, "5m": 0.5}, {}])
    results = evaluate_window_events([b, a], events)
    assert [r.status for r in results] == ["ok", "page"]
    with pytest.raises(ValueError, match="no window events for api/c"):
        evaluate_window_events([events_slo("c")], events)


def test_recent_evidence_is_a_top_level_json_field() -> None:
    slos = [events_slo("a"), events_slo("b"), events_slo("failed")]
    plain = events_for(slos, [{"1h": 0.02, "5m": 0.2}, {}, {}], errors={"api/failed": "422"})
    # Without recent sums (e.g. a hand-built WindowEvents) nothing is claimed.
    assert [r.to_json()["recent"] for r in evaluate_window_events(slos, plain)] == [None] * 3
    events = dataclasses.replace(
        plain,
        recent_window=D("1m"),
        recent_bad=np.array([950.0, np.nan, 5.0]),
        recent_total=np.array([1000.0, np.nan, 10.0]),
    )
    page, quiet, failed = evaluate_window_events(slos, events)
    assert page.status == "page"
    assert page.recent == WindowValue(950.0, 1000.0, 0.95, pytest.approx(950.0))
    assert page.to_json()["recent"] == {
        "window": "1m",
        "error_ratio": 0.95,
        "burn_rate": pytest.approx(950.0),
        "events": {"bad": 950.0, "total": 1000.0},
    }
    # The window maps keep exactly the policy windows and the period.
    assert list(page.to_json()["error_ratio"]) == [str(w) for w in sorted(page.windows)]
    # No data in the newest minute: null, never 0 %.
    assert quiet.to_json()["recent"]["error_ratio"] is None
    assert quiet.to_json()["recent"]["events"] is None
    # A failed SLO's recent numbers are dropped like its windows.
    assert failed.recent == WindowValue(None, None, None, None)
