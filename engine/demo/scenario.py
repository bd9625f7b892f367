"""Deterministic synthetic traffic with exact ground truth, for tests against a real Prometheus.

A `Scenario` describes load over time — request rate with daily/weekly waves, error and slow
ratios, incidents that override them, database outages and backup failures — and renders it
as timestamped OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`. The load
descriptions themselves (`ServiceLoad`, `Incident`, `DatabaseLoad`) are in `engine.demo.load`.

Counters carry no randomness: a counter's value at time t is the number of *whole* events
completed since the scenario started, i.e. ``floor(∫₀ᵗ rate(s)·share(s) ds)`` where the
integral is computed in closed form (sinusoids integrate to cosines, incidents are piecewise
constant). Because the same function produces the samples and the ground truth, a test can
ask `expected_increase` / `expected_error_ratio` for any window and compare it with what
Prometheus answers; `promql_increase` even reproduces Prometheus's own sample-level
extrapolation for windows that do not line up with scrapes.

Conventions (also in docs/harness.md):
- `Scenario.start` and every argument named ``t``, ``t0``, ``t1`` or ``at`` are absolute Unix
  times in seconds; incident/outage/failure ``start``/``end`` are offsets in seconds from the
  scenario start (a Duration string such as "2h" is accepted too).
- Request outcomes: code "200" (success) and "500" (errors). Latency buckets
  0.05 0.1 0.25 0.5 1 2.5 5 +Inf; exactly `slow_ratio` of requests take longer than 0.5 s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

# The load descriptions live in engine.demo.load; still importable from here.
from engine.demo.load import DatabaseLoad as DatabaseLoad
from engine.demo.load import Incident as Incident
from engine.demo.load import Seconds, ServiceLoad, to_seconds
from engine.demo.openmetrics import OpenMetricsWriter, open_openmetrics

# Histogram bucket upper bounds, spelled as the Go client spells them.
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf)
LE_LABELS: tuple[str, ...] = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf")
SLOW_THRESHOLD_SECONDS = 0.5
# How fast (≤ 0.5 s) and slow (> 0.5 s) requests spread over the buckets' bands; a fixed
# shape keeps every bucket's ground truth a closed-form function of slow_ratio.
_FAST_SHARES = (0.5, 0.25, 0.15, 0.10)  # bands (0,0.05] (0.05,0.1] (0.1,0.25] (0.25,0.5]
_SLOW_SHARES = (0.5, 0.3, 0.15, 0.05)  # bands (0.5,1] (1,2.5] (2.5,5] (5,+Inf)
# Each band's representative latency, for a plausible _sum.
_BAND_LATENCY = np.array([0.03, 0.075, 0.175, 0.375, 0.75, 1.75, 3.75, 7.5])
_N_BANDS = 8
# Columns of a service's quantity matrix: successes, errors, then the 8 latency bands.
_OK, _ERR, _BAND0 = 0, 1, 2

CounterKind = Literal["total", "ok", "errors", "fast", "slow", "count"]
_SERVICE_KINDS = ("total", "ok", "errors", "fast", "slow", "count")
_BACKUP_KINDS = ("checks", "checks_success", "checks_failed")


def _in_windows(offsets: np.ndarray, windows: Iterable[tuple[float, float]]) -> np.ndarray:
    """Mask of offsets inside any half-open [start, end) window."""
    mask = np.zeros(offsets.shape, dtype=bool)
    for start, end in windows:
        mask |= (offsets >= start) & (offsets < end)
    return mask


class _ServiceModel:
    """Closed-form cumulative event counts of one service (offsets from the scenario start)."""

    def __init__(self, load: ServiceLoad, duration: float) -> None:
        self.load = load
        cuts = {0.0, duration}
        for inc in load.incidents:
            cuts.update(min(max(x, 0.0), duration) for x in (inc.start, inc.end))
        self.breaks = np.array(sorted(cuts))
        mids = (self.breaks[:-1] + self.breaks[1:]) / 2
        weights = np.zeros((mids.size, 2 + _N_BANDS))
        for k, mid in enumerate(mids.tolist()):
            factor, err, slow = 1.0, load.error_ratio, load.slow_ratio
            for inc in load.incidents:
                if inc.start <= mid < inc.end:
                    factor = inc.rps_factor if inc.rps_factor is not None else factor
                    err = inc.error_ratio if inc.error_ratio is not None else err
                    slow = inc.slow_ratio if inc.slow_ratio is not None else slow
            weights[k, _OK] = 1 - err
            weights[k, _ERR] = err
            weights[k, _BAND0 : _BAND0 + 4] = (1 - slow) * np.array(_FAST_SHARES)
            weights[k, _BAND0 + 4 :] = slow * np.array(_SLOW_SHARES)
            weights[k] *= load.rps * factor
        self.weights = weights
        self.b_at_breaks = load.shape_integral(self.breaks)
        per_segment = weights * np.diff(self.b_at_breaks)[:, None]
        self.cum = np.vstack([np.zeros((1, weights.shape[1])), np.cumsum(per_segment, axis=0)])

    def quantities(self, u: np.ndarray) -> np.ndarray:
        """Whole events completed by offsets `u`: shape (len(u), 10), int64."""
        u = np.asarray(u, dtype=np.float64)
        k = np.clip(np.searchsorted(self.breaks, u, side="right") - 1, 0, self.weights.shape[0] - 1)
        exact = (
            self.cum[k]
            + self.weights[k] * (self.load.shape_integral(u) - self.b_at_breaks[k])[:, None]
        )
        return np.floor(exact).astype(np.int64)


@dataclass(frozen=True)
class Scenario:
    """Load over [start, start + duration], sampled every `scrape_interval` seconds."""

    start: int | float | datetime
    duration: Seconds
    scrape_interval: Seconds = 15
    services: Sequence[ServiceLoad] = ()
    database: DatabaseLoad | None = None
    _models: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        start = self.start.timestamp() if isinstance(self.start, datetime) else float(self.start)
        object.__setattr__(self, "start", int(start))
        duration = to_seconds(self.duration)
        interval = to_seconds(self.scrape_interval)
        if interval <= 0 or interval != int(interval):
            raise ValueError(f"scrape_interval must be a whole number of seconds, got {interval}")
        if duration <= 0:
            raise ValueError("duration must be > 0")
        object.__setattr__(self, "duration", int(duration))
        object.__setattr__(self, "scrape_interval", int(interval))
        object.__setattr__(self, "services", tuple(self.services))
        jobs = [s.job for s in self.services]
        if len(set(jobs)) != len(jobs):
            raise ValueError(f"duplicate service jobs: {jobs}")

    # ----------------------------------------------------------------- sampling grid
    @property
    def end(self) -> int:
        return self.start + self.duration

    @cached_property
    def timestamps(self) -> np.ndarray:
        """Scrape instants (Unix seconds, int64), from `start` through `end` inclusive."""
        n = self.duration // self.scrape_interval + 1
        return self.start + self.scrape_interval * np.arange(n, dtype=np.int64)

    def _offsets(self, t: float | np.ndarray) -> np.ndarray:
        return np.clip(
            np.atleast_1d(np.asarray(t, dtype=np.float64)) - self.start, 0, self.duration
        )

    # ----------------------------------------------------------------- services
    def service(self, job: str) -> ServiceLoad:
        for s in self.services:
            if s.job == job:
                return s
        raise KeyError(f"no service with job {job!r}; jobs: {[s.job for s in self.services]}")

    def _model(self, job: str) -> _ServiceModel:
        if job not in self._models:
            self._models[job] = _ServiceModel(self.service(job), float(self.duration))
        return self._models[job]

    def _service_counter(self, job: str, u: np.ndarray, kind: str) -> np.ndarray:
        q = self._model(job).quantities(u)
        bands = q[:, _BAND0:]
        match kind:
            case "total":
                return q[:, _OK] + q[:, _ERR]
            case "ok":
                return q[:, _OK]
            case "errors":
                return q[:, _ERR]
            case "fast":
                return bands[:, :4].sum(axis=1)
            case "slow":
                return bands[:, 4:].sum(axis=1)
            case "count":
                return bands.sum(axis=1)
        raise ValueError(f"unknown kind {kind!r}; service kinds: {_SERVICE_KINDS}")

    def _backup_counter(self, u: np.ndarray, kind: str) -> np.ndarray:
        db = self._require_db()
        # Only the checks up to the latest asked-for time: a live simulator's scenario spans years.
        horizon = float(u.max(initial=0.0))
        times = db.backup_check_interval * np.arange(
            1, int(horizon // db.backup_check_interval) + 1
        )
        failed = _in_windows(times, db.backup_failures)
        done = np.floor(u / db.backup_check_interval).astype(np.int64)  # checks run by u
        cum_failed = np.concatenate([[0], np.cumsum(failed)])
        n_failed = cum_failed[np.minimum(done, times.size)]
        match kind:
            case "checks":
                return done
            case "checks_failed":
                return n_failed
            case "checks_success":
                return done - n_failed
        raise ValueError(f"unknown kind {kind!r}; backup kinds: {_BACKUP_KINDS}")

    def counter(self, job: str, t: float | np.ndarray, kind: str = "total") -> np.ndarray:
        """Counter value(s) at Unix time(s) `t` (clipped to the scenario), as int64 array.

        Service kinds: total (all codes), ok (code 200), errors (code 500); and from the
        latency histogram: fast (≤ 0.5 s, bucket le="0.5"), slow (> 0.5 s), count (_count).
        The histogram rounds each bucket band down on its own, so `count` may trail `total`
        by a few events; compare histogram ratios against `count`.
        Backup job kinds: checks, checks_success, checks_failed.
        """
        u = self._offsets(t)
        if self.database is not None and job == self.database.backup_job:
            return self._backup_counter(u, kind)
        return self._service_counter(job, u, kind)

    def bucket(self, job: str, le: str, t: float | np.ndarray) -> np.ndarray:
        """`http_request_duration_seconds_bucket{le=...}` value(s) at Unix time(s) `t`."""
        if le not in LE_LABELS:
            raise ValueError(f"unknown bucket {le!r}; buckets: {LE_LABELS}")
        bands = self._model(job).quantities(self._offsets(t))[:, _BAND0:]
        return bands[:, : LE_LABELS.index(le) + 1].sum(axis=1)

    def latency_sum(self, job: str, t: float | np.ndarray) -> np.ndarray:
        """`http_request_duration_seconds_sum` at Unix time(s) `t`: each band's count × its
        representative latency, rounded to milliseconds (float64)."""
        bands = self._model(job).quantities(self._offsets(t))[:, _BAND0:]
        return np.round(bands @ _BAND_LATENCY, 3)

    # ----------------------------------------------------------------- ground truth
    def expected_increase(self, job: str, t0: float, t1: float, kind: str = "total") -> int:
        """Exact number of `kind` events in (t0, t1] (Unix seconds): counter(t1) − counter(t0)."""
        return int(self.counter(job, t1, kind)[0] - self.counter(job, t0, kind)[0])

    def expected_ratio(
        self, job: str, t0: float, t1: float, bad: str, total: str = "total"
    ) -> float | None:
        """bad events / total events in (t0, t1]; None when there were no events (no data)."""
        denominator = self.expected_increase(job, t0, t1, total)
        if denominator == 0:
            return None
        return self.expected_increase(job, t0, t1, bad) / denominator

    def expected_error_ratio(self, job: str, t0: float, t1: float) -> float | None:
        """Share of requests answered with code 500 in (t0, t1]; None without requests."""
        return self.expected_ratio(job, t0, t1, "errors")

    def expected_slow_ratio(self, job: str, t0: float, t1: float) -> float | None:
        """Share of observed latencies above 0.5 s in (t0, t1] (histogram); None without any."""
        return self.expected_ratio(job, t0, t1, "slow", total="count")

    def promql_increase(
        self, job: str, at: float, window: Seconds, kind: str = "total"
    ) -> float | None:
        """What Prometheus 2.x's `sum(increase(<kind series>[window]))` returns at `at`.

        Reproduces the sample-level arithmetic: the samples inside [at − window, at]
        (both ends inclusive before Prometheus 3), their difference, then extrapolation
        towards the window edges. On a scrape-aligned `at` with data covering the window
        this is exactly `expected_increase`; otherwise it differs by the extrapolation.
        """
        w = to_seconds(window)
        ts = self.timestamps
        sel = ts[(ts >= at - w) & (ts <= at)]
        if sel.size < 2:
            return None
        kinds = {"total": ("ok", "errors")}.get(kind, (kind,))
        total = 0.0
        for k in kinds:
            values = self.counter(job, sel, k).astype(np.float64)
            total += _extrapolated_increase(sel.astype(np.float64), values, at - w, at)
        return total

    # ----------------------------------------------------------------- database
    def _require_db(self) -> DatabaseLoad:
        if self.database is None:
            raise ValueError("this scenario has no database")
        return self.database

    def pg_up(self, t: float | np.ndarray) -> np.ndarray:
        """`pg_up` value(s) (0/1 int64) at Unix time(s) `t`."""
        db = self._require_db()
        return (~_in_windows(self._offsets(t), db.outages)).astype(np.int64)

    def expected_up_samples(self, t0: float, t1: float) -> tuple[int, int]:
        """(samples with pg_up == 1, all samples) with timestamps in [t0, t1].

        This is what `sum_over_time` / `count_over_time` over that range see in Prometheus 2.x.
        """
        ts = self.timestamps
        sel = ts[(ts >= t0) & (ts <= t1)]
        return int(self.pg_up(sel).sum()) if sel.size else 0, int(sel.size)

    def backup_last_success(self, t: float | np.ndarray) -> np.ndarray:
        """`backup_last_success_timestamp_seconds` at Unix time(s) `t` (float64)."""
        db = self._require_db()
        u = self._offsets(t)
        horizon = float(u.max(initial=0.0))
        times = db.backup_interval * np.arange(1, int(horizon // db.backup_interval) + 1)
        ok_times = np.where(_in_windows(times, db.backup_failures), 0.0, times)
        latest = np.concatenate([[0.0], np.maximum.accumulate(ok_times)])
        done = np.minimum(np.floor(u / db.backup_interval).astype(np.int64), times.size)
        return self.start + latest[done]


def _extrapolated_increase(
    times: np.ndarray, values: np.ndarray, range_start: float, range_end: float
) -> float:
    """Prometheus 2.x `increase()` of one counter series (no resets) over a range."""
    result = float(values[-1] - values[0])
    sampled = float(times[-1] - times[0])
    to_start = float(times[0] - range_start)
    to_end = float(range_end - times[-1])
    average_gap = sampled / (times.size - 1)
    if result > 0 and values[0] >= 0:
        # A counter does not extrapolate below zero: assume it started at 0 at most here.
        to_start = min(to_start, sampled * (float(values[0]) / result))
    threshold = average_gap * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average_gap / 2
    interval += to_end if to_end < threshold else average_gap / 2
    return result * (interval / sampled)


# --------------------------------------------------------------------- rendering
def write_scenario(writer: OpenMetricsWriter, scenario: Scenario) -> None:
    """Render every metric family of `scenario` into an open writer."""
    ts = scenario.timestamps
    offsets = (ts - scenario.start).astype(np.float64)
    models = {s.job: scenario._model(s.job).quantities(offsets) for s in scenario.services}
    for job, q in models.items():
        if np.any(np.diff(q, axis=0) < 0):  # a decrease would read as a counter reset
            raise AssertionError(f"non-monotonic counter for job {job!r}")

    if scenario.services:
        writer.family("http_requests", "counter", "HTTP requests by job and status code.")
        for job, q in models.items():
            writer.series("http_requests_total", {"job": job, "code": "200"}, ts, q[:, _OK])
            writer.series("http_requests_total", {"job": job, "code": "500"}, ts, q[:, _ERR])

        writer.family("http_request_duration_seconds", "histogram", "HTTP request latency.")
        for job, q in models.items():
            bands = q[:, _BAND0:]
            buckets = np.cumsum(bands, axis=1)
            total = buckets[:, -1]
            latency_sum = np.round(bands @ _BAND_LATENCY, 3)  # as Scenario.latency_sum
            columns = [
                ("http_request_duration_seconds_bucket", {"job": job, "le": le}, buckets[:, i])
                for i, le in enumerate(LE_LABELS)
            ]
            columns.append(("http_request_duration_seconds_count", {"job": job}, total))
            columns.append(("http_request_duration_seconds_sum", {"job": job}, latency_sum))
            writer.points(ts, columns)

    db = scenario.database
    if db is not None:
        writer.family("pg_up", "gauge", "Whether the database answers its probe.")
        writer.series("pg_up", {"job": db.job}, ts, scenario.pg_up(ts))

        writer.family(
            "backup_verification_checks", "counter", "Backup verification checks by result."
        )
        for result in ("success", "failed"):
            values = scenario.counter(db.backup_job, ts, f"checks_{result}")
            writer.series(
                "backup_verification_checks_total",
                {"job": db.backup_job, "result": result},
                ts,
                values,
            )

        writer.family(
            "backup_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the latest successful backup.",
        )
        writer.series(
            "backup_last_success_timestamp_seconds",
            {"job": db.backup_job},
            ts,
            scenario.backup_last_success(ts),
        )


def write_openmetrics(scenario: Scenario, path: str | Path) -> Path:
    """Stream `scenario` to `path` as OpenMetrics text ready for promtool; returns the path."""
    path = Path(path)
    with open_openmetrics(path) as writer:
        write_scenario(writer, scenario)
    return path
