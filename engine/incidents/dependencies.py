"""The service dependency graph the engine correlates with, rebuilt on every `observe`.

Edges come from the config's `depends_on`, from the specs the engine was given, from every
SLO evaluated this cycle (its spec's `depends_on`), from the alerts firing now and from the
open incidents. The evaluations are
what make chains order-independent: when `web` (depends on `api`) fires while only
`database` has an incident, the graph still knows `api → database` from api's evaluation
although api's alert has not fired yet, so `web` joins the database incident. Rebuilding it
per call keeps the engine pure (same inputs, same decisions) and restart-safe (nothing to
persist: the next cycle's evaluations bring the whole graph back). The static part (config
and specs) is built once per engine and only extended, with its closure cache, when a cycle
brings an edge it lacks: a backtest step costs what its fired SLOs cost, not the fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from engine.alerting.alerts import Alert
from engine.evaluation.result import SLOEvaluation
from engine.incidents.incident import Incident
from engine.spec.models import SLO


class DependencyGraph:
    """`service → services it depends on`, with the transitive closure on demand."""

    def __init__(
        self, edges: Mapping[str, Iterable[str]] | None = None, base: DependencyGraph | None = None
    ) -> None:
        own = {service: frozenset(deps) for service, deps in (edges or {}).items()}
        if base is not None:
            for service, deps in base._edges.items():
                own[service] = deps | own.get(service, frozenset())
        self._edges: dict[str, frozenset[str]] = own
        self._upstream: dict[str, frozenset[str]] = {}

    def depends_on(self, service: str) -> frozenset[str]:
        return self._edges.get(service, frozenset())

    def extended(self, pairs: Iterable[tuple[str, Iterable[str]]]) -> DependencyGraph:
        """This graph plus `pairs` (service, its dependencies); itself, closure cache and
        all, when they add nothing."""
        new: dict[str, set[str]] = {}
        for service, deps in pairs:
            missing = set(deps) - self.depends_on(service)
            if missing:
                new.setdefault(service, set()).update(missing)
        return DependencyGraph(new, base=self) if new else self

    def upstream(self, service: str) -> frozenset[str]:
        """Every service `service` depends on, directly or through others (never itself,
        even when a misconfigured spec makes a cycle)."""
        found = self._upstream.get(service)
        if found is not None:
            return found
        seen: set[str] = set()
        todo = list(self._edges.get(service, ()))
        while todo:
            dep = todo.pop()
            if dep in seen:
                continue
            seen.add(dep)
            todo.extend(self._edges.get(dep, ()))
        seen.discard(service)
        found = frozenset(seen)
        self._upstream[service] = found
        return found


def merge_edges(*maps: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """One edge map from several (a spec's and the config's edges for the same service
    add up)."""
    out: dict[str, dict[str, None]] = {}
    for edges in maps:
        for service, deps in edges.items():
            out.setdefault(service, {}).update(dict.fromkeys(deps))
    return {service: tuple(deps) for service, deps in out.items()}


def spec_edges(slos: Iterable[SLO]) -> dict[str, tuple[str, ...]]:
    """`service → depends_on` of every SLO's service (what `IncidentEngine` takes)."""
    return merge_edges(*({slo.service: slo.depends_on} for slo in slos))


def cycle_graph(
    static: DependencyGraph,
    evaluations: Iterable[SLOEvaluation],
    alerts: Iterable[Alert],
    incidents: Iterable[Incident],
) -> DependencyGraph:
    """`static` (config and specs given up front) plus what this cycle's evaluations,
    alerts and open incidents say."""
    pairs: list[tuple[str, Iterable[str]]] = []
    pairs.extend((ev.slo.service, ev.slo.depends_on) for ev in evaluations if ev.slo.depends_on)
    pairs.extend((a.service, a.depends_on) for a in alerts if a.depends_on)
    pairs.extend((i.service, i.depends_on) for i in incidents if i.depends_on)
    return static.extended(pairs)
