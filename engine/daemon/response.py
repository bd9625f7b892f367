"""The Runtime's incident response (issue 11): declare, status and severity, roles, updates,
the post-incident review and its action items — for the API, through the same engine calls
and the same locked, stale-safe writes as acknowledgements (`Runtime._mutate`).

A mixin of `engine.daemon.runtime.Runtime`, kept apart so the Runtime stays one screenful
of concerns. Errors follow the Runtime's contract: KeyError for an unknown incident or
action item (404), ValueError for what the incident's state does not allow (409),
StoreError when the store cannot be written (503).

Also the response metrics in `/metrics`: missed recovery time objectives (a counter, from
the decisions) and the open incidents past theirs (a gauge, at scrape time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.evaluation.result import SLOEvaluation
from engine.incidents.actions import KEEP
from engine.incidents.engine import Declaration, IncidentEngine, IncidentError
from engine.incidents.incident import Incident, IncidentStatus, Severity
from engine.incidents.response import ActionStatus, IncidentCategory, Role, UpdateContent
from engine.incidents.review import review_context
from engine.incidents.rto import recovery
from engine.incidents.state import Decision
from engine.store.base import IncidentStore, StoreError

log = logging.getLogger("engine.daemon.runtime")


class _PastRto(Collector):
    def __init__(self, open_incidents: Callable[[], list[Incident]], clock: Callable[[], float]):
        self._open, self._clock = open_incidents, clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "slo_engine_incidents_past_rto",
            "Open incidents past their recovery time objective.",
            labels=["severity"],
        )
        now = self._clock()
        counts = {s.value: 0 for s in Severity}
        for incident in self._open():
            found = recovery(incident, now)
            if found is not None and found.remaining is not None and found.remaining <= 0:
                counts[incident.severity.value] += 1
        for severity, n in counts.items():
            gauge.add_metric([severity], n)
        yield gauge


class IncidentResponse:
    """Incident-response calls of the Runtime (which provides everything declared here)."""

    engine: IncidentEngine
    store: IncidentStore
    clock: Callable[[], float]
    metrics_registry: prometheus_client.CollectorRegistry
    _lock: threading.RLock
    _store_error: str | None

    def _decide(
        self, origin: str, call: Callable[[float], Decision], now: float | None = None
    ) -> Decision | None: ...

    def _mutate(
        self, what: str, incident_id: str, call: Callable[[float], Decision]
    ) -> Incident: ...

    def slo_results(self) -> list[SLOEvaluation]: ...

    # ------------------------------------------------------------------ metrics

    def _attach_response_metrics(self) -> None:
        self._rto_breaches = prometheus_client.Counter(
            "slo_engine_incident_rto_breaches",
            "Incidents that missed their recovery time objective, by severity and tier.",
            ["severity", "tier"],
            registry=self.metrics_registry,
        )
        self.metrics_registry.register(
            _PastRto(lambda: list(self.engine.state.incidents.values()), self.clock)
        )

    def _observe_response(self, decision: Decision) -> None:
        """Count what a decision did that the response metrics follow."""
        counter = getattr(self, "_rto_breaches", None)
        if counter is None:
            return
        for record in decision.timeline:
            if record.entry.kind == "rto_breached":
                incident = next(i for i in decision.incidents if i.id == record.incident_id)
                counter.labels(incident.severity.value, incident.tier or "").inc()

    # ------------------------------------------------------------------ reads

    def recovery(self, incident: Incident) -> dict[str, Any] | None:
        """The incident's recovery time objective now: time to restore, time left."""
        found = recovery(incident, self.clock())
        return None if found is None else found.to_json()

    def review(self, incident_id: str) -> dict[str, Any]:
        """The post-incident review draft's data (KeyError for an unknown incident)."""
        return review_context(self._stored(incident_id), self.clock())

    def review_markdown(self, incident_id: str) -> str:
        return self.engine.renderer.review(self.review(incident_id))

    # ------------------------------------------------------------------ changes

    def declare(
        self,
        service: str,
        severity: str,
        title: str,
        category: str,
        by: str,
        *,
        customer_facing: bool | None = None,
        tier: str | None = None,
        commander: str | None = None,
        note: str = "",
    ) -> Incident:
        """Open an incident by hand; the service's spec (when there is one) gives its tier,
        dependencies and whether it is customer-facing."""
        slo = next((r.slo for r in self.slo_results() if r.slo.service == service), None)
        declaration = Declaration(
            service=service,
            severity=Severity(severity),
            title=title,
            category=IncidentCategory(category),
            customer_facing=customer_facing
            if customer_facing is not None
            else bool(slo and slo.customer_facing),
            tier=tier or (slo.tier.value if slo else None),
            commander=commander,
            depends_on=tuple(slo.depends_on) if slo else (),
            note=note,
        )
        with self._lock:
            try:
                decision = self._decide(
                    "declare", lambda now: self.engine.declare(now, declaration, by)
                )
            except IncidentError as exc:
                raise ValueError(str(exc)) from None
            if decision is None:
                raise StoreError(f"could not record the declaration: {self._store_error}")
        incident = decision.incidents[0]
        log.info("%s declared by %s: %s %s", incident.id, by, severity, category)
        return self._stored(incident.id)

    def set_status(self, incident_id: str, status: str, by: str, note: str) -> Incident:
        return self._mutate(
            "status",
            incident_id,
            lambda now: self.engine.set_status(now, incident_id, status, by, note),
        )

    def set_severity(self, incident_id: str, severity: str, by: str, reason: str) -> Incident:
        return self._mutate(
            "severity",
            incident_id,
            lambda now: self.engine.set_severity(now, incident_id, severity, by, reason),
        )

    def assign_role(self, incident_id: str, role: str, person: str, by: str) -> Incident:
        parsed = Role.parse(role)
        return self._mutate(
            "role",
            incident_id,
            lambda now: self.engine.assign_role(now, incident_id, parsed, person, by),
        )

    def post_update(self, incident_id: str, by: str, content: UpdateContent) -> Incident:
        return self._mutate(
            "update",
            incident_id,
            lambda now: self.engine.post_update(now, incident_id, by, content),
        )

    def add_action_item(self, incident_id: str, text: str, owner: str | None, by: str) -> Incident:
        return self._change_any(
            "action_item",
            incident_id,
            lambda now, stored: self.engine.add_action_item(
                now, incident_id, text, owner, by, stored
            ),
        )

    def change_action_item(
        self,
        incident_id: str,
        item_id: str,
        by: str,
        status: ActionStatus | None = None,
        owner: str | None = KEEP,
    ) -> Incident:
        if not any(a.id == item_id for a in self._stored(incident_id).action_items):
            raise KeyError(f"{incident_id} has no action item {item_id}")
        return self._change_any(
            "action_item",
            incident_id,
            lambda now, stored: self.engine.change_action_item(
                now, incident_id, item_id, by, status, owner, stored
            ),
        )

    def close_review(self, incident_id: str, by: str, note: str = "") -> Incident:
        if self._stored(incident_id).status is not IncidentStatus.review:
            raise ValueError(f"{incident_id} is not in review")
        return self._change_any(
            "review",
            incident_id,
            lambda now, stored: self.engine.close_review(now, incident_id, by, note, stored),
        )

    # ------------------------------------------------------------------ plumbing

    def _stored(self, incident_id: str) -> Incident:
        incident = self.store.get_incident(incident_id)
        if incident is None:
            raise KeyError(f"no incident {incident_id}")
        return incident

    def _change_any(
        self, what: str, incident_id: str, call: Callable[[float, Incident | None], Decision]
    ) -> Incident:
        """A change that applies to closed incidents too: the engine gets the stored
        incident, read again on every attempt (a stale write is recomputed from it)."""
        self._stored(incident_id)
        with self._lock:
            try:
                decision = self._decide(
                    what, lambda now: call(now, self.store.get_incident(incident_id))
                )
            except IncidentError as exc:
                raise ValueError(str(exc)) from None
            if decision is None:
                raise StoreError(f"could not record the {what}: {self._store_error}")
        log.info("%s %s", what, incident_id)
        return self._stored(incident_id)
