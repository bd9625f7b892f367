"""PromQL sent in POST form bodies (engine.source.post_query): the same answers as a plain GET
from a real Prometheus, the exact requests on the wire (a loopback stand-in records them),
and the fall back to the client's GET for a backend that refuses POST."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from harness.specs import shop_errors_slos
from prometheus_api_client import PrometheusApiClientException

from engine.demo.scenario import Scenario, ServiceLoad
from engine.source.api_errors import parse_client_error
from engine.source.localprom import LocalPrometheus
from engine.source.partial import PartialResponse
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration

HOUR = 3600
START = (int(time.time()) // HOUR - 4) * HOUR
SCENARIO = Scenario(
    start=START,
    duration="2h",
    scrape_interval=60,
    services=[ServiceLoad(job="api", rps=20, error_ratio=0.01), ServiceLoad(job="web", rps=5)],
)
AT = START + HOUR + 1800
SLOS = shop_errors_slos()
FORM = "application/x-www-form-urlencoded"


def _answer(path: str) -> dict[str, Any]:
    if path.startswith("/api/v1/query_range"):
        data = {"resultType": "matrix", "result": [{"metric": {}, "values": [[AT, "1"]]}]}
    else:
        data = {"resultType": "vector", "result": [{"metric": {"job": "api"}, "value": [AT, "1"]}]}
    return {"status": "success", "data": data}


@dataclass
class Seen:
    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class Backend:
    """What the loopback stand-in answers, and what it was sent.

    Each POST takes its answer from `post_script` ((status, body) pairs; a body of None is
    the success envelope), then from `post_default`; a GET always succeeds."""

    post_script: list[tuple[int, bytes | None]] = field(default_factory=list)
    post_default: tuple[int, bytes | None] = (200, None)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def backend() -> Iterator[Backend]:
    state = Backend()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            state.seen.append(Seen("GET", self.path, {}, dict(self.headers)))
            self._reply(200, json.dumps(_answer(self.path)).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            state.seen.append(Seen("POST", self.path, form, dict(self.headers)))
            status, answer = state.post_script.pop(0) if state.post_script else state.post_default
            self._reply(status, answer or json.dumps(_answer(self.path)).encode())

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def source_for(url: str, **kwargs: Any) -> PrometheusSource:
    kwargs.setdefault("sleep", lambda _s: None)
    return PrometheusSource(url, **kwargs)


# ------------------------------------------------------------------ on the wire


def test_an_instant_query_is_a_form_post_with_the_bearer_token(
    backend: Backend, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    source = source_for(backend.url, bearer_token_file=str(token), timeout=2.5)
    source.window_counts(SLOS, [Duration.parse("1h")], AT)

    assert backend.seen and len(backend.seen) == source.http_requests
    for seen in backend.seen:
        # Nothing in the URL: every parameter is in the body.
        assert (seen.method, seen.path) == ("POST", "/api/v1/query")
        assert set(seen.form) == {"query", "time", "timeout"}
        assert seen.form["time"] == f"{AT}.000" and seen.form["timeout"] == "2500ms"
        assert "http_requests_total" in seen.form["query"]
        assert seen.headers["Content-Type"] == FORM
        assert seen.headers["Authorization"] == "Bearer t0ken"


def test_the_form_body_carries_the_query_byte_for_byte(backend: Backend) -> None:
    # Characters a form body must escape: + (else a space), &, =, %, and non-ASCII.
    query = 'label_replace(up + 1, "note", "a&b=c%20d ü", "", "")'
    source_for(backend.url).query_instant(query, AT)
    assert [s.form["query"] for s in backend.seen] == [query]


def test_a_range_query_is_a_form_post(backend: Backend) -> None:
    source = source_for(backend.url)
    source.fetch(SLOS, Duration.parse("1m"), 600.0, 1200.0)  # 11 steps: query_range
    assert [(s.method, s.path) for s in backend.seen] == [("POST", "/api/v1/query_range")]
    form = backend.seen[0].form
    assert set(form) == {"query", "start", "end", "step", "timeout"}
    assert (form["start"], form["end"], form["step"]) == ("600.000", "1200.000", "60")
    assert form["timeout"] == "10000ms"


@pytest.mark.parametrize("status", [405, 501])
def test_a_backend_refusing_post_is_asked_by_get_from_then_on(
    backend: Backend, status: int
) -> None:
    backend.post_default = (status, b"method not allowed")
    source = source_for(backend.url)
    assert source.query_instant("up", AT) == _answer("/api/v1/query")["data"]["result"]
    assert [(s.method, s.path, s.form) for s in backend.seen] == [
        ("POST", "/api/v1/query", {"query": "up", "time": f"{AT}.000", "timeout": "10000ms"}),
        ("GET", f"/api/v1/query?query=up&time={AT}.000&timeout=10000ms", {}),
    ]
    assert source.http_requests == 2

    # Remembered: range queries too go straight to GET, POST is not tried again.
    del backend.seen[:]
    rates = source.fetch(SLOS, Duration.parse("1m"), 600.0, 1200.0)
    assert rates.errors == {}
    assert [s.method for s in backend.seen] == ["GET"]
    url = urlsplit(backend.seen[0].path)
    params = dict(parse_qsl(url.query))
    assert url.path == "/api/v1/query_range"
    assert (params["start"], params["end"], params["step"]) == ("600.000", "1200.000", "60")
    assert source.http_requests == 3


def test_failures_read_exactly_like_the_clients(backend: Backend) -> None:
    body = b'{"status":"error","errorType":"execution","error":"boom"}'
    backend.post_default = (422, body)
    source = source_for(backend.url)
    with pytest.raises(PrometheusApiClientException) as info:
        source._queries.query("query", {"query": "up"}, lambda: [])
    assert str(info.value) == f"HTTP Status Code 422 ({body!r})"
    assert parse_client_error(info.value) == (422, "execution: boom")
    assert [s.method for s in backend.seen] == ["POST"]  # a 4xx is no reason to try GET


def test_a_5xx_is_retried_by_post_not_answered_by_get(backend: Backend) -> None:
    backend.post_script = [(503, b"overloaded")]
    source = source_for(backend.url, retries=1)
    assert source.query_instant("up", AT)
    assert [s.method for s in backend.seen] == ["POST", "POST"]


def test_a_partial_post_answer_is_caught(backend: Backend) -> None:
    envelope = {**_answer("/api/v1/query"), "warnings": ["store eu-1 unreachable"]}
    backend.post_default = (200, json.dumps(envelope).encode())
    with pytest.raises(PartialResponse, match="store eu-1 unreachable"):
        source_for(backend.url).query_instant("up", AT)


# ------------------------------------------------------------- real Prometheus


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for: Any) -> LocalPrometheus:
    return module_prometheus_for(SCENARIO)


def large_query() -> str:
    """A batched query over 8 KB: a regex matcher of hundreds of alternatives, and many
    `label_replace(…) or …` parts carrying characters a form body must escape."""
    jobs = "|".join(["api", "web", *(f"gone-{i}" for i in range(400))])
    parts = [
        f'label_replace(sum by (job) (rate(http_requests_total{{job=~"{jobs}"}}[5m])), '
        '"__slo_id", "wide", "", "")'
    ]
    parts += [
        f'label_replace(sum(rate(http_requests_total{{job="api",code!="x&y=z%{i}"}}[5m])) + {i},'
        f' "__slo_id", "p{i} ü", "", "")'
        for i in range(60)
    ]
    return " or ".join(parts)


def _by_labels(result: list[dict]) -> list[tuple[str, Any]]:
    return sorted(
        (json.dumps(s["metric"], sort_keys=True), s.get("value", s.get("values"))) for s in result
    )


@pytest.mark.prometheus
def test_a_large_batched_query_answers_as_a_plain_get(prometheus: LocalPrometheus) -> None:
    query = large_query()
    assert len(query.encode()) > 8192
    source = source_for(prometheus.url)

    instant = source.query_instant(query, AT)
    plain = requests.get(
        f"{prometheus.url}/api/v1/query", params={"query": query, "time": f"{AT}.000"}, timeout=30
    )
    assert plain.status_code == 200
    assert len(instant) == 2 + 60  # the regex's two live jobs, and every tagged part
    assert _by_labels(instant) == _by_labels(plain.json()["data"]["result"])

    start, end = AT - HOUR, AT
    ranged = source._query_range(query, start, end, Duration.parse("5m"))
    plain = requests.get(
        f"{prometheus.url}/api/v1/query_range",
        params={"query": query, "start": start, "end": end, "step": 300},
        timeout=30,
    )
    assert plain.status_code == 200
    assert len(ranged) == 2 + 60 and all(len(s["values"]) == 13 for s in ranged)
    assert _by_labels(ranged) == _by_labels(plain.json()["data"]["result"])
    # By POST all along: nothing was refused, one request each.
    assert not source._queries.get_only and source.http_requests == 2
