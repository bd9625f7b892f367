"""Grouped SLOs in the daemon, on a fake clock and a scripted source (the real evaluator,
incident engine, SQLite store and a webhook receiver): groups discovered in the first cycle
and every group_discovery_interval; one incident for several failing groups, a group
recovering updates it; dropped groups in the metric and the spec status; a failed
discovery keeps the groups; alerts, fingerprints and dashboard links per group."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.incidents import make_alert
from prometheus_client import generate_latest

from engine.alerting.alerts import alerts_from_evaluation
from engine.alerting.links import slo_dashboard_url
from engine.daemon.config import DaemonConfig, load_config
from engine.daemon.runtime import CycleReport, Runtime
from engine.demo.webhook_sink import WebhookSink
from engine.evaluation.groups import GroupInventory
from engine.evaluation.source import StepRates
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine
from engine.spec.durations import Duration
from engine.spec.models import SLO

T0 = 1_709_251_200.0  # 2024-03-01T00:00:00Z, on every cache grid
BASE = "shop/availability"
SPEC = """apiVersion: slo-engine/v1
service: shop
tier: critical
slos:
  - name: availability
    objective: 99.9
    group_by: [route]
    max_groups: {max_groups}
    sli:
      events:
        bad: sum by (route) (rate(http_requests_total{{job="shop",code="500"}}[{{{{window}}}}]))
        total: sum by (route) (rate(http_requests_total{{job="shop"}}[{{{{window}}}}]))
  - name: plain
    objective: 99
    sli:
      events:
        bad: sum(rate(errors_total[{{{{window}}}}]))
        total: sum(rate(requests_total[{{{{window}}}}]))
"""


def inst(route: str) -> str:
    return f'{BASE}{{route="{route}"}}'


class GroupedSource:
    """10 events/s per SLO; 100 % bad for routes in `failing` after `failing_from`; the
    discovery query answers `routes` (or fails while `discovery_down`)."""

    def __init__(self) -> None:
        self.routes = ["/cart", "/pay", "/search"]
        self.failing: dict[str, float] = {}
        self.recovered: dict[str, float] = {}
        self.discovery_down = False
        self.discoveries = 0
        self.http_requests = 0

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        self.http_requests += 1
        n = round((end - start) / step.seconds) + 1 if end >= start else 0
        times = start + step.seconds * np.arange(n, dtype=np.float64)
        total = np.full((len(slos), n), 10.0)
        bad = np.zeros_like(total)
        for row, slo in enumerate(slos):
            route = slo.group_labels.get("route", "")
            if route in self.failing:
                until = self.recovered.get(route, float("inf"))
                bad[row, (times > self.failing[route]) & (times <= until)] = 10.0
        return StepRates(step=step, times=times, bad=bad, total=total)

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        self.http_requests += 1
        if "count by (route)" in query:
            self.discoveries += 1
            if self.discovery_down:
                raise ConnectionError("discovery refused (scripted)")
            tags = re.findall(r'"__slo_id", "(p\d+)"', query)
            return [
                {"metric": {"route": r, "__slo_id": t}, "value": [at, "1"]}
                for t in tags
                for r in self.routes
            ]
        return [{"metric": {}, "value": [at, "1"]}]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class DeliveredRuntime(Runtime):
    def run_cycle(self, now: float | None = None) -> CycleReport:
        report = super().run_cycle(now)
        assert self.wait_for_delivery(), "delivery did not finish"
        return report


def make_config(tmp_path: Path, sink: WebhookSink, max_groups: int = 200) -> DaemonConfig:
    specs = tmp_path / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "shop.yaml").write_text(SPEC.format(max_groups=max_groups))
    incidents: dict[str, Any] = {"resolve_after": "5m"}
    if "dependency_wait" in IncidentConfig.model_fields:
        incidents["dependency_wait"] = "0s"
    return load_config(
        None,
        {
            "specs": [str(specs)],
            "prometheus_url": "http://127.0.0.1:9",
            "state_dir": str(tmp_path / "state"),
            "interval": "60s",
            "webhooks": [sink.url],
            "incidents": incidents,
            "dashboard_url": "http://grafana:3000",
            "source_breaker": {"failures": 100, "cooldown": "30s"},
        },
    )


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as receiver:
        yield receiver


def statuses(runtime: Runtime) -> dict[str, str]:
    return {r.slo.id: r.status for r in runtime.slo_results()}


def metric_lines(runtime: Runtime) -> dict[str, float]:
    text = generate_latest(runtime.metrics_registry).decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_config_discovery_interval(tmp_path: Path, sink: WebhookSink) -> None:
    from engine.daemon.groups import daemon_groups
    from engine.telemetry import setup_telemetry

    def every(config: DaemonConfig) -> Any:
        telemetry = setup_telemetry()
        from engine.daemon.metrics import DaemonMetrics

        groups = daemon_groups(
            config, GroupedSource(), DaemonMetrics(telemetry.meter), telemetry.tracer
        )
        return groups._interval

    config = make_config(tmp_path, sink)
    assert config.group_discovery_interval is None and every(config) == 300
    # Unset, it follows a longer evaluation interval; set, it must not be shorter.
    values = config.model_dump(mode="json", exclude_none=True)
    assert every(load_config(None, {**values, "interval": "10m"})) == 600
    assert every(load_config(None, {**values, "group_discovery_interval": "15m"})) == 900
    with pytest.raises(ValueError, match="group_discovery_interval must be at least interval"):
        load_config(None, {**values, "group_discovery_interval": "30s"})


def test_groups_page_as_one_incident_and_a_recovery_updates_it(
    tmp_path: Path, sink: WebhookSink
) -> None:
    clock, source = Clock(), GroupedSource()
    runtime = DeliveredRuntime(make_config(tmp_path, sink), clock=clock, source=source)
    try:
        assert runtime.slo_results() == []
        runtime.run_cycle()
        assert statuses(runtime) == {
            inst("/cart"): "ok",
            inst("/pay"): "ok",
            inst("/search"): "ok",
            "shop/plain": "ok",
        }
        assert source.discoveries == 1
        # /pay fails: it pages, alone, with its route and the base id as `slo`.
        source.failing["/pay"] = clock.advance(60)
        report = None
        for _ in range(3):
            report = runtime.run_cycle(clock.advance(60))
        assert report is not None
        assert statuses(runtime)[inst("/pay")] == "page"
        assert {s for s, v in statuses(runtime).items() if v != "ok"} == {inst("/pay")}
        (page,) = [a for a in report.alerts if a.severity == "page"]
        assert page.labels["slo"] == BASE and page.labels["route"] == "/pay"
        assert page.slo_id == inst("/pay") and page.slo_base_id == BASE
        assert page.dashboard_url == (
            "http://grafana:3000/d/slo-shop?var-slo=shop/availability&var-route=%2Fpay"
        )
        (triggered,) = sink.events("triggered", service="shop")
        assert triggered.incident["slos"] == [inst("/pay")]
        assert inst("/pay") in triggered.incident["summary"]
        # Two hours later (past the 1h group_window) /cart fails too: it joins the same
        # incident — one page for one SLO — and the incident lists both groups.
        source.failing["/cart"] = clock.advance(2 * 3600)
        for _ in range(3):
            runtime.run_cycle(clock.advance(60))
        assert statuses(runtime)[inst("/cart")] == "page"
        assert len(sink.events("triggered", service="shop")) == 1
        (listed,) = runtime.list_incidents("open")
        incident = runtime.get_incident(listed.id)
        assert incident is not None
        assert incident.slo_ids == [inst("/pay"), inst("/cart")]
        joined = [e for e in incident.timeline if e.kind == "alert_joined"]
        assert "same SLO, another group" in joined[-1].message
        # /pay recovers while /cart burns: the incident says so and stays open.
        source.recovered["/pay"] = clock.now
        for _ in range(6):
            runtime.run_cycle(clock.advance(600))
        incident = runtime.get_incident(listed.id)
        assert incident is not None
        cleared = [e.message for e in incident.timeline if e.kind == "alert_cleared"]
        assert f"page alert on {inst('/pay')} cleared" in cleared
        assert incident.is_open and statuses(runtime)[inst("/cart")] == "page"
        assert statuses(runtime)[inst("/pay")] != "page"
        assert sink.events("resolved", service="shop") == []
    finally:
        runtime.close()


def test_discovery_schedule_failures_and_dropped_groups(tmp_path: Path, sink: WebhookSink) -> None:
    clock, source = Clock(), GroupedSource()
    source.routes = ["/a", "/b"]
    runtime = DeliveredRuntime(
        make_config(tmp_path, sink, max_groups=2), clock=clock, source=source
    )
    try:
        runtime.run_cycle()
        assert source.discoveries == 1
        runtime.run_cycle(clock.advance(60))
        assert source.discoveries == 1  # not due before group_discovery_interval (5m)
        # A third group: beyond max_groups, dropped with a metric and a status on the SLO.
        source.routes = ["/a", "/b", "/c"]
        for _ in range(4):
            runtime.run_cycle(clock.advance(60))
        assert source.discoveries == 2
        assert inst("/c") not in statuses(runtime)
        lines = metric_lines(runtime)
        assert lines[f'slo_engine_slo_groups_dropped{{slo="{BASE}"}}'] == 1
        assert lines[f'slo_engine_slo_groups{{slo="{BASE}"}}'] == 2
        groups = runtime.spec_status()["groups"][BASE]
        assert groups["status"] == "capped" and groups["dropped_groups"] == [inst("/c")]
        # Discovery fails: the groups stay, it is counted and asked again next cycle.
        source.discovery_down = True
        runtime.run_cycle(clock.advance(300))
        runtime.run_cycle(clock.advance(60))
        assert source.discoveries == 4
        assert set(statuses(runtime)) == {inst("/a"), inst("/b"), "shop/plain"}
        assert runtime.spec_status()["groups"][BASE]["status"] == "discovery_failed"
        assert metric_lines(runtime)["slo_engine_group_discovery_failures_total"] == 2
        # Back, and /b is gone: kept (no data once its windows empty), never dropped.
        source.discovery_down, source.routes = False, ["/a"]
        runtime.run_cycle(clock.advance(60))
        assert set(statuses(runtime)) == {inst("/a"), inst("/b"), "shop/plain"}
        assert runtime.spec_status()["groups"][BASE]["vanished"] == [inst("/b")]
    finally:
        runtime.close()


def test_a_grouped_slo_without_groups_shows_as_no_data_and_reload_rediscovers(
    tmp_path: Path, sink: WebhookSink
) -> None:
    clock, source = Clock(), GroupedSource()
    source.routes = []
    config = make_config(tmp_path, sink)
    runtime = DeliveredRuntime(config, clock=clock, source=source)
    try:
        runtime.run_cycle()
        by_id = {r.slo.id: r for r in runtime.slo_results()}
        assert by_id[BASE].status == "no_data" and "no group of route found" in (
            by_id[BASE].error or ""
        )
        assert runtime.spec_status()["groups"][BASE]["status"] == "no_groups"
        # A spec reload discovers at once (not waiting for the interval).
        source.routes = ["/x"]
        spec = Path(config.specs[0]) / "shop.yaml"
        spec.write_text(spec.read_text().replace("objective: 99\n", "objective: 99.5\n"))
        runtime.run_cycle(clock.advance(60))
        assert set(statuses(runtime)) == {inst("/x"), "shop/plain"}
        assert source.discoveries == 2
    finally:
        runtime.close()


def test_ungrouped_daemons_never_discover(tmp_path: Path, sink: WebhookSink) -> None:
    clock, source = Clock(), GroupedSource()
    config = make_config(tmp_path, sink)
    plain = (
        SPEC.split("  - name: availability")[0] + "  - name: plain" + SPEC.split("- name: plain")[1]
    )
    (Path(config.specs[0]) / "shop.yaml").write_text(plain.format(max_groups=1))
    runtime = DeliveredRuntime(config, clock=clock, source=source)
    try:
        runtime.run_cycle()
        assert statuses(runtime) == {"shop/plain": "ok"} and source.discoveries == 0
        assert "groups" not in runtime.spec_status()
    finally:
        runtime.close()


# --- alerts, fingerprints, links, correlation (pure) ---------------------------------------


def _instances() -> list[SLO]:
    from engine.spec.models import ServiceSpec

    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "shop",
            "slos": [
                {
                    "name": "availability",
                    "objective": 99.9,
                    "group_by": ["route"],
                    "sli": {
                        "events": {
                            "bad": "sum(rate(e[{{window}}]))",
                            "total": "sum(rate(t[{{window}}]))",
                        }
                    },
                }
            ],
        }
    )
    inventory = GroupInventory(spec.slo_records())
    from engine.evaluation.groups import Discovered

    inventory.update(T0, {BASE: Discovered(({"route": "/a b"}, {"route": "/b"}))})
    return inventory.instances()


def test_instance_alerts_carry_the_base_id_and_their_group() -> None:
    from engine.evaluation.result import AlertSignal, SLOEvaluation, WindowValue

    D = Duration.parse
    fingerprints = set()
    for slo in _instances():
        evaluation = SLOEvaluation(
            slo=slo,
            evaluated_at=T0,
            status="page",
            windows={
                D("5m"): WindowValue(1, 10, 0.1, 100.0),
                D("1h"): WindowValue(1, 10, 0.1, 100.0),
            },
            alerts=(AlertSignal("page", D("1h"), D("5m"), 14.4),),  # type: ignore[arg-type]
        )
        (alert,) = alerts_from_evaluation(evaluation)
        assert alert.labels["slo"] == BASE
        assert alert.labels["route"] == slo.group_labels["route"]
        assert alert.slo_id == slo.id and alert.slo_base_id == BASE
        assert slo.id in alert.summary
        fingerprints.add(alert.fingerprint)
    assert len(fingerprints) == 2


def test_dashboard_links_select_the_group() -> None:
    assert slo_dashboard_url("http://g/", "shop", BASE, {"route": "/a b", "datasource": "x"}) == (
        "http://g/d/slo-shop?var-slo=shop/availability&var-group_datasource=x&var-route=%2Fa+b"
    )
    assert slo_dashboard_url("http://g", "shop", BASE) == "http://g/d/slo-shop?var-slo=" + BASE


def group_alert(route: str) -> Any:
    alert = make_alert(
        service="shop", slo=f'availability{{route="{route}"}}', labels={"route": route}
    )
    return dataclasses.replace(alert, labels={**alert.labels, "slo": BASE}, slo_base_id=BASE)


def test_groups_of_one_slo_join_one_incident_at_any_age_other_slos_do_not() -> None:
    engine = IncidentEngine(IncidentConfig(receivers=[{"name": "pager"}], group_window="1h"))
    a, b = group_alert("/a"), group_alert("/b")
    assert a.fingerprint != b.fingerprint
    assert len(engine.observe(T0, [a]).incidents) == 1
    other = make_alert(service="shop", slo="latency")
    decision = engine.observe(T0 + 5 * 3600, [a, b, other])
    incidents = sorted(engine.state.incidents.values(), key=lambda i: i.opened_at)
    assert [i.slo_ids for i in incidents] == [[inst("/a"), inst("/b")], ["shop/latency"]]
    # One new page: the other SLO's (beyond group_window); the second group only joined.
    assert [n.incident["slos"] for n in decision.notifications if n.event == "triggered"] == [
        ["shop/latency"]
    ]
