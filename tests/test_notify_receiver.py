"""A real HTTP receiver on 127.0.0.1 for notifier tests (PagerDuty's cloud, Slack and
webhook endpoints stand-in), plus the shared notification factory those tests use."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from engine.incidents.incident import Notification


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]
Responder = Callable[[int, Received], Reply]


def always(status: int = 202, body: bytes = b'{"status":"success"}', **headers: str) -> Responder:
    return lambda _index, _request: (status, dict(headers), body)


@dataclass
class RecordingReceiver:
    """Records every request; answers via `responder(index, request)` (index from 0)."""

    responder: Responder = field(default_factory=always)
    requests: list[Received] = field(default_factory=list)
    # Requests answered with 2xx: what the receiver has *accepted*.
    accepted: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    "POST",
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with receiver._lock:
                    index = len(receiver.requests)
                    receiver.requests.append(request)
                status, headers, body = receiver.responder(index, request)
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.accepted.append(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(name="receiver")
def receiver_fixture():
    """Factory of started receivers, all closed after the test. Other notify test modules
    import this function (under its own name) to get the `receiver` fixture."""
    created: list[RecordingReceiver] = []

    def make(responder: Responder | None = None) -> RecordingReceiver:
        r = RecordingReceiver(responder or always())
        created.append(r)
        return r

    yield make
    for r in created:
        r.close()


def snapshot(**overrides: Any) -> dict[str, Any]:
    incident = {
        "id": "INC-2025-0007",
        "severity": "SEV2",
        "status": "investigating",
        "service": "checkout",
        "slos": ["checkout/availability"],
        "opened_at": "2025-03-01T12:00:00.000Z",
        "summary": "checkout/availability burning 14.4x budget (page)",
        "runbook_url": "https://runbooks.example.com/checkout",
        "dashboard_url": "https://grafana.example.com/d/checkout",
        "acknowledged_at": None,
        "acknowledged_by": None,
        "commander": None,
        "resolved_at": None,
        "escalation_level": 0,
        "related_services": [],
        "flapping": False,
        "fingerprints": ["8f1c2b3a4d5e6f70"],
        "customer_notice": None,
    }
    incident.update(overrides)
    return incident


def notification(
    event: str = "triggered",
    *,
    receiver: str = "oncall",
    seq: int = 1,
    incident: dict[str, Any] | None = None,
    title: str = "[SEV2] INC-2025-0007 checkout: availability burning",
    message: str = "checkout/availability burned 2% of its 30d budget in 1h.",
    created_at: float = 1_740_830_400.0,
) -> Notification:
    incident = incident or snapshot()
    return Notification(
        id=f"{incident['id']}:{event}:{receiver}:{seq}",
        receiver=receiver,
        event=event,  # type: ignore[arg-type]
        dedup_key=incident["id"],
        incident=incident,
        created_at=created_at,
        message=message,
        title=title,
    )


def test_receiver_records_and_answers(receiver) -> None:
    import urllib.request

    r = receiver(always(201, b"ok", **{"X-Test": "1"}))
    request = urllib.request.Request(r.url + "/p", data=b'{"a":1}', method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
        assert response.headers["X-Test"] == "1"
        assert response.read() == b"ok"
    assert [(q.path, q.json()) for q in r.requests] == [("/p", {"a": 1})]
    assert len(r.accepted) == 1
