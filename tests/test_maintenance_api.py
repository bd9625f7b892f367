"""Maintenance windows declared at run time through the API, on the daemon's REAL Runtime
(harness.api_runtime: SQLite state, a scripted source, one cycle at T0): create, list and
end them; roles, located validation errors, idempotent replays, audit entries; the next
cycle masks and mutes with them and the status page announces them. The end-to-end check
against a real Prometheus is at the bottom."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from harness.api_runtime import FakeClock, sample_runtime
from harness.incidents import T0

from engine.api.app import create_app
from engine.api.security import load_tokens
from engine.daemon.maintenance import ApiWindow
from engine.daemon.runtime import Runtime
from engine.evaluation.maintenance import muted_by_maintenance

ADMIN = "admin-token-Zq8w3n5v9k2m"
READER = "reader-token-Hp4t7y1u6r0e"
RESPONDER = "responder-token-Wd2s5x8c1v4b"
NOW = T0 + 600
HOUR = 3600.0


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def auth(token: str = ADMIN, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def body(**changes: Any) -> dict[str, Any]:
    return {
        "matchers": {"service": "api"},
        "start": when(NOW - 1800),
        "end": when(NOW + HOUR),
        "reason": "database upgrade",
        **changes,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def runtime(tmp_path: Path, clock: FakeClock) -> Iterator[Runtime]:
    runtime = sample_runtime(tmp_path, clock, T0)
    yield runtime
    runtime.close()


@pytest.fixture
def client(runtime: Runtime, tmp_path: Path, clock: FakeClock) -> TestClient:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"{ADMIN} admin name=ops-admin\n{READER} read\n{RESPONDER} responder name=bob\n"
    )
    app = create_app(runtime, load_tokens(tokens), rate_limit_per_s=1000, burst=1000, clock=clock)
    return TestClient(app)


def test_create_list_and_end_a_window(client: TestClient, clock: FakeClock):
    created = client.post("/api/v1/maintenance", json=body(), headers=auth())
    assert created.status_code == 201, created.text
    window = created.json()
    assert window["id"].startswith("mw-")
    assert window["matchers"] == {"service": ["api"], "slo": []}
    assert (window["start"], window["end"]) == (when(NOW - 1800), when(NOW + HOUR))
    assert window["state"] == "active" and window["reason"] == "database upgrade"
    # The creator is whoever authenticated, never the body.
    assert window["created_by"] == "ops-admin" and window["created_at"] == when(NOW)

    listed = client.get("/api/v1/maintenance", headers=auth(READER))
    assert listed.status_code == 200
    assert [w["id"] for w in listed.json()["windows"]] == [window["id"]]

    clock.advance(600)
    ended = client.delete(f"/api/v1/maintenance/{window['id']}", headers=auth())
    assert ended.status_code == 200, ended.text
    after = ended.json()
    assert after["state"] == "ended" and after["end"] == when(NOW + 600)
    assert after["planned_end"] == when(NOW + HOUR) and after["ended_by"] == "ops-admin"
    # Over: gone from the default list, still in the full one.
    assert client.get("/api/v1/maintenance", headers=auth()).json()["windows"] == []
    everything = client.get("/api/v1/maintenance?all=true", headers=auth()).json()["windows"]
    assert [(w["id"], w["state"]) for w in everything] == [(window["id"], "ended")]
    # A past window cannot be changed; an unknown one is not found.
    again = client.delete(f"/api/v1/maintenance/{window['id']}", headers=auth())
    assert again.status_code == 409 and "already ended" in again.json()["error"]
    missing = client.delete("/api/v1/maintenance/mw-0123456789abcdef", headers=auth())
    assert missing.status_code == 404


def test_an_upcoming_window_is_cancelled(client: TestClient):
    ahead = body(
        start=when(NOW + 2 * HOUR), end=when(NOW + 3 * HOUR), matchers={"slo": "api/availability"}
    )
    window = client.post("/api/v1/maintenance", json=ahead, headers=auth()).json()
    assert window["state"] == "upcoming" and window["matchers"]["slo"] == ["api/availability"]
    cancelled = client.delete(f"/api/v1/maintenance/{window['id']}", headers=auth()).json()
    assert cancelled["state"] == "cancelled"
    assert client.get("/api/v1/maintenance", headers=auth()).json()["windows"] == []


def test_roles(client: TestClient):
    assert client.get("/api/v1/maintenance").status_code == 401
    assert client.post("/api/v1/maintenance", json=body()).status_code == 401
    assert client.post("/api/v1/maintenance", json=body(), headers=auth(READER)).status_code == 403
    # Changing the budget's accounting is an admin's call, like a silence.
    refused = client.post("/api/v1/maintenance", json=body(), headers=auth(RESPONDER))
    assert refused.status_code == 403
    window = client.post("/api/v1/maintenance", json=body(), headers=auth()).json()
    path = f"/api/v1/maintenance/{window['id']}"
    assert client.delete(path, headers=auth(READER)).status_code == 403
    assert client.delete(path).status_code == 401
    assert client.get("/api/v1/maintenance", headers=auth(READER)).status_code == 200


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"matchers": {}}, "body.matchers"),
        ({"matchers": {"service": ["api", "API!"]}}, "body.matchers.service.1"),
        ({"matchers": {"slo": "availability"}}, "body.matchers.slo.0"),
        ({"matchers": {"service": "payments"}}, "body.matchers.service"),
        ({"matchers": {"slo": "api/nope"}}, "body.matchers.slo"),
        ({"matchers": {"service": "database", "slo": "api/availability"}}, "body.matchers"),
        ({"end": when(NOW - 3600)}, "body.end"),  # before start
        ({"end": when(NOW - 1800 + 8 * 86400)}, "body.end"),  # longer than 7 days
        ({"start": "2024-03-01T00:00:00"}, "body.start"),  # no UTC offset
        ({"start": "tomorrow"}, "body.start"),
        ({"start": when(NOW - 2 * HOUR)}, "body.start"),  # more than an hour ago
        ({"start": when(NOW + 91 * 86400), "end": when(NOW + 91 * 86400 + HOUR)}, "body.start"),
        ({"start": when(NOW - 3000), "end": when(NOW - 60)}, "body.end"),  # already over
        ({"reason": ""}, "body.reason"),
        ({"reason": "x" * 501}, "body.reason"),
        ({"reason": "bell\x07"}, "body.reason"),
        ({"created_by": "mallory"}, "body"),
        ({"note": "typo"}, "body.note"),
    ],
)
def test_invalid_windows_are_refused_with_the_field_named(
    client: TestClient, changes: dict[str, Any], where: str
):
    answer = client.post("/api/v1/maintenance", json=body(**changes), headers=auth())
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"].startswith(f"invalid request: {where}:"), answer.json()
    assert client.get("/api/v1/maintenance", headers=auth()).json()["windows"] == []


def test_reason_line_ends_are_normalised(client: TestClient):
    window = client.post(
        "/api/v1/maintenance", json=body(reason="  step 1\r\nstep 2\rdone "), headers=auth()
    ).json()
    assert window["reason"] == "step 1\nstep 2\ndone"
    assert (
        len(
            client.post("/api/v1/maintenance", json=body(reason="x" * 500), headers=auth()).json()[
                "reason"
            ]
        )
        == 500
    )


def test_a_retry_with_the_same_key_declares_once(client: TestClient):
    first = client.post(
        "/api/v1/maintenance", json=body(), headers=auth(**{"Idempotency-Key": "k1"})
    )
    again = client.post(
        "/api/v1/maintenance", json=body(), headers=auth(**{"Idempotency-Key": "k1"})
    )
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    assert len(client.get("/api/v1/maintenance", headers=auth()).json()["windows"]) == 1
    other = client.post(
        "/api/v1/maintenance", json=body(reason="other"), headers=auth(**{"Idempotency-Key": "k1"})
    )
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["error"]


def test_changes_are_audited(client: TestClient):
    window = client.post("/api/v1/maintenance", json=body(), headers=auth()).json()
    client.delete(f"/api/v1/maintenance/{window['id']}", headers=auth())
    client.post("/api/v1/maintenance", json=body(), headers=auth(READER))
    entries = client.get("/api/v1/audit", headers=auth()).json()["entries"]
    seen = [(e["action"], e["target"], e["actor"], e["result"]) for e in entries]
    assert ("POST /api/v1/maintenance", window["id"], "ops-admin", 201) in seen
    assert ("DELETE /api/v1/maintenance/{window_id}", window["id"], "ops-admin", 200) in seen
    # The refused attempt is in the log too.
    assert any(a == "POST /api/v1/maintenance" and r == 403 for a, _, _, r in seen)


def test_the_next_cycle_masks_mutes_and_announces_the_window(client: TestClient, runtime: Runtime):
    # The sample's api/availability pages: 18x burn over the last hour.
    before = runtime.slo_result("api/availability")
    assert before is not None and before.status == "page"
    window = client.post(
        "/api/v1/maintenance",
        json=body(
            matchers={"slo": "api/availability"}, start=when(NOW - HOUR), reason="failover drill"
        ),
        headers=auth(),
    ).json()
    report = runtime.run_cycle(NOW)
    after = runtime.slo_result("api/availability")
    assert after is not None
    assert [w.id for w in after.slo.maintenance if isinstance(w, ApiWindow)] == [window["id"]]
    # Only the matched SLO got it.
    other = runtime.slo_result("api/latency-p95")
    assert other is not None and other.slo.maintenance == ()
    # Its last hour of 18x burn no longer counts: more budget left than before.
    assert before.error_budget_remaining is not None and after.error_budget_remaining is not None
    assert after.error_budget_remaining > before.error_budget_remaining + 0.01
    # Nothing pages for it: what could still fire would be muted.
    assert muted_by_maintenance(after.slo, report.at)
    assert not muted_by_maintenance(other.slo, report.at)
    assert all(a.maintenance for a in report.alerts if a.slo_id == "api/availability")
    page = client.get("/status", headers=auth(READER)).text
    assert "Maintenance in progress" in page and "failover drill" in page


# ---------------------------------------------------------------------- a real Prometheus

MIN, DAY = 60, 86_400
P0 = 1_704_067_200  # Monday 2024-01-01 00:00 UTC: the backfilled scenario's start
WINDOW = (3 * DAY + 3 * 3600, 3 * DAY + 5 * 3600)
OUTAGE = (WINDOW[0] + 30 * MIN, WINDOW[0] + 60 * MIN)  # 100 % errors: ~70 % of the budget
END = WINDOW[1] + 3600


@pytest.mark.prometheus
def test_an_api_window_leaves_the_budget_untouched_and_does_not_page(
    tmp_path: Path, prometheus_for: Any
):
    """The daemon's own Runtime on a real Prometheus backfilled with promtool. maint has an
    outage inside a window declared through the API, calm the same window and no outage,
    plain the outage and no window: maint's budget equals calm's and only plain pages."""
    from harness.api_runtime import daemon_config
    from harness.specs import http_events_spec

    from engine.demo.scenario import Incident, Scenario, ServiceLoad

    outage = [Incident(OUTAGE[0], OUTAGE[1], error_ratio=1.0)]
    prometheus = prometheus_for(
        Scenario(
            start=P0,
            duration=END + 5 * MIN,
            scrape_interval=15,
            services=[
                ServiceLoad(job="maint", rps=20, error_ratio=0.0005, incidents=outage),
                ServiceLoad(job="calm", rps=20, error_ratio=0.0005),
                ServiceLoad(job="plain", rps=20, error_ratio=0.0005, incidents=outage),
            ],
        )
    )
    specs = tmp_path / "specs"
    specs.mkdir()
    for service in ("maint", "calm", "plain"):
        (specs / f"{service}.yaml").write_text(http_events_spec(service, "critical"))
    clock = FakeClock(P0 + WINDOW[0] - 10 * MIN)
    config = daemon_config(tmp_path, specs, prometheus_url=prometheus.url, query_timeout="60s")
    runtime = Runtime(config, clock=clock, notifiers={})
    try:
        tokens = tmp_path / "tokens"
        tokens.write_text(f"{ADMIN} admin name=ops-admin\n")
        client = TestClient(create_app(runtime, load_tokens(tokens), clock=clock))
        created = client.post(
            "/api/v1/maintenance",
            json={
                "matchers": {"service": ["maint", "calm"]},
                "start": when(P0 + WINDOW[0]),
                "end": when(P0 + WINDOW[1]),
                "reason": "database failover",
            },
            headers=auth(),
        )
        assert created.status_code == 201, created.text
        while clock.now <= P0 + END:
            report = runtime.run_cycle()
            assert all(r.status != "error" for r in report.results), report.results
            assert all(a.maintenance for a in report.alerts if a.service != "plain")
            clock.advance(MIN)
        final = {r.slo.service: r for r in report.results}
        opened = {i.service for i in runtime.list_incidents(None, None)}
    finally:
        runtime.close()
    assert opened == {"plain"}
    maint, calm, plain = (final[s].error_budget_remaining for s in ("maint", "calm", "plain"))
    assert maint is not None and calm is not None and plain is not None
    # The outage's events are gone from bad and total alike: exactly calm's budget.
    assert maint == pytest.approx(calm, rel=1e-9)
    assert calm - plain > 0.6


# ---------------------------------------------------------------------- the daemon's merge


class _FlakyWindows:
    """A store's windows that fail to read after the first time (a database gone away)."""

    def __init__(self, windows: list[Any]) -> None:
        self._windows, self.reads = windows, 0

    def ending_after(self, since: float) -> list[Any]:
        self.reads += 1
        if self.reads > 1:
            raise OSError("database unreachable")
        return [w for w in self._windows if w.ends_at > since]


def _stored(window_id: str, **changes: Any) -> Any:
    from engine.store.maintenance_windows import StoredWindow

    values: dict[str, Any] = {
        "id": window_id,
        "services": ("api",),
        "slos": (),
        "starts_at": NOW - 1800,
        "ends_at": NOW + HOUR,
        "reason": "drill",
        "created_by": "ops-admin",
        "created_at": NOW,
        **changes,
    }
    return StoredWindow(**values)


def test_a_replica_gives_its_whole_fleet_the_windows_and_keeps_them_when_unreadable():
    from harness.api_runtime import SPECS, SampleSource

    from engine.daemon.maintenance import DaemonMaintenance
    from engine.daemon.shards import Assignment, ShardEvaluator
    from engine.spec.durations import Duration
    from engine.spec.loader import load_specs

    slos = load_specs([SPECS]).slos
    evaluator = ShardEvaluator(slos, SampleSource(T0), scrape_interval=Duration.parse("60s"))
    windows = _FlakyWindows(
        [_stored("mw-a"), _stored("mw-b", ended_at=NOW - 3600 - 1)]  # b: cancelled
    )
    merging = DaemonMaintenance(windows, evaluator)  # type: ignore[arg-type]

    def api_ids(found: Any) -> dict[str, list[str]]:
        return {s.id: [w.id for w in s.maintenance if isinstance(w, ApiWindow)] for s in found}

    merging.merge(NOW)
    # The replica owns nothing yet; its fleet (every SLO of the specs) has the windows, so
    # the SLOs it comes to own arrive with them.
    assert evaluator.slos == ()
    expected = {s.id: (["mw-a"] if s.service == "api" else []) for s in slos}
    assert api_ids(evaluator.fleet) == expected
    evaluator.reassign(Assignment(("me",), "me"))
    evaluator.evaluate(T0)
    assert api_ids(evaluator.slos) == expected
    # The store stops answering: the windows read last stay in force.
    merging.merge(NOW + 60)
    assert windows.reads == 2
    assert api_ids(evaluator.slos) == expected
