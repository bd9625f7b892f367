"""Several Prometheus-API backends behind one `EventSource`: each SLO is read from the
backend (datasource) its spec names, and one backend's outage costs only its own SLOs.

The evaluation core sees one source and one `StepRates` whose rows follow its `slos`
argument, as always. A backend that cannot be reached turns its SLOs' rows into errors
(NaN, never zeros) named after the datasource; only when every backend asked in a fetch is
unreachable does the whole fetch raise `SourceUnavailable` — the case the daemon's circuit
breaker and "evaluation blind" meta-incident are for, exactly as with a single backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from engine.evaluation.source import EventSource, SourceUnavailable, StepRates
from engine.spec.durations import Duration
from engine.spec.models import SLO


class UnknownDatasource(ValueError):
    """An SLO names a datasource the configuration does not define."""


class RoutedSource:
    def __init__(
        self,
        sources: Mapping[str, EventSource],
        route: Callable[[SLO], str],
    ) -> None:
        if not sources:
            raise ValueError("at least one datasource is needed")
        self.sources = dict(sources)
        self._route = route

    def datasource_of(self, slo: SLO) -> str:
        name = self._route(slo)
        if name not in self.sources:
            known = ", ".join(sorted(self.sources))
            raise UnknownDatasource(f"{slo.id}: no datasource {name!r} (configured: {known})")
        return name

    def source_for(self, slo: SLO) -> EventSource:
        """The backend `slo` reads (group discovery asks it directly, engine.source.discovery)."""
        return self.sources[self.datasource_of(slo)]

    @property
    def http_requests(self) -> int:
        """Requests sent by every backend (what the daemon's metrics count per cycle)."""
        return sum(int(getattr(s, "http_requests", 0) or 0) for s in self.sources.values())

    @property
    def history_slos(self) -> dict[str, int]:
        """SLO histories fetched per method by every backend (engine.source.remote_read)."""
        found: dict[str, int] = {}
        for source in self.sources.values():
            for method, n in (getattr(source, "history_slos", None) or {}).items():
                found[method] = found.get(method, 0) + n
        return found

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        rows: dict[str, list[int]] = {}
        for i, slo in enumerate(slos):
            rows.setdefault(self.datasource_of(slo), []).append(i)
        if len(rows) == 1:  # the common case: no copying
            (name,) = rows
            return self.sources[name].fetch(slos, step, start, end)
        parts: dict[str, StepRates] = {}
        down: dict[str, str] = {}
        for name, index in rows.items():
            try:
                parts[name] = self.sources[name].fetch([slos[i] for i in index], step, start, end)
            except SourceUnavailable as exc:
                down[name] = str(exc)
        if not parts:
            raise SourceUnavailable(
                "; ".join(f"datasource {name}: {message}" for name, message in down.items())
            )
        times = next(iter(parts.values())).times
        bad = np.full((len(slos), times.size), np.nan)
        total = np.full((len(slos), times.size), np.nan)
        errors: dict[str, str] = {}
        for name, part in parts.items():
            index = rows[name]
            bad[index], total[index] = part.bad, part.total
            errors.update(part.errors)
        for name, message in down.items():
            for i in rows[name]:
                errors[slos[i].id] = f"datasource {name} unavailable: {message}"
        return StepRates(step=step, times=times, bad=bad, total=total, errors=errors)

    def query_instant(self, query: str, at: float) -> list[dict]:
        """The daemon's liveness probe: answered when any backend answers."""
        last: Exception | None = None
        for source in self.sources.values():
            probe = getattr(source, "query_instant", None)
            if probe is None:
                continue
            try:
                return probe(query, at)
            except Exception as exc:  # backends raise their own private error classes
                last = exc
        if last is not None:
            raise last
        return []
