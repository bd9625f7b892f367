"""Several backends at once: SLOs routed to a real Prometheus and a real VictoriaMetrics
holding different traffic, read in one fetch; one backend down costs only its own SLOs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from harness.localvm import LocalVictoriaMetrics
from harness.localvm import skip_reason as vm_skip_reason

from engine.demo.scenario import Incident, Scenario, ServiceLoad, write_openmetrics
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.source import SourceUnavailable
from engine.source.prometheus import PrometheusSource
from engine.source.routing import RoutedSource, UnknownDatasource
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

pytestmark = [pytest.mark.prometheus, pytest.mark.victoriametrics]

HOUR = 3600
START = (int(time.time()) // HOUR - 8) * HOUR
AT = START + 6 * HOUR


def scenario(job: str, error_ratio: float) -> Scenario:
    return Scenario(
        start=START,
        duration=7 * HOUR,
        scrape_interval=15,
        services=[
            ServiceLoad(
                job=job,
                rps=10,
                error_ratio=0.001,
                incidents=[Incident(5 * HOUR, 7 * HOUR, error_ratio=error_ratio)],
            )
        ],
    )


def service(name: str, job: str) -> list[SLO]:
    return ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": name,
            "slos": [
                {
                    "name": "availability",
                    "objective": 99,
                    "sli": {
                        "events": {
                            "bad": f'sum(rate(http_requests_total{{job="{job}",code="500"}}[{{{{window}}}}]))',
                            "total": f'sum(rate(http_requests_total{{job="{job}"}}[{{{{window}}}}]))',
                        }
                    },
                }
            ],
        }
    ).slo_records()


SLOS = [*service("web", "web"), *service("store", "store")]
ROUTE = {"web": "prom", "store": "victoria"}


@pytest.fixture(scope="module")
def backends(
    module_prometheus_for, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, LocalVictoriaMetrics]]:
    reason = vm_skip_reason()
    if reason:
        pytest.skip(reason)
    prom = module_prometheus_for(scenario("web", 0.02))
    data = write_openmetrics(scenario("store", 0.2), tmp_path_factory.mktemp("vm") / "s.om")
    with LocalVictoriaMetrics() as victoria:
        victoria.import_openmetrics(data)
        yield prom.url, victoria


def routed(prom_url: str, victoria_url: str) -> RoutedSource:
    return RoutedSource(
        {"prom": PrometheusSource(prom_url), "victoria": PrometheusSource(victoria_url)},
        lambda slo: ROUTE[slo.service],
    )


def test_each_slo_reads_its_own_backend(backends: tuple[str, LocalVictoriaMetrics]) -> None:
    prom_url, victoria = backends
    results = {
        e.slo.service: e for e in Evaluator(SLOS, routed(prom_url, victoria.url)).evaluate(AT)
    }
    five = Duration.parse("5m")
    # web's data exists only in Prometheus, store's only in VictoriaMetrics: a routing mistake
    # reads no data (or the other service's ratio).
    assert results["web"].windows[five].error_ratio == pytest.approx(0.02, rel=0.01)
    assert results["store"].windows[five].error_ratio == pytest.approx(0.2, rel=0.01)
    assert {a.severity for a in results["store"].alerts} >= {"page"}


def test_one_backend_down_costs_only_its_slos(backends: tuple[str, LocalVictoriaMetrics]) -> None:
    prom_url, _ = backends
    source = RoutedSource(
        {
            "prom": PrometheusSource(prom_url),
            "victoria": PrometheusSource("http://127.0.0.1:9", retries=0, timeout=2),
        },
        lambda slo: ROUTE[slo.service],
    )
    step = Duration.parse("1m")
    rates = source.fetch(SLOS, step, AT - 600, AT)
    assert set(rates.errors) == {"store/availability"}
    assert "datasource victoria unavailable" in rates.errors["store/availability"]
    assert np.isnan(rates.total[1]).all() and np.isfinite(rates.total[0]).all()
    assert source.http_requests >= 2
    # Both down: the whole fetch is unavailable, as with one backend.
    dead = RoutedSource(
        {
            "a": PrometheusSource("http://127.0.0.1:9", retries=0, timeout=2),
            "b": PrometheusSource("http://127.0.0.1:9", retries=0, timeout=2),
        },
        lambda slo: "a" if slo.service == "web" else "b",
    )
    with pytest.raises(SourceUnavailable, match=r"datasource a: .*datasource b: "):
        dead.fetch(SLOS, step, AT - 600, AT)


def test_an_unknown_datasource_is_named() -> None:
    source = RoutedSource({"prom": PrometheusSource("http://127.0.0.1:9")}, lambda slo: "thanos")
    with pytest.raises(UnknownDatasource, match="web/availability: no datasource 'thanos'"):
        source.fetch(SLOS[:1], Duration.parse("1m"), AT - 60, AT)
