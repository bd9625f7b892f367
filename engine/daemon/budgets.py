"""The daemon's side of error-budget policies and compliance history (docs/budgets.md).

After each cycle: the policies' notices go into the incident outbox (deterministic ids:
once per threshold and period, whichever replica or restart sees it first), and today's
compliance row of each SLO records the budget left and the time burning. The `history`
job (engine/daemon/scheduler.py) recounts the events of today and yesterday from the
metrics source. `/metrics` gets `slo_engine_budget_policy_state`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.daemon.policy_since import FreezeWatch
from engine.evaluation.budget_policy import POLICY_STATUSES, policy_state
from engine.evaluation.composite import with_composites
from engine.evaluation.daily import DAY_SECONDS, day_events, day_start, utc_day
from engine.evaluation.result import SLOEvaluation
from engine.evaluation.source import EventSource
from engine.evaluation.timeslices import with_timeslices
from engine.incidents.budget_policy import (
    notices_decision,
    policy_notifications,
    thaw_notifications,
)
from engine.incidents.incident import Incident
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.store.history import ComplianceDay, ComplianceHistory

if TYPE_CHECKING:
    from engine.daemon.cycle import CycleReport
    from engine.daemon.runtime import Runtime

# Events of a day are summed from steps this long (288 a day per SLO).
HISTORY_STEP = Duration.parse("5m")

log = logging.getLogger(__name__)


class PolicyStateCollector(Collector):
    """`slo_engine_budget_policy_state{slo, service, state}`: 1 for the SLO's current state,
    0 for the others (a Prometheus state set), for SLOs with a `budget_policy`."""

    def __init__(self, results: Callable[[], Sequence[SLOEvaluation]]) -> None:
        self._results = results

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "slo_engine_budget_policy_state",
            "Error-budget policy state of each SLO with a budget_policy (1 = current state).",
            labels=["slo", "service", "state"],
        )
        for result in self._results():
            state = policy_state(result)
            if state is None:
                continue
            for name in POLICY_STATUSES:
                family.add_metric(
                    [state.slo_id, result.slo.service, name], 1.0 if state.status == name else 0.0
                )
        yield family


class DaemonBudgets:
    """Policy notices and compliance observations after each cycle; the daily recount."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        opener = getattr(runtime.store, "compliance_history", None)
        self.history: ComplianceHistory | None = opener() if callable(opener) else None
        # Notice ids this process has already written: the outbox ignores a repeat anyway,
        # this only spares the store a write per cycle.
        self._queued: set[str] = set()
        runtime.metrics_registry.register(PolicyStateCollector(runtime.slo_results))
        # Since when releases are frozen, for the status page (engine/daemon/policy_since.py).
        self.freezes = FreezeWatch()

    def after_cycle(self, report: CycleReport) -> None:
        """Never raises: a failing write is logged, and the next cycle writes again."""
        try:
            # Every SLO the page shows: with replicas, the others' published ones too.
            self.freezes.observe(self._runtime.slo_results(), report.at)
        except Exception:
            log.exception("budget policy: cannot track freezes this cycle")
        try:
            self._notices(report)
        except Exception:
            log.exception("budget policy notices failed (retried next cycle)")
        try:
            self._observe(report)
        except Exception:
            log.exception("compliance history: cannot record this cycle")

    def _notices(self, report: CycleReport) -> None:
        thawed = {slo_id: since.at for slo_id, since in self.freezes.thawed.items()}
        notices = [
            *policy_notifications(report.results, report.at),
            *thaw_notifications(report.results, thawed, report.at),
        ]
        fresh = [n for n in notices if n.id not in self._queued]
        if not fresh:
            return
        engine = self._runtime.engine
        decision = self._runtime._decide(
            "budget_policy", lambda _at: notices_decision(engine, fresh), report.at
        )
        if decision is not None:
            self._queued.update(n.id for n in fresh)
            log.info("budget policy: %d notices queued", len(fresh))

    def _observe(self, report: CycleReport) -> None:
        if self.history is None or report.source_error is not None:
            return
        max_gap = 2.0 * self._runtime.interval  # a longer gap is a daemon that was down
        for result in report.results:
            if result.status in ("no_data", "error"):
                continue
            self.history.observe(
                _row(
                    result.slo, utc_day(report.at), budget_remaining=result.error_budget_remaining
                ),
                report.at,
                burning=bool(result.firing),
                max_gap=max_gap,
            )

    def record_days(self, now: float | None = None) -> None:
        """The `history` job: recount today's and yesterday's events of every SLO."""
        if self.history is None:
            return
        runtime = self._runtime
        now = runtime.clock() if now is None else now
        slos = [r.slo for r in runtime.slo_results()]
        incidents = runtime.store.list_incidents()
        days = [utc_day(now - DAY_SECONDS), utc_day(now)]
        if runtime.source.circuit_open:
            return  # the source is down: the next run recounts the same days
        # The unguarded source: this job's fetches must not count as a cycle's outcome.
        source = getattr(runtime.source, "inner", runtime.source)
        record_days(self.history, source, slos, days, now, incidents)


def record_days(
    history: ComplianceHistory,
    source: EventSource,
    slos: Sequence[SLO],
    days: Sequence[str],
    now: float,
    incidents: Sequence[Incident] = (),
    step: Duration = HISTORY_STEP,
) -> int:
    """Count each SLO's events of each day (up to `now`) from `source` and upsert them with
    the day's incidents; how many rows were written. Asking twice writes the same rows."""
    if not slos or not days:
        return 0
    step_s = step.seconds
    first = math.floor(day_start(days[0]) / step_s) * step_s + step_s
    last = math.floor(min(now, day_start(days[-1]) + DAY_SECONDS) / step_s) * step_s
    if last < first:
        return 0
    # Time-slice SLOs in slices (judged and bad slices a day, as evaluate and the budget
    # count them), composites from their components: the wrapping the evaluator uses.
    wrapped = with_composites(with_timeslices(source), slos)
    rates = wrapped.fetch(slos, step, float(first), float(last))
    written = 0
    for row, slo in enumerate(slos):
        if slo.id in rates.errors:
            continue
        for day in days:
            counted = day_events(rates, row, day)
            if counted is None:
                continue
            bad, total = counted
            opened = tuple(i.id for i in incidents if _opened_for(i, slo, day))
            history.put_events(
                _row(slo, day, good=total - bad, bad=bad, total=total, incidents=opened), now
            )
            written += 1
    return written


def policy_receiver_problems(slos: Sequence[SLO], receivers: Iterable[str]) -> list[str]:
    """`<spec file>: <slo>[, <slo>…]: budget_policy threshold N% names unknown receivers
    'x' — configured: …` per file and threshold naming receivers the daemon does not have:
    its notices would only ever be dead letters, found when the budget is already spent.
    Checked with the specs, at start (exit 1) and on every reload (rejected, the last good
    set kept). A service's policy is each of its SLOs': one line lists them all."""
    known = set(receivers)
    found: dict[tuple[str, float, tuple[str, ...]], list[str]] = {}
    for slo in slos:
        if slo.budget_policy is None:
            continue
        for threshold in slo.budget_policy.thresholds:
            missing = tuple(r for r in threshold.receivers if r not in known)
            if missing:
                found.setdefault((slo.source or "", threshold.consumed, missing), []).append(slo.id)
    configured = ", ".join(sorted(known)) or "none"
    return [
        f"{f'{source}: ' if source else ''}{', '.join(ids)}: budget_policy threshold "
        f"{consumed:g}% names unknown receivers {', '.join(repr(r) for r in missing)} — "
        f"configured: {configured}"
        for (source, consumed, missing), ids in found.items()
    ]


def _opened_for(incident: Incident, slo: SLO, day: str) -> bool:
    return slo.id in incident.slo_ids and utc_day(incident.opened_at + 1e-3) == day


def _row(slo: SLO, day: str, **values: object) -> ComplianceDay:
    return ComplianceDay(
        slo_id=slo.id,
        day=day,
        service=slo.service,
        objective=float(slo.objective_percent),
        **values,  # type: ignore[arg-type]
    )
