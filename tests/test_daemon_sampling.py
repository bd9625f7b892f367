"""The daemon's `scrape_interval`: it sets the evaluation grid, and when it is wrong (fine
steps empty while coarse ones have data) the daemon says so once, in the log, the metrics
and the spec status — and keeps "no data" as no data."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.daemon.config import ConfigError, load_config
from engine.daemon.runtime import Runtime, SpecsInvalid
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.telemetry import setup_telemetry

ROOT = Path(__file__).resolve().parents[1]
T0 = (1_700_000_000 // 3600) * 3600 + 7 * 3600


class SteadySource:
    """1 % errors at 100 req/s; steps shorter than `sparse_below` seconds come back empty,
    as `rate(x[1m])` does over 60 s scrapes."""

    def __init__(self, sparse_below: int = 0) -> None:
        self.sparse_below = sparse_below
        self.steps: set[int] = set()

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        s = int(step.seconds)
        self.steps.add(s)
        times = np.arange(start, end + s / 2, s)
        total = np.full((len(slos), times.size), np.nan if s < self.sparse_below else 100.0)
        return StepRates(step, times, total * 0.01, total, {})

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        return []


def runtime_for(tmp_path: Path, source: SteadySource, **extra: Any) -> Runtime:
    specs = tmp_path / "specs"
    if not specs.exists():
        shutil.copytree(ROOT / "slo_specs", specs)
    values: dict[str, Any] = {
        "specs": [str(specs)],
        "prometheus_url": "http://127.0.0.1:9",
        "state_dir": str(tmp_path / "state"),
        **extra,
    }
    config = load_config(None, values)
    return Runtime(config, clock=lambda: float(T0), source=source, telemetry=setup_telemetry())


def test_scrape_interval_key_sets_the_grid(tmp_path: Path) -> None:
    source = SteadySource()
    runtime = runtime_for(tmp_path, source, scrape_interval="60s")
    try:
        report = runtime.run_cycle(T0 + 100)
        assert {r.evaluated_at for r in report.results} == {T0}  # floored to 2m30s
        assert 150 in source.steps and 60 not in source.steps
        sampling = runtime.spec_status()["sampling"]
        assert sampling["scrape_interval"] == "1m"
        assert sampling["fine_step"] == "2m30s"
        assert sampling["sparse_fine_steps"] == {}
        text = runtime.metrics_registry.get_sample_value("slo_engine_fine_step_seconds")
        assert text == 150.0
    finally:
        runtime.close()


def test_wrong_scrape_interval_is_reported_once_and_no_data_stays_no_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = runtime_for(tmp_path, SteadySource(sparse_below=300))  # assumes 15 s scrapes
    try:
        with caplog.at_level(logging.WARNING, logger="engine.daemon.runtime"):
            first = runtime.run_cycle(T0)
            runtime.run_cycle(T0 + 60)
        warnings = [r.getMessage() for r in caplog.records if "evaluation steps" in r.getMessage()]
        ids = {r.slo.id for r in first.results}
        assert len(warnings) == len(ids)  # once per SLO, not once per cycle
        assert all("Set `scrape_interval:`" in w for w in warnings)
        for result in first.results:
            assert result.windows[Duration.parse("5m")].error_ratio is None  # not 0
            assert result.windows[Duration.parse("1d")].error_ratio == pytest.approx(0.01)
        sparse = runtime.spec_status()["sampling"]["sparse_fine_steps"]
        assert set(sparse) == ids and set(sparse.values()) == {0.0}
        some = sorted(ids)[0]
        assert (
            runtime.metrics_registry.get_sample_value(
                "slo_engine_slo_fine_step_coverage_ratio", {"slo": some}
            )
            == 0.0
        )
        assert runtime.readiness()[0]  # data is data: the daemon stays in service
    finally:
        runtime.close()


def test_impossible_scrape_interval_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(SpecsInvalid, match="window 5m is not a whole number of 10m steps"):
        runtime_for(tmp_path, SteadySource(), scrape_interval="5m")


def test_scrape_interval_must_be_whole_seconds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--scrape-interval: must be a whole number of seconds"):
        runtime_for(tmp_path, SteadySource(), scrape_interval="1500ms")
