"""The backtest corpus (tests/corpus/): every case replayed through a real Prometheus by
`backtest`'s own path, measured with the SRE Workbook's four measures against its labels.
The table in docs/backtest.md ("The corpus") is `python bench/bench_corpus.py`; this module
asserts what it shows, case by case."""

from __future__ import annotations

from typing import Any

import pytest
from corpus.counters import write_corpus
from corpus.measure import markdown, measure
from corpus.scenarios import END, HISTORY, MIN, START, T0, cases, corpus, specs

from engine.backtest.replay import ReplayResult, fetch_history, make_plan, replay
from engine.demo.openmetrics import open_openmetrics
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

HOUR = 3600


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for, tmp_path_factory: pytest.TempPathFactory) -> LocalPrometheus:
    path = tmp_path_factory.mktemp("corpus") / "corpus.om"
    with open_openmetrics(path) as writer:
        write_corpus(writer, corpus())
    return module_prometheus_for(path)


@pytest.fixture(scope="module")
def result(prometheus: LocalPrometheus, tmp_path_factory: pytest.TempPathFactory) -> ReplayResult:
    spec_dir = tmp_path_factory.mktemp("specs")
    for name, text in specs(cases()).items():
        (spec_dir / name).write_text(text)
    loaded = load_specs([spec_dir])
    assert not loaded.errors, loaded.errors
    plan = make_plan(loaded.slos, START, END, Duration.parse("1m"), Duration(HISTORY * 1000))
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), loaded.slos, plan)
    assert not rates.errors
    return replay(loaded.slos, rates, plan)


@pytest.fixture(scope="module")
def rows(result: ReplayResult) -> dict[str, dict[str, Any]]:
    return {case.name: measure(result, case) for case in cases()}


def incidents(row: dict[str, Any]) -> dict[str, Any]:
    return row["scores"]["incidents"]


QUIET = (
    "blip",
    "low-traffic failure",
    "counter reset",
    "scrape gaps",
    "target vanishes",
    "relabel duplicates",
)


@pytest.mark.parametrize("name", QUIET)
def test_cases_without_an_incident_raise_nothing(
    rows: dict[str, dict[str, Any]], name: str
) -> None:
    """Silence is the right answer: no incident, no notification, no alert of any kind —
    anomaly detection included (a restart, a gap or a duplicate is not a traffic change)."""
    row = rows[name]
    assert row["labelled"] == 0
    assert row["incidents"] == 0 and row["notified"] == 0
    assert {p: s["detections"] for p, s in row["scores"].items()} == {
        "page": 0,
        "ticket": 0,
        "anomaly": 0,
        "incidents": 0,
    }


def test_low_traffic_failure_is_held_not_paged(rows: dict[str, dict[str, Any]]) -> None:
    # One failure in six requests an hour: the burn rate fires, the low-traffic guard holds.
    assert rows["low-traffic failure"]["held"] > 0


@pytest.mark.parametrize("name", ["outage", "restart gap", "dependency, root first"])
def test_outages_page_once_within_two_minutes_and_never_resolve_early(
    rows: dict[str, dict[str, Any]], name: str
) -> None:
    row = rows[name]
    assert row["incidents"] == 1 and row["severities"] == ["SEV1"]
    assert row["notified"] == 1
    score = incidents(row)
    assert score["precision"] == 1.0 and score["recall"] == 1.0
    assert score["detection_time"]["max"] <= 2 * MIN
    assert row["resolved_during_outage"] == 0


def test_a_restart_gap_inside_an_outage_keeps_the_page_firing(result: ReplayResult) -> None:
    """Seven minutes without a scrape in the middle of the payments outage: one page alert
    from the outage's first minute to well after its end — no gap in it, no second one."""
    (payments,) = [c for c in cases() if c.name == "restart gap"]
    (label,) = payments.labels
    pages = [
        a for a in result.alerts if a.slo_id == "payments/availability" and a.severity == "page"
    ]
    assert len(pages) == 1
    assert pages[0].start <= label.start + 2 * MIN
    assert pages[0].end is not None and pages[0].end > label.end


DEPENDENCY_CASES = (
    "dependency, root first",
    "dependency, dependent first",
    "dependency, dependent pages first",
    "dependency chain",
)


def test_dependency_outages_make_one_incident_and_one_page_in_both_orders(
    rows: dict[str, dict[str, Any]],
) -> None:
    for name in DEPENDENCY_CASES:
        row = rows[name]
        assert row["incidents"] == 1, name
        assert row["notified"] == 1, name
        assert incidents(row)["recall"] == 1.0, name
    # Past the hold-down the dependent's page went out first; the dependency took its
    # incident over (an `updated`, no second page) — once, and down the chain twice.
    assert rows["dependency, dependent pages first"]["rerooted"] == 1
    assert rows["dependency chain"]["rerooted"] == 2
    assert rows["dependency, root first"]["rerooted"] == 0


def test_flapping_is_one_incident_and_one_notification(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["flapping"]
    assert row["incidents"] == 1 and row["notified"] == 1
    # The page fired and cleared several times; it joined its incident once.
    assert row["alerts"]["page"] == 1 and row["scores"]["page"]["detections"] >= 3


def test_slow_burn_is_a_ticket_not_a_page(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["slow burn"]
    assert row["scores"]["page"]["detections"] == 0
    ticket = row["scores"]["ticket"]
    assert ticket["recall"] == 1.0 and ticket["precision"] == 1.0
    # 0.5 % errors on a 99.9 % SLO: the 1d/2h rule's 0.3 % needs 14.4 h of it at a steady
    # rate; less here, as the failing hours include the day's busiest (ratios weigh events).
    assert 10 * HOUR <= ticket["detection_time"]["max"] <= 15 * HOUR


def test_traffic_drop_is_caught_by_anomaly_detection_alone(rows: dict[str, dict[str, Any]]) -> None:
    row = rows["traffic drop"]
    assert row["scores"]["page"]["detections"] == row["scores"]["ticket"]["detections"] == 0
    anomaly = row["scores"]["anomaly"]
    assert anomaly["recall"] == 1.0 and anomaly["precision"] == 1.0
    assert anomaly["detection_time"]["max"] <= 15 * MIN
    # A critical service's anomaly sustained for 30 minutes: SEV3.
    assert row["severities"] == ["SEV3"] and row["notified"] == 1


def test_the_table_lists_every_case(rows: dict[str, dict[str, Any]]) -> None:
    table = markdown(list(rows.values()))
    assert table.count("\n") == len(cases()) + 2
    assert T0 < START < END
