"""One-shot window counts read with derived atoms and tiled long windows, against one range
per window and SLI side asked directly, on a real Prometheus.

Four days of 60 s scrapes: an errors counter that moves rarely (a sparse bad series is
what an extra tile edge would lose), a service whose 5xx series appears mid-history, a
series without the `code` label (a `!=` matcher matches it, as PromQL says), a young
service (one hour of data: the 30d tile beyond the day is empty) and an availability SLI
(sample counts, ranges 1 ms short). Windows under 7d are read exactly as before: equal to
1e-9. The 30d window is one tile plus the day: its counts may differ by what the counter did
in the one scrape interval across the tile edge.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.demo.openmetrics import open_openmetrics
from engine.evaluation.instant import counts_windows
from engine.source.localprom import LocalPrometheus, backfill, skip_reason
from engine.source.prometheus import PrometheusSource
from engine.source.window_counts import counted_window, window_plan
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec
from engine.spec.sli import bad_rate, total_rate

pytestmark = pytest.mark.prometheus

SCRAPE, DAYS = 60, 4
END = (int(time.time()) // 3600 - 2) * 3600
STEPS = np.arange(END - DAYS * 86400, END + 1, SCRAPE, dtype=np.int64)


def _write(path: Path) -> None:
    rng = np.random.default_rng(5)
    n = STEPS.size
    with open_openmetrics(path) as out:
        out.family("http_requests", "counter")
        for service, start in (("steady", 0), ("late-errors", 0), ("young", n - 60)):
            ts = STEPS[start:]
            ok = np.cumsum(rng.integers(50, 150, ts.size))
            out.series("http_requests_total", {"service": service, "code": "200"}, ts, ok)
            # A few errors a day: the counter moves once in a while.
            errors = np.cumsum(rng.random(ts.size) < 0.01)
            first = ts.size // 2 if service == "late-errors" else 0
            out.series(
                "http_requests_total",
                {"service": service, "code": "503"},
                ts[first:],
                errors[first:],
            )
        out.series("http_requests_total", {"service": "steady"}, STEPS, np.arange(n) * 3)
        out.family("up", "gauge")
        up = (rng.random(n) > 0.02).astype(float)
        out.series("up", {"job": "db"}, STEPS, up)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusSource]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("window-reads")
    _write(work / "data.om")
    with LocalPrometheus(backfill(work / "data.om", work / "tsdb")) as server:
        yield PrometheusSource(server.url, timeout=30)


def _events(name: str, service: str, bad: str) -> dict:
    return {
        "name": name,
        "objective": 99,
        "sli": {
            "events": {
                "bad": f"sum(rate(http_requests_total{{service={service!r},{bad}}}[{{{{window}}}}]))".replace(
                    "'", '"'
                ),
                "total": f'sum(rate(http_requests_total{{service="{service}"}}[{{{{window}}}}]))',
            }
        },
    }


def _slos() -> list[SLO]:
    slos = []
    for service in ("steady", "late-errors", "young"):
        spec = ServiceSpec.model_validate(
            {
                "apiVersion": "slo-engine/v1",
                "service": service,
                "slos": [
                    _events("equal", service, 'code="503"'),
                    _events("regex", service, 'code=~"5.."'),
                    _events("not-ok", service, 'code!="200"'),
                ],
            }
        )
        slos += spec.slo_records()
    database = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "database",
            "slos": [
                {"name": "up", "objective": 99, "sli": {"availability": {"metric": 'up{job="db"}'}}}
            ],
        }
    )
    return slos + database.slo_records()


def _direct(source: PrometheusSource, slo: SLO, window: Duration, at: float) -> tuple[float, float]:
    """What one range per window and side answers, asked as written: the reference."""
    ranged = counted_window(slo, window)
    out = []
    for expr in (bad_rate(slo.sli, ranged), total_rate(slo.sli, ranged)):
        result = source.query_instant(expr, at)
        out.append(float(result[0]["value"][1]) * ranged.seconds if result else np.nan)
    return out[0], out[1]


def test_the_plan_derives_bad_atoms_and_tiles_the_period() -> None:
    slos = _slos()
    windows = (*counts_windows(slos), Duration.parse("2m30s"))
    plan, _, tiles = window_plan(slos, windows, 1000)
    assert tiles is not None
    derived = [d for p in tiles.plan.parts for d in p.derived]
    # equal, regex and not-ok bad atoms of three services, per window; availability's
    # bad (count − sum of samples) has no wider atom.
    assert len(derived) == 9 * len(windows)
    # The default policy reads 3d: the 30d period is the 27 days beyond it, plus 3d.
    assert any("[27d] offset 3d" in p.expr for p in tiles.plan.parts)
    assert len(plan.atoms) == len(tiles.plan.atoms)


def test_counts_equal_one_range_per_window(prometheus: PrometheusSource) -> None:
    slos = _slos()
    windows = (*counts_windows(slos), Duration.parse("2m30s"))
    at = float(END - 7 * SCRAPE)
    counts = prometheus.window_counts(slos, windows, at)
    assert counts.errors == {}
    checked = 0
    for s, slo in enumerate(slos):
        for w, window in enumerate(windows):
            want_bad, want_total = _direct(prometheus, slo, window, at)
            got_bad, got_total = counts.bad[s, w], counts.total[s, w]
            assert np.isnan(got_total) == np.isnan(want_total), (slo.id, window)
            assert np.isnan(got_bad) == np.isnan(want_bad), (slo.id, window)
            if np.isnan(want_total):
                continue
            if window < Duration.parse("7d"):
                assert got_total == pytest.approx(want_total, rel=1e-9, abs=1e-9)
                assert got_bad == pytest.approx(want_bad, rel=1e-9, abs=1e-9)
            else:
                # One more edge: at most one scrape interval of the counter's increase.
                edge = want_total / (DAYS * 86400) * SCRAPE * 2
                assert got_total == pytest.approx(want_total, abs=edge), slo.id
                assert abs(got_bad - want_bad) <= 2, slo.id
            checked += 1
    assert checked >= 20


def test_the_young_service_has_a_period_from_its_one_hour(prometheus: PrometheusSource) -> None:
    slos = [s for s in _slos() if s.service == "young"]
    windows = (Duration.parse("1d"), Duration.parse("30d"))
    counts = prometheus.window_counts(slos, windows, float(END))
    # The tile beyond the day has no data; the period is the day's count, never NaN or 0.
    np.testing.assert_allclose(counts.total[:, 1], counts.total[:, 0], rtol=1e-12)
    assert (counts.total[:, 0] > 0).all()
