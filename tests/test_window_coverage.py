"""Window coverage on a real Prometheus (backfilled with promtool): every window says which
share of it had data, budgets over part of their period say they are partial, and nothing
about alerting changes. Through the daemon's cache path, the one-shot path, the CLI (JSON
and table), the API and the status page.

Five services, 30 s scrapes ending at T, 7d periods (a short period keeps the backfill
small; the math does not depend on it):

    full    8 days of traffic                              every window 1.0
    half    starts at T − 30m, 10 % of requests fail       1h ≈ 0.5, 5m = 1, a page fires
    gap     8 days, no scrape in (T − 40m, T − 30m)        1h ≈ 50/60, 5m = 1
    young   starts at T − 2d                               1d = 1, 7d ≈ 2/7: budget partial
    ghost   no series at all                               every window null, not 0
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from engine.evaluation.burn import evaluate_window_events
from engine.evaluation.cache import MultiResolutionCache
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.instant import coverage_samples, evaluate_once
from engine.evaluation.result import SLOEvaluation
from engine.source.localprom import LocalPrometheus
from engine.source.prometheus import PrometheusSource
from engine.source.window_coverage import window_coverage
from engine.spec.durations import Duration
from engine.spec.loader import load_specs

pytestmark = pytest.mark.prometheus

MINUTE, HOUR, DAY = 60, 3600, 86400
SCRAPE = 30
T = (int(time.time()) // HOUR - 2) * HOUR  # the evaluation instant, on every grid
FIRST = {"full": T - 8 * DAY, "half": T - 30 * MINUTE, "gap": T - 8 * DAY, "young": T - 2 * DAY}
GAP = (T - 40 * MINUTE, T - 30 * MINUTE)  # no sample strictly inside
SERVICES = (*FIRST, "ghost")
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "7d"]
D = Duration.parse


def _spec(service: str) -> str:
    return f"""apiVersion: slo-engine/v1
service: {service}
slos:
  - name: availability
    objective: 99.9
    period: 7d
    sli:
      events:
        bad: sum(rate(requests_total{{job="{service}",code="500"}}[{{{{window}}}}]))
        total: sum(rate(requests_total{{job="{service}"}}[{{{{window}}}}]))
"""


def _openmetrics(path: Path) -> Path:
    """10 requests/s per service; `half` fails 1 in 10 (its own code="500" series)."""
    lines = ["# TYPE requests counter"]
    for job, first in FIRST.items():
        codes = {"200": 9.0, "500": 1.0} if job == "half" else {"200": 10.0}
        for code, rps in codes.items():
            count = 0.0
            for t in range(first, T + 1, SCRAPE):
                count += rps * SCRAPE
                if job == "gap" and GAP[0] < t < GAP[1]:
                    continue
                lines.append(f'requests_total{{job="{job}",code="{code}"}} {count} {t}')
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("coverage")
    (work / "specs").mkdir()
    for service in SERVICES:
        (work / "specs" / f"{service}.yaml").write_text(_spec(service))
    _openmetrics(work / "data.om")
    return work


@pytest.fixture(scope="module")
def prometheus(module_prometheus_for: Any, workdir: Path) -> LocalPrometheus:
    return module_prometheus_for(workdir / "data.om")


@pytest.fixture(scope="module")
def slos(workdir: Path) -> list:
    loaded = load_specs([workdir / "specs"])
    assert not loaded.errors
    return sorted(loaded.slos, key=lambda s: SERVICES.index(s.service))


@pytest.fixture(scope="module")
def cached(prometheus: LocalPrometheus, slos: list) -> dict[str, SLOEvaluation]:
    evaluator = Evaluator(slos, PrometheusSource(prometheus.url), scrape_interval=D("30s"))
    return {e.slo.service: e for e in evaluator.evaluate(T)}


def one_shot(source: PrometheusSource, slos: list) -> list[SLOEvaluation]:
    coverage = partial(window_coverage, source)
    shot = evaluate_once(slos, source, T, scrape_interval=D("30s"), coverage=coverage)
    return shot.evaluations


@pytest.fixture(scope="module")
def once(prometheus: LocalPrometheus, slos: list) -> dict[str, SLOEvaluation]:
    return {e.slo.service: e for e in one_shot(PrometheusSource(prometheus.url), slos)}


def coverage(result: SLOEvaluation) -> dict[str, float | None]:
    return {str(w): v.coverage for w, v in sorted(result.windows.items())}


@pytest.mark.parametrize("path", ["cached", "once"])
def test_coverage_per_window(path: str, request: pytest.FixtureRequest) -> None:
    results: dict[str, SLOEvaluation] = request.getfixturevalue(path)
    full, half, gap, young = (coverage(results[s]) for s in FIRST)
    assert list(full) == WINDOWS
    assert full == {w: pytest.approx(1.0, abs=1e-9) for w in WINDOWS}

    # Starts halfway through the hour: the minute steps before T − 30m hold no scrape pair.
    assert half["5m"] == half["30m"] == pytest.approx(1.0)
    assert half["1h"] == pytest.approx(0.5, abs=1 / 60)
    assert half["2h"] == pytest.approx(0.25, abs=1 / 120)
    assert half["7d"] == pytest.approx(1800 / (7 * DAY), abs=HOUR / (7 * DAY))

    # Ten minutes without a scrape inside the hour.
    assert gap["5m"] == gap["30m"] == pytest.approx(1.0)
    assert gap["1h"] == pytest.approx(50 / 60, abs=1 / 60)
    # (within one sampling interval: the one-shot path samples 6h every 3 minutes)
    assert gap["6h"] == pytest.approx(350 / 360, abs=3 / 360)

    assert young["1d"] == pytest.approx(1.0)
    assert young["3d"] == pytest.approx(2 / 3, abs=0.01)
    assert young["7d"] == pytest.approx(2 / 7, abs=0.01)

    ghost = results["ghost"]
    assert ghost.status == "no_data"
    assert set(coverage(ghost).values()) == {None}  # not judged — never 0
    # Judged exactly where there are counts, and never 0 there (the one-shot path's sampling
    # misses half's 30 minutes under 7d, its counts do not).
    for result in results.values():
        for value in result.windows.values():
            assert (value.coverage is None) == (value.total is None)
            assert value.coverage is None or value.coverage > 0


@pytest.mark.parametrize("path", ["cached", "once"])
def test_budget_partial_label(path: str, request: pytest.FixtureRequest) -> None:
    results: dict[str, SLOEvaluation] = request.getfixturevalue(path)
    young = results["young"].to_json()
    assert young["budget"] == {
        "remaining": young["error_budget_remaining"],
        "partial": True,
        "coverage": pytest.approx(2 / 7, abs=0.01),
    }
    assert young["error_budget_remaining"] == pytest.approx(1.0)  # no errors: all left
    assert results["full"].to_json()["budget"]["partial"] is False
    assert results["gap"].to_json()["budget"]["partial"] is False  # 10 min of 7 days
    ghost = results["ghost"].to_json()["budget"]
    assert ghost == {"remaining": None, "partial": False, "coverage": None}


def test_both_paths_measure_the_same_coverage(
    cached: dict[str, SLOEvaluation], once: dict[str, SLOEvaluation], slos: list
) -> None:
    """Exactly where the one-shot path samples every minute (up to 2h here); beyond,
    within one of its sampling intervals (at most 120 instants per window)."""
    steps = coverage_samples([D(w) for w in WINDOWS], D("1m"))
    assert [str(s) for s in steps] == ["1m", "1m", "1m", "1m", "3m", "12m", "36m", "1h24m"]
    samples = dict(zip(WINDOWS, steps, strict=True))
    for service in SERVICES:
        a, b = coverage(cached[service]), coverage(once[service])
        assert set(a) == set(b) == set(WINDOWS)
        for window, value in a.items():
            if value is None:
                assert b[window] is None, (service, window)
                continue
            step = samples[window].seconds / D(window).seconds
            tolerance = 1e-9 if samples[window] == D("1m") else step
            assert b[window] == pytest.approx(value, abs=tolerance), (service, window)


def test_coverage_decides_nothing(prometheus: LocalPrometheus, slos: list) -> None:
    """The same window sums without covered seconds: the same statuses, alerts and budgets."""
    cache = MultiResolutionCache(PrometheusSource(prometheus.url), slos, _tiers(slos))
    events = cache.refresh(T)
    with_coverage = evaluate_window_events(slos, events)
    without = evaluate_window_events(slos, dataclasses.replace(events, covered_seconds=None))
    assert by_service(with_coverage)["half"].status == "page"
    for a, b in zip(with_coverage, without, strict=True):
        assert (a.status, a.alerts, a.error_budget_remaining) == (
            b.status,
            b.alerts,
            b.error_budget_remaining,
        )
        assert all(v.coverage is None for v in b.windows.values())
    assert by_service(with_coverage)["half"].windows[D("1h")].coverage is not None


def _tiers(slos: list) -> tuple:
    from engine.evaluation.resolution import resolution_for

    return resolution_for(slos, D("30s")).tiers


def by_service(results: list[SLOEvaluation]) -> dict[str, SLOEvaluation]:
    return {r.slo.service: r for r in results}


# ------------------------------------------------------------------ the CLI


def _cli(prometheus: LocalPrometheus, workdir: Path, fmt: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *(sys.executable, "-m", "engine", "evaluate", "--specs", str(workdir / "specs")),
            *("--prometheus-url", prometheus.url, "--at", str(T), "--scrape-interval", "30s"),
            *("--format", fmt),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_json_carries_coverage_and_the_partial_budget(
    prometheus: LocalPrometheus, workdir: Path
) -> None:
    run = _cli(prometheus, workdir, "json")
    assert run.returncode == 0, run.stderr
    slos = {s["service"]: s for s in json.loads(run.stdout)["slos"]}
    assert list(slos["half"]["coverage"]) == WINDOWS
    assert slos["half"]["coverage"]["1h"] == pytest.approx(0.5, abs=1 / 60)
    assert slos["gap"]["coverage"]["1h"] == pytest.approx(50 / 60, abs=1 / 60)
    assert slos["full"]["coverage"]["7d"] == pytest.approx(1.0)
    assert slos["ghost"]["coverage"] == dict.fromkeys(WINDOWS)
    assert slos["young"]["budget"]["partial"] is True
    assert slos["young"]["budget"]["coverage"] == pytest.approx(2 / 7, abs=0.01)


def test_cli_table_marks_partial_windows_and_budgets(
    prometheus: LocalPrometheus, workdir: Path
) -> None:
    run = _cli(prometheus, workdir, "table")
    assert run.returncode == 0, run.stderr
    rows = _table_rows(run.stdout)
    # A partial window's third line is its coverage (two significant digits); full
    # windows have none: gap's 1h, 2h and 6h are partial, its 1d (1430 of 1440 min) is not.
    assert rows["gap"].count("covered") == 3
    assert all(f"{p}% covered" in rows["gap"] for p in (83, 92, 97))
    assert all(f"{p}% covered" in rows["half"] for p in (50, 25))
    # 2 of 7 days, sampled every 84m on the one-shot path: 34 or 35 of 120 instants.
    assert re.search(r"partial: 2[89]% of 7d", rows["young"])
    assert "covered" not in rows["full"] and "partial" not in rows["full"]
    assert "the share of the window with data" in run.stdout  # the legend


def _table_rows(text: str) -> dict[str, str]:
    """The lines of each SLO's row, by service (a row starts with `│ <service>/`)."""
    rows: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if cells and "/availability" in cells[0]:
            current = cells[0].split("/")[0]
        if line.startswith(("└", "╰", "┗")):
            current = None
        if current is not None:
            rows[current] = rows.get(current, "") + " " + " ".join(cells)
    return rows


# ------------------------------------------------------------------ API and status page


@pytest.fixture(scope="module")
def client(
    prometheus: LocalPrometheus, workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    # The daemon's own Runtime and API app (imported here: the evaluation tests above do
    # not need the daemon's packages).
    from harness.api_runtime import FakeClock, daemon_config

    from engine.api.app import create_app
    from engine.api.deps import Access
    from engine.daemon.runtime import Runtime

    state = tmp_path_factory.mktemp("daemon")
    config = daemon_config(
        state,
        workdir / "specs",
        prometheus_url=prometheus.url,
        scrape_interval="30s",
        query_retries=0,
    )
    runtime = Runtime(config, clock=FakeClock(T), notifiers={})
    try:
        assert runtime.run_cycle(T).source_error is None
        access = Access(anonymous_reads=True, public_status_page=True)
        yield TestClient(create_app(runtime, [], clock=runtime.clock, access=access))
    finally:
        runtime.close()


def test_api_serves_coverage_and_the_partial_budget(client: TestClient) -> None:
    slos = {s["service"]: s for s in client.get("/api/v1/slos").json()["slos"]}
    assert slos["half"]["coverage"]["1h"] == pytest.approx(0.5, abs=1 / 60)
    assert slos["gap"]["coverage"]["1h"] == pytest.approx(50 / 60, abs=1 / 60)
    assert slos["ghost"]["coverage"] == dict.fromkeys(WINDOWS)
    assert slos["young"]["budget"]["partial"] is True
    one = client.get("/api/v1/slos/young/availability").json()
    assert one["budget"]["coverage"] == pytest.approx(2 / 7, abs=0.01)
    # The OpenAPI contract documents both.
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"coverage", "budget"} <= set(schemas["SloEvaluationReply"]["required"])
    assert set(schemas["BudgetReply"]["properties"]) == {"remaining", "partial", "coverage"}


def test_status_page_labels_the_partial_budget(client: TestClient) -> None:
    page = client.get("/status")
    assert page.status_code == 200
    text = page.text
    # young (two days of seven) and half (its 30 minutes); not gap, not full, not ghost.
    assert text.count('class="budget-partial"') == 2
    assert "partial: measured over 28.6 % of the 7d period" in text
    assert "partial: measured over 0.3 % of the 7d period" in text
    # Partial windows beside the status (the first three): half's, gap's, young's 3d.
    assert text.count('class="coverage"') == 3
    assert "data for 66.7 % of the last 3d<" in text
    assert "data for 50 % of the last 1h, 25 % of the last 2h, 8.3 % of the last 6h" in text
    assert "data for 83.3 % of the last 1h, 91.7 % of the last 2h, 97.2 % of the last 6h" in text


def test_the_one_shot_path_measures_coverage_in_a_few_instant_queries(
    prometheus: LocalPrometheus, slos: list
) -> None:
    """The totals of the four SLOs with data differ only in `job`: one grouped selector per
    window, all eight windows in one request on top of the unchanged window counts."""
    plain, measured = PrometheusSource(prometheus.url), PrometheusSource(prometheus.url)
    evaluate_once(slos, plain, T, scrape_interval=D("30s"))
    one_shot(measured, slos)
    assert measured.http_requests - plain.http_requests == 1


def test_a_rejected_coverage_query_leaves_only_its_slo_unjudged(
    prometheus: LocalPrometheus, slos: list
) -> None:
    """A total expression Prometheus refuses inside a subquery is bisected down to its
    (SLO, window) pairs: those are NaN, the others measured."""
    bad = dataclasses.replace(slos[0], sli=slos[0].sli.model_copy(deep=True))
    assert bad.sli.events is not None
    object.__setattr__(bad.sli.events, "total", "sum(rate(requests_total[{{window}}])) +")
    got = window_coverage(
        PrometheusSource(prometheus.url),
        [bad, slos[1]],
        [D("1h")],
        [D("1m")],
        D("1m"),
        T,
    )
    assert np.isnan(got[0, 0])
    assert got[1, 0] == pytest.approx(0.5, abs=1 / 60)


def test_windows_asked_together_read_as_windows_asked_alone(
    prometheus: LocalPrometheus, slos: list
) -> None:
    """Asked together, windows share their inner segments (engine.source.window_coverage);
    where every fine step is sampled (up to 2h here) that changes nothing at all."""
    windows = [D(w) for w in ("5m", "30m", "1h", "2h")]
    fine = D("1m")
    samples = coverage_samples(windows, fine)
    source = PrometheusSource(prometheus.url)
    together = window_coverage(source, slos, windows, samples, fine, T)
    for w, (window, step) in enumerate(zip(windows, samples, strict=True)):
        alone = window_coverage(source, slos, [window], [step], fine, T)
        np.testing.assert_array_equal(together[:, w], alone[:, 0])
    by_service = dict(zip((s.service for s in slos), together, strict=True))
    assert by_service["gap"].tolist() == pytest.approx([1.0, 1.0, 50 / 60, 110 / 120])
    assert by_service["half"].tolist() == pytest.approx([1.0, 1.0, 0.5, 0.25], abs=1 / 60)
