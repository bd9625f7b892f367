"""A daemon reading two backends at once: `datasources:` in its config, `datasource:` in the
specs. `web` lives in a real Prometheus, `store` in a real VictoriaMetrics; the store outage
pages once, from the right backend, and an SLO naming an unknown datasource is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.localvm import LocalVictoriaMetrics
from harness.localvm import skip_reason as vm_skip_reason

from engine.daemon.config import load_config
from engine.daemon.runtime import Runtime
from engine.daemon.specs import SpecsInvalid
from engine.demo.scenario import Incident, Scenario, ServiceLoad, write_openmetrics
from engine.demo.webhook_sink import WebhookSink
from engine.spec.durations import Duration

pytestmark = [pytest.mark.prometheus, pytest.mark.victoriametrics]

HOUR = 3600
START = (int(time.time()) // HOUR - 8) * HOUR
OUTAGE = 5 * HOUR


def scenario(job: str, error_ratio: float) -> Scenario:
    return Scenario(
        start=START,
        duration=7 * HOUR,
        scrape_interval=15,
        services=[
            ServiceLoad(
                job=job,
                rps=10,
                error_ratio=0.0005,
                incidents=[Incident(OUTAGE, 7 * HOUR, error_ratio=error_ratio)],
            )
        ],
    )


def spec(service: str, datasource: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "slo-engine/v1",
        "service": service,
        "tier": "critical",
        "slos": [
            {
                "name": "availability",
                "objective": 99.9,
                "sli": {
                    "events": {
                        "bad": f'sum(rate(http_requests_total{{job="{service}",code="500"}}[{{{{window}}}}]))',
                        "total": f'sum(rate(http_requests_total{{job="{service}"}}[{{{{window}}}}]))',
                    }
                },
            }
        ],
    }
    if datasource is not None:
        body["datasource"] = datasource
    return body


@pytest.fixture(scope="module")
def backends(module_prometheus_for, tmp_path_factory) -> Iterator[tuple[str, str]]:
    reason = vm_skip_reason()
    if reason:
        pytest.skip(reason)
    prom = module_prometheus_for(scenario("web", 0.0005))
    data = write_openmetrics(scenario("store", 0.5), tmp_path_factory.mktemp("vm") / "s.om")
    with LocalVictoriaMetrics() as victoria:
        victoria.import_openmetrics(data)
        yield prom.url, victoria.url


def config_for(tmp_path: Path, prom: str, victoria: str, sink: WebhookSink, specs: list) -> Any:
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    for body in specs:
        (spec_dir / f"{body['service']}.yaml").write_text(yaml.safe_dump(body))
    return load_config(
        None,
        {
            "specs": [str(spec_dir)],
            "datasources": {"prom": {"url": prom}, "victoria": {"url": victoria}},
            "default_datasource": "prom",
            "state_dir": str(tmp_path / "state"),
            "interval": "60s",
            "webhooks": [sink.url],
            "incidents": {"resolve_after": "5m", "dependency_wait": "0s"},
        },
    )


def test_a_daemon_reads_two_backends_and_pages_once(tmp_path: Path, backends) -> None:
    prom, victoria = backends
    at = [float(START + OUTAGE + 5 * 60)]
    with WebhookSink() as sink:
        config = config_for(
            tmp_path, prom, victoria, sink, [spec("web", None), spec("store", "victoria")]
        )
        runtime = Runtime(config, clock=lambda: at[0])
        try:
            for _ in range(3):
                runtime.run_cycle()
                at[0] += 60
            results = {r.slo.service: r for r in runtime.slo_results()}
            five = Duration.parse("5m")
            assert results["web"].status == "ok"
            # Exact ground truth from each backend's own scenario: a routing mistake would
            # read no data, or the other service's traffic.
            for service, error_ratio in (("web", 0.0005), ("store", 0.5)):
                evaluation = results[service]
                end = evaluation.evaluated_at
                truth = scenario(service, error_ratio).expected_error_ratio(service, end - 300, end)
                assert evaluation.windows[five].error_ratio == pytest.approx(truth, rel=1e-9)
            assert results["store"].status == "page"
            (incident,) = runtime.list_incidents(None, None)
            assert incident.service == "store"
            assert runtime.wait_for_delivery()  # delivery runs on the receivers' workers
            triggered = [r for r in sink.received if r.body.get("event") == "triggered"]
            assert len(triggered) == 1
        finally:
            runtime.close()


def test_an_unknown_datasource_refuses_to_start(tmp_path: Path, backends) -> None:
    prom, victoria = backends
    with WebhookSink() as sink:
        config = config_for(tmp_path, prom, victoria, sink, [spec("web", "thanos")])
        with pytest.raises(SpecsInvalid, match=r"web/availability: datasource 'thanos' is not"):
            Runtime(config, clock=lambda: float(START + OUTAGE))
