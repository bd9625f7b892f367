"""Live anomaly detection: the daemon's side of `engine.anomaly.scoring`.

Backtest scores a whole fetched history at once (`score_step_rates`). The daemon runs every
cycle and must not re-read weeks of Prometheus data each time, so this tracker keeps, for
each SLO an anomaly series reads (services with `anomaly.enabled` only), the rates of a
bounded window of 5-minute slots. The window is filled once with chunked range queries
through the same `EventSource` (a few chunks per update, so a cold start never stalls a
cycle), then extended incrementally: only the slots that completed since the last update,
plus `refetch_slots` already-fetched ones because the newest slot was read just as it ended
and may have missed late scrapes — the evaluation cache's rule.

It fetches at `step` — in the daemon the finest step two scrapes fill (`fetch_step`: 1m for
15 s scrapes) — and stores each slot's average over its steps with data
(`normalize_step_counts` → `to_slots`, as backtest forms slots from its own steps): a scrape
gap then leaves steps without data instead of one 5-minute `rate()` over a half-scraped
range, which reads as a traffic drop (`scoring.to_slots`). Memory stays one value per slot.

Scoring calls the very functions backtest calls — `score_step_rates` over the window (the
same `normalize_step_counts` → `to_slots` → `signal_values` → `detect`), then the state at
`now` through `AnomalyScores.state_index` and `SeriesScores.sustained` — so the daemon and
backtest agree on the same data (tests/test_anomaly_live.py), backtest at the same step. A
young history is scored with the richest profile it supports (`engine.anomaly.profiles`),
computed only for the newest slots the state reads.

The window (per SLO row, in 5-minute slots) is exactly what the newest slot's state depends on:

    history_weeks × 2016 + 2 × recent_days × 288   weekly profile; correction and scale pools
  + band − 1                                      a scale pool starts at its band's first slot
  + min_duration − 1 slot                         earlier breaches, for `active`
  + ⌈sustained / 5m⌉ + 1                          active slots up to the newest, for `sustained`

Defaults (3w, 10m, 30m): 6048 + 4032 + 11 + 1 + 7 = 10,099 slots; bad and total rates as
float64 make 161,584 bytes (158 KiB) per SLO row, whatever the uptime.

Missing data stays missing: a slot without enough steps with data is NaN, has no score and
never fires.
A series is scored only once its whole window has been fetched (`ready`); until then it is
`warming` and raises nothing. Time is a parameter; the only I/O is `source.fetch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.anomaly.profiles import Profile
from engine.anomaly.scoring import to_slots
from engine.anomaly.series import AnomalySeries, anomaly_series, score_step_rates
from engine.evaluation.resolution import minimum_step
from engine.evaluation.source import EventSource
from engine.evaluation.windows import normalize_step_counts
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import bad_rate, total_rate

# The detector's slot length (AnomalyParams.resolution): the tracker keeps one value per slot.
RESOLUTION = 300
STEP = Duration.of_seconds(RESOLUTION)
# One week of 5-minute slots per range request: bounded work for Prometheus per request (at
# a 1m fetch step, 10,080 points per series: under Prometheus' 11,000).
CHUNK_SLOTS = 2016
# Fill requests per update: a cold window (~5 weeks) takes three updates, not one long cycle.
FILL_REQUESTS_PER_UPDATE = 3
# Slots already fetched that are fetched again when the window advances (late scrapes).
REFETCH_SLOTS = 2
# Bytes per slot of a row: bad and total rates as float64.
BYTES_PER_SLOT = 16
# Series scored together: scoring holds ~2.4 MB of transient arrays per series, so a
# block bounds the peak (~40 MB) whatever the number of services.
SCORE_BLOCK = 16

# Any fixed window: only used to tell whether an SLO's queries changed across a reload.
_KEY_WINDOW = Duration.parse("5m")


def fetch_step(scrape_interval: Duration) -> Duration:
    """The step the tracker fetches at: the finest that divides a slot and holds two scrapes
    in every step (`engine.evaluation.resolution.minimum_step`) — 1m up to 30 s scrapes,
    2m30s at 60 s. Finer steps keep a scrape gap from reading as a traffic drop
    (`scoring.to_slots`); the window still holds one value per slot."""
    floor = minimum_step(scrape_interval).seconds
    for parts in range(RESOLUTION // 60, 0, -1):
        if RESOLUTION % parts == 0 and RESOLUTION // parts >= floor:
            return Duration.of_seconds(RESOLUTION // parts)
    return STEP


def window_slots(item: AnomalySeries) -> int:
    """Slots of history the newest state of `item` depends on (see the module docstring)."""
    resolution = item.params.resolution
    if resolution != RESOLUTION:
        raise ValueError(f"the live tracker works on {RESOLUTION}s slots, not {resolution}s")
    return item.history_slots


def _row_key(slo: SLO) -> tuple[str, str, str]:
    # A reload that changes an SLO's queries must not score new data against old history.
    return (slo.id, total_rate(slo.sli, _KEY_WINDOW), bad_rate(slo.sli, _KEY_WINDOW))


@dataclass(frozen=True)
class AnomalyState:
    """One series at the newest completed slot. `score` None = no data (or not ready)."""

    series: AnomalySeries
    ready: bool
    score: float | None = None
    active: bool = False
    sustained: bool = False
    # End (unix seconds) of the slot the state belongs to; None while warming.
    slot_end: float | None = None
    # The profile that scored it (recent, daily, weekly: the richest its history supports);
    # None without a score.
    profile: Profile | None = None
    # (observed, expected, threshold) in the signal's units (`SeriesScores.band`).
    band: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class AnomalyUpdate:
    """What one `update` did and found."""

    at: float
    states: tuple[AnomalyState, ...]
    requests: int = 0
    fetched_steps: int = 0
    # slo_id -> message for SLOs whose query failed in this update (kept for the next one).
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def firing(self) -> tuple[AnomalyState, ...]:
        return tuple(s for s in self.states if s.active)

    @property
    def warming(self) -> int:
        return sum(1 for s in self.states if not s.ready)


class _Row:
    """The window of one SLO: rates of the steps ending at `end − (length−1)·5m … end`.

    Invariant: every step in [oldest, fetched_until] has been fetched successfully."""

    def __init__(self, slo: SLO, length: int) -> None:
        self.slo = slo
        self.length = length
        self.end: int | None = None
        self.fetched_until: int | None = None
        self.bad = np.full(length, np.nan)
        self.total = np.full(length, np.nan)

    @property
    def oldest(self) -> int:
        assert self.end is not None
        return self.end - (self.length - 1) * RESOLUTION

    @property
    def nbytes(self) -> int:
        return self.bad.nbytes + self.total.nbytes

    def reset(self, end: int) -> None:
        self.end, self.fetched_until = end, None
        self.bad.fill(np.nan)
        self.total.fill(np.nan)

    def advance(self, end: int) -> bool:
        """Move the newest step to `end`; True when the window changed."""
        if self.end is None or end < self.end:
            # First use, or time went backwards: a forward-only window starts over.
            self.reset(end)
            return True
        shift = (end - self.end) // RESOLUTION
        if shift == 0:
            return False
        if shift >= self.length:
            self.reset(end)
            return True
        for values in (self.bad, self.total):
            values[:-shift] = values[shift:]
            values[-shift:] = np.nan
        self.end = end
        return True

    def resize(self, length: int) -> None:
        """A new window length after a reload: a shorter one keeps the newest data, a longer
        one is filled again (its older part was never fetched)."""
        if length == self.length:
            return
        if length < self.length:
            self.bad, self.total = self.bad[-length:].copy(), self.total[-length:].copy()
            self.length = length
            return
        self.length = length
        self.bad, self.total = np.full(length, np.nan), np.full(length, np.nan)
        self.fetched_until = None

    def missing_from(self, refetch: int) -> int | None:
        """First step to fetch, or None when the window is up to date."""
        assert self.end is not None
        until = self.fetched_until
        if until is not None and until >= self.end:
            return None
        if until is None or until < self.oldest - RESOLUTION:
            return self.oldest
        return max(self.oldest, until - (refetch - 1) * RESOLUTION)

    def write(self, times: np.ndarray, bad: np.ndarray, total: np.ndarray) -> None:
        assert self.end is not None
        on_grid = (times % RESOLUTION == 0) & (times >= self.oldest) & (times <= self.end)
        columns = (times[on_grid] - self.oldest) // RESOLUTION
        self.bad[columns] = bad[on_grid]
        self.total[columns] = total[on_grid]

    @property
    def ready(self) -> bool:
        return self.end is not None and self.fetched_until == self.end


class LiveAnomalyTracker:
    """Per-cycle anomaly state for the anomaly-enabled SLOs of a spec set.

    Not thread-safe: one evaluation loop owns it. `update` raises what the source raises
    (e.g. `SourceUnavailable`); what was fetched before is kept and the next update goes on
    from there."""

    def __init__(
        self,
        source: EventSource,
        slos: Sequence[SLO] = (),
        *,
        chunk_slots: int = CHUNK_SLOTS,
        fill_requests: int = FILL_REQUESTS_PER_UPDATE,
        refetch_slots: int = REFETCH_SLOTS,
        step: Duration = STEP,
    ) -> None:
        if chunk_slots < 1 or fill_requests < 1 or refetch_slots < 0:
            raise ValueError("chunk_slots and fill_requests must be ≥ 1, refetch_slots ≥ 0")
        if step.ms <= 0 or step.ms % 1000 or RESOLUTION % step.seconds:
            raise ValueError(f"the fetch step must divide {RESOLUTION}s, not {step}")
        self._source = source
        self._step = step
        self._chunk = chunk_slots
        self._fill_requests = fill_requests
        self._refetch = refetch_slots
        self._series: tuple[AnomalySeries, ...] = ()
        self._rows: dict[tuple[str, str, str], _Row] = {}
        self._row_of: dict[str, tuple[str, str, str]] = {}
        self._states: dict[str, AnomalyState] = {}
        self._dirty = True
        self.set_slos(slos)

    # --- configuration ----------------------------------------------------------------

    @property
    def series(self) -> tuple[AnomalySeries, ...]:
        return self._series

    @property
    def slos(self) -> tuple[SLO, ...]:
        return tuple(row.slo for row in self._rows.values())

    @property
    def nbytes(self) -> int:
        """Bytes of history held (the rate windows of every row)."""
        return sum(row.nbytes for row in self._rows.values())

    def set_slos(self, slos: Sequence[SLO]) -> None:
        """Change the SLO set (spec hot reload): rows whose SLO id and queries survive keep
        their history; new ones are filled; the rest are dropped with their memory."""
        series = tuple(anomaly_series(slos))
        lengths: dict[tuple[str, str, str], tuple[SLO, int]] = {}
        for item in series:
            key = _row_key(item.slo)
            length = window_slots(item)
            known = lengths.get(key)
            lengths[key] = (item.slo, max(length, known[1] if known else 0))
        rows: dict[tuple[str, str, str], _Row] = {}
        for key, (slo, length) in lengths.items():
            row = self._rows.get(key)
            if row is None:
                row = _Row(slo, length)
            else:
                row.slo = slo
                row.resize(length)
            rows[key] = row
        self._rows = rows
        self._row_of = {key[0]: key for key in rows}
        self._series = series
        self._states = {}
        self._dirty = True

    # --- the cycle ----------------------------------------------------------------------

    def update(self, now: float) -> AnomalyUpdate:
        """Fetch what is missing up to the last slot completed at `now` and score it."""
        end = math.floor(now / RESOLUTION) * RESOLUTION
        for row in self._rows.values():
            if row.advance(end):
                self._dirty = True
        requests, steps, errors = self._fill()
        if self._dirty:
            self._states = self._score(end)
            self._dirty = False
        states = tuple(
            self._states.get(item.key) or AnomalyState(item, ready=False) for item in self._series
        )
        return AnomalyUpdate(float(now), states, requests, steps, errors)

    def _fill(self) -> tuple[int, int, dict[str, str]]:
        """Fetch every row's missing steps: incremental spans always, fills (spans longer than
        a chunk) up to `fill_requests` chunks. Rows needing the same span share requests."""
        groups: dict[tuple[int, int], list[_Row]] = {}
        for row in self._rows.values():
            start = row.missing_from(self._refetch)
            if start is not None:
                assert row.end is not None
                groups.setdefault((start, row.end), []).append(row)
        requests = steps = 0
        fills_left = self._fill_requests
        errors: dict[str, str] = {}
        # Short (incremental) spans first: a new service's cold fill must not delay the rest.
        for (start, end), rows in sorted(groups.items(), key=lambda g: (g[0][1] - g[0][0], g[0])):
            fill = (end - start) // RESOLUTION + 1 > self._chunk
            chunk_start = start
            while rows and chunk_start <= end:
                if fill:
                    if fills_left == 0:
                        break
                    fills_left -= 1
                chunk_end = min(end, chunk_start + (self._chunk - 1) * RESOLUTION)
                failed = self._fetch_into(rows, chunk_start, chunk_end)
                requests += 1
                slots = (chunk_end - chunk_start) // RESOLUTION + 1
                steps += slots * RESOLUTION // int(self._step.seconds)
                errors.update(failed)
                # A row whose query failed stops here, so its window has no silent hole; it
                # is asked again from the same step next update.
                rows = [r for r in rows if r.slo.id not in failed]
                chunk_start = chunk_end + RESOLUTION
        return requests, steps, errors

    def _fetch_into(self, rows: list[_Row], start: int, end: int) -> dict[str, str]:
        """Fetch the slots ending at `start … end` at the fetch step and store each slot's
        average, exactly as backtest's `score_step_rates` forms slots from its steps."""
        slos = [row.slo for row in rows]
        step = self._step.seconds
        first = start - RESOLUTION + step  # the first step ending inside the first slot
        rates = self._source.fetch(slos, self._step, float(first), float(end))
        if rates.bad.shape[0] != len(rows):
            raise ValueError(
                f"source returned {rates.bad.shape[0]} rows for {len(rows)} SLOs — rows must "
                "follow `slos`"
            )
        bad, total = normalize_step_counts(rates.bad, rates.total)
        if rates.times.size:
            interval_start = float(rates.times[0]) - step
            first_slot, bad = to_slots(interval_start, step, bad, RESOLUTION)
            _, total = to_slots(interval_start, step, total, RESOLUTION)
        else:
            first_slot = (start - RESOLUTION) // RESOLUTION
        times = (first_slot + 1 + np.arange(total.shape[1], dtype=np.int64)) * RESOLUTION
        for i, row in enumerate(rows):
            if row.slo.id in rates.errors:
                continue
            row.write(times, bad[i], total[i])
            row.fetched_until = end
            self._dirty = True
        return {s.id: rates.errors[s.id] for s in slos if s.id in rates.errors}

    def _score(self, end: int) -> dict[str, AnomalyState]:
        """States at the slot ending at `end`, for series whose window is complete.

        Series are independent, so they are scored a block at a time: the same results,
        with the scoring's transient arrays bounded by the block, not the fleet."""
        ready = [item for item in self._series if self._rows[self._row_of[item.slo.id]].ready]
        states: dict[str, AnomalyState] = {}
        for lo in range(0, len(ready), SCORE_BLOCK):
            states.update(self._score_block(ready[lo : lo + SCORE_BLOCK], end))
        return states

    def _score_block(self, ready: list[AnomalySeries], end: int) -> dict[str, AnomalyState]:
        keys = list(dict.fromkeys(self._row_of[item.slo.id] for item in ready))
        width = max(self._rows[k].length for k in keys)
        # Rows right-aligned on the same grid; a shorter window's older part stays NaN, which
        # its newest state does not read (its length covers everything that state depends on).
        bad = np.full((len(keys), width), np.nan)
        total = np.full((len(keys), width), np.nan)
        for i, key in enumerate(keys):
            row = self._rows[key]
            bad[i, width - row.length :] = row.bad
            total[i, width - row.length :] = row.total
        times = end - RESOLUTION * np.arange(width - 1, -1, -1, dtype=np.float64)
        rows = {key[0]: i for i, key in enumerate(keys)}
        at = np.array([end], dtype=np.float64)
        states: dict[str, AnomalyState] = {}
        for group in score_step_rates(ready, rows, times, RESOLUTION, bad, total, float(end)):
            (column,) = group.scores.state_index(at)
            assert column == width - 1, "the newest slot is the window's last column"
            sustained = group.sustained()[:, column]
            for a, item in enumerate(group.series):
                score = float(group.scores.score[a, column])
                states[item.key] = AnomalyState(
                    series=item,
                    ready=True,
                    score=None if math.isnan(score) else score,
                    active=bool(group.scores.active[a, column]),
                    sustained=bool(sustained[a]),
                    slot_end=float(end),
                    profile=group.scores.profile_name(a, column),
                    band=group.band(a, column),
                )
        return states
