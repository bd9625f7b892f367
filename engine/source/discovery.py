"""Group discovery: which groups a grouped SLO has, asked of Prometheus.

One instant query per grouped SLO (`engine.spec.groups.discovery_query`: `count by (route)
(<its total rate grouped by route>)`) over its discovery window (its longest alert window,
`engine.evaluation.groups.discovery_window`), so every group with traffic recent enough
to alert on is found — quiet ones too: a rate of 0 is still a series. The answers are data
for `engine.evaluation.groups.GroupInventory`, which decides what they mean over time.

With several datasources each SLO is asked of its own backend (the routed source's
`source_for`). A query that fails is that SLO's answer (`Discovered.error`), never an
exception, so one broken SLO or one down backend costs only its own SLOs' discovery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.evaluation.groups import Discovered, GroupInventory, discovery_window
from engine.redact import redact
from engine.source.prometheus import _PromQLError
from engine.spec.durations import Duration
from engine.spec.groups import discovery_query
from engine.spec.models import SLO

InstantQuery = Callable[[str, float], list[dict[str, Any]]]

# Wrappers (the daemon's guard, the CLI's watcher, the offline file source) hold the real
# source under one of these names.
_WRAPPED = ("inner", "source")


def instant_query_for(source: object, slo: SLO) -> InstantQuery | None:
    """The `query_instant` that reaches `slo`'s backend through `source` and its wrappers;
    None when there is none (a source that cannot answer PromQL instant queries)."""
    seen: set[int] = set()
    current: object = source
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        route = getattr(current, "source_for", None)
        if callable(route):
            current = route(slo)
            continue
        query = getattr(current, "query_instant", None)
        if callable(query):
            return query  # type: ignore[no-any-return]
        current = next(
            (getattr(current, name) for name in _WRAPPED if hasattr(current, name)), None
        )
    return None


def _backend(query: InstantQuery) -> int:
    """Which backend a query goes to: the source object its bound method belongs to."""
    return id(getattr(query, "__self__", query))


def discover_one(
    source: object,
    slo: SLO,
    at: float,
    window: Duration | None = None,
    down: dict[int, str] | None = None,
) -> Discovered:
    """Ask for `slo`'s groups at `at` (window: its discovery window by default). A backend
    in `down` (found unreachable earlier in the same round) is not asked again; one found
    unreachable now is added to it."""
    query = instant_query_for(source, slo)
    if query is None:
        return Discovered(error="this source cannot run the discovery query", unreachable=True)
    backend = _backend(query)
    if down is not None and backend in down:
        return Discovered(error=down[backend], unreachable=True)
    text = discovery_query(slo, window or discovery_window(slo))
    try:
        # Credentials are read per call, as a fetch does (mounted tokens rotate): discovery
        # may be the first request a daemon makes.
        refresh = getattr(getattr(query, "__self__", None), "_refresh_auth", None)
        if callable(refresh):
            refresh()
        result = query(text, at)
    except _PromQLError as exc:
        return Discovered(error=f"discovery query rejected: {redact(str(exc))}")
    except Exception as exc:  # the sources' own errors are private classes
        message = redact(str(exc) or type(exc).__name__)
        if down is not None:
            down[backend] = message
        return Discovered(error=message, unreachable=True)
    return Discovered(series=tuple(dict(item.get("metric", {})) for item in result))


def discover(
    source: object,
    slos: Sequence[SLO],
    at: float,
    *,
    window: Duration | None = None,
    concurrency: int = 4,
) -> dict[str, Discovered]:
    """Discovery answers for the grouped SLOs among `slos`, by base id, asked in parallel
    (`concurrency` queries in flight). Once a backend has not answered, its remaining SLOs
    get the same error without a query: a down Prometheus costs one timeout per query in
    flight, not one per SLO."""
    grouped = [slo for slo in slos if slo.grouped and not slo.group]
    if not grouped:
        return {}
    down: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(grouped)))) as pool:
        answers = list(pool.map(lambda slo: discover_one(source, slo, at, window, down), grouped))
    return {slo.base_id: answer for slo, answer in zip(grouped, answers, strict=True)}


def inventory_once(
    source: object, slos: Sequence[SLO], at: float, window: Duration | None = None
) -> tuple[GroupInventory, dict[str, Discovered]]:
    """One discovery for a one-shot command (`evaluate`, `backtest`): the inventory of
    `slos` after it, and the answers (for the command to report failures)."""
    inventory = GroupInventory(slos)
    answers = discover(source, slos, at, window=window)
    inventory.update(at, answers)
    return inventory, answers


def all_unreachable(answers: Mapping[str, Discovered]) -> str | None:
    """The first error when every discovery failed because the source did not answer
    (what a command reports as "Prometheus is unavailable"); None otherwise."""
    if answers and all(a.unreachable for a in answers.values()):
        return next(iter(answers.values())).error
    return None
