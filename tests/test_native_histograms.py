"""Native-histogram latency SLIs (`native: true`), from the PromQL to a real Prometheus.

Prometheus 2.42 takes native histograms only from the protobuf exposition format and
promtool cannot backfill them, so the end-to-end test runs a real Prometheus with
`--enable-feature=native-histograms` scraping `harness.native_exporter` every second. Its
observations are known exactly: the `checkout` route has no request in the bucket that holds
the 300 ms threshold (so `histogram_fraction` equals the truth), the `search` route has 40 %
of its requests there (so Prometheus interpolates linearly inside it: the expectation is
computed, and differs from the truth), and the `admin` route stops after two seconds (a quiet
window is 0 bad of 0, never NaN). 300 ms is no bucket bound of these histograms — the point
of native SLIs.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.native_exporter import (
    CONTENT_TYPE,
    MESSAGES,
    Flow,
    NativeHistogramExporter,
    Series,
    bucket_bounds,
    bucket_index,
    delimited,
    spans_and_deltas,
)

from engine.evaluation.evaluator import Evaluator
from engine.generate.alert_rules import no_data_description
from engine.generate.pipeline import generate, rule_file_text
from engine.source.localprom import LocalPrometheus, skip_reason
from engine.source.prometheus import PrometheusSource
from engine.source.query_plan import plan_queries
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec
from engine.spec.sli import bad_rate, derives_bad, good_rate, total_rate

HISTOGRAM = "http_request_duration_seconds"
THRESHOLD = 0.3
SERIES = {
    # 85 % at or below 300 ms, none in the bucket holding it: Prometheus' answer is the truth.
    "checkout": Series(
        {"route": "checkout"},
        (Flow(5, 0.0), Flow(55, 0.05), Flow(25, 0.2), Flow(10, 0.8), Flow(5, 2.5)),
    ),
    # 40 % at 310 ms, in the bucket (0.2973, 0.3242] that holds the threshold.
    "search": Series({"route": "search"}, (Flow(50, 0.05), Flow(40, 0.31), Flow(10, 1.0))),
    # Traffic for two seconds, then none.
    "admin": Series({"route": "admin"}, (Flow(10, 0.05), Flow(10, 1.0)), until=2.0),
}
FIVE_MINUTES = Duration.parse("5m")


def _slos() -> list[SLO]:
    slos = [
        {
            "name": f"{route}-latency",
            "objective": 99,
            "sli": {
                "latency": {
                    "histogram": HISTOGRAM,
                    "selector": f'route="{route}"',
                    "threshold": "300ms",
                    "native": True,
                }
            },
        }
        for route in SERIES
    ]
    spec = {"apiVersion": "slo-engine/v1", "service": "storefront", "slos": slos}
    return ServiceSpec.model_validate(spec).slo_records()


def _slo(route: str) -> SLO:
    return next(s for s in _slos() if s.name == f"{route}-latency")


# -- PromQL, planning, missing data: no server needed ---------------------------------------


def test_native_sli_counts_with_histogram_count_and_fraction() -> None:
    sli = _slo("checkout").sli
    window = FIVE_MINUTES
    summed = f'sum(rate({HISTOGRAM}{{route="checkout"}}[5m]))'
    assert total_rate(sli, window) == (
        f'sum(histogram_count(rate({HISTOGRAM}{{route="checkout"}}[5m])))'
    )
    assert good_rate(sli, window) == (
        f"(histogram_fraction(0, 0.3, {summed}) >= 0) * histogram_count({summed})"
        f" or 0 * histogram_count({summed})"
    )
    assert bad_rate(sli, window) == f"({total_rate(sli, window)}) - ({good_rate(sli, window)})"
    assert derives_bad(sli)


def test_the_threshold_is_no_bucket_bound() -> None:
    lower, upper = bucket_bounds(bucket_index(THRESHOLD, 3), 3)
    assert lower < THRESHOLD < upper
    assert (round(lower, 4), round(upper, 4)) == (0.2973, 0.3242)


def test_query_plan_asks_native_expressions_as_written() -> None:
    slos = _slos()
    pairs = [(bad_rate(s.sli, FIVE_MINUTES), total_rate(s.sli, FIVE_MINUTES)) for s in slos]
    plan = plan_queries(pairs)
    # Not linear combinations of sum(rate(...)): each side is one opaque atom, never split.
    assert set(plan.atoms) == {expr for pair in pairs for expr in pair}
    assert all(part.opaque and len(part.atoms) == 1 for part in plan.parts)


class _NoBoundsQuery(PrometheusSource):
    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:1")

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        raise AssertionError(f"a native SLI has no bucket bounds to ask for: {query}")


def test_a_missing_good_side_of_a_native_sli_is_no_data_not_a_bucket_error() -> None:
    slos = [_slo("checkout")]
    bad = np.array([[1.0, np.nan, np.nan]])
    total = np.array([[10.0, 10.0, 10.0]])
    errors: dict[str, str] = {}
    _NoBoundsQuery()._missing_good(slos, np.array([60.0, 120.0, 180.0]), bad, total, errors)
    assert errors == {}
    assert bad[0, 0] == 1.0 and total[0, 0] == 10.0
    assert np.isnan(total[0, 1:]).all()


def test_no_data_alert_and_dashboard_speak_native() -> None:
    slo = _slo("checkout")
    description = no_data_description(slo, Duration.parse("1h"))
    assert "--enable-feature=native-histograms" in description
    assert "bucket bound" not in description
    files = {f.path: f.text for f in generate(_slos())}
    dashboard = files["golden-signals-storefront.json"]
    assert (
        f'histogram_quantile(0.99, sum(rate({HISTOGRAM}{{route=\\"checkout\\"}}'
        "[$__rate_interval])))" in dashboard
    )
    assert f"{HISTOGRAM}_bucket" not in dashboard


def test_exporter_writes_spans_and_deltas_as_metrics_proto_does() -> None:
    assert spans_and_deltas({-3: 4, -2: 6, 0: 1, 5: 2}) == (
        [(-3, 2), (1, 1), (4, 1)],
        [4, 2, -5, 1],
    )
    exporter = NativeHistogramExporter([SERIES["checkout"]])
    exporter.started = 1000.0
    body = delimited(exporter.families(1010.0))
    families, pos = [], 0
    while pos < len(body):
        length, shift = 0, 0
        while True:
            byte = body[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        families.append(MESSAGES["MetricFamily"].FromString(body[pos : pos + length]))
        pos += length
    histogram, counter = families
    native = histogram.metric[0].histogram
    assert (native.sample_count, native.zero_count, native.schema) == (1000, 50, 3)
    counts, index, running = {}, 0, 0
    deltas = iter(native.positive_delta)
    for span in native.positive_span:
        index += span.offset
        for _ in range(span.length):
            running += next(deltas)
            counts[index] = running
            index += 1
    assert counts == {
        bucket_index(0.05, 3): 550,
        bucket_index(0.2, 3): 250,
        bucket_index(0.8, 3): 100,
        bucket_index(2.5, 3): 50,
    }
    assert counter.metric[0].counter.value == 1000
    assert [(p.name, p.value) for p in counter.metric[0].label] == [("route", "checkout")]


@pytest.mark.prometheus
@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")
def test_generated_rules_for_native_slis_pass_promtool(tmp_path: Path) -> None:
    path = tmp_path / "storefront.rules.yml"
    path.write_text(rule_file_text("storefront", _slos()), encoding="utf-8")
    assert "histogram_fraction(0, 0.3, " in path.read_text(encoding="utf-8")
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- a real Prometheus scraping native histograms ----------------------------------------------


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, float]]:
    """(Prometheus, exporter, now) once a whole 1m evaluation step holds ≥ 10 scrapes and
    20 s have been scraped."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("native")
    rules = tmp / "storefront.rules.yml"
    rules.write_text(rule_file_text("storefront", _slos()), encoding="utf-8")
    with NativeHistogramExporter(list(SERIES.values()), histogram=HISTOGRAM) as exporter:
        scrape = {
            "job_name": "native",
            "scrape_interval": "1s",
            "static_configs": [{"targets": [exporter.target]}],
        }
        with LocalPrometheus(
            tmp / "tsdb",
            rule_files=[rules],
            scrape_configs=[scrape],
            evaluation_interval="1s",
            extra_args=["--enable-feature=native-histograms"],
        ) as prometheus:
            while True:
                now = time.time()
                first = exporter.scraped_at[0] if exporter.scraped_at else now
                if now // 60 * 60 - first >= 10 and now - first >= 20:
                    break
                time.sleep(1)
            yield prometheus, exporter, now


def _close(actual: float | None, expected: float) -> bool:
    return actual is not None and math.isclose(actual, expected, rel_tol=0.01)


@pytest.mark.prometheus
def test_prometheus_scrapes_native_histograms_over_protobuf(scraped: tuple) -> None:
    prometheus, exporter, now = scraped
    assert exporter.accepts[0].startswith(CONTENT_TYPE.replace(" ", "").split(";encoding")[0])
    stored = prometheus.query(f'{HISTOGRAM}{{route="checkout"}}', now)
    assert "histogram" in stored[0], stored  # a native sample, not a float
    # The histogram counts exactly the requests the counter counts: 100/s (a 15s range
    # inside the ≥ 20 s scraped, so rate() need not extrapolate to where data starts).
    for route in ("checkout", "search"):
        count = prometheus.query_value(
            f'sum(histogram_count(rate({HISTOGRAM}{{route="{route}"}}[15s])))', now
        )
        requests = prometheus.query_value(
            f'sum(rate(http_requests_total{{route="{route}"}}[15s]))', now
        )
        assert count == requests, (route, count, requests)
        assert count is not None and math.isclose(count, 100.0, rel_tol=0.02), (route, count)


@pytest.mark.prometheus
def test_native_latency_windows_match_prometheus_and_the_truth(scraped: tuple) -> None:
    prometheus, _, now = scraped
    slos = _slos()
    evaluator = Evaluator(
        slos, PrometheusSource(prometheus.url), scrape_interval=Duration.parse("1s")
    )
    results = {r.slo.name: r for r in evaluator.evaluate(now)}
    for route in ("checkout", "search"):
        series, result = SERIES[route], results[f"{route}-latency"]
        assert result.error is None, result.error
        expected = 1 - series.expected_good_share(THRESHOLD)
        at, sli = result.evaluated_at, result.slo.sli
        own = prometheus.query_value(
            f"({bad_rate(sli, FIVE_MINUTES)}) / ({total_rate(sli, FIVE_MINUTES)})", at
        )
        assert _close(own, expected), (route, own, expected)
        for window in (FIVE_MINUTES, result.recent_window):
            value = result.windows.get(window, result.recent)
            assert value is not None and _close(value.error_ratio, own), (route, window, value)
        recorded = prometheus.query_value(f'slo:error_ratio:rate5m{{slo="{result.slo.id}"}}', now)
        assert _close(recorded, expected), (route, recorded, expected)
    # No bucket at the threshold, and still exact: 15 % of checkout requests are slower.
    assert math.isclose(1 - SERIES["checkout"].true_good_share(THRESHOLD), 0.15)
    # Inside the threshold's bucket Prometheus 2.42 interpolates linearly: 10 % of the 310 ms
    # requests count as fast, so search reads 46 % slow where the truth is 50 %.
    assert 1 - SERIES["search"].true_good_share(THRESHOLD) == 0.5
    assert round(1 - SERIES["search"].expected_good_share(THRESHOLD), 4) == 0.4599


@pytest.mark.prometheus
def test_a_quiet_native_histogram_is_zero_of_zero_not_nan(scraped: tuple) -> None:
    prometheus, _, now = scraped
    slo = _slo("admin")
    step = Duration.parse("5s")
    summed = f'sum(rate({HISTOGRAM}{{route="admin"}}[5s]))'
    # What the fallback is for: the fraction of an empty histogram is NaN.
    assert math.isnan(prometheus.query_value(f"histogram_fraction(0, 0.3, {summed})", now))
    rates = PrometheusSource(prometheus.url).fetch([slo], step, now - 10, now)
    assert rates.errors == {}
    assert rates.bad.tolist() == [[0.0, 0.0, 0.0]]
    assert rates.total.tolist() == [[0.0, 0.0, 0.0]]
