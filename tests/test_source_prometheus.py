"""PrometheusSource against a real Prometheus (backfilled with known traffic), and its HTTP
behaviour (retries, auth, failures) through a local proxy in front of that Prometheus."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
import requests

from engine.demo.scenario import DatabaseLoad, Incident, Scenario, ServiceLoad, write_openmetrics
from engine.evaluation.source import SourceUnavailable
from engine.source.localprom import LocalPrometheus, backfill, free_port, skip_reason
from engine.source.prometheus import PrometheusSource
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

pytestmark = pytest.mark.prometheus

HOUR = 3600
STEP = Duration.parse("5m")
# Scenario: 6 h of 60 s scrapes ending 2 h ago (backfilled data must be in the past).
START = (int(time.time()) // HOUR - 8) * HOUR
SCENARIO = Scenario(
    start=START,
    duration="6h",
    scrape_interval=60,
    services=[
        ServiceLoad(
            job="api",
            rps=20,
            error_ratio=0.01,
            slow_ratio=0.05,
            incidents=[Incident(start="2h", end="2h30m", error_ratio=0.5, slow_ratio=0.4)],
        ),
        ServiceLoad(job="web", rps=5, error_ratio=0.002),
    ],
    database=DatabaseLoad(outages=[("3h", "3h20m")]),
)


def _events(name: str, bad: str, total: str) -> dict[str, Any]:
    return {"name": name, "objective": 99.9, "sli": {"events": {"bad": bad, "total": total}}}


def make_slos(*extra: dict[str, Any]) -> list[SLO]:
    slos = [
        _events(
            "errors",
            'sum(rate(http_requests_total{job="api",code="500"}[{{window}}]))',
            'sum(rate(http_requests_total{job="api"}[{{window}}]))',
        ),
        {
            "name": "latency",
            "objective": 99,
            "sli": {
                "latency": {
                    "histogram": "http_request_duration_seconds",
                    "selector": 'job="api"',
                    "threshold": "500ms",
                }
            },
        },
        {
            "name": "db",
            "objective": 99.5,
            "sli": {"availability": {"metric": 'pg_up{job="database"}'}},
        },
        # No sum(): the source must sum the per-job series itself.
        _events(
            "all-jobs",
            'rate(http_requests_total{code="500"}[{{window}}])',
            "rate(http_requests_total[{{window}}])",
        ),
        *extra,
    ]
    spec = ServiceSpec.model_validate(
        {"apiVersion": "slo-engine/v1", "service": "shop", "slos": slos}
    )
    return spec.slo_records()


BROKEN_MATCH = _events(
    "broken-match",
    # Valid syntax, fails at execution: many-to-many matching (HTTP 422).
    'sum(rate(http_requests_total{job="api"}[{{window}}])) / on() group_left rate(http_requests_total[{{window}}])',
    'sum(rate(http_requests_total{job="api"}[{{window}}]))',
)
BROKEN_PARSE = _events(
    "broken-parse",
    # A function that does not exist: a parse error (HTTP 400).
    'sum(no_such_function(http_requests_total{job="api"}[{{window}}]))',
    'sum(rate(http_requests_total{job="api"}[{{window}}]))',
)
MISSING = _events(
    "missing",
    'sum(rate(does_not_exist_total{code="500"}[{{window}}]))',
    "sum(rate(does_not_exist_total[{{window}}]))",
)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrometheus]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("source-prom")
    tsdb = backfill(write_openmetrics(SCENARIO, workdir / "data.om"), workdir / "tsdb")
    with LocalPrometheus(tsdb) as server:
        yield server


def source_for(url: str, **kwargs: Any) -> PrometheusSource:
    kwargs.setdefault("sleep", lambda _s: None)  # no real backoff waits in tests
    return PrometheusSource(url, **kwargs)


# Evaluation range: 1 h .. 5 h into the scenario, on the 5 m grid (49 points).
T0, T1 = START + HOUR, START + 5 * HOUR


def expected_rates(slo_name: str, t: float) -> tuple[float, float]:
    """Ground truth per 5 m step ending at t: (bad/s, total/s)."""
    w = STEP.seconds
    s = SCENARIO
    if slo_name == "errors":
        return s.expected_increase("api", t - w, t, "errors") / w, s.expected_increase(
            "api", t - w, t
        ) / w
    if slo_name == "latency":
        return s.expected_increase("api", t - w, t, "slow") / w, s.expected_increase(
            "api", t - w, t, "count"
        ) / w
    if slo_name == "db":
        # Samples in (t - 5m, t]: 5 at 60 s. Prometheus 2.x ranges include both ends, so the
        # source shortens them by 1 ms; otherwise boundary samples would count twice.
        up, count = s.expected_up_samples(t - w + 0.001, t)
        return (count - up) / w, count / w
    if slo_name == "all-jobs":
        bad = sum(s.expected_increase(j, t - w, t, "errors") for j in ("api", "web"))
        total = sum(s.expected_increase(j, t - w, t) for j in ("api", "web"))
        return bad / w, total / w
    raise KeyError(slo_name)


def test_batched_rates_equal_ground_truth(prometheus: LocalPrometheus) -> None:
    slos = make_slos()
    source = source_for(prometheus.url)
    rates = source.fetch(slos, STEP, T0, T1)

    assert source.http_requests == 1  # 4 SLOs × (bad, total) in one request
    assert rates.errors == {}
    assert rates.times[0] == T0 and rates.times[-1] == T1
    assert np.all(np.diff(rates.times) == STEP.seconds)
    for row, slo in enumerate(slos):
        for k, t in enumerate(rates.times):
            bad, total = expected_rates(slo.name, t)
            assert rates.bad[row, k] == pytest.approx(bad, rel=1e-9, abs=1e-12), (slo.id, t)
            assert rates.total[row, k] == pytest.approx(total, rel=1e-9), (slo.id, t)
    # Steps partition the samples: their sum is the sample count over the whole range.
    db = [s.name for s in slos].index("db")
    up, count = SCENARIO.expected_up_samples(T0 - STEP.seconds + 0.001, T1)
    assert rates.total[db].sum() * STEP.seconds == pytest.approx(count)
    assert rates.bad[db].sum() * STEP.seconds == pytest.approx(count - up)
    assert count - up == 20  # the 20-minute outage
    # The incident is visible: 50 % errors during 2h..2h30m.
    during = rates.times == START + 2 * HOUR + 15 * 60
    assert rates.bad[0, during] / rates.total[0, during] == pytest.approx(0.5, rel=0.01)


def test_batch_size_and_time_chunks_do_not_change_the_answer(prometheus: LocalPrometheus) -> None:
    slos = make_slos()
    reference = source_for(prometheus.url).fetch(slos, STEP, T0, T1)

    # One atom per request: no batching, no grouping — the same numbers.
    one_per_batch = source_for(prometheus.url, batch_size=1)
    split = one_per_batch.fetch(slos, STEP, T0, T1)
    assert one_per_batch.http_requests >= 2 * len(slos)
    np.testing.assert_array_equal(split.bad, reference.bad)
    np.testing.assert_array_equal(split.total, reference.total)

    # 49 points, at most 10 per request: 5 time chunks per batch.
    small_batches = source_for(prometheus.url, batch_size=2)
    small_batches.fetch(slos, STEP, T0, T1)
    chunked_source = source_for(prometheus.url, batch_size=2, max_points=10)
    chunked = chunked_source.fetch(slos, STEP, T0, T1)
    assert chunked_source.http_requests == 5 * small_batches.http_requests
    np.testing.assert_array_equal(chunked.bad, reference.bad)
    np.testing.assert_array_equal(chunked.total, reference.total)


def test_slos_differing_in_one_label_share_one_selector(prometheus: LocalPrometheus) -> None:
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "fleet",
            "slos": [
                _events(
                    job,
                    f'sum(rate(http_requests_total{{job="{job}",code="500"}}[{{{{window}}}}]))',
                    f'sum(rate(http_requests_total{{job="{job}"}}[{{{{window}}}}]))',
                )
                for job in ("api", "web", "gone")
            ],
        }
    )
    source = source_for(prometheus.url)
    rates = source.fetch(spec.slo_records(), STEP, T0, T1)
    assert source.http_requests == 1
    # The query asked for two `sum by (job)` selectors, not six expressions.
    for row, job in enumerate(("api", "web")):
        for k, t in enumerate(rates.times):
            bad = SCENARIO.expected_increase(job, t - 300, t, "errors") / 300
            total = SCENARIO.expected_increase(job, t - 300, t) / 300
            assert rates.bad[row, k] == pytest.approx(bad, rel=1e-9, abs=1e-12)
            assert rates.total[row, k] == pytest.approx(total, rel=1e-9)
    assert np.isnan(rates.total[2]).all() and rates.errors == {}


def test_query_length_limit_splits_batches(prometheus: LocalPrometheus) -> None:
    slos = make_slos()
    source = source_for(prometheus.url, max_query_chars=400)
    rates = source.fetch(slos, STEP, T0, T1)
    assert source.http_requests >= 3
    assert rates.errors == {}
    assert not np.isnan(rates.total).any()


@pytest.mark.parametrize("broken", [BROKEN_MATCH, BROKEN_PARSE], ids=["execution", "parse"])
def test_a_failing_slo_is_isolated_and_the_rest_answer(
    prometheus: LocalPrometheus, broken: dict[str, Any]
) -> None:
    slos = make_slos(broken)
    reference = source_for(prometheus.url).fetch(slos[:4], STEP, T0, T1)
    source = source_for(prometheus.url)
    rates = source.fetch(slos, STEP, T0, T1)

    broken_id = f"shop/{broken['name']}"
    assert set(rates.errors) == {broken_id}
    assert rates.errors[broken_id].startswith("PromQL error:")
    assert np.isnan(rates.bad[4]).all() and np.isnan(rates.total[4]).all()
    np.testing.assert_array_equal(rates.bad[:4], reference.bad)
    np.testing.assert_array_equal(rates.total[:4], reference.total)
    # Bisection, not one request per atom.
    assert source.http_requests <= 9


def test_missing_metric_is_no_data_not_zero_and_not_an_error(prometheus: LocalPrometheus) -> None:
    slos = make_slos(MISSING)
    rates = source_for(prometheus.url).fetch(slos, STEP, T0, T1)
    assert rates.errors == {}
    assert np.isnan(rates.bad[4]).all() and np.isnan(rates.total[4]).all()
    assert not np.isnan(rates.total[:4]).any()


def test_data_ending_inside_the_range_leaves_later_steps_nan(prometheus: LocalPrometheus) -> None:
    end = SCENARIO.end + 20 * 60  # 20 min past the last sample: beyond the 5 m lookback
    rates = source_for(prometheus.url).fetch(make_slos()[:1], STEP, SCENARIO.end - 10 * 60, end)
    assert not np.isnan(rates.total[0, :3]).any()
    assert np.isnan(rates.total[0, -2:]).all()


def test_empty_requests_make_no_http_call(prometheus: LocalPrometheus) -> None:
    source = source_for(prometheus.url)
    rates = source.fetch([], STEP, T0, T1)
    assert rates.bad.shape == (0, 49)
    rates = source.fetch(make_slos(), STEP, T1, T0)
    assert rates.times.size == 0 and rates.bad.shape == (4, 0)
    assert source.http_requests == 0


# --------------------------------------------------------------------- HTTP behaviour


class Proxy:
    """A local HTTP server in front of the real Prometheus that misbehaves on cue.

    `script` is consumed one entry per request: "proxy" forwards, ("status", code) answers
    with that code and a Prometheus-style error body, ("sleep", s) waits s seconds and then
    forwards. When the script is empty every request is forwarded (or answered with
    `default` when set). Every request's method, path, headers and parameters (from the URL
    and the form body alike) are recorded.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.script: list[Any] = []
        self.default: Any = "proxy"
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._handle(b"")

            def do_POST(self) -> None:
                self._handle(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _handle(self, body: bytes) -> None:
                params = dict(parse_qsl(urlsplit(self.path).query))
                params.update(parse_qsl(body.decode()))
                seen = {"method": self.command, "path": self.path, "params": params}
                with proxy.lock:
                    proxy.seen.append({**seen, "headers": dict(self.headers)})
                    action = proxy.script.pop(0) if proxy.script else proxy.default
                if isinstance(action, tuple) and action[0] == "status":
                    code = action[1]
                    kind = {400: "bad_data", 422: "execution", 503: "unavailable"}.get(code, "x")
                    body = json.dumps(
                        {"status": "error", "errorType": kind, "error": f"injected {code}"}
                    )
                    self._answer(code, body.encode())
                    return
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                upstream = requests.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body or None,
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                    timeout=30,
                )
                # The client may have given up waiting (timeout tests).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer(upstream.status_code, upstream.content)

            def _answer(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(prometheus: LocalPrometheus) -> Iterator[Proxy]:
    server = Proxy(prometheus.url)
    yield server
    server.close()


def test_retries_5xx_and_429_then_succeeds(proxy: Proxy) -> None:
    proxy.script = [("status", 503), ("status", 429), "proxy"]
    slept: list[float] = []
    source = PrometheusSource(proxy.url, retries=3, backoff=0.5, sleep=slept.append)
    rates = source.fetch(make_slos(), STEP, T0, T1)
    assert rates.errors == {}
    assert not np.isnan(rates.total).any()
    assert source.http_requests == 3 and len(proxy.seen) == 3
    # Exponential backoff with full jitter: attempt n waits within [0, 0.5 · 2^(n-1)].
    assert len(slept) == 2 and 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0


def test_never_retries_a_400(proxy: Proxy) -> None:
    proxy.default = ("status", 400)
    source = source_for(proxy.url)
    rates = source.fetch(make_slos()[:1], STEP, T0, T1)
    # The batch (bad and total atoms) is bisected, but no request is ever sent twice.
    sent = [tuple(sorted(seen["params"].items())) for seen in proxy.seen]
    assert len(sent) == source.http_requests == 3
    assert len(set(sent)) == len(sent)
    assert rates.errors == {"shop/errors": "PromQL error: bad_data: injected 400"}
    assert np.isnan(rates.bad).all()


def test_retries_exhausted_is_source_unavailable(proxy: Proxy) -> None:
    proxy.default = ("status", 503)
    source = source_for(proxy.url, retries=2)
    with pytest.raises(SourceUnavailable, match="gave up after 3 attempts"):
        source.fetch(make_slos()[:1], STEP, T0, T1)
    assert len(proxy.seen) == 3


def test_one_failing_batch_is_an_error_for_its_slos_only(proxy: Proxy) -> None:
    proxy.script = [("status", 503)] * 3  # the first batch's 3 attempts
    slos = make_slos()
    source = source_for(proxy.url, retries=2, batch_size=2, concurrency=1)
    rates = source.fetch(slos, STEP, T0, T1)
    assert 0 < len(rates.errors) < len(slos)
    assert all("unavailable" in m for m in rates.errors.values())
    for row, slo in enumerate(slos):
        failed = slo.id in rates.errors
        assert np.isnan(rates.total[row]).all() == failed, slo.id
        assert np.isnan(rates.bad[row]).all() == failed, slo.id


def test_a_slow_answer_times_out_and_is_retried(proxy: Proxy) -> None:
    proxy.script = [("sleep", 3), "proxy"]
    source = source_for(proxy.url, timeout=1, retries=1)
    rates = source.fetch(make_slos(), STEP, T0, T1)
    assert rates.errors == {} and source.http_requests == 2
    # Prometheus is told to give up too.
    assert proxy.seen[0]["params"]["timeout"] == "1000ms"


def test_connection_refused_is_source_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    source = source_for(url, retries=1, batch_size=1, concurrency=1)
    with pytest.raises(SourceUnavailable, match="cannot connect"):
        source.fetch(make_slos(), STEP, T0, T1)
    # The first refused batch (2 attempts) stops the other 7 from retrying in vain.
    assert source.http_requests == 2


def test_bearer_token_is_read_from_file_and_never_logged(
    proxy: Proxy, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    source = source_for(proxy.url, bearer_token_file=str(token_file))
    caplog.set_level(logging.DEBUG)
    proxy.script = [("status", 503)]
    source.fetch(make_slos()[:1], STEP, T0, T1)
    assert [s["headers"].get("Authorization") for s in proxy.seen] == ["Bearer s3cr3t-token"] * 2
    # A rotated token is picked up on the next fetch.
    token_file.write_text("rotated")
    source.fetch(make_slos()[:1], STEP, T0, T1)
    assert proxy.seen[-1]["headers"]["Authorization"] == "Bearer rotated"
    assert "s3cr3t" not in caplog.text and "rotated" not in caplog.text


def test_basic_auth_password_from_file(proxy: Proxy, tmp_path: Any) -> None:
    password = tmp_path / "password"
    password.write_text("hunter2\n")
    source = source_for(proxy.url, basic_auth_user="slo", basic_auth_password_file=str(password))
    source.fetch(make_slos()[:1], STEP, T0, T1)
    # base64("slo:hunter2")
    assert proxy.seen[0]["headers"]["Authorization"] == "Basic c2xvOmh1bnRlcjI="


def test_rejected_credentials_stop_at_once(proxy: Proxy, tmp_path: Any) -> None:
    proxy.default = ("status", 401)
    token_file = tmp_path / "token"
    token_file.write_text("wrong")
    source = source_for(proxy.url, bearer_token_file=str(token_file), batch_size=1, concurrency=1)
    with pytest.raises(SourceUnavailable, match="refused the credentials") as info:
        source.fetch(make_slos(), STEP, T0, T1)
    assert "wrong" not in str(info.value)
    assert len(proxy.seen) == 1


def test_missing_secret_file_names_the_file_not_the_secret(tmp_path: Any) -> None:
    source = source_for("http://127.0.0.1:1", bearer_token_file=str(tmp_path / "absent"))
    with pytest.raises(SourceUnavailable, match="cannot read bearer token file"):
        source.fetch(make_slos(), STEP, T0, T1)


def test_every_query_carries_explicit_times(proxy: Proxy) -> None:
    source_for(proxy.url).fetch(make_slos(), STEP, T0, T1)
    # In the form body, not the URL (engine.source.post_query).
    assert proxy.seen[0]["method"] == "POST" and proxy.seen[0]["path"] == "/api/v1/query_range"
    params = proxy.seen[0]["params"]
    assert (params["start"], params["end"], params["step"]) == (f"{T0}.000", f"{T1}.000", "300")
    proxy.seen.clear()
    source_for(proxy.url).query_instant("up", at=T1)
    assert proxy.seen[0]["path"] == "/api/v1/query"
    assert proxy.seen[0]["params"]["time"] == f"{T1}.000"
