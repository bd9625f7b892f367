"""Anomaly detection from the first day: a traffic drop caught by `backtest` over a real
Prometheus that holds one day, ten days or six weeks of the service's history — scored with
the recent, the daily and the weekly profile respectively — and a normal week around it
raising at most one false anomaly.

The same six weeks of noisy traffic (tests/corpus/counters.py: daily and weekly waves,
Poisson counts, a 10 % level wander; 30 s scrapes) are scraped as three jobs, each only from
where its Prometheus' retention would begin. On the last day (a Sunday) traffic falls to 10 %
for 45 minutes at 14:20, without a single error.
"""

from __future__ import annotations

import pytest
from corpus.counters import Corpus, Job, write_corpus
from corpus.scenarios import spec_yaml

from engine.backtest.replay import ReplayResult, fetch_history, make_plan, replay
from engine.demo.load import Incident
from engine.demo.openmetrics import open_openmetrics
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MIN = 60
HOUR = 3600
DAY = 86_400
T0 = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
LENGTH = 42 * DAY
DROP = 41 * DAY + 14 * HOUR + 20 * MIN
# Job → (days of history its Prometheus holds, the profile that scores the drop).
HELD = {"oneday": (1, "recent"), "tendays": (10, "daily"), "sixweeks": (42, "weekly")}


def _job(name: str, days: int) -> Job:
    # One seed for all three: the same requests, each job scraped from its own start on.
    return Job(
        name,
        rps=30,
        error_ratio=0.0001,
        incidents=[Incident(DROP, DROP + 45 * MIN, rps_factor=0.1)],
        gaps=[(0.0, LENGTH - days * DAY)] if days < 42 else [],
        seed=42,
    )


@pytest.fixture(scope="module")
def result(module_prometheus_for, tmp_path_factory: pytest.TempPathFactory) -> ReplayResult:
    root = tmp_path_factory.mktemp("history")
    jobs = [_job(name, days) for name, (days, _) in HELD.items()]
    with open_openmetrics(root / "data.om") as writer:
        write_corpus(writer, Corpus(start=T0, duration=LENGTH, interval=30, jobs=jobs))
    server: LocalPrometheus = module_prometheus_for(root / "data.om")
    specs = root / "specs"
    specs.mkdir()
    for job in jobs:
        (specs / f"{job.name}.yaml").write_text(spec_yaml(job.name, "critical"))
    loaded = load_specs([specs])
    assert not loaded.errors, loaded.errors
    # The last week, with the default warm-up (the daemon's whole anomaly window).
    plan = make_plan(
        loaded.slos, T0 + LENGTH - 7 * DAY, T0 + LENGTH - HOUR, Duration.parse("1m"), None
    )
    rates = fetch_history(PrometheusSource(server.url, timeout=60), loaded.slos, plan)
    return replay(loaded.slos, rates, plan)


@pytest.mark.parametrize("job", list(HELD))
def test_the_drop_is_caught_with_any_history(result: ReplayResult, job: str) -> None:
    days, profile = HELD[job]
    anomalies = [a for a in result.alerts if a.slo_id == f"{job}/availability"]
    assert {a.severity for a in anomalies} <= {"anomaly"}, "no error, no burn-rate alert"
    drop = [a for a in anomalies if T0 + DROP <= a.start <= T0 + DROP + 45 * MIN]
    assert len(drop) == 1, (job, [(a.start - T0 - DROP, a.profile) for a in anomalies])
    (caught,) = drop
    # min_duration (10 min) of 5-minute slots, scored once complete.
    assert T0 + DROP + 10 * MIN <= caught.start <= T0 + DROP + 15 * MIN
    assert caught.signal == "traffic" and caught.profile == profile
    # A normal week (one day for the youngest) around it: at most one false anomaly.
    assert len(anomalies) - 1 <= 1, (days, [(a.start - T0, a.profile) for a in anomalies])


def test_each_drop_is_one_incident(result: ReplayResult) -> None:
    services = sorted(i.service for i in result.incidents)
    assert services == sorted(HELD)
    # Critical services: the anomaly is sustained 30 minutes, SEV4 → SEV3.
    assert {i.severity.value for i in result.incidents} == {"SEV3"}
