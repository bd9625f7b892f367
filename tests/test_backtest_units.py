"""Backtest pieces on plain data: planning, labels, the workbook's four measures, alert
packaging identical to the daemon's, anomaly severities, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.alerting.alerts import anomaly_alert
from engine.backtest.evaluated import Evaluated
from engine.backtest.labels import LabelsError, load_labels, parse_labels
from engine.backtest.metrics import Detection, score_policy
from engine.backtest.replay import make_plan, replay
from engine.cli import _register, app
from engine.evaluation.burn import evaluate_window_events
from engine.evaluation.cache import WindowEvents
from engine.evaluation.series import iter_series
from engine.evaluation.source import StepRates
from engine.incidents.classify import classify_alert
from engine.incidents.config import SeverityRules
from engine.spec.durations import Duration
from engine.spec.models import ServiceSpec

T0 = 1_704_067_200
MIN = 60
HOUR = 3600
DAY = 86_400


def _slos(service: str = "api", tier: str = "critical", n: int = 2, description: str = ""):
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": service,
            "tier": tier,
            "slos": [
                {
                    "name": f"s{i}",
                    "objective": 99.9,
                    "description": description,
                    "sli": {
                        "events": {
                            "bad": f'sum(rate(x{{job="{service}",code="500"}}[{{{{window}}}}]))',
                            "total": f'sum(rate(x{{job="{service}"}}[{{{{window}}}}]))',
                        }
                    },
                }
                for i in range(n)
            ],
        }
    )
    return spec.slo_records()


def _rates(slos, plan, rps: list[float]) -> StepRates:
    step = plan.step.seconds
    first = plan.fetch_start + step
    n = round((plan.end - first) / step) + 1
    times = first + step * np.arange(n)
    total = np.array(rps, dtype=float)[:, None] * np.ones(n)
    return StepRates(step=plan.step, times=times, bad=np.zeros_like(total), total=total)


def test_plan_aligns_to_the_step_grid_and_needs_the_alert_windows() -> None:
    slos = _slos()
    plan = make_plan(slos, T0 + 10, T0 + DAY + 70, Duration.parse("1m"), None)
    assert (plan.start, plan.end) == (T0 + 60, T0 + DAY + 60)
    assert plan.warmup == Duration.parse("30d")  # the period: budgets exact from step one
    assert plan.steps == 1441
    with pytest.raises(ValueError, match="longest alert window 3d"):
        make_plan(slos, T0, T0 + DAY, Duration.parse("1m"), Duration.parse("1d"))
    with pytest.raises(ValueError, match="after --start"):
        make_plan(slos, T0, T0, Duration.parse("1m"), None)


def test_labels_in_both_shapes_and_clear_errors(tmp_path: Path) -> None:
    listed = parse_labels(
        {"incidents": [{"service": "api", "start": "2024-01-01T01:00:00Z", "end": T0 + 2 * HOUR}]}
    )
    mapped = parse_labels({"api": [{"start": T0 + HOUR, "end": "2024-01-01T02:00:00+00:00"}]})
    assert listed == mapped
    assert listed[0].start == T0 + HOUR and listed[0].end == T0 + 2 * HOUR
    with pytest.raises(LabelsError, match="no time zone"):
        parse_labels([{"service": "api", "start": "2024-01-01T01:00:00", "end": T0}])
    with pytest.raises(LabelsError, match=r"incidents\[0\]: end must be after start"):
        parse_labels([{"service": "api", "start": T0, "end": T0}])
    bad = tmp_path / "l.json"
    bad.write_text("{not json")
    with pytest.raises(LabelsError, match="not valid JSON"):
        load_labels(bad)


def test_precision_recall_detection_and_reset_time() -> None:
    labels = parse_labels(
        [
            {"service": "api", "start": 1000, "end": 2000},
            {"service": "api", "start": 5000, "end": 6000},
            {"service": "db", "start": 8000, "end": 9000},
        ]
    )
    detections = [
        Detection(frozenset({"api"}), 1060, 2300),  # finds #1: 60 s late, resets 300 s late
        Detection(frozenset({"api"}), 3000, 3100),  # false alarm
        Detection(frozenset({"api", "db"}), 8500, None),  # finds #3 via correlation, open
    ]
    score = score_policy("page", detections, labels, 0, 10_000)
    assert score.precision == pytest.approx(2 / 3)
    assert score.recall == pytest.approx(2 / 3)
    assert score.detection_times == (60.0, 500.0)
    assert score.reset_times == (300.0, 1000.0)  # still open at the replay end (10,000)
    obj = score.to_json()
    assert obj["detection_time"] == {"mean": 280.0, "median": 280.0, "max": 500.0}
    empty = score_policy("ticket", [], labels, 0, 10_000)
    assert empty.precision is None and empty.recall == 0.0


def test_step_packaging_matches_the_daemon_evaluation() -> None:
    """At every step where a rule fires, backtest's SLOEvaluation equals what
    `evaluate_window_events` (the daemon) returns from the same window sums."""
    slos = _slos(n=2)
    plan = make_plan(
        slos, T0 + 4 * DAY, T0 + 4 * DAY + 6 * HOUR, Duration.parse("1m"), Duration.parse("3d")
    )
    rates = _rates(slos, plan, [20.0, 10 / HOUR])
    at = np.searchsorted(rates.times, plan.start + HOUR)
    rates.bad[0, at : at + 20] = 20.0  # outage
    rates.bad[1, at : at + 6] = 1 / 360  # one failure at ~10 req/h: held
    first = int(np.searchsorted(rates.times, plan.start))
    evaluated = Evaluated(slos, rates, first, want_traces=False)
    windows = None
    for rows, ev in iter_series(slos, rates, from_step=first):
        evaluated.add(rows, ev)
        windows = ev.windows
        bad_sums, total_sums = ev.bad, ev.total
        recent_bad, recent_total = ev.recent_bad, ev.recent_total
    fired = evaluated.fired()
    assert fired is not None and fired.steps.size > 30
    held_seen = False
    fresher_seen = False
    for i in range(0, fired.steps.size, 7):
        t = int(fired.steps[i]) + first
        s = int(fired.rows[i])
        events = WindowEvents(
            at=float(rates.times[t]),
            windows=windows,
            bad=bad_sums[:, :, t - first],
            total=total_sums[:, :, t - first],
            errors={},
            slo_ids=tuple(x.id for x in slos),
            recent_window=Duration.parse("1m"),
            recent_bad=recent_bad[:, t - first],
            recent_total=recent_total[:, t - first],
        )
        daemon = evaluate_window_events(slos, events)[s]
        mine = evaluated.evaluation(fired, i, float(rates.times[t]))
        assert mine == daemon  # the recent window included
        assert mine.recent_window == Duration.parse("1m") and mine.recent is not None
        # The recent window is the newest 1m step itself.
        assert mine.recent.total == pytest.approx(rates.total[s, t] * MIN)
        assert mine.recent.bad == pytest.approx(rates.bad[s, t] * MIN)
        assert mine.to_json()["recent"] == daemon.to_json()["recent"]
        held_seen |= any(a.held for a in mine.alerts)
        five = mine.error_ratio(Duration.parse("5m"))
        fresher_seen |= five is not None and mine.recent.error_ratio > five
    assert held_seen
    assert fresher_seen  # at the outage's start the newest minute leads the 5m window


def test_anomaly_alert_is_sev4_and_sev3_when_sustained_on_critical() -> None:
    rules = SeverityRules()
    (critical,) = _slos(tier="critical", n=1)
    (standard,) = _slos(service="web", tier="standard", n=1)
    fresh = anomaly_alert(critical, "traffic", T0, -9.5, sustained=False)
    assert fresh.severity == "anomaly" and fresh.labels["signal"] == "traffic"
    assert classify_alert(fresh, rules).severity.value == "SEV4"
    long = anomaly_alert(critical, "traffic", T0, -9.5, sustained=True)
    assert classify_alert(long, rules).severity.value == "SEV3"
    assert long.fingerprint == fresh.fingerprint  # sustaining raises severity, same alert
    assert (
        classify_alert(anomaly_alert(standard, "errors", T0, 6.0, True), rules).severity.value
        == "SEV4"
    )


def test_replay_of_quiet_history_has_no_alerts_and_exact_budget() -> None:
    slos = _slos(n=1)
    plan = make_plan(slos, T0 + 3 * DAY, T0 + 4 * DAY, Duration.parse("5m"), Duration.parse("3d"))
    rates = _rates(slos, plan, [10.0])
    step_index = rates.times >= plan.start + 1
    rates.bad[0, step_index] = 10.0 * 0.0005  # half the budget rate all day
    result = replay(slos, rates, plan)
    assert result.alerts == [] and result.incidents == []
    # 0.0005 / 0.001 = burn 0.5 for 1 day of a 30-day period.
    assert result.budget_consumed["api/s0"] == pytest.approx(0.5 / 30)
    obj = result.to_json()
    assert obj["summary"] == {
        "pages": 0,
        "tickets": 0,
        "anomalies": 0,
        "incidents": 0,
        "budget_consumed": {"api/s0": pytest.approx(0.5 / 30)},
    }


def test_cli_refuses_bad_input_with_clear_errors(tmp_path: Path) -> None:
    _register()
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "api.yaml").write_text(
        "apiVersion: slo-engine/v1\nservice: api\nslos:\n  - name: a\n    objective: 99.9\n"
        "    sli:\n      availability:\n        metric: up\n"
    )
    labels = tmp_path / "labels.yaml"
    labels.write_text("- {service: api, start: 10}\n")
    base = ["backtest", "--specs", str(specs), "--prometheus-url", "http://127.0.0.1:9"]
    run = CliRunner().invoke(
        app, [*base, "--start", "0", "--end", "100000", "--labels", str(labels)]
    )
    assert run.exit_code == 1
    assert "missing end" in run.output
    run = CliRunner().invoke(app, [*base, "--start", "yesterday", "--end", "100000"])
    assert run.exit_code == 2 and "not a time" in run.output
    run = CliRunner().invoke(app, [*base, "--start", "0", "--end", "100000", "--format", "xml"])
    assert run.exit_code == 2
    # Nothing listens on port 9: unreachable is exit 3, never an empty "all quiet" result.
    run = CliRunner().invoke(
        app, [*base, "--start", "400000", "--end", "500000", "--warmup", "3d", "--format", "json"]
    )
    assert run.exit_code == 3, run.output
    assert "unavailable" in run.output
    with pytest.raises(json.JSONDecodeError):
        json.loads(run.stdout or "")


def test_table_output_lists_incidents_alerts_and_budgets() -> None:
    from rich.console import Console

    from engine.commands.backtest import render_table

    slos = _slos(n=1)
    plan = make_plan(slos, T0 + 3 * DAY, T0 + 4 * DAY, Duration.parse("1m"), Duration.parse("3d"))
    rates = _rates(slos, plan, [10.0])
    outage = (rates.times > plan.start + HOUR) & (rates.times <= plan.start + HOUR + 600)
    rates.bad[0, outage] = 10.0
    result = replay(slos, rates, plan)
    console = Console(record=True, width=200)
    labels = parse_labels(
        [{"service": "api", "start": plan.start + HOUR, "end": plan.start + HOUR + 600}]
    )
    detections = [
        Detection(frozenset({"api"}), i.opened_at, i.resolved_at) for i in result.incidents
    ]
    render_table(
        result, [score_policy("incidents", detections, labels, plan.start, plan.end)], console
    )
    text = console.export_text()
    assert "INC-2024-0001" in text and "SEV1" in text
    assert "api/s0" in text and "page" in text
    assert "100%" in text  # recall
