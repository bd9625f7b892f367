"""Counters the way real exporters and a real Prometheus produce them, for promtool backfill.

`engine.demo.scenario` renders closed-form, noise-free counters: exact ground truth, but too
clean to be honest about anomaly detection (a perfectly regular series has no noise for a
detector to tolerate) and without the scrape-level events of real systems. A `Job` here is
one service's traffic as a Prometheus would have scraped it:

- **Noise.** The request rate follows the scenario's daily and weekly waves
  (`rps × (1 + daily·sin(2πt/1d) + weekly·sin(2πt/1w))`), times a slow multiplicative wander
  (an AR(1) process on the log scale with a one-hour correlation time and standard deviation
  `wander`, default 10 %: busy and quiet hours beyond the average day), times the incidents'
  `rps_factor`. Requests per scrape interval are Poisson draws from that rate, and errors a
  binomial share of them at the current error ratio — so a counter's increase is never the
  expected value, only close to it.
- **Process restarts** (`restarts`): the counters start again from 0, one scrape is missed
  while the process comes up, and — as client libraries create a labelled series on its
  first increment — the `code="500"` series is absent until the first error after it.
- **Scrape gaps** (`gaps`): no sample at all (a Prometheus restart, a target unreachable);
  the process keeps counting, so the first sample after the gap carries the missed requests.
- **Relabel duplicates** (`relabel`): over [start, end) the same counters are scraped under a
  second label set (`instance="<job>-new"`, e.g. a relabelling rule being rolled out); after
  `end` only the new one. Every request is counted twice while both exist.

Times are offsets in seconds from the corpus start; every random draw is seeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from engine.demo.load import Incident
from engine.demo.openmetrics import OpenMetricsWriter

DAY = 86_400
WEEK = 7 * DAY
# The wander's correlation time: an hour, like a busy or quiet afternoon.
_WANDER_TIME = 3600.0


@dataclass(frozen=True)
class Job:
    """One service's requests, `http_requests_total{job, instance, code}`."""

    name: str
    rps: float
    error_ratio: float = 0.0
    daily: float = 0.5
    weekly: float = 0.3
    wander: float = 0.1
    incidents: Sequence[Incident] = ()
    restarts: Sequence[float] = ()
    gaps: Sequence[tuple[float, float]] = ()
    relabel: tuple[float, float] | None = None
    seed: int = 0

    def rate(self, offsets: np.ndarray) -> np.ndarray:
        """Expected requests per second at `offsets` (waves and incidents, no noise)."""
        shape = (
            1
            + self.daily * np.sin(2 * np.pi * offsets / DAY)
            + self.weekly * np.sin(2 * np.pi * offsets / WEEK)
        )
        return self.rps * shape * self._override(offsets, "rps_factor", 1.0)

    def errors(self, offsets: np.ndarray) -> np.ndarray:
        return self._override(offsets, "error_ratio", self.error_ratio)

    def _override(self, offsets: np.ndarray, name: str, default: float) -> np.ndarray:
        out = np.full(offsets.shape, default, dtype=np.float64)
        for incident in self.incidents:  # the last listed wins, as in engine.demo.load
            value = getattr(incident, name)
            if value is not None:
                out[(offsets >= incident.start) & (offsets < incident.end)] = value
        return out


@dataclass
class Corpus:
    """Jobs over [start, start + duration], scraped every `interval` seconds."""

    start: int
    duration: int
    interval: int = 15
    jobs: list[Job] = field(default_factory=list)

    @property
    def offsets(self) -> np.ndarray:
        return self.interval * np.arange(self.duration // self.interval + 1, dtype=np.float64)


def _wander(n: int, step: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    """AR(1) on the log scale: stationary standard deviation `sd`, correlation time 1 h."""
    if sd <= 0 or n == 0:
        return np.zeros(n)
    keep = math.exp(-step / _WANDER_TIME)
    shocks = rng.normal(0.0, sd * math.sqrt(1 - keep * keep), n)
    shocks[0] = rng.normal(0.0, sd)
    # x[i] = keep·x[i−1] + shock[i]
    return lfilter([1.0], [1.0, -keep], shocks)


def increments(job: Job, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Requests and errors completed in each scrape interval ending at `offsets[1:]` (the
    first entry is 0): Poisson around the wandering rate, errors binomial."""
    rng = np.random.default_rng(job.seed)
    step = float(offsets[1] - offsets[0]) if offsets.size > 1 else 1.0
    mids = offsets - step / 2
    expected = job.rate(mids) * np.exp(_wander(offsets.size, step, job.wander, rng)) * step
    requests = rng.poisson(np.clip(expected, 0.0, None))
    errors = rng.binomial(requests, np.clip(job.errors(mids), 0.0, 1.0))
    requests[0] = errors[0] = 0
    return requests.astype(np.int64), errors.astype(np.int64)


def _scraped(job: Job, offsets: np.ndarray) -> np.ndarray:
    """Which scrapes succeeded: none inside a gap, and none at a restart's own scrape."""
    ok = np.ones(offsets.size, dtype=bool)
    for start, end in job.gaps:
        ok &= ~((offsets >= start) & (offsets < end))
    for at in job.restarts:
        ok[np.searchsorted(offsets, at)] = False
    return ok


def counter_values(job: Job, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The process's `code="200"` and `code="500"` counter values at each scrape; after a
    restart they count from 0 again. The 500 value is -1 where that series does not exist
    yet (no error since the process started)."""
    requests, errors = increments(job, offsets)
    ok_counts = requests - errors
    epoch = np.searchsorted(np.asarray(sorted(job.restarts)), offsets, side="right")
    good = np.zeros(offsets.size, dtype=np.int64)
    bad = np.zeros(offsets.size, dtype=np.int64)
    for k in np.unique(epoch):
        part = epoch == k
        good[part] = np.cumsum(ok_counts[part])
        bad[part] = np.cumsum(errors[part])
    # A process exposes its 500 series from its first error on; the one that began with
    # the scenario is taken to have served errors before (it has the series from the start).
    born = (epoch == 0) | (bad > 0)
    return good, np.where(born, bad, -1)


def write_job(writer: OpenMetricsWriter, job: Job, corpus: Corpus) -> None:
    """The job's series (the `http_requests` family must be open on `writer`)."""
    offsets = corpus.offsets
    good, bad = counter_values(job, offsets)
    scraped = _scraped(job, offsets)
    times = corpus.start + offsets.astype(np.int64)
    label_sets = [(f"{job.name}-0", np.ones(offsets.size, dtype=bool))]
    if job.relabel is not None:
        start, end = job.relabel
        label_sets = [
            (f"{job.name}-0", offsets < end),
            (f"{job.name}-new", offsets >= start),
        ]
    for instance, exposed in label_sets:
        labels = {"job": job.name, "instance": instance}
        keep = scraped & exposed
        writer.series("http_requests_total", {**labels, "code": "200"}, times[keep], good[keep])
        keep_bad = keep & (bad >= 0)
        writer.series(
            "http_requests_total", {**labels, "code": "500"}, times[keep_bad], bad[keep_bad]
        )


def write_corpus(writer: OpenMetricsWriter, corpus: Corpus) -> None:
    writer.family("http_requests", "counter", "HTTP requests by job, instance and code.")
    for job in corpus.jobs:
        write_job(writer, job, corpus)


def expected_requests(job: Job, corpus: Corpus, t0: float, t1: float) -> tuple[int, int]:
    """(requests, errors) the job really served in (t0, t1] (absolute Unix seconds), from the
    same draws as its counters: ground truth whatever the scrapes saw."""
    offsets = corpus.offsets
    requests, errors = increments(job, offsets)
    inside = (offsets > t0 - corpus.start) & (offsets <= t1 - corpus.start)
    return int(requests[inside].sum()), int(errors[inside].sum())
