"""Issue 15 item 2: an anomaly panel (observed vs expected band) on each service dashboard.

The panels exist per watched signal with the exact queries; the metric names they read are
ones the daemon's registry exports (introspected, not listed here); and end to end, a real
Prometheus scraping a running daemon answers every panel query with the daemon's values.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from opentelemetry import metrics as otel_metrics
from prometheus_client import start_http_server
from test_anomaly_live import DROP, HOUR, SeasonalSource
from test_daemon_runtime import Clock, DeliveredRuntime, make_config

from engine.anomaly.series import anomaly_series
from engine.daemon.anomaly_metrics import band_edges
from engine.daemon.metrics import DaemonMetrics
from engine.demo.webhook_sink import WebhookSink
from engine.generate.dashboards import service_dashboard
from engine.generate.dashboards.anomaly import ROW_TITLE
from engine.source.localprom import LocalPrometheus, free_port
from engine.spec.loader import load_specs
from engine.spec.models import SLO

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
apiVersion: slo-engine/v1
service: checkout
tier: critical
anomaly: {enabled: true}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{window}}]))
        total: sum(rate(http_requests_total{job="checkout"}[{{window}}]))
  - name: latency
    objective: 99
    sli:
      latency:
        histogram: http_request_duration_seconds
        selector: 'job="checkout"'
        threshold: 500ms
"""
METRIC = re.compile(r"\b(slo_engine_[a-z_]+)")


def board_json(service: str, slos: list[SLO]) -> dict[str, Any]:
    return json.loads(json.dumps(service_dashboard(service, slos), cls=JSONEncoder))


def anomaly_row(board: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The anomaly row and its panels (nested when collapsed, after it when not)."""
    panels = board["panels"]
    (index,) = [i for i, p in enumerate(panels) if p["title"].startswith(ROW_TITLE)]
    row = panels[index]
    return row, row["panels"] if row["collapsed"] else panels[index + 1 :]


def expected_targets(slo: SLO, signal: str) -> list[list[tuple[str, str]]]:
    sel = f'{{slo="{slo.id}", service="{slo.service}", signal="{signal}"}}'
    return [
        [
            (f"slo_engine_anomaly_observed{sel}", "observed"),
            (f"slo_engine_anomaly_expected{sel}", "expected"),
            (f"slo_engine_anomaly_band_lower{sel}", "band lower"),
            (f"slo_engine_anomaly_band_upper{sel}", "band upper"),
        ],
        [(f"max by (profile) (slo_engine_anomaly_profile{sel})", "{{profile}}")],
        [(f"slo_engine_anomaly_score{sel}", "")],
    ]


def targets(panel: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["expr"], t.get("legendFormat", "")) for t in panel["targets"]]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> list[SLO]:
    specs = tmp_path_factory.mktemp("specs")
    (specs / "checkout.yaml").write_text(SPEC)
    loaded = load_specs([specs])
    assert loaded.ok, loaded.errors
    return loaded.slos


def test_a_panel_per_watched_signal_with_its_queries(checkout: list[SLO]) -> None:
    row, panels = anomaly_row(board_json("checkout", checkout))
    assert row["collapsed"] is False
    watched = [(s.slo, s.signal) for s in anomaly_series(checkout)]
    # Two traffic signals: the latency SLI counts its requests from the histogram.
    assert [(slo.name, signal) for slo, signal in watched] == [
        ("availability", "traffic"),
        ("availability", "errors"),
        ("latency", "traffic"),
        ("latency", "latency"),
    ]
    assert len(panels) == 3 * len(watched)
    for k, (slo, signal) in enumerate(watched):
        band, profile, score = panels[3 * k : 3 * k + 3]
        assert band["type"] == "timeseries" and profile["type"] == score["type"] == "stat"
        assert band["title"] == f"{signal.capitalize()} — {slo.name}: observed vs expected"
        assert [targets(p) for p in (band, profile, score)] == expected_targets(slo, signal)
        unit = "reqps" if signal == "traffic" else "percentunit"
        assert band["fieldConfig"]["defaults"]["unit"] == unit
        # The band's two edges share one style; the profile stat names the profile.
        (edges,) = [
            o
            for o in band["fieldConfig"]["overrides"]
            if "band lower" in o["matcher"]["options"]["names"]
        ]
        assert edges["matcher"]["options"]["names"] == ["band lower", "band upper"]
        assert profile["options"]["textMode"] == "name" and profile["targets"][0]["instant"]
        assert score["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 4.0


def test_every_service_dashboard_has_the_row_collapsed_while_detection_is_off() -> None:
    loaded = load_specs([ROOT / "slo_specs"])
    assert loaded.ok
    services = sorted({s.service for s in loaded.slos})
    committed = ROOT / "dashboards"
    for service in services:
        slos = [s for s in loaded.slos if s.service == service]
        assert not any(s.anomaly.enabled for s in slos)
        board = json.loads((committed / f"slo-{service}.json").read_text())
        row, panels = anomaly_row(board)
        assert row["collapsed"] is True and "anomaly.enabled" in row["title"]
        # The panels the service gets once detection is on.
        would = anomaly_series(
            [replace(s, anomaly=s.anomaly.model_copy(update={"enabled": True})) for s in slos]
        )
        assert would and len(panels) == 3 * len(would)
        for k, series in enumerate(would):
            assert [targets(p) for p in panels[3 * k : 3 * k + 3]] == expected_targets(
                series.slo, series.signal
            )


def test_panel_metric_names_are_exactly_ones_the_daemon_exports(checkout: list[SLO]) -> None:
    _, panels = anomaly_row(board_json("checkout", checkout))
    used = {m for p in panels for expr, _ in targets(p) for m in METRIC.findall(expr)}
    assert len(used) == 6
    metrics = DaemonMetrics(otel_metrics.get_meter("test"))
    metrics.attach_anomalies(lambda: [], otel_metrics.get_meter("test"))
    exported = {family.name for family in metrics.registry.collect()}
    assert used <= exported, used - exported


def test_band_edges_mirror_the_harmful_edge() -> None:
    # Ratios: the threshold is the upper edge, mirrored below the expectation (not below 0).
    assert band_edges("errors", 0.01, 0.03, 300) == (0.0, 0.03)
    assert band_edges("latency", 0.05, 0.07, 300) == pytest.approx((0.03, 0.07))
    # Traffic: the threshold is the lower edge; the upper one is as far above in log scale.
    lower, upper = band_edges("traffic", 100.0, 25.0, 300)
    offset = 1 / 300
    assert lower == 25.0
    assert (upper + offset) / (100 + offset) == pytest.approx((100 + offset) / (25 + offset))


# ------------------------------------------------------------------ end to end


@pytest.fixture
def scraped_daemon(tmp_path: Path) -> Iterator[tuple[Any, LocalPrometheus, list[SLO]]]:
    """The real Runtime with anomaly detection on (scripted seasonal traffic, fake clock),
    two hours of cycles so every series is scored, its /metrics scraped every second by a
    real Prometheus."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "checkout.yaml").write_text(SPEC)
    with WebhookSink() as sink:
        config = make_config(tmp_path, sink)
        runtime = DeliveredRuntime(config, clock=Clock(DROP - 2 * HOUR), source=SeasonalSource())
        server = None
        prometheus = None
        try:
            clock = runtime.clock
            while clock.now < DROP:
                runtime.run_cycle(clock.now)
                clock.advance(60)
            port = free_port()
            server, _ = start_http_server(port, addr="127.0.0.1", registry=runtime.metrics_registry)
            scrape = {
                "job_name": "slo-engine",
                "scrape_interval": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
            prometheus = LocalPrometheus(tmp_path / "tsdb", scrape_configs=[scrape]).start()
            deadline = time.time() + 30
            while not prometheus.query("slo_engine_anomaly_band_upper", time.time()):
                assert time.time() < deadline, prometheus.log_tail()
                time.sleep(0.5)
            yield runtime, prometheus, load_specs([specs]).slos
        finally:
            if prometheus is not None:
                prometheus.cleanup()
            if server is not None:
                server.shutdown()
            runtime.close()


@pytest.mark.prometheus
def test_every_panel_query_returns_the_daemons_values(scraped_daemon) -> None:
    runtime, prometheus, slos = scraped_daemon
    states = {(s.series.slo.id, s.series.signal): s for s in runtime.anomalies.states()}
    _, panels = anomaly_row(board_json("checkout", slos))
    assert len(panels) == 3 * len(states) == 12
    now = time.time()
    for k in range(0, len(panels), 3):
        band, profile, score = panels[k : k + 3]
        (observed_expr, _), *_ = targets(band)
        labels = prometheus.query(observed_expr, now)[0]["metric"]
        state = states[(labels["slo"], labels["signal"])]
        assert state.band is not None and state.profile is not None and state.score is not None
        values = {
            legend: float(prometheus.query(expr, now)[0]["value"][1])
            for expr, legend in targets(band)
        }
        observed, expected, threshold = state.band
        assert values["observed"] == pytest.approx(observed)
        assert values["expected"] == pytest.approx(expected)
        assert values["band lower"] <= values["expected"] <= values["band upper"]
        assert threshold in (
            pytest.approx(values["band lower"]),
            pytest.approx(values["band upper"]),
        )
        ((profile_expr, _),) = targets(profile)
        (result,) = prometheus.query(profile_expr, now)
        assert result["metric"] == {"profile": state.profile}
        ((score_expr, _),) = targets(score)
        assert float(prometheus.query(score_expr, now)[0]["value"][1]) == pytest.approx(state.score)
