"""Anomaly detection end to end: seasonal traffic in a real Prometheus, a traffic drop with no
errors at all, found by `backtest` — and nothing else over more than a simulated week."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.backtest.replay import fetch_history, make_plan, replay
from engine.demo.scenario import Incident, Scenario, ServiceLoad
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MIN = 60
HOUR = 3600
DAY = 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
DROP = 15 * DAY + 10 * HOUR  # traffic falls to 10 % for 2 h, without a single error

SPEC = """apiVersion: slo-engine/v1
service: checkout
tier: critical
anomaly:
  enabled: true
  signals: [traffic, errors]
  sensitivity: 4
  min_duration: 10m
  history: 2w
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{job="checkout",code="500"}[{{window}}]))
        total: sum(rate(http_requests_total{job="checkout"}[{{window}}]))
"""


def test_traffic_drop_without_errors_is_an_anomaly_and_seasonality_is_not(
    prometheus_for, tmp_path: Path
) -> None:
    scenario = Scenario(
        start=T0,
        duration=16 * DAY + HOUR,
        scrape_interval=60,
        services=[
            ServiceLoad(
                job="checkout",
                rps=30,
                error_ratio=0.0,
                daily_amplitude=0.5,
                weekly_amplitude=0.3,
                incidents=[Incident(DROP, DROP + 2 * HOUR, rps_factor=0.1)],
            )
        ],
    )
    server = prometheus_for(scenario)
    (tmp_path / "checkout.yaml").write_text(SPEC)
    loaded = load_specs([tmp_path])
    assert not loaded.errors, loaded.errors
    start, end = T0 + 8 * DAY, T0 + 16 * DAY
    plan = make_plan(loaded.slos, start, end, Duration.parse("5m"), Duration.parse("8d"))
    rates = fetch_history(PrometheusSource(server.url, timeout=60), loaded.slos, plan)
    result = replay(loaded.slos, rates, plan)

    # No burn-rate alert at all: not one request failed.
    assert [a for a in result.alerts if a.severity != "anomaly"] == []
    anomalies = [a for a in result.alerts if a.severity == "anomaly"]
    # Eight days of daily and weekly swings, one anomaly: the drop (0 false per week).
    assert len(anomalies) == 1
    (drop,) = anomalies
    assert drop.slo_id == "checkout/availability"
    assert drop.signal == "traffic"
    # min_duration (10 min) of 5-minute slots, scored once complete: 10–20 min after.
    assert T0 + DROP + 10 * MIN <= drop.start <= T0 + DROP + 20 * MIN
    assert (
        drop.end is not None and T0 + DROP + 2 * HOUR <= drop.end <= T0 + DROP + 2 * HOUR + 15 * MIN
    )

    (incident,) = result.incidents
    assert incident.service == "checkout"
    assert incident.opened_at == drop.start
    # A critical service's anomaly sustained for 30 min is SEV3 (SEV4 before that).
    assert incident.severity.value == "SEV3"
    changes = [e for e in incident.timeline if e.kind == "severity_changed"]
    assert changes and changes[0].data["from"] == "SEV4" and changes[0].data["to"] == "SEV3"
    assert changes[0].at == drop.start + 30 * MIN
    summary = result.summary()
    assert summary["anomalies"] == 1 and summary["pages"] == 0 and summary["incidents"] == 1
