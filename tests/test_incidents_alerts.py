"""Alerts from evaluations, and Alertmanager-compatible fingerprints."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from harness.incidents import T0

from engine.alerting.alerts import (
    ALERT_NAME,
    Alert,
    alerts_from_evaluation,
    anomaly_alert,
    fingerprint,
)
from engine.evaluation.result import AlertSignal, SLOEvaluation, WindowValue
from engine.spec.durations import Duration
from engine.spec.models import ServiceSpec

D = Duration.parse


def _slo(kind: str = "events", tier: str = "critical"):
    sli = (
        {
            "events": {
                "bad": "sum(rate(e{code=~'5..'}[{{window}}]))",
                "total": "sum(rate(e[{{window}}]))",
            }
        }
        if kind == "events"
        else {"availability": {"metric": 'up{job="db"}'}}
    )
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "api",
            "tier": tier,
            "depends_on": ["db"],
            "labels": {"team": "payments"},
            "slos": [
                {
                    "name": "availability",
                    "objective": 99.9,
                    "sli": sli,
                    "alerting": {"runbook_url": "https://runbooks.example/api"},
                }
            ],
        }
    )
    return spec.slo_records()[0]


def _evaluation(signals, status="page", short_ratio=0.6, kind="events", remaining=0.4):
    windows = {
        D("5m"): WindowValue(
            bad=60, total=100, error_ratio=short_ratio, burn_rate=short_ratio / 0.001
        ),
        D("1h"): WindowValue(bad=600, total=1000, error_ratio=0.3, burn_rate=300.0),
        D("30m"): WindowValue(bad=30, total=100, error_ratio=0.3, burn_rate=300.0),
        D("6h"): WindowValue(bad=30, total=100, error_ratio=0.3, burn_rate=300.0),
    }
    return SLOEvaluation(
        slo=_slo(kind),
        evaluated_at=T0,
        status=status,
        windows=windows,
        error_budget_remaining=remaining,
        alerts=tuple(signals),
    )


PAGE_1H = AlertSignal("page", D("1h"), D("5m"), Decimal("14.4"))
PAGE_6H = AlertSignal("page", D("6h"), D("30m"), Decimal("6"))
TICKET_1D = AlertSignal("ticket", D("1d"), D("2h"), Decimal("3"))


def test_fingerprint_matches_alertmanager_known_values():
    # Values from the Prometheus common model tests (the hash Alertmanager uses for alerts).
    assert fingerprint({}) == "cbf29ce484222325"
    assert (
        fingerprint({"name": "garland, briggs", "fear": "love is not enough"})
        == f"{5799056148416392346:016x}"
        == "507a62d79ee76c9a"
    )


def test_fingerprint_by_hand_single_label():
    # FNV-1a 64 over b"a\xffb\xff", computed step by step.
    value = 0xCBF29CE484222325
    for byte in b"a\xffb\xff":
        value = ((value ^ byte) * 0x100000001B3) % 2**64
    assert fingerprint({"a": "b"}) == f"{value:016x}"


def test_fingerprint_ignores_label_order_but_not_values_or_annotations():
    a = Alert(labels={"a": "1", "b": "2"}, severity="page", slo_id="s/x", service="s", starts_at=0)
    b = Alert(
        labels={"b": "2", "a": "1"},
        severity="page",
        slo_id="s/x",
        service="s",
        starts_at=5,
        annotations={"summary": "different"},
    )
    c = Alert(labels={"a": "1", "b": "3"}, severity="page", slo_id="s/x", service="s", starts_at=0)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint
    # Separator bytes keep {"ab": "c"} and {"a": "bc"} apart.
    assert fingerprint({"ab": "c"}) != fingerprint({"a": "bc"})


def test_both_page_rules_collapse_into_one_page_alert_with_context():
    alerts = alerts_from_evaluation(_evaluation([PAGE_1H, PAGE_6H, TICKET_1D]))
    assert [a.severity for a in alerts] == ["page", "ticket"]
    page = alerts[0]
    assert page.labels == {
        "alertname": ALERT_NAME,
        "service": "api",
        "slo": "api/availability",
        "severity": "page",
        "tier": "critical",
        "team": "payments",
    }
    assert page.slo_id == "api/availability"
    assert page.short_window == "5m" and page.short_error_ratio == 0.6
    assert page.long_window == "1h" and page.burn_rate == 300.0
    assert page.error_budget_remaining == 0.4
    assert page.depends_on == ("db",)
    assert page.runbook_url == "https://runbooks.example/api"
    assert page.annotations["runbook_url"] == "https://runbooks.example/api"
    assert page.availability is None  # events SLI
    assert page.fingerprint == fingerprint(page.labels)
    # The slo label is the SLO id, as on the generated rules; FNV-1a over the set above.
    assert page.fingerprint == "09f166b2f27f0d7a"


def test_alerts_carry_the_newest_minute():
    evaluation = dataclasses.replace(
        _evaluation([PAGE_1H, TICKET_1D], short_ratio=0.2),
        recent_window=D("1m"),
        recent=WindowValue(bad=90, total=100, error_ratio=0.9, burn_rate=900.0),
    )
    page, ticket = alerts_from_evaluation(evaluation)
    for alert in (page, ticket):
        assert alert.recent_error_ratio == 0.9 and alert.recent_events == 100
        assert alert.recent_window == "1m"
        assert alert.recent_availability is None  # events SLI
    # Nothing computed: nothing claimed.
    (bare,) = alerts_from_evaluation(_evaluation([PAGE_1H]))
    assert (bare.recent_error_ratio, bare.recent_events, bare.recent_window) == (None, None, None)
    # Availability SLIs: the newest minute's availability (probe samples).
    probe = dataclasses.replace(
        _evaluation([PAGE_1H], kind="availability"),
        recent_window=D("1m"),
        recent=WindowValue(bad=4, total=4, error_ratio=1.0, burn_rate=1000.0),
    )
    (down,) = alerts_from_evaluation(probe)
    assert down.recent_availability == 0.0 and down.recent_events == 4


def test_page_alert_identity_is_stable_when_the_rule_changes():
    first = alerts_from_evaluation(_evaluation([PAGE_1H]))[0]
    later = alerts_from_evaluation(_evaluation([PAGE_6H]))[0]
    assert first.fingerprint == later.fingerprint
    assert later.short_window == "30m"


def test_held_low_traffic_signals_never_become_alerts():
    held = AlertSignal(
        "page", D("1h"), D("5m"), Decimal("14.4"), held="low_traffic", held_reason="p=0.13"
    )
    assert alerts_from_evaluation(_evaluation([held])) == []
    assert [a.severity for a in alerts_from_evaluation(_evaluation([held, TICKET_1D]))] == [
        "ticket"
    ]


@pytest.mark.parametrize("status", ["no_data", "error"])
def test_no_data_yields_no_alert(status):
    assert alerts_from_evaluation(_evaluation([PAGE_1H], status=status)) == []


def test_availability_sli_reports_availability():
    page = alerts_from_evaluation(_evaluation([PAGE_1H], kind="availability", short_ratio=1.0))[0]
    assert page.availability == 0.0


def test_anomaly_alerts_are_accepted_and_bad_severity_rejected():
    anomaly = Alert(
        labels={"alertname": "SLOAnomaly"},
        severity="anomaly",
        slo_id="a/b",
        service="a",
        starts_at=0,
    )
    assert len(anomaly.fingerprint) == 16
    with pytest.raises(ValueError, match="page, ticket or anomaly"):
        Alert(labels={}, severity="critical", slo_id="a/b", service="a", starts_at=0)  # type: ignore[arg-type]


def test_anomaly_alerts_name_the_slo_by_its_id_like_burn_alerts():
    slo = _slo()
    alert = anomaly_alert(slo, "traffic", T0, -9.5, sustained=False)
    assert alert.labels == {
        "team": "payments",
        "alertname": "SLOAnomaly",
        "service": "api",
        "slo": "api/availability",
        "severity": "anomaly",
        "signal": "traffic",
        "tier": "critical",
    }
    (page, _) = alerts_from_evaluation(_evaluation([PAGE_1H, TICKET_1D]))
    assert alert.labels["slo"] == page.labels["slo"] == slo.id
