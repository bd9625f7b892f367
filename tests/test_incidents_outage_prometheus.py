"""The newest-minute severity evidence against a real Prometheus (15 s scrapes, `rate()` with
its extrapolation): a fresh complete outage of a critical service pages SEV1 once, from the
first page, in the daemon's cycle and in `backtest` alike; a partial burn pages SEV2; a
critical database whose probe is down pages SEV1 once (an availability SLI: 4 samples a
minute, so the low-traffic guard holds its page until the 5m window says "outage" too)."""

from __future__ import annotations

import pytest
from harness.specs import DATABASE_UP_SPEC, http_events_spec

from engine.alerting.alerts import alerts_from_evaluations
from engine.backtest.replay import fetch_history, make_plan, replay
from engine.demo.scenario import DatabaseLoad, Incident, Scenario, ServiceLoad
from engine.evaluation.evaluator import Evaluator
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.incidents.incident import Severity
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MIN, HOUR, DAY = 60, 3600, 86_400
T0 = 1_704_067_200  # 2024-01-01 00:00 UTC
OUTAGE = 5 * DAY + 12 * HOUR + 8  # offset from T0: 8 s into a minute
# A 30 % burn needs 173 s of it in the 1h window to page; 5 minutes stay clear of exhausting
# the budget (another SEV1 rule) for the partial burn.
END = OUTAGE + 5 * MIN


@pytest.fixture(scope="module")
def slos(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("specs")
    (root / "api.yaml").write_text(http_events_spec("api", "critical"))
    (root / "partial.yaml").write_text(http_events_spec("partial", "critical"))
    (root / "database.yaml").write_text(DATABASE_UP_SPEC)
    loaded = load_specs([root])
    assert not loaded.errors, loaded.errors
    return loaded.slos


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for) -> LocalPrometheus:
    scenario = Scenario(
        start=T0,
        duration=END + 5 * MIN,
        scrape_interval=15,
        services=[
            ServiceLoad(
                job="api",
                rps=20,
                error_ratio=0.0,
                incidents=[Incident(OUTAGE, END + 5 * MIN, error_ratio=1.0)],
            ),
            ServiceLoad(
                job="partial",
                rps=20,
                error_ratio=0.0,
                incidents=[Incident(OUTAGE, END + 5 * MIN, error_ratio=0.3)],
            ),
        ],
        database=DatabaseLoad(outages=[(OUTAGE, END + 5 * MIN)]),
    )
    return module_prometheus_for(scenario)


def test_daemon_cycle_pages_each_outage_once_at_its_final_severity(slos, prometheus) -> None:
    evaluator = Evaluator(slos, PrometheusSource(prometheus.url, timeout=60))
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "oncall"}]))
    sent: dict[str, list[tuple[float, str, str]]] = {}
    first_page: dict[str, tuple[float | None, float | None]] = {}
    now = T0 + OUTAGE - 2 * MIN + 5.0
    while now <= T0 + END:
        results = evaluator.evaluate(now)
        assert all(r.status != "error" for r in results), [r.error for r in results]
        alerts = alerts_from_evaluations(results)
        for alert in alerts:
            if alert.severity == "page":
                first_page.setdefault(
                    alert.service, (alert.short_error_ratio, alert.recent_error_ratio)
                )
        for note in engine.observe(now, alerts, results).notifications:
            service = note.incident["service"]
            sent.setdefault(service, []).append(
                (now - T0 - OUTAGE, note.event, note.incident["severity"])
            )
        now += 30.0
    assert {s: [(e, sev) for _, e, sev in notes] for s, notes in sent.items()} == {
        "api": [("triggered", "SEV1")],
        "partial": [("triggered", "SEV2")],
        "database": [("triggered", "SEV1")],
    }
    assert sent["api"][0][0] <= 2 * MIN
    # The 5m window alone said "not an outage" at the first page; the newest minute did.
    short, recent = first_page["api"]
    assert short is not None and short < 0.5
    assert recent is not None and recent > 0.85
    by_service = {i.service: i for i in engine.state.incidents.values()}
    assert "over 1m" in by_service["api"].timeline[0].message


def test_backtest_replays_the_same_pages(slos, prometheus) -> None:
    plan = make_plan(
        slos, T0 + OUTAGE - 5 * MIN, T0 + END, Duration.parse("1m"), Duration.parse("3d")
    )
    rates = fetch_history(PrometheusSource(prometheus.url, timeout=60), slos, plan)
    result = replay(slos, rates, plan)
    found = {i.service: (i.severity, result.notifications[i.id]) for i in result.incidents}
    assert found == {
        "api": (Severity.SEV1, 1),
        "partial": (Severity.SEV2, 1),
        "database": (Severity.SEV1, 1),
    }
    opened = {i.service: i.timeline[0].message for i in result.incidents}
    assert "over 1m" in opened["api"]
