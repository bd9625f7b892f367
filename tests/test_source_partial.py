"""Partial responses (Thanos/Mimir `warnings`, VictoriaMetrics `isPartial`) are surfaced as
errors of the SLOs they concern, never evaluated as complete data.

Thanos cannot run here, so a loopback HTTP server answers the query API with the exact
envelope such a backend sends; the assertions are on what the source makes of it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from harness.specs import shop_errors_slos

from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration

SLOS = shop_errors_slos()


class Backend(ThreadingHTTPServer):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.envelope_extra: dict = {}


class Handler(BaseHTTPRequestHandler):
    server: Backend

    def do_GET(self) -> None:
        body = {
            "status": "success",
            "data": {"resultType": "matrix", "result": []},
            **self.server.envelope_extra,
        }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def fetch(server: Backend):
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return PrometheusSource(url, retries=0).fetch(SLOS, Duration.parse("1m"), 600.0, 1200.0)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"warnings": ["No StoreAPIs matched for this query", "store eu-1 timed out"]}, "eu-1"),
        ({"isPartial": True}, "isPartial"),
    ],
)
def test_a_partial_answer_is_an_error_of_its_slos(backend: Backend, extra: dict, reason: str):
    backend.envelope_extra = extra
    rates = fetch(backend)
    (message,) = rates.errors.values()
    assert "partial response from http://127.0.0.1:" in message and reason in message
    assert np.isnan(rates.total).all()


def test_a_complete_answer_is_no_error(backend: Backend) -> None:
    backend.envelope_extra = {"isPartial": False, "warnings": []}
    rates = fetch(backend)
    assert rates.errors == {}  # no series: no data, which is not an error
    assert np.isnan(rates.total).all()
