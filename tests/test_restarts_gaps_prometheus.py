"""Restarts, gaps, resets and relabel duplicates never page or resolve falsely: a real
Prometheus, read by the daemon (the real Runtime on a fake clock: evaluator, anomaly tracker,
incident engine, SQLite store, a webhook receiver on loopback) and by `backtest`.

Sixteen days of noisy traffic (tests/corpus/counters.py, 15 s scrapes) come first, so anomaly
detection runs with its most sensitive profile (weekly). Then, on day 17 (a Wednesday):

- payments: 100 % errors 02:00–02:40, and no scrape 02:15–02:22 (Prometheus restarting); in
  the daemon the real Prometheus process is stopped for two cycles at 02:30 too;
- inventory: its process restarts at 03:00 and 05:00:17 — counters start again from 0 and
  the `code="500"` series is absent until the next error, as client libraries do;
- profile: no scrape for 2, 4, 5 and 9 minutes (at 06:03, 07:03, 08:03 and 09:03, each a
  few seconds later than the last), healthy traffic;
- recommend: its only target is gone 10:03–10:23 and comes back, counters continued;
- notify: a relabelling rule being rolled out — 11:00–11:05 the same counters are scraped
  under a second label set (`instance="notify-new"`), then only under it.

"Never page falsely" here: no incident and no notification at all for the healthy
services — no page, no ticket, and no anomaly (a SEV4 is a notification too). For the
duplicates that holds because every request is counted twice in bad and total alike: the
error ratio, which is what pages, is unchanged, and doubled traffic is a spike, which is
never an anomaly (only drops are). "Never resolve falsely": the payments incident opens once
and stays open through the scrape gap and the Prometheus restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus.counters import Corpus, Job, write_corpus
from corpus.scenarios import spec_yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_daemon_runtime import Clock, DeliveredRuntime

from engine.backtest.replay import ReplayResult, fetch_history, make_plan, replay
from engine.daemon.config import load_config
from engine.demo.load import Incident
from engine.demo.openmetrics import open_openmetrics
from engine.demo.webhook_sink import WebhookSink
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

MIN = 60
HOUR = 3600
DAY = 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
DAY17 = 16 * DAY  # offset of day 17, 00:00
OUTAGE = (DAY17 + 2 * HOUR, DAY17 + 2 * HOUR + 40 * MIN)
SCRAPE_GAP = (DAY17 + 2 * HOUR + 15 * MIN, DAY17 + 2 * HOUR + 22 * MIN)
PROMETHEUS_DOWN = T0 + DAY17 + 2 * HOUR + 30 * MIN  # two cycles without Prometheus
FIRST, LAST = T0 + DAY17 + HOUR, T0 + DAY17 + 12 * HOUR
HEALTHY = ("inventory", "profile", "recommend", "notify")


def _jobs() -> list[Job]:
    gaps = [
        (DAY17 + (6 + k) * HOUR + 3 * MIN + 7 * k, DAY17 + (6 + k) * HOUR + (3 + g) * MIN + 7 * k)
        for k, g in enumerate((2, 4, 5, 9))
    ]
    base = 0.0001
    return [
        Job(
            "payments",
            rps=20,
            error_ratio=base,
            incidents=[Incident(*OUTAGE, error_ratio=1.0)],
            gaps=[SCRAPE_GAP],
            seed=21,
        ),
        Job(
            "inventory",
            rps=20,
            error_ratio=base,
            restarts=[DAY17 + 3 * HOUR, DAY17 + 5 * HOUR + 17],
            seed=22,
        ),
        Job("profile", rps=20, error_ratio=base, gaps=gaps, seed=23),
        Job(
            "recommend",
            rps=20,
            error_ratio=base,
            gaps=[(DAY17 + 10 * HOUR + 3 * MIN, DAY17 + 10 * HOUR + 23 * MIN)],
            seed=24,
        ),
        Job(
            "notify",
            rps=20,
            error_ratio=base,
            relabel=(DAY17 + 11 * HOUR, DAY17 + 11 * HOUR + 5 * MIN),
            seed=25,
        ),
    ]


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for, tmp_path_factory: pytest.TempPathFactory) -> LocalPrometheus:
    path = tmp_path_factory.mktemp("restarts") / "data.om"
    data = Corpus(start=T0, duration=DAY17 + 13 * HOUR, interval=15, jobs=_jobs())
    with open_openmetrics(path) as writer:
        write_corpus(writer, data)
    return module_prometheus_for(path)


@pytest.fixture(scope="module")
def specs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("specs")
    for job in _jobs():
        (root / f"{job.name}.yaml").write_text(spec_yaml(job.name, "critical"))
    return root


@pytest.fixture(scope="module")
def backtest(specs_dir: Path, prometheus: LocalPrometheus) -> ReplayResult:
    loaded = load_specs([specs_dir])
    assert not loaded.errors, loaded.errors
    # The default warm-up: the daemon's whole anomaly window before the first step.
    plan = make_plan(loaded.slos, FIRST, LAST, Duration.parse("1m"), None)
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), loaded.slos, plan)
    assert not rates.errors
    return replay(loaded.slos, rates, plan)


def test_backtest_pages_the_outage_once_and_nothing_else(backtest: ReplayResult) -> None:
    assert {a.slo_id.split("/")[0] for a in backtest.alerts} == {"payments"}
    pages = [a for a in backtest.alerts if a.severity == "page"]
    # One page, from the outage's first minute past its end: the scrape gap is no hole in it.
    assert len(pages) == 1
    assert pages[0].start == T0 + OUTAGE[0] + MIN
    assert pages[0].end is not None and pages[0].end > T0 + OUTAGE[1]
    (incident,) = backtest.incidents
    assert incident.service == "payments" and incident.severity.value == "SEV1"
    assert incident.resolved_at is None or incident.resolved_at > T0 + OUTAGE[1]
    # Anomaly detection scored the healthy services with the weekly profile and found
    # nothing there; the payments errors are an anomaly too (the same incident).
    anomalies = [a for a in backtest.alerts if a.severity == "anomaly"]
    assert anomalies and {a.signal for a in anomalies} == {"errors"}
    assert {a.profile for a in anomalies} == {"weekly"}


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


def _traffic_gauges(runtime: DeliveredRuntime) -> dict[str, dict[str, Any]]:
    """Per service, the traffic series' anomaly gauges: its profile, and the observed,
    expected and threshold values of the newest slot."""
    out: dict[str, dict[str, Any]] = {}
    text = generate_latest(runtime.metrics_registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("slo_engine_anomaly_"):
                continue
            if sample.labels.get("signal") != "traffic":
                continue
            gauges = out.setdefault(sample.labels["service"], {})
            if sample.name == "slo_engine_anomaly_profile":
                gauges["profile"] = sample.labels["profile"]
            else:
                gauges[sample.name.removeprefix("slo_engine_anomaly_")] = sample.value
    return out


def test_the_daemon_pages_once_through_a_prometheus_restart_and_stays_quiet_otherwise(
    specs_dir: Path, prometheus: LocalPrometheus, sink: WebhookSink, tmp_path: Path
) -> None:
    config = load_config(
        None,
        {
            "specs": [str(specs_dir)],
            "prometheus_url": prometheus.url,
            "state_dir": str(tmp_path / "state"),
            "interval": "60s",
            "webhooks": [sink.url],
            "incidents": {"resolve_after": "5m", "dependency_wait": "0s"},
        },
    )
    clock = Clock(FIRST)
    runtime = DeliveredRuntime(config, clock=clock)
    seen: dict[str, set[str]] = {}
    source_errors = 0
    try:
        while clock.now <= LAST:
            restart = clock.now == PROMETHEUS_DOWN
            if restart:
                prometheus.stop()
            report = runtime.run_cycle(clock.now)
            source_errors += report.source_error is not None
            for alert in report.alerts:
                seen.setdefault(alert.service, set()).add(alert.severity)
            if clock.now == PROMETHEUS_DOWN + MIN:
                prometheus.start()  # back after two cycles: not yet "evaluation blind"
            if clock.now == T0 + OUTAGE[0] + 10 * MIN:
                assert [i.service for i in runtime.list_incidents("open")] == ["payments"]
            clock.advance(MIN)
        gauges = _traffic_gauges(runtime)
        stored = {i.id: runtime.get_incident(i.id) for i in runtime.list_incidents()}
    finally:
        runtime.close()
        if prometheus._proc is None:
            prometheus.start()
    assert source_errors == 2
    # Only payments ever alerted: page, ticket and its error anomaly.
    assert set(seen) == {"payments"} and "page" in seen["payments"]
    # One incident, notified once (an unacknowledged SEV1 is re-sent later: a repeat).
    triggered = sink.events("triggered")
    assert {(r.incident["service"], r.incident["id"]) for r in triggered} == {
        ("payments", triggered[0].incident["id"])
    }
    assert list(stored) == [triggered[0].incident["id"]]
    incident = stored[triggered[0].incident["id"]]
    assert incident.opened_at == T0 + OUTAGE[0] + MIN
    first_sends = [
        e
        for e in incident.timeline
        if e.kind == "notified" and e.data["event"] == "triggered" and not e.data["repeat"]
    ]
    assert len(first_sends) == 1, [(e.kind, e.data) for e in incident.timeline]
    # Open through the gap and the restart: resolved (if at all) after the outage ended.
    assert incident.resolved_at is None or incident.resolved_at > T0 + OUTAGE[1]
    assert len(sink.events("resolved")) <= 1
    # The healthy services are scored by the weekly profile, and their observed traffic is
    # inside the expected band (above the threshold a drop would cross).
    assert {gauges[s]["profile"] for s in HEALTHY} == {"weekly"}
    for service in HEALTHY:
        band = gauges[service]
        assert band["threshold"] < band["observed"], service
        assert 0.5 * band["expected"] < band["observed"] < 2 * band["expected"], service
