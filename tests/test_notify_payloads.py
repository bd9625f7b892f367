"""Exact request bodies and headers of the PagerDuty, Slack and webhook notifiers, checked on
a real local HTTP receiver, and how each answer is classified for retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from pathlib import Path

import pytest
from test_notify_receiver import always, notification, receiver_fixture, snapshot  # noqa: F401

from engine.notify.base import PermanentDeliveryError, RetryableDeliveryError
from engine.notify.factory import build_notifiers
from engine.notify.http import USER_AGENT

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"


def secret_file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def pagerduty(tmp_path, receiver):
    r = receiver()
    key = secret_file(tmp_path, "pd.key", ROUTING_KEY)
    notifiers = build_notifiers(
        {
            "oncall": {
                "type": "pagerduty",
                "routing_key_file": str(key),
                "url": r.url + "/v2/enqueue",
                "source": "slo-engine.prod",
            }
        }
    )
    return notifiers["oncall"], r


# --- PagerDuty ----------------------------------------------------------------------


def test_pagerduty_trigger_payload_is_exact(pagerduty) -> None:
    notifier, r = pagerduty
    notifier.send(notification("triggered"))
    (request,) = r.requests
    assert request.path == "/v2/enqueue"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    details = snapshot()
    details["event"] = "triggered"
    details["message"] = "checkout/availability burned 2% of its 30d budget in 1h."
    assert request.json() == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "INC-2025-0007",
        "payload": {
            "summary": "[SEV2] INC-2025-0007 checkout: availability burning",
            "source": "slo-engine.prod",
            "severity": "error",
            "timestamp": "2025-03-01T12:00:00.000Z",
            "component": "checkout",
            "group": "checkout",
            "class": "slo_burn",
            "custom_details": details,
        },
        "links": [
            {"href": "https://runbooks.example.com/checkout", "text": "Runbook"},
            {"href": "https://grafana.example.com/d/checkout", "text": "Dashboard"},
        ],
        "client": "slo-engine",
        "client_url": "https://grafana.example.com/d/checkout",
    }


@pytest.mark.parametrize(
    ("event", "action"), [("acknowledged", "acknowledge"), ("resolved", "resolve")]
)
def test_pagerduty_acknowledge_and_resolve_carry_only_the_dedup_key(
    pagerduty, event, action
) -> None:
    notifier, r = pagerduty
    notifier.send(notification(event))
    assert r.requests[0].json() == {
        "routing_key": ROUTING_KEY,
        "event_action": action,
        "dedup_key": "INC-2025-0007",
    }


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("SEV1", "critical"), ("SEV2", "error"), ("SEV3", "warning"), ("SEV4", "info")],
)
def test_pagerduty_severity_mapping(pagerduty, severity, expected) -> None:
    notifier, r = pagerduty
    notifier.send(notification("escalated", incident=snapshot(severity=severity)))
    body = r.requests[0].json()
    assert body["event_action"] == "trigger"
    assert body["payload"]["severity"] == expected


def test_pagerduty_static_links_follow_incident_links(tmp_path, receiver) -> None:
    r = receiver()
    notifiers = build_notifiers(
        {
            "pd": {
                "type": "pagerduty",
                "routing_key_file": str(secret_file(tmp_path, "k", ROUTING_KEY)),
                "url": r.url,
                "links": [{"href": "https://status.example.com", "text": "Status page"}],
            }
        }
    )
    incident = snapshot(dashboard_url=None)
    notifiers["pd"].send(notification(incident=incident))
    body = r.requests[0].json()
    assert body["links"] == [
        {"href": "https://runbooks.example.com/checkout", "text": "Runbook"},
        {"href": "https://status.example.com", "text": "Status page"},
    ]
    assert "client_url" not in body
    assert body["payload"]["source"] == "slo-engine"


def test_pagerduty_unknown_severity_is_permanent(pagerduty) -> None:
    notifier, r = pagerduty
    with pytest.raises(PermanentDeliveryError, match="SEV9"):
        notifier.send(notification(incident=snapshot(severity="SEV9")))
    assert r.requests == []


# --- answer classification -----------------------------------------------------------


def _pd_with(tmp_path, receiver, responder):
    r = receiver(responder)
    key = secret_file(tmp_path, "pd.key", ROUTING_KEY)
    config = {"type": "pagerduty", "routing_key_file": str(key), "url": r.url + "/v2/enqueue"}
    return build_notifiers({"pd": config})["pd"], r


def test_400_is_permanent_and_redacts_echoed_secret(tmp_path, receiver) -> None:
    body = json.dumps({"status": "invalid event", "routing_key": ROUTING_KEY}).encode()
    notifier, _ = _pd_with(tmp_path, receiver, always(400, body))
    with pytest.raises(PermanentDeliveryError) as info:
        notifier.send(notification())
    assert info.value.status == 400
    assert ROUTING_KEY not in str(info.value)
    assert "***" in str(info.value)


def test_429_is_retryable_with_retry_after_seconds(tmp_path, receiver) -> None:
    notifier, _ = _pd_with(tmp_path, receiver, always(429, b"slow down", **{"Retry-After": "7"}))
    with pytest.raises(RetryableDeliveryError) as info:
        notifier.send(notification())
    assert (info.value.status, info.value.retry_after) == (429, 7.0)


def test_503_with_http_date_retry_after_uses_server_date(tmp_path, receiver) -> None:
    headers = {
        "Retry-After": "Sat, 01 Mar 2025 12:02:00 GMT",
        "Date": "Sat, 01 Mar 2025 12:00:30 GMT",
    }
    notifier, _ = _pd_with(tmp_path, receiver, always(503, b"", **headers))
    with pytest.raises(RetryableDeliveryError) as info:
        notifier.send(notification())
    assert info.value.retry_after == 90.0


@pytest.mark.parametrize("status", [500, 502, 408])
def test_server_errors_are_retryable(tmp_path, receiver, status) -> None:
    notifier, _ = _pd_with(tmp_path, receiver, always(status, b"oops"))
    with pytest.raises(RetryableDeliveryError) as info:
        notifier.send(notification())
    assert info.value.status == status
    assert info.value.retry_after is None


@pytest.mark.parametrize("status", [401, 403, 404, 413, 301])
def test_other_client_errors_and_redirects_are_permanent(tmp_path, receiver, status) -> None:
    notifier, _ = _pd_with(tmp_path, receiver, always(status, b"no", Location="http://x/"))
    with pytest.raises(PermanentDeliveryError):
        notifier.send(notification())


def test_connection_refused_is_retryable(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = secret_file(tmp_path, "k", ROUTING_KEY)
    config = {"type": "pagerduty", "routing_key_file": str(key), "url": f"http://127.0.0.1:{port}"}
    with pytest.raises(RetryableDeliveryError, match="unreachable"):
        build_notifiers({"pd": config})["pd"].send(notification())


def test_timeout_is_retryable(tmp_path) -> None:
    # A listener that accepts but never answers.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        key = secret_file(tmp_path, "k", ROUTING_KEY)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        config = {
            "type": "pagerduty",
            "routing_key_file": str(key),
            "url": url,
            "timeout_seconds": 0.3,
        }
        with pytest.raises(RetryableDeliveryError, match="timed out"):
            build_notifiers({"pd": config})["pd"].send(notification())
    finally:
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()


# --- Slack ---------------------------------------------------------------------------


def test_slack_payload_is_exact(tmp_path, receiver) -> None:
    r = receiver(always(200, b"ok"))
    hook = secret_file(tmp_path, "slack.url", r.url + "/services/T000/B000/XXXXSECRET")
    notifier = build_notifiers({"chat": {"type": "slack", "webhook_url_file": str(hook)}})["chat"]
    incident = snapshot(summary="errors <b> & more", acknowledged_by="alice", status="mitigating")
    notifier.send(
        notification(
            "acknowledged", incident=incident, title="INC-2025-0007 <checkout>", message="a & b"
        )
    )
    (request,) = r.requests
    assert request.path == "/services/T000/B000/XXXXSECRET"
    assert request.headers["content-type"] == "application/json"
    title = "ACKNOWLEDGED: INC-2025-0007 &lt;checkout&gt;"
    assert request.json() == {
        "text": title,
        "attachments": [
            {
                "fallback": title,
                "color": "#9e9e9e",
                "title": title,
                "text": "a &amp; b",
                "fields": [
                    {"title": "Severity", "value": "SEV2", "short": True},
                    {"title": "Status", "value": "mitigating", "short": True},
                    {"title": "Service", "value": "checkout", "short": True},
                    {"title": "SLOs", "value": "checkout/availability", "short": True},
                    {"title": "Acknowledged by", "value": "alice", "short": True},
                    {
                        "title": "Links",
                        "value": "<https://runbooks.example.com/checkout|Runbook> · "
                        "<https://grafana.example.com/d/checkout|Dashboard>",
                        "short": False,
                    },
                ],
                "footer": "slo-engine · INC-2025-0007",
                "title_link": "https://grafana.example.com/d/checkout",
            }
        ],
    }


@pytest.mark.parametrize(
    ("event", "severity", "colour"),
    [
        ("triggered", "SEV1", "#b00020"),
        ("escalated", "SEV2", "#e8590c"),
        ("updated", "SEV3", "#f2c744"),
        ("triggered", "SEV4", "#3b82f6"),
        ("resolved", "SEV1", "#2eb886"),
    ],
)
def test_slack_colour_follows_severity_and_event(tmp_path, receiver, event, severity, colour):
    r = receiver(always(200, b"ok"))
    hook = secret_file(tmp_path, "slack.url", r.url + "/hook")
    notifier = build_notifiers({"chat": {"type": "slack", "webhook_url_file": str(hook)}})["chat"]
    notifier.send(notification(event, incident=snapshot(severity=severity)))
    assert r.requests[0].json()["attachments"][0]["color"] == colour


def test_slack_error_never_shows_the_webhook_url(tmp_path, receiver) -> None:
    r = receiver(always(404, b"no_service"))
    hook = secret_file(tmp_path, "slack.url", r.url + "/services/T1/B1/TOPSECRETTOKEN")
    notifier = build_notifiers({"chat": {"type": "slack", "webhook_url_file": str(hook)}})["chat"]
    with pytest.raises(PermanentDeliveryError) as info:
        notifier.send(notification())
    assert "TOPSECRETTOKEN" not in str(info.value)
    assert "no_service" in str(info.value)


# --- generic webhook ------------------------------------------------------------------


def test_webhook_body_and_headers_are_exact(tmp_path, receiver) -> None:
    r = receiver(always(204, b""))
    signing = secret_file(tmp_path, "hmac", "s1gn1ng-secret")
    auth = secret_file(tmp_path, "auth", "Bearer t0ken")
    notifiers = build_notifiers(
        {
            "hook": {
                "type": "webhook",
                "url": r.url + "/incidents",
                "headers": {"X-Team": "payments"},
                "header_files": {"Authorization": str(auth)},
                "secret_file": str(signing),
            }
        }
    )
    n = notification("resolved", incident=snapshot(status="resolved"))
    notifiers["hook"].send(n)
    (request,) = r.requests
    assert request.path == "/incidents"
    assert request.json() == {
        "event": "resolved",
        "dedup_key": "INC-2025-0007",
        "incident": snapshot(status="resolved"),
    }
    assert request.headers["idempotency-key"] == "INC-2025-0007:resolved:oncall:1"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["x-team"] == "payments"
    assert request.headers["content-type"] == "application/json"
    expected = hmac.new(b"s1gn1ng-secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-slo-engine-signature"] == "sha256=" + expected


def test_webhook_without_signing_sends_no_signature(receiver) -> None:
    r = receiver(always(200, b""))
    notifier = build_notifiers({"hook": {"type": "webhook", "url": r.url}})["hook"]
    notifier.send(notification("updated"))
    headers = r.requests[0].headers
    assert "x-slo-engine-signature" not in headers
    assert headers["idempotency-key"] == "INC-2025-0007:updated:oncall:1"
    assert set(r.requests[0].json()) == {"event", "dedup_key", "incident"}
