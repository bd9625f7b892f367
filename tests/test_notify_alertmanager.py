"""Alertmanager notifier: the re-send contract on a recording receiver, then the real
Alertmanager (Debian's prometheus-alertmanager) receiving, listing and resolving alerts."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from harness.localam import ALERTMANAGER, SKIP_REASON, local_alertmanager
from test_notify_receiver import always, notification, receiver_fixture, snapshot  # noqa: F401

from engine.notify.alertmanager import ALERTNAME, AlertmanagerNotifier
from engine.notify.factory import parse_notifier_configs

T0 = 1_740_830_400.0  # 2025-03-01T12:00:00Z


def make(url: str, clock=lambda: T0, **extra) -> AlertmanagerNotifier:
    config = parse_notifier_configs({"am": {"type": "alertmanager", "url": url, **extra}})["am"]
    return AlertmanagerNotifier("am", config, clock=clock)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# --- payload and re-send contract on a recording receiver ------------------------------


def test_firing_alert_payload_is_exact(receiver) -> None:
    r = receiver(always(200, b""))
    am = make(r.url + "/", resend_interval="1m", labels={"env": "prod"})
    am.send(notification("triggered"))
    (request,) = r.requests
    assert request.path == "/api/v2/alerts"
    assert request.json() == [
        {
            "labels": {
                "env": "prod",
                "alertname": ALERTNAME,
                "incident": "INC-2025-0007",
                "service": "checkout",
                "severity": "SEV2",
                "slo": "checkout/availability",
            },
            "annotations": {
                "summary": "[SEV2] INC-2025-0007 checkout: availability burning",
                "description": "checkout/availability burned 2% of its 30d budget in 1h.",
                "runbook_url": "https://runbooks.example.com/checkout",
                "dashboard_url": "https://grafana.example.com/d/checkout",
                "incident_status": "investigating",
                "escalation_level": "0",
            },
            "startsAt": "2025-03-01T12:00:00.000Z",
            "endsAt": "2025-03-01T12:04:00.000Z",
            "generatorURL": "https://grafana.example.com/d/checkout",
        }
    ]


def test_one_alert_per_slo_and_resolve_ends_them_all(receiver) -> None:
    r = receiver(always(200, b""))
    am = make(r.url)
    incident = snapshot(slos=["checkout/availability", "checkout/latency"])
    am.send(notification("triggered", incident=incident))
    assert sorted(a["labels"]["slo"] for a in r.requests[0].json()) == [
        "checkout/availability",
        "checkout/latency",
    ]
    am.send(notification("resolved", incident={**incident, "status": "resolved"}))
    resolved = r.requests[1].json()
    assert len(resolved) == 2
    assert {a["endsAt"] for a in resolved} == {"2025-03-01T12:00:00.000Z"}


def test_severity_change_resolves_the_old_label_set(receiver) -> None:
    r = receiver(always(200, b""))
    am = make(r.url)
    am.send(notification("triggered"))
    am.send(notification("escalated", incident=snapshot(severity="SEV1"), seq=2))
    alerts = {a["labels"]["severity"]: a for a in r.requests[1].json()}
    assert alerts["SEV1"]["endsAt"] == "2025-03-01T12:04:00.000Z"
    assert alerts["SEV2"]["endsAt"] == "2025-03-01T12:00:00.000Z"


def test_sync_resends_every_interval_and_immediately_on_change(receiver) -> None:
    r = receiver(always(200, b""))
    am = make(r.url, resend_interval="1m")
    open_incidents = [snapshot()]
    assert am.sync(open_incidents, T0).posted
    assert not am.sync(open_incidents, T0 + 30).posted  # nothing changed, not due
    result = am.sync(open_incidents, T0 + 60)
    assert (result.posted, result.firing, result.resolved) == (True, 1, 0)
    assert r.requests[-1].json()[0]["endsAt"] == "2025-03-01T12:05:00.000Z"
    second = snapshot(id="INC-2025-0008", service="search", slos=["search/latency"])
    assert am.sync([*open_incidents, second], T0 + 70).firing == 2  # changed → now
    result = am.sync([second], T0 + 80)  # first incident closed elsewhere → resolved
    assert (result.firing, result.resolved) == (1, 1)
    ended = [a for a in r.requests[-1].json() if a["labels"]["incident"] == "INC-2025-0007"]
    assert ended[0]["endsAt"] == "2025-03-01T12:01:20.000Z"
    assert len(r.requests) == 4
    assert am.sync([], T0 + 500).resolved == 1  # resolves the last one
    assert not am.sync([], T0 + 600).posted  # nothing left to say


# --- the real Alertmanager --------------------------------------------------------------


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    if ALERTMANAGER is None:
        pytest.skip(SKIP_REASON)
    config = "route:\n  receiver: blackhole\n  group_wait: 1h\nreceivers:\n  - name: blackhole\n"
    with local_alertmanager(config, tmp_path) as url:
        yield url


def active_alerts(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "/api/v2/alerts?active=true", timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.alertmanager
def test_real_alertmanager_lists_then_resolves_our_alerts(alertmanager) -> None:
    am = make(alertmanager, clock=time.time, resend_interval="1m")
    now = time.time()
    opened = snapshot(
        opened_at=now - 120, slos=["checkout/availability", "checkout/latency"], severity="SEV2"
    )
    other = snapshot(id="INC-2025-0008", service="search", slos=["search/latency"], opened_at=now)
    am.send(notification("triggered", incident=opened))
    am.send(notification("triggered", incident=other, seq=1))

    listed = active_alerts(alertmanager)
    assert sorted((a["labels"]["incident"], a["labels"]["slo"]) for a in listed) == [
        ("INC-2025-0007", "checkout/availability"),
        ("INC-2025-0007", "checkout/latency"),
        ("INC-2025-0008", "search/latency"),
    ]
    first = next(a for a in listed if a["labels"]["slo"] == "checkout/availability")
    assert first["labels"] == {
        "alertname": ALERTNAME,
        "incident": "INC-2025-0007",
        "service": "checkout",
        "severity": "SEV2",
        "slo": "checkout/availability",
    }
    assert first["annotations"]["runbook_url"] == "https://runbooks.example.com/checkout"
    assert first["status"]["state"] == "active"
    assert abs(epoch(first["startsAt"]) - (now - 120)) < 0.01
    # Valid for 4 × resend_interval: survives three lost re-sends.
    assert 230 < epoch(first["endsAt"]) - now <= 241

    # The daemon's periodic sync keeps them alive with a later endsAt …
    later = time.time() + 60
    am.sync([opened, other], later)
    refreshed = {a["labels"]["slo"]: a for a in active_alerts(alertmanager)}
    assert epoch(refreshed["checkout/availability"]["endsAt"]) - later == pytest.approx(
        240, abs=0.01
    )

    # … escalation replaces the label set, and resolving ends the alerts now.
    am.send(notification("escalated", incident={**opened, "severity": "SEV1"}, seq=2))
    severities = {
        (a["labels"]["slo"], a["labels"]["severity"])
        for a in active_alerts(alertmanager)
        if a["labels"]["incident"] == "INC-2025-0007"
    }
    assert severities == {("checkout/availability", "SEV1"), ("checkout/latency", "SEV1")}

    am.send(notification("resolved", incident={**opened, "severity": "SEV1", "status": "resolved"}))
    remaining = active_alerts(alertmanager)
    assert [a["labels"]["incident"] for a in remaining] == ["INC-2025-0008"]

    # sync with nothing open resolves the rest.
    result = am.sync([], time.time())
    assert result.resolved == 1
    assert active_alerts(alertmanager) == []


def test_deliverer_sync_feeds_alertmanager_incident_objects_and_honours_its_breaker(
    receiver,
) -> None:
    from engine.incidents.incident import Incident, IncidentStatus, Severity
    from engine.notify.delivery import Deliverer
    from engine.retry import CircuitBreaker

    class NoOutbox:
        def due(self, now, limit=100):
            return []

    up = {"ok": True}
    r = receiver(lambda _i, _req: (200, {}, b"") if up["ok"] else (503, {}, b""))
    clock = lambda: T0  # noqa: E731
    incident = Incident(
        id="INC-2025-0009",
        service="api",
        severity=Severity.SEV3,
        status=IncidentStatus.mitigating,
        summary="latency",
        opened_at=T0 - 600,
        slo_ids=["api/latency"],
    )
    breaker = CircuitBreaker(failure_threshold=1, cooldown=60, clock=clock)
    deliverer = Deliverer(
        NoOutbox(), {"am": make(r.url, clock=clock)}, clock, breakers={"am": breaker}
    )
    assert deliverer.sync([incident]) == {"am": "ok"}
    (alert,) = r.requests[0].json()
    assert alert["labels"]["incident"] == "INC-2025-0009"
    assert alert["labels"]["severity"] == "SEV3"
    assert alert["annotations"]["incident_status"] == "mitigating"
    assert alert["startsAt"] == "2025-03-01T11:50:00.000Z"

    up["ok"] = False
    outcome = deliverer.sync([incident], T0 + 60)
    assert "HTTP 503" in outcome["am"]
    assert deliverer.sync([incident], T0 + 120) == {"am": "skipped"}  # breaker open
    assert len(r.requests) == 2


def test_sync_keeps_the_annotations_of_the_last_notification(receiver) -> None:
    r = receiver(always(200, b""))
    am = make(r.url, resend_interval="1m")
    am.send(notification("triggered", title="custom title", message="custom message"))
    acked = snapshot(status="mitigating", acknowledged_by="alice")
    am.sync([acked], T0 + 60)
    (alert,) = r.requests[-1].json()
    assert alert["annotations"]["summary"] == "custom title"
    assert alert["annotations"]["description"] == "custom message"
    assert alert["annotations"]["incident_status"] == "mitigating"
    assert alert["annotations"]["acknowledged_by"] == "alice"
