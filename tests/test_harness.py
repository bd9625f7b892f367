"""The test harness itself: scenario ground truth, OpenMetrics output, and a real Prometheus
answering PromQL over backfilled data with exactly the values the scenario implies."""

from __future__ import annotations

import io
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest

from engine.demo.openmetrics import OpenMetricsError, OpenMetricsWriter
from engine.demo.scenario import (
    LE_LABELS,
    DatabaseLoad,
    Incident,
    Scenario,
    ServiceLoad,
    write_openmetrics,
    write_scenario,
)
from engine.source.localprom import LocalPrometheus, LocalPrometheusError, backfill, skip_reason

HOUR = 3600
DAY = 86_400
T0 = 1_700_000_000  # a fixed start for the pure tests: no wall clock


def require_prometheus() -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


def _scenario(start: int = T0, duration: int = 2 * DAY) -> Scenario:
    return Scenario(
        start=start,
        duration=duration,
        scrape_interval=15,
        services=[
            ServiceLoad(
                job="api",
                rps=5.0,
                error_ratio=0.001,
                slow_ratio=0.04,
                daily_amplitude=0.3,
                weekly_amplitude=0.1,
                incidents=[Incident(start=DAY, end=DAY + 1800, error_ratio=0.25, slow_ratio=0.5)],
            ),
            ServiceLoad(job="checkout", rps=0.5, error_ratio=0.0, slow_ratio=0.0),
        ],
        database=DatabaseLoad(
            outages=[(DAY + 2 * HOUR, DAY + 2 * HOUR + 600)],
            backup_interval=300,
            backup_check_interval=600,
            backup_failures=[("26h", "27h")],
        ),
    )


# ---------------------------------------------------------------------------- ground truth
def test_counters_are_monotonic_whole_numbers_from_zero() -> None:
    sc = _scenario()
    for kind in ("total", "ok", "errors", "fast", "slow"):
        values = sc.counter("api", sc.timestamps, kind)
        assert values.dtype == np.int64
        assert values[0] == 0
        assert np.all(np.diff(values) >= 0), kind
    total = sc.counter("api", sc.timestamps, "total")
    assert np.array_equal(
        total, sc.counter("api", sc.timestamps, "ok") + sc.counter("api", sc.timestamps, "errors")
    )


def test_total_follows_the_closed_form_integral_of_the_rate() -> None:
    sc = _scenario()
    # No incident changes the rate, so total ≈ rps × ∫ shape; floor loses < 1 per series.
    u = 12 * HOUR
    shape = u + 0.3 * DAY / (2 * math.pi) * (1 - math.cos(2 * math.pi * u / DAY))
    shape += 0.1 * 7 * DAY / (2 * math.pi) * (1 - math.cos(2 * math.pi * u / (7 * DAY)))
    assert abs(sc.expected_increase("api", T0, T0 + u) - 5.0 * shape) <= 2
    # A flat service is exactly rps × seconds (rounded down).
    assert sc.expected_increase("checkout", T0, T0 + HOUR) == 1800


def test_incident_overrides_error_and_slow_ratio_only_inside_its_window() -> None:
    sc = _scenario()
    inside = sc.expected_error_ratio("api", T0 + DAY, T0 + DAY + 1800)
    assert inside == pytest.approx(0.25, abs=2 / 4000)
    assert sc.expected_slow_ratio("api", T0 + DAY, T0 + DAY + 1800) == pytest.approx(0.5, abs=1e-3)
    before = sc.expected_error_ratio("api", T0 + DAY - 6 * HOUR, T0 + DAY)
    assert before == pytest.approx(0.001, abs=1e-4)
    assert sc.expected_error_ratio("checkout", T0, T0 + HOUR) == 0.0


def test_no_traffic_is_none_not_zero() -> None:
    sc = Scenario(
        start=T0,
        duration=HOUR,
        services=[ServiceLoad(job="api", rps=1, incidents=[Incident(0, HOUR, rps_factor=0)])],
    )
    assert sc.expected_increase("api", T0, T0 + HOUR) == 0
    assert sc.expected_error_ratio("api", T0, T0 + HOUR) is None


def test_histogram_buckets_are_cumulative_and_inf_equals_count() -> None:
    sc = _scenario()
    ts = sc.timestamps
    buckets = np.stack([sc.bucket("api", le, ts) for le in LE_LABELS], axis=1)
    assert np.all(np.diff(buckets, axis=1) >= 0)
    assert np.array_equal(buckets[:, LE_LABELS.index("0.5")], sc.counter("api", ts, "fast"))
    assert np.array_equal(
        buckets[:, -1], sc.counter("api", ts, "fast") + sc.counter("api", ts, "slow")
    )


def test_database_outage_backups_and_checks() -> None:
    sc = _scenario()
    outage = T0 + DAY + 2 * HOUR
    assert sc.pg_up(outage - 15)[0] == 1
    assert sc.pg_up(outage)[0] == 0
    assert sc.pg_up(outage + 600)[0] == 1  # windows are half-open
    up, count = sc.expected_up_samples(outage - HOUR + 600, outage + 600)
    assert (up, count) == (241 - 40, 241)
    # Backups every 5 min fail between 26h and 27h: the last success stays at 26h - 5m.
    assert sc.backup_last_success(T0 + 26 * HOUR + 1800)[0] == T0 + 26 * HOUR - 300
    assert sc.backup_last_success(T0 + 27 * HOUR)[0] == T0 + 27 * HOUR
    # Checks every 10 min; six of them (26h00 … 26h50) fall in the failure window.
    assert sc.expected_increase("backup", T0, T0 + 2 * DAY, "checks_failed") == 6
    assert sc.expected_increase("backup", T0, T0 + 2 * DAY, "checks") == 2 * DAY // 600


def test_promql_increase_is_exact_on_scrape_aligned_windows_and_extrapolates_otherwise() -> None:
    sc = _scenario()
    at = T0 + DAY + 1800
    assert sc.promql_increase("api", at, "1h") == sc.expected_increase("api", at - HOUR, at)
    # 7 s off the grid: samples cover 3585 s of the 3600 s window and are stretched to it.
    off = at + 7
    sampled = sc.expected_increase("api", off - HOUR + 8, off - 7)
    assert sc.promql_increase("api", off, "1h") == pytest.approx(sampled * 3600 / 3585, rel=1e-12)
    assert sc.promql_increase("api", T0 - HOUR, "1h") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"daily_amplitude": 0.7, "weekly_amplitude": 0.5}, "must be <= 1"),
        ({"error_ratio": 1.5}, "between 0 and 1"),
        ({"rps": -1}, "rps must be >= 0"),
    ],
)
def test_service_load_rejects_impossible_traffic(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServiceLoad(**kwargs)


def test_incident_and_scenario_validation() -> None:
    with pytest.raises(ValueError, match="must be after its start"):
        Incident(start=100, end=100)
    with pytest.raises(ValueError, match="whole number of seconds"):
        Scenario(start=T0, duration=60, scrape_interval=1.5)
    with pytest.raises(ValueError, match="duplicate service jobs"):
        Scenario(start=T0, duration=60, services=[ServiceLoad(), ServiceLoad()])
    with pytest.raises(KeyError, match="no service with job 'web'"):
        _scenario().expected_increase("web", T0, T0 + 60)
    assert Incident(start="1h", end="1h30m").end == 5400.0


# ---------------------------------------------------------------------------- OpenMetrics
def test_openmetrics_layout_promtool_relies_on(tmp_path: Path) -> None:
    sc = _scenario(duration=HOUR)
    path = write_openmetrics(sc, tmp_path / "s.om")
    lines = path.read_text().splitlines()
    assert lines[-1] == "# EOF"
    assert lines.count("# EOF") == 1
    families = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert families == [
        "http_requests",
        "http_request_duration_seconds",
        "pg_up",
        "backup_verification_checks",
        "backup_last_success_timestamp_seconds",
    ]
    sample = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+) (\d+)$")
    per_series: dict[str, list[int]] = {}
    for line in lines:
        if line.startswith("#"):
            continue
        m = sample.match(line)
        assert m, line
        per_series.setdefault(m.group(1) + (m.group(2) or ""), []).append(int(m.group(4)))
    for key, times in per_series.items():
        assert times == sorted(times), key
        assert times[0] == T0 and times[-1] == T0 + HOUR  # seconds, not milliseconds
    assert len(per_series) == 2 * (2 + 10) + 1 + 2 + 1
    assert 'http_request_duration_seconds_bucket{job="api",le="+Inf"}' in "\n".join(per_series)


def test_histogram_metric_points_are_grouped_per_timestamp() -> None:
    out = io.StringIO()
    write_scenario(
        OpenMetricsWriter(out), Scenario(start=T0, duration=30, services=[ServiceLoad()])
    )
    hist = [
        line for line in out.getvalue().splitlines() if line.startswith("http_request_duration")
    ]
    assert [line.split()[-1] for line in hist[:10]] == [str(T0)] * 10
    assert hist[8].startswith('http_request_duration_seconds_count{job="api"}')
    assert hist[9].startswith('http_request_duration_seconds_sum{job="api"}')


def test_writer_refuses_layouts_promtool_would_misread() -> None:
    writer = OpenMetricsWriter(io.StringIO())
    with pytest.raises(OpenMetricsError, match="before its series"):
        writer.series("x_total", {}, np.array([1]), np.array([1]))
    writer.family("x", "counter")
    with pytest.raises(OpenMetricsError, match="strictly increasing"):
        writer.series("x_total", {}, np.array([2, 1]), np.array([1, 2]))
    with pytest.raises(OpenMetricsError, match="does not belong"):
        writer.series("y_total", {}, np.array([1]), np.array([1]))
    with pytest.raises(OpenMetricsError, match="written twice"):
        writer.family("x", "counter")
    with pytest.raises(OpenMetricsError, match="invalid label name"):
        writer.series("x_total", {"bad-name": "1"}, np.array([1]), np.array([1]))


def test_generic_writer_escapes_label_values_and_formats_floats() -> None:
    out = io.StringIO()
    writer = OpenMetricsWriter(out)
    writer.family("g", "gauge")
    writer.series("g", {"path": 'a"b\\c'}, np.array([10, 25]), np.array([0.1, 3.0]))
    writer.close()
    assert out.getvalue().splitlines() == [
        "# TYPE g gauge",
        'g{path="a\\"b\\\\c"} 0.1 10',
        'g{path="a\\"b\\\\c"} 3 25',
        "# EOF",
    ]


# ---------------------------------------------------------------------------- real Prometheus
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """One backfilled Prometheus shared by the query tests (a server start costs seconds)."""
    require_prometheus()
    # Backfilled samples must lie in the past; end 10 minutes ago, on a minute boundary.
    end = (int(time.time()) // 60) * 60 - 600
    sc = _scenario(start=end - 2 * DAY)
    workdir = tmp_path_factory.mktemp("harness")
    tsdb = backfill(write_openmetrics(sc, workdir / "s.om"), workdir / "tsdb")
    with LocalPrometheus(tsdb) as prom:
        yield sc, prom


@pytest.mark.prometheus
def test_increase_over_an_hour_matches_the_scenario(live) -> None:
    sc, prom = live
    at = sc.start + DAY + 1800  # on the scrape grid
    got = prom.query_value('sum(increase(http_requests_total{job="api"}[1h]))', at)
    # Prometheus 2.x includes both window edges, so on the grid no extrapolation happens.
    assert got == pytest.approx(sc.expected_increase("api", at - HOUR, at), rel=1e-12)
    # Off the grid Prometheus extrapolates the 3585 s of samples to the full hour: the value
    # moves away from the exact count by the extrapolation, which promql_increase reproduces.
    off = at + 7
    got_off = prom.query_value('sum(increase(http_requests_total{job="api"}[1h]))', off)
    assert got_off == pytest.approx(sc.promql_increase("api", off, "1h"), rel=1e-9)
    assert got_off == pytest.approx(sc.expected_increase("api", off - HOUR, off), rel=0.01)


@pytest.mark.prometheus
def test_error_ratio_during_the_injected_incident(live) -> None:
    sc, prom = live
    at = sc.start + DAY + 1800
    query = (
        'sum(increase(http_requests_total{job="api",code="500"}[30m]))'
        ' / sum(increase(http_requests_total{job="api"}[30m]))'
    )
    got = prom.query_value(query, at)
    assert got == pytest.approx(sc.expected_error_ratio("api", at - 1800, at), rel=1e-12)
    assert got == pytest.approx(0.25, abs=1e-3)
    # Six hours earlier the service was healthy.
    assert prom.query_value(query, at - 6 * HOUR) == pytest.approx(0.001, abs=5e-4)


@pytest.mark.prometheus
def test_histogram_bucket_share_matches_slow_ratio(live) -> None:
    sc, prom = live
    at = sc.start + DAY + 1800
    query = (
        'sum(rate(http_request_duration_seconds_bucket{job="api",le="0.5"}[30m]))'
        ' / sum(rate(http_request_duration_seconds_count{job="api"}[30m]))'
    )
    got = prom.query_value(query, at)
    assert got == pytest.approx(1 - sc.expected_slow_ratio("api", at - 1800, at), rel=1e-12)
    assert got == pytest.approx(0.5, abs=1e-3)
    # histogram_quantile interpolates linearly inside the bucket holding the rank.
    healthy = at - 6 * HOUR
    quantile = prom.query_value(
        'histogram_quantile(0.25, sum by (le) (rate(http_request_duration_seconds_bucket{job="api"}[1h])))',
        healthy,
    )
    first = int(sc.bucket("api", "0.05", healthy)[0] - sc.bucket("api", "0.05", healthy - HOUR)[0])
    count = sc.expected_increase("api", healthy - HOUR, healthy, "count")
    assert quantile == pytest.approx(0.05 * (0.25 * count / first), rel=1e-9)


@pytest.mark.prometheus
def test_pg_up_outage_and_backup_metrics(live) -> None:
    sc, prom = live
    at = sc.start + DAY + 2 * HOUR + 600  # just after the 10-minute outage
    up = prom.query_value('sum_over_time(pg_up{job="database"}[1h])', at)
    count = prom.query_value('count_over_time(pg_up{job="database"}[1h])', at)
    assert (up, count) == sc.expected_up_samples(at - HOUR, at)
    assert count - up == 40  # 10 minutes of 15 s scrapes
    failed = prom.query_value(
        'sum(increase(backup_verification_checks_total{job="backup",result="failed"}[1d]))',
        sc.start + 2 * DAY,
    )
    assert failed == sc.expected_increase(
        "backup", sc.start + DAY, sc.start + 2 * DAY, "checks_failed"
    )
    assert failed == 6
    stamp = prom.query_value("backup_last_success_timestamp_seconds", sc.start + 26 * HOUR + 1800)
    assert stamp == sc.backup_last_success(sc.start + 26 * HOUR + 1800)[0]


@pytest.mark.prometheus
def test_instant_queries_outside_the_data_are_empty(live) -> None:
    sc, prom = live
    assert prom.query('http_requests_total{job="api"}', sc.start - HOUR) == []
    # Lookback is 5 minutes: ten minutes after the last sample nothing is returned.
    assert prom.query('http_requests_total{job="api"}', sc.end + 600) == []
    assert len(prom.query('http_requests_total{job="api"}', sc.end)) == 2
    assert (
        prom.query_value('sum(increase(http_requests_total{job="api"}[1h]))', sc.start - 60) is None
    )


@pytest.mark.prometheus
def test_prometheus_for_fixture_backfills_loads_rules_and_stops(
    prometheus_for, tmp_path: Path
) -> None:
    end = (int(time.time()) // 60) * 60 - 600
    sc = Scenario(
        start=end - 6 * HOUR, duration=6 * HOUR, scrape_interval=60, services=[ServiceLoad(rps=2)]
    )
    rules = tmp_path / "r.rules.yml"
    rules.write_text(
        "groups:\n- name: t\n  rules:\n  - record: job:http_requests:rate5m\n"
        "    expr: sum by (job) (rate(http_requests_total[5m]))\n"
    )
    prom = prometheus_for(sc, rule_files=[rules])
    assert (
        prom.query_value('sum(http_requests_total{job="api"})', sc.end)
        == sc.counter("api", sc.end)[0]
    )
    loaded = prom.query("up", sc.end)  # nothing scraped, but the API answers
    assert loaded == []
    import requests

    groups = requests.get(f"{prom.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert [g["name"] for g in groups] == ["t"]
    pid = prom.pid
    prom.stop()
    assert prom.pid is None
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


def test_backfill_reports_promtool_errors(tmp_path: Path) -> None:
    require_prometheus()
    bad = tmp_path / "bad.om"
    bad.write_text("# TYPE x counter\nx_total not-a-number 10\n# EOF\n")
    with pytest.raises(LocalPrometheusError, match="promtool backfill"):
        backfill(bad, tmp_path / "tsdb")


def test_start_failure_includes_the_log_tail(tmp_path: Path) -> None:
    require_prometheus()
    prom = LocalPrometheus(tmp_path / "tsdb", extra_config={"global": {"scrape_interval": "bogus"}})
    with pytest.raises(LocalPrometheusError, match=r"exited with .* before becoming ready"):
        prom.start()
    assert prom.pid is None
