"""A grouped SLO's instances in the API, over the daemon's REAL Runtime (harness.api_runtime:
only the metrics source is scripted, discovery answers included): `…/groups` lists them,
`?group=<label>=<value>` picks one whatever its value holds, and before discovery found
a group the SLO is a `no_data` placeholder — on one daemon and on replicas sharing a real
PostgreSQL, whichever replica answers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import SHAPES, FakeClock, SampleSource, daemon_config
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.daemon.runtime import Runtime

READER = "reader-token-Hp4t7y1u6r0e"
BASE = "shop/availability"
# Values that break naive addressing: a path separator, list and pair separators, a query
# separator and a plus (a space in a query string), a quote and a brace of the id syntax.
ROUTES = ("/cart", "/a,b=c", 'x&y+z"}')
PAGE = SHAPES[0]
SPEC = """apiVersion: slo-engine/v1
service: shop
tier: critical
slos:
  - name: availability
    objective: 99.9
    group_by: [route]
    sli:
      events:
        bad: sum by (route) (rate(http_requests_total{job="shop",code="500"}[{{window}}]))
        total: sum by (route) (rate(http_requests_total{job="shop"}[{{window}}]))
  - name: plain
    objective: 99
    sli:
      events:
        bad: sum(rate(errors_total[{{window}}]))
        total: sum(rate(requests_total[{{window}}]))
"""


def instance_id(route: str) -> str:
    escaped = route.replace("\\", "\\\\").replace('"', '\\"')
    return f'{BASE}{{route="{escaped}"}}'


class GroupedSampleSource(SampleSource):
    """The harness's scripted source, whose discovery query finds `ROUTES` — or fails
    while `discovery_down` (the SLO then has no group yet)."""

    def __init__(self, at: float) -> None:
        super().__init__(at, {instance_id("/cart"): PAGE})
        self.discovery_down = True

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        if "count by (route)" not in query:
            return super().query_instant(query, at)
        if self.discovery_down:
            raise ConnectionError("discovery refused (scripted)")
        tags = re.findall(r'"__slo_id", "(p\d+)"', query)
        return [
            {"metric": {"route": r, "__slo_id": t}, "value": [at, "1"]}
            for t in tags
            for r in ROUTES
        ]


def _specs(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "shop.yaml").write_text(SPEC)
    return directory


def _client(runtime: Runtime, clock: FakeClock, tmp_path: Path) -> TestClient:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{READER} read name=reader\n")
    app = create_app(runtime, load_tokens(tokens), clock=clock)
    return TestClient(app, headers={"Authorization": f"Bearer {READER}"})


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Runtime, GroupedSampleSource, TestClient]]:
    clock = FakeClock(T0)
    source = GroupedSampleSource(T0)
    config = daemon_config(tmp_path, _specs(tmp_path / "specs"))
    runtime = Runtime(config, clock=clock, source=source, notifiers={})
    try:
        yield runtime, source, _client(runtime, clock, tmp_path)
    finally:
        runtime.close()


def _placeholder_answers(client: TestClient) -> None:
    listed = {s["id"]: s for s in client.get("/api/v1/slos").json()["slos"]}
    assert listed[BASE]["status"] == "no_data" and listed[BASE]["group"] == {}
    groups = client.get(f"/api/v1/slos/{BASE}/groups")
    assert groups.status_code == 200, groups.text
    body = groups.json()
    assert (body["slo"], body["group_by"], body["groups"]) == (BASE, ["route"], [])
    assert body["status"] == "no_data" and body["error"]


def test_groups_listed_and_each_instance_addressable(daemon) -> None:
    runtime, source, client = daemon
    runtime.run_cycle(T0)
    _placeholder_answers(client)
    assert client.get(f"/api/v1/slos/{BASE}").json()["status"] == "no_data"

    source.discovery_down = False
    runtime.run_cycle(T0 + 60)  # a failed discovery is asked again next cycle
    evaluated = {r.slo.id: r for r in runtime.slo_results()}
    body = client.get(f"/api/v1/slos/{BASE}/groups").json()
    assert (body["status"], body["error"]) == (None, None)
    assert [(g["id"], g["group"], g["status"]) for g in body["groups"]] == [
        (instance_id(r), {"route": r}, evaluated[instance_id(r)].status) for r in sorted(ROUTES)
    ]
    statuses = {g["group"]["route"]: g["status"] for g in body["groups"]}
    assert statuses == {"/cart": "page", "/a,b=c": "ok", 'x&y+z"}': "ok"}
    cart = next(g for g in body["groups"] if g["group"] == {"route": "/cart"})
    assert cart["error_budget_remaining"] == pytest.approx(0.42, abs=0.01)

    for route in ROUTES:  # httpx percent-encodes the value as any query value
        one = client.get(f"/api/v1/slos/{BASE}", params={"group": f"route={route}"})
        assert one.status_code == 200, one.text
        assert one.json() == evaluated[instance_id(route)].to_json()
    # Written by hand: '/', ',' and '=' may stay; '&', '+', '"', '}' are encoded.
    raw = client.get(f"/api/v1/slos/{BASE}?group=route=/a,b=c").json()
    assert raw["id"] == instance_id("/a,b=c")
    raw = client.get(f"/api/v1/slos/{BASE}?group=route%3Dx%26y%2Bz%22%7D").json()
    assert raw["id"] == instance_id('x&y+z"}')

    grouped = client.get(f"/api/v1/slos/{BASE}")
    assert grouped.status_code == 404 and f"/api/v1/slos/{BASE}/groups" in grouped.text
    for query, status in [
        ("group=route=/nope", 404),
        ("group=region=eu", 404),
        ("group=route%3D%2Fcart&group=region%3Deu", 404),
        ("group=route", 422),
        ("group=9x=1", 422),
        ("group=route=/cart&group=route=/pay", 422),
    ]:
        answer = client.get(f"/api/v1/slos/{BASE}?{query}")
        assert answer.status_code == status, (query, answer.text)
        assert "error" in answer.json()


def test_groups_of_what_is_no_grouped_slo_is_a_404(daemon) -> None:
    runtime, _, client = daemon
    runtime.run_cycle(T0)
    plain = client.get("/api/v1/slos/shop/plain/groups")
    assert plain.status_code == 404 and "not grouped" in plain.json()["error"]
    assert client.get("/api/v1/slos/shop/nothing/groups").status_code == 404
    assert client.get("/api/v1/slos/shop/plain").json()["status"] == "ok"


# ---------------------------------------------------------------------- replicas


@pytest.fixture
def replicas(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Runtime]]:
    pytest.importorskip("psycopg")
    database = request.getfixturevalue("postgresql_database")
    started: list[Runtime] = []

    def start(name: str, clock: FakeClock, source: GroupedSampleSource) -> Runtime:
        config = daemon_config(
            tmp_path / name,
            _specs(tmp_path / "specs"),
            store=database.dsn,
            store_password_file=str(database.password_file),
            replica_id=name,
            interval="1s",
        )
        runtime = Runtime(config, clock=clock, source=source, notifiers={})
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.close()


@pytest.mark.postgresql
def test_every_replica_answers_for_the_groups(replicas, tmp_path: Path) -> None:
    clock, source = FakeClock(T0), GroupedSampleSource(T0)
    a, b = replicas("a", clock, source), replicas("b", clock, source)
    for runtime in (a, b, a):
        runtime.heartbeat()
    client_b = _client(b, clock, tmp_path)
    _placeholder_answers(client_b)  # before any cycle: no replica has evaluated it yet
    for runtime in (a, b):
        runtime.run_cycle(T0)
    _placeholder_answers(client_b)

    source.discovery_down = False
    reports = {r.replicas.replica_id: r.run_cycle(T0 + 60) for r in (a, b)}
    owned = {name: {x.slo.id for x in rep.results if x.slo.group} for name, rep in reports.items()}
    assert owned["a"] | owned["b"] == {instance_id(r) for r in ROUTES}
    time.sleep(1.05)  # past the API's cache of the others' states (one interval)
    for runtime in (a, b):
        body = _client(runtime, clock, tmp_path).get(f"/api/v1/slos/{BASE}/groups").json()
        statuses = {g["group"]["route"]: g["status"] for g in body["groups"]}
        assert statuses == {"/cart": "page", "/a,b=c": "ok", 'x&y+z"}': "ok"}
