"""A local webhook receiver: records (and optionally prints) what slo-engine sends.

Used by `make demo` (prints each notification as it arrives) and by the end-to-end tests
(assert on the exact bodies). Loopback only; answers 200 unless told to fail.

    with WebhookSink() as sink:
        ... slo-engine run --webhook {sink.url} ...
        sink.wait_for(lambda bodies: any(b["event"] == "triggered" for b in bodies))
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.time)

    @property
    def event(self) -> str:
        return str(self.body.get("event"))

    @property
    def incident(self) -> dict[str, Any]:
        return dict(self.body.get("incident") or {})


class WebhookSink:
    def __init__(
        self,
        port: int = 0,
        on_receive: Callable[[Received], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.received: list[Received] = []
        # HTTP status to answer with (tests flip it to 503 to simulate a receiver outage).
        self.status = 200
        self._on_receive = on_receive
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status = sink.status
                if status == 200:
                    try:
                        body = json.loads(raw or b"{}")
                    except ValueError:
                        body = {"unparsable": raw.decode("utf-8", "replace")}
                    item = Received(self.path, dict(self.headers.items()), body)
                    with sink._changed:
                        sink.received.append(item)
                        sink._changed.notify_all()
                    if sink._on_receive is not None:
                        sink._on_receive(item)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler

    def start(self) -> WebhookSink:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-sink", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def events(self, event: str | None = None, service: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if (event is None or r.event == event)
                and (service is None or r.incident.get("service") == service)
            ]

    def wait_for(
        self, condition: Callable[[list[Received]], bool], timeout: float = 60.0
    ) -> list[Received]:
        """Block until `condition(received)` holds; raise TimeoutError with what arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(list(self.received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [
                        (r.event, r.incident.get("id"), r.incident.get("severity"))
                        for r in self.received
                    ]
                    raise TimeoutError(
                        f"webhook condition not met after {timeout:g}s; received {seen}"
                    )
                self._changed.wait(min(left, 0.5))
            return list(self.received)
