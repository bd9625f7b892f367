"""Group discovery: which groups a grouped SLO has, asked of Prometheus.

One instant query per grouped SLO (`engine.spec.groups.discovery_query`: `count by (route)
(<its total rate grouped by route>)`) over its discovery window (its longest alert window,
`engine.evaluation.groups.discovery_window`), so every group with traffic recent enough
to alert on is found — quiet ones too: a rate of 0 is still a series. The answers are data
for `engine.evaluation.groups.GroupInventory`, which decides what they mean over time.

Requests are batched like the fetch's (engine.source.query_plan): the queries of up to
`DISCOVERY_BATCH` SLOs are tagged with `label_replace(…, "__slo_id", "p<i>", "", "")` and
joined with `or`, so discovery costs a few requests however many SLOs are grouped; a query
Prometheus rejects is bisected until its SLO is found. With several datasources each SLO
is asked of its own backend (the routed source's `source_for`). A failure is that SLO's
answer (`Discovered.error`), never an exception, so one broken SLO or one down backend
costs only its own SLOs' discovery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.evaluation.groups import Discovered, GroupInventory, discovery_window
from engine.redact import redact
from engine.source.prometheus import _PromQLError
from engine.source.query_plan import SLO_LABEL, or_tree
from engine.spec.durations import Duration
from engine.spec.groups import discovery_query
from engine.spec.models import SLO

InstantQuery = Callable[[str, float], list[dict[str, Any]]]

# Grouped SLOs asked in one request (their tagged queries joined with `or`). Each part is
# one `count by` over one selector; 25 keep a request's text and Prometheus' work small.
DISCOVERY_BATCH = 25

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


def _tagged(slo: SLO, tag: str, window: Duration | None) -> str:
    query = discovery_query(slo, window or discovery_window(slo))
    return f'label_replace(\n{query}\n, "{SLO_LABEL}", "{tag}", "", "")'


def _ask(
    query: InstantQuery, slos: Sequence[SLO], at: float, window: Duration | None
) -> dict[str, Discovered]:
    """One request for `slos` (each SLO's discovery query tagged, joined with `or`); a
    query Prometheus rejects is bisected until the SLO it belongs to is found. Raises what
    the source raises when it does not answer."""
    expr = or_tree([_tagged(slo, f"p{k}", window) for k, slo in enumerate(slos)])
    try:
        result = query(expr, at)
    except _PromQLError as exc:
        if len(slos) == 1:
            return {slos[0].base_id: Discovered(error=f"discovery query rejected: {exc}")}
        middle = len(slos) // 2
        return {**_ask(query, slos[:middle], at, window), **_ask(query, slos[middle:], at, window)}
    series: list[list[dict[str, str]]] = [[] for _ in slos]
    for item in result:
        labels = dict(item.get("metric", {}))
        tag = labels.pop(SLO_LABEL, "")
        if tag[:1] == "p" and tag[1:].isdigit() and int(tag[1:]) < len(slos):
            series[int(tag[1:])].append(labels)
    pairs = zip(slos, series, strict=True)
    return {slo.base_id: Discovered(series=tuple(found)) for slo, found in pairs}


def _ask_batch(
    query: InstantQuery,
    slos: Sequence[SLO],
    at: float,
    window: Duration | None,
    down: dict[int, str],
) -> dict[str, Discovered]:
    """`_ask`, with every failure an answer: a backend found down (now or earlier in the
    round, in `down`) answers "unreachable" for all its SLOs without another request."""
    backend = _backend(query)
    if backend not in down:
        try:
            # Credentials are read per call, as a fetch does (mounted tokens rotate):
            # discovery may be the first request a daemon makes.
            refresh = getattr(getattr(query, "__self__", None), "_refresh_auth", None)
            if callable(refresh):
                refresh()
            return {k: _redacted(v) for k, v in _ask(query, slos, at, window).items()}
        except Exception as exc:  # the sources' own errors are private classes
            down.setdefault(backend, redact(str(exc) or type(exc).__name__))
    return {slo.base_id: Discovered(error=down[backend], unreachable=True) for slo in slos}


def _redacted(answer: Discovered) -> Discovered:
    if answer.error is None:
        return answer
    return Discovered(error=redact(answer.error), unreachable=answer.unreachable)


def discover(
    source: object,
    slos: Sequence[SLO],
    at: float,
    *,
    window: Duration | None = None,
    concurrency: int = 4,
    batch_size: int = DISCOVERY_BATCH,
) -> dict[str, Discovered]:
    """Discovery answers for the grouped SLOs among `slos`, by base id. Up to `batch_size`
    SLOs of one backend share a request (`concurrency` requests in flight): 100 grouped
    SLOs cost 4 requests, not 100. Once a backend has not answered, its remaining SLOs get
    the same error without a request: a down Prometheus costs one timeout per request in
    flight, not one per SLO."""
    grouped = [slo for slo in slos if slo.grouped and not slo.group]
    answers: dict[str, Discovered] = {}
    by_backend: dict[int, tuple[InstantQuery, list[SLO]]] = {}
    for slo in grouped:
        query = instant_query_for(source, slo)
        if query is None:
            answers[slo.base_id] = Discovered(
                error="this source cannot run the discovery query", unreachable=True
            )
            continue
        by_backend.setdefault(_backend(query), (query, []))[1].append(slo)
    tasks = [
        (query, members[lo : lo + batch_size])
        for query, members in by_backend.values()
        for lo in range(0, len(members), max(1, batch_size))
    ]
    down: dict[int, str] = {}
    if tasks:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(tasks)))) as pool:
            for found in pool.map(lambda t: _ask_batch(t[0], t[1], at, window, down), tasks):
                answers.update(found)
    return {slo.base_id: answers[slo.base_id] for slo in grouped}


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
