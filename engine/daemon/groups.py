"""Grouped SLOs in the daemon: when to discover their groups, and what to do with the answer.

Discovery (`engine.source.discovery`: an instant query per grouped SLO, 25 to a request)
runs in the first cycle, every `group_discovery_interval` (5m) after that, and right after a spec reload. When
the set of instances changes, the evaluator and the anomaly step get the new list: the cache
keeps every row it had and cold-fills the new ones from Prometheus, so a group that appears
starts with the history Prometheus has. A group that vanishes stays an instance and reads
`no_data` (engine.evaluation.groups) — never "resolved by silence".

Discovery reads the raw source, like the anomaly step: its failures are logged and counted
(`slo_engine_group_discovery_failures_total`) but never count towards the circuit breaker
or "evaluation blind", which belong to the burn-rate path; and it is skipped while that
path has found the source down. A failed SLO is asked again next cycle, keeping its last
known groups meanwhile; a query Prometheus rejects waits for the normal interval (only a
spec change fixes it).

Warnings are logged once: a group beyond `max_groups` when it is first dropped, a failure
when its message changes. `slo_engine_slo_groups_dropped{slo}` and the spec status
(`/api/v1/specs`, key `groups`) show the dropped groups for as long as they are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry import trace
from prometheus_client import Counter, Gauge

from engine.daemon.config import DaemonConfig
from engine.daemon.metrics import DaemonMetrics
from engine.daemon.source_guard import counting_requests
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.groups import Discovered, GroupInventory, InventoryChange
from engine.evaluation.source import EventSource
from engine.source.discovery import discover
from engine.spec.durations import Duration
from engine.spec.group_labels import label_set_text
from engine.spec.models import SLO

log = logging.getLogger(__name__)

# `group_discovery_interval` when unset (or the evaluation interval when that is longer).
DEFAULT_INTERVAL = Duration.parse("5m")
# Groups named in one "dropped" warning; the spec status lists more.
_NAMED_IN_WARNING = 5


class _SetsSLOs(Protocol):
    def set_slos(self, slos: Sequence[SLO]) -> None: ...


class DaemonGroups:
    """The inventory of grouped SLOs' instances, kept current for the evaluator."""

    def __init__(
        self,
        source: EventSource,
        metrics: DaemonMetrics,
        tracer: trace.Tracer,
        *,
        interval: float,
        retry: float,
        concurrency: int = 4,
    ) -> None:
        self._source = source
        self._metrics = metrics
        self._tracer = tracer
        self._interval = interval
        self._retry = retry
        self._concurrency = concurrency
        self._inventory = GroupInventory()
        self._evaluator: Evaluator | None = None
        self._anomalies: _SetsSLOs | None = None
        # The instance ids the evaluator was last given (None: its own start-up list).
        self._pushed: list[str] | None = None
        # Base id → when to ask next (absent: at the next cycle).
        self._due: dict[str, float] = {}
        self._failures: dict[str, str] = {}
        self._status: dict[str, dict[str, Any]] = {}
        registry = metrics.registry
        self._dropped = Gauge(
            "slo_engine_slo_groups_dropped",
            "Groups of a grouped SLO left out because it found more than max_groups.",
            ["slo"],
            registry=registry,
        )
        self._groups = Gauge(
            "slo_engine_slo_groups",
            "Instances (groups) evaluated per grouped SLO, vanished ones included.",
            ["slo"],
            registry=registry,
        )
        self._discovery_failures = Counter(
            "slo_engine_group_discovery_failures",
            "Group discoveries that failed (the SLO keeps its last known groups).",
            registry=registry,
        )

    # --- wiring -------------------------------------------------------------------------

    def attach(self, slos: Sequence[SLO], evaluator: Evaluator, anomalies: _SetsSLOs) -> None:
        """Start with the specs' SLOs and no group known (the first cycle discovers them).
        Without grouped SLOs nothing changes: the evaluator keeps the list it was built on."""
        self._evaluator, self._anomalies = evaluator, anomalies
        self._inventory = GroupInventory(slos)
        if self._inventory.grouped:
            self._push(self._inventory)

    def instances(self) -> list[SLO]:
        return self._inventory.instances()

    def status(self) -> dict[str, dict[str, Any]]:
        """Per grouped SLO: groups, vanished, dropped, last discovery (the spec status)."""
        return self._status

    # --- spec reload --------------------------------------------------------------------

    def set_slos(self, slos: Sequence[SLO], now: float) -> None:
        """A spec reload: carry the known groups over, rediscover, and hand the instances
        to the evaluator and the anomaly step. Raises `ResolutionError` (from the
        evaluator) with nothing changed when the new set cannot be evaluated."""
        candidate = self._inventory.reloaded(slos)
        if candidate.grouped:
            self._run(candidate, candidate.grouped, now)
        self._push(candidate)
        self._inventory = candidate
        known = {slo.base_id for slo in candidate.grouped}
        self._due = {k: v for k, v in self._due.items() if k in known}

    # --- every cycle --------------------------------------------------------------------

    def refresh_if_due(self, now: float, source_ok: bool = True) -> None:
        """Discover the grouped SLOs that are due (never while the burn-rate path finds the
        source down: their last known groups stand)."""
        if not source_ok:
            return
        due = [s for s in self._inventory.grouped if self._due.get(s.base_id, now) <= now]
        if not due:
            return
        try:
            self._run(self._inventory, due, now)
            self._push(self._inventory)
        except Exception:  # a bug must not cost the cycle: the last instances stand
            log.exception("group discovery failed; evaluating the last known groups")
            self._discovery_failures.inc()
            for slo in due:
                self._due[slo.base_id] = now + self._retry

    # --- internals ----------------------------------------------------------------------

    def _run(self, inventory: GroupInventory, slos: Sequence[SLO], now: float) -> None:
        """One discovery of `slos` into `inventory`."""
        with self._tracer.start_as_current_span(
            "groups.discover", attributes={"slo_engine.slos": len(slos)}
        ) as span:
            with counting_requests(self._source, span, self._metrics):
                answers = discover(self._source, slos, now, concurrency=self._concurrency)
            change = inventory.update(now, answers)
            span.set_attribute("slo_engine.groups_appeared", len(change.appeared))
        self._schedule(answers, now)
        self._report(change, answers)

    def _schedule(self, answers: dict[str, Discovered], now: float) -> None:
        for base_id, answer in answers.items():
            retry_soon = answer.error is not None and answer.unreachable
            self._due[base_id] = now + (self._retry if retry_soon else self._interval)

    def _push(self, inventory: GroupInventory) -> None:
        """Give the evaluator (and the anomaly step) the instances to evaluate, when they
        changed; the placeholders of SLOs without groups (and their reasons) always."""
        assert self._evaluator is not None and self._anomalies is not None
        instances = inventory.instances()
        ids = [s.id for s in instances]
        if ids != self._pushed:
            self._evaluator.set_slos(instances)  # ResolutionError: nothing changed
            self._anomalies.set_slos(instances)
            self._pushed = ids
        self._evaluator.set_undiscovered(inventory.undiscovered())
        self._gauges(inventory)

    def _gauges(self, inventory: GroupInventory) -> None:
        """The metrics and the status the API reads, from the inventory just pushed (the
        API's threads read the snapshot, swapped as a whole, never the live inventory)."""
        status = inventory.status()
        self._status = status
        self._dropped.clear()
        self._groups.clear()
        for base_id, entry in status.items():
            self._dropped.labels(base_id).set(entry["dropped"])
            self._groups.labels(base_id).set(entry["groups"])

    def _report(self, change: InventoryChange, answers: dict[str, Discovered]) -> None:
        """Log what changed — each problem once, not every cycle it lasts."""
        if change.appeared:
            log.info("groups appeared: %d (%s)", len(change.appeared), _some(change.appeared))
        for slo_id in change.vanished:
            log.warning(
                "%s: no longer found by discovery; kept and evaluated as no data until a "
                "whole period passes without it",
                slo_id,
            )
        if change.forgotten:
            log.info("groups forgotten: %s", _some(change.forgotten))
        for base_id, groups in change.dropped.items():
            log.warning(
                "%s: more groups than max_groups; %d new group(s) not evaluated: %s — raise "
                "max_groups or narrow the SLI's selectors",
                base_id,
                len(groups),
                _some([label_set_text(g.items()) for g in groups]),
            )
        for base_id, message in change.failed.items():
            self._discovery_failures.inc()
            if self._failures.get(base_id) != message:
                log.warning(
                    "%s: group discovery failed, keeping the last known groups: %s",
                    base_id,
                    message,
                )
        for base_id, answer in answers.items():
            if answer.error is None and self._failures.pop(base_id, None) is not None:
                log.info("%s: group discovery answers again", base_id)
            elif answer.error is not None:
                self._failures[base_id] = answer.error


def daemon_groups(
    config: DaemonConfig, source: EventSource, metrics: DaemonMetrics, tracer: trace.Tracer
) -> DaemonGroups:
    """The daemon's group discovery, as its config says (asked again after a failure at the
    next cycle)."""
    every = config.group_discovery_interval or max(DEFAULT_INTERVAL, config.interval)
    return DaemonGroups(
        source,
        metrics,
        tracer,
        interval=every.seconds,
        retry=config.interval.seconds,
        concurrency=config.concurrency,
    )


def _some(ids: Sequence[str], shown: int = _NAMED_IN_WARNING) -> str:
    text = ", ".join(ids[:shown])
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
