"""Grouped SLOs' instances over time (engine.evaluation.groups) and how they are discovered
(engine.source.discovery): groups appear, vanish into no data (never resolved by silence),
are capped at max_groups with the dropped ones reported, survive failed discoveries and
spec reloads; a grouped SLO without groups is one no-data evaluation under its base id."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from engine.evaluation.evaluator import Evaluator
from engine.evaluation.groups import (
    Discovered,
    GroupInventory,
    discovery_window,
    in_spec_order,
    undiscovered_evaluations,
)
from engine.evaluation.source import StepRates
from engine.source.discovery import all_unreachable, discover, instant_query_for
from engine.source.prometheus import _PromQLError
from engine.source.routing import RoutedSource
from engine.spec.durations import Duration
from engine.spec.models import SLO, ServiceSpec

DAY = 86_400.0
T0 = 1_709_251_200.0  # 2024-03-01T00:00:00Z, on every cache grid
EVENTS = {
    "events": {
        "bad": 'sum by (route) (rate(http_requests_total{job="shop",code="500"}[{{window}}]))',
        "total": 'sum by (route) (rate(http_requests_total{job="shop"}[{{window}}]))',
    }
}
PLAIN = {"events": {"bad": "sum(rate(e[{{window}}]))", "total": "sum(rate(t[{{window}}]))"}}


def shop(max_groups: int = 200, group_by: Sequence[str] = ("route",), **slo: Any) -> list[SLO]:
    """shop/plain (ungrouped), shop/availability (grouped), shop/later (ungrouped)."""
    spec = ServiceSpec.model_validate(
        {
            "apiVersion": "slo-engine/v1",
            "service": "shop",
            "slos": [
                {"name": "plain", "objective": 99, "sli": PLAIN},
                {
                    "name": "availability",
                    "objective": 99.9,
                    "sli": EVENTS,
                    "group_by": list(group_by),
                    "max_groups": max_groups,
                    **slo,
                },
                {"name": "later", "objective": 99, "sli": PLAIN},
            ],
        }
    )
    return spec.slo_records()


def routes(*names: str) -> Discovered:
    return Discovered(series=tuple({"route": n, "job": "shop"} for n in names))


def ids(slos: Sequence[SLO]) -> list[str]:
    return [s.id for s in slos]


BASE = "shop/availability"


def test_ungrouped_slos_pass_through_and_instances_follow_their_base() -> None:
    inventory = GroupInventory(shop())
    assert ids(inventory.instances()) == ["shop/plain", "shop/later"]
    change = inventory.update(T0, {BASE: routes("/pay", "/cart", "/cart")})
    assert change.appeared == (f'{BASE}{{route="/cart"}}', f'{BASE}{{route="/pay"}}')
    assert change.instances_changed
    assert ids(inventory.instances()) == [
        "shop/plain",
        f'{BASE}{{route="/cart"}}',
        f'{BASE}{{route="/pay"}}',
        "shop/later",
    ]
    one = inventory.instances()[1]
    assert one.group_labels == {"route": "/cart"} and one.base_id == BASE
    assert inventory.undiscovered() == []
    # The same answer again changes nothing.
    assert not inventory.update(T0 + 300, {BASE: routes("/cart", "/pay")}).instances_changed


def test_a_grouped_slo_without_groups_is_one_no_data_evaluation_under_its_base_id() -> None:
    slos = shop()
    inventory = GroupInventory(slos)
    ((slo, reason),) = inventory.undiscovered()
    assert slo.id == BASE and "not discovered yet" in reason
    inventory.update(T0, {BASE: Discovered()})
    ((slo, reason),) = inventory.undiscovered()
    assert "no group of route found" in reason and "3d" in reason
    inventory.update(T0, {BASE: Discovered(error="connection refused", unreachable=True)})
    assert "discovery failed: connection refused" in inventory.undiscovered()[0][1]
    (evaluation,) = undiscovered_evaluations(inventory.undiscovered(), T0)
    assert (evaluation.slo.id, evaluation.status, evaluation.alerts) == (BASE, "no_data", ())
    assert evaluation.to_json()["group"] == {}
    assert "group" not in undiscovered_evaluations([(slos[0], "x")], T0)[0].to_json()


class _Source:
    """10 events/s for every SLO; 100 % bad for the routes in `failing`; no data at all
    for routes in `silent` from `silent_from`."""

    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.silent: set[str] = set()
        self.silent_from = float("inf")

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        n = round((end - start) / step.seconds) + 1 if end >= start else 0
        times = start + step.seconds * np.arange(n, dtype=np.float64)
        total = np.full((len(slos), n), 10.0)
        bad = np.zeros_like(total)
        for row, slo in enumerate(slos):
            route = slo.group_labels.get("route")
            if route in self.failing:
                bad[row] = 10.0
            if route in self.silent:
                total[row, times > self.silent_from] = np.nan
                bad[row, times > self.silent_from] = np.nan
        return StepRates(step=step, times=times, bad=bad, total=total)


def test_the_evaluator_reports_instances_and_placeholders_in_order() -> None:
    slos = shop()
    inventory = GroupInventory(slos)
    source = _Source()
    source.failing = {"/pay"}
    evaluator = Evaluator(inventory.instances(), source)
    evaluator.set_undiscovered(inventory.undiscovered())
    results = evaluator.evaluate(T0)
    assert [(r.slo.id, r.status) for r in results] == [
        ("shop/plain", "ok"),
        ("shop/later", "ok"),
        (BASE, "no_data"),
    ]
    assert [r.slo.id for r in in_spec_order(results, slos)] == ["shop/plain", BASE, "shop/later"]
    # From no SLO with groups to some: the evaluator starts a cache for the new rows.
    inventory.update(T0, {BASE: routes("/cart", "/pay")})
    evaluator.set_slos(inventory.instances())
    evaluator.set_undiscovered(inventory.undiscovered())
    results = evaluator.evaluate(T0 + 60)
    by_id = {r.slo.id: r for r in results}
    assert by_id[f'{BASE}{{route="/pay"}}'].status == "page"
    assert by_id[f'{BASE}{{route="/cart"}}'].status == "ok"
    assert by_id[f'{BASE}{{route="/pay"}}'].to_json()["group"] == {"route": "/pay"}
    assert BASE not in by_id
    assert "group" not in by_id["shop/plain"].to_json()


def test_a_vanished_group_stays_and_reads_no_data_until_a_period_passes() -> None:
    inventory = GroupInventory(shop())
    inventory.update(T0, {BASE: routes("/cart", "/gone")})
    source = _Source()
    source.silent, source.silent_from = {"/gone"}, T0
    evaluator = Evaluator(inventory.instances(), source)
    gone = f'{BASE}{{route="/gone"}}'

    change = inventory.update(T0 + DAY, {BASE: routes("/cart")})
    assert change.vanished == (gone,) and not change.instances_changed
    assert gone in ids(inventory.instances())
    assert inventory.status()[BASE]["vanished"] == [gone]
    # A vanished group reads no data once its windows are empty — not ok, not resolved.
    statuses = {r.slo.id: r.status for r in evaluator.evaluate(T0 + 31 * DAY)}
    assert statuses[gone] == "no_data"
    assert statuses[f'{BASE}{{route="/cart"}}'] == "ok"
    # Reported once: the next discovery without it is no news.
    assert inventory.update(T0 + 2 * DAY, {BASE: routes("/cart")}).vanished == ()
    # Back again: an instance as before.
    inventory.update(T0 + 3 * DAY, {BASE: routes("/cart", "/gone")})
    assert inventory.status()[BASE]["vanished"] == []
    # Gone for longer than the 30d period: forgotten.
    inventory.update(T0 + 4 * DAY, {BASE: routes("/cart")})
    change = inventory.update(T0 + 34 * DAY + 1, {BASE: routes("/cart")})
    assert change.forgotten == (gone,) and change.instances_changed
    assert ids(inventory.instances()) == ["shop/plain", f'{BASE}{{route="/cart"}}', "shop/later"]


def test_max_groups_drops_the_newest_and_reports_them() -> None:
    inventory = GroupInventory(shop(max_groups=2))
    change = inventory.update(T0, {BASE: routes("/c", "/a", "/b")})
    assert change.dropped == {BASE: ({"route": "/c"},)}
    assert [s.group_labels["route"] for s in inventory.instances()[1:3]] == ["/a", "/b"]
    status = inventory.status()[BASE]
    assert status["status"] == "capped" and status["dropped"] == 1
    assert status["dropped_groups"] == [f'{BASE}{{route="/c"}}']
    assert inventory.dropped_counts() == {BASE: 1}
    # Still dropped next time: not news (the warning is logged once).
    assert inventory.update(T0 + 300, {BASE: routes("/a", "/b", "/c")}).dropped == {}
    # A known group keeps its place against a new one sorting before it.
    change = inventory.update(T0 + 600, {BASE: routes("/0", "/a", "/b", "/c")})
    assert change.dropped == {BASE: ({"route": "/0"},)}
    assert inventory.status()[BASE]["dropped"] == 2
    # A vanished group still holds its place under the cap.
    change = inventory.update(T0 + 900, {BASE: routes("/a", "/c")})
    assert change.vanished == (f'{BASE}{{route="/b"}}',) and change.appeared == ()
    assert inventory.status()[BASE]["groups"] == 2
    assert inventory.status()[BASE]["dropped_groups"] == [f'{BASE}{{route="/c"}}']
    # Room again once the vanished group is forgotten (a period later): the dropped group
    # comes in, the count behind the metric falls back to 0.
    change = inventory.update(T0 + 31 * DAY, {BASE: routes("/a", "/c")})
    assert change.forgotten == (f'{BASE}{{route="/b"}}',)
    assert change.appeared == (f'{BASE}{{route="/c"}}',)
    assert inventory.dropped_counts() == {BASE: 0}
    assert inventory.status()[BASE]["status"] == "ok"


def test_failed_discovery_keeps_the_last_known_groups() -> None:
    inventory = GroupInventory(shop())
    inventory.update(T0, {BASE: routes("/a", "/b")})
    before = ids(inventory.instances())
    change = inventory.update(T0 + 300, {BASE: Discovered(error="timeout", unreachable=True)})
    assert change.failed == {BASE: "timeout"} and not change.instances_changed
    assert ids(inventory.instances()) == before
    assert inventory.status()[BASE]["status"] == "discovery_failed"
    inventory.update(T0 + 600, {BASE: routes("/a", "/b")})
    assert inventory.status()[BASE]["error"] is None


def test_a_spec_reload_keeps_known_groups_unless_group_by_changed() -> None:
    inventory = GroupInventory(shop())
    inventory.update(T0, {BASE: routes("/a", "/b")})
    # A new objective: same groups, instances of the new spec.
    reloaded = inventory.reloaded(shop(objective=99.5))
    assert ids(reloaded.instances()) == ids(inventory.instances())
    assert all(s.objective_percent == Decimal("99.5") for s in reloaded.instances()[1:3])
    # The old inventory is untouched (a rejected reload keeps it).
    assert inventory.instances()[1].objective_percent == Decimal("99.9")
    # An unchanged spec keeps its instances, with the fields equality ignores refreshed.
    flagged = [dataclasses.replace(slo, customer_facing=True) for slo in shop()]
    same = inventory.reloaded(flagged)
    assert ids(same.instances()) == ids(inventory.instances())
    assert all(i.customer_facing for i in same.instances())
    # A lower max_groups trims at once.
    assert len(inventory.reloaded(shop(max_groups=1)).instances()) == 3
    # Another group_by: nothing known yet.
    other = inventory.reloaded(shop(group_by=("route", "method")))
    assert ids(other.instances()) == ["shop/plain", "shop/later"]
    assert other.undiscovered()[0][0].id == BASE


def test_instances_only_accept_spec_level_slos() -> None:
    inventory = GroupInventory(shop())
    inventory.update(T0, {BASE: routes("/a")})
    with pytest.raises(ValueError, match="is an instance"):
        GroupInventory(inventory.instances())


def test_discovery_window_is_the_longest_alert_window() -> None:
    slos = shop()
    assert discovery_window(slos[1]) == Duration.parse("3d")
    quiet = dataclasses.replace(
        slos[1], alerting=slos[1].alerting.model_copy(update={"page": False, "ticket": False})
    )
    assert discovery_window(quiet) == Duration.parse("30d")


# --- discovery (engine.source.discovery) -------------------------------------------------


class _Prometheus:
    """query_instant only: answers each tagged part of a discovery request with fixed label
    sets (as `label_replace` would tag them); raises `fail`, or rejects requests holding
    `reject` like Prometheus rejects a bad query."""

    def __init__(
        self, series: list[dict[str, str]], fail: Exception | None = None, reject: str = "\0"
    ) -> None:
        self.series, self.fail, self.reject = series, fail, reject
        self.queries: list[tuple[str, float]] = []

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        self.queries.append((query, at))
        if self.fail is not None:
            raise self.fail
        if self.reject in query:
            raise _PromQLError("parse error")
        tags = re.findall(r'"__slo_id", "(p\d+)"', query)
        return [
            {"metric": {**m, "__slo_id": t}, "value": [at, "1"]} for t in tags for m in self.series
        ]


class _Wrapper:
    def __init__(self, inner: object) -> None:
        self.inner = inner


def many(n: int) -> list[SLO]:
    """n grouped SLOs of one service: shop/availability-0 … n−1."""
    return [dataclasses.replace(shop()[1], name=f"availability-{i}") for i in range(n)]


def test_discover_asks_an_instant_query_over_the_window_batching_slos() -> None:
    prometheus = _Prometheus([{"route": "/a"}, {"route": "/b"}])
    answers = discover(_Wrapper(prometheus), shop(), T0)
    assert list(answers) == [BASE]
    assert answers[BASE].series == ({"route": "/a"}, {"route": "/b"})
    ((query, at),) = prometheus.queries
    assert at == T0 and "count by (route) (" in query and "[3d]" in query
    # An explicit window (backtest: the replayed range and its warm-up).
    discover(prometheus, shop(), T0, window=Duration.parse("40d"))
    assert "[40d]" in prometheus.queries[-1][0]
    # 60 grouped SLOs: 3 requests of at most 25, every SLO answered from its own part.
    prometheus.queries.clear()
    answers = discover(prometheus, many(60), T0)
    assert len(prometheus.queries) == 3 and len(answers) == 60
    assert all(a.series == ({"route": "/a"}, {"route": "/b"}) for a in answers.values())


def test_discovery_failures_are_answers_never_exceptions() -> None:
    rejected = discover(_Prometheus([], _PromQLError("parse error")), shop(), T0)[BASE]
    assert rejected.error == "discovery query rejected: parse error"
    assert not rejected.unreachable
    # One broken SLO in a batch is found by bisection; the others still get their groups.
    slos = many(8)
    events = slos[5].sli.events
    assert events is not None
    broken = events.model_copy(update={"total": "sum by (route) (rate(broken[{{window}}]))"})
    slos[5] = dataclasses.replace(slos[5], sli=slos[5].sli.model_copy(update={"events": broken}))
    answers = discover(_Prometheus([{"route": "/a"}], reject="broken"), slos, T0)
    assert answers[slos[5].base_id].error == "discovery query rejected: parse error"
    others = [a.series for k, a in answers.items() if k != slos[5].base_id]
    assert others == [({"route": "/a"},)] * 7
    down = _Prometheus([], ConnectionError("cannot connect to http://u:secret@prom:9090"))
    answer = discover(down, shop(), T0)[BASE]
    assert answer.unreachable and "secret" not in (answer.error or "")
    assert all_unreachable({BASE: answer}) == answer.error
    assert all_unreachable({BASE: rejected}) is None
    assert discover(object(), shop(), T0)[BASE].unreachable


def test_a_down_backend_is_asked_once_per_round() -> None:
    down = _Prometheus([], ConnectionError("refused"))
    answers = discover(down, many(6), T0, concurrency=1, batch_size=1)
    assert len(answers) == 6 and all(a.unreachable for a in answers.values())
    assert len(down.queries) == 1


def test_with_several_datasources_each_slo_asks_its_own_backend() -> None:
    a, b = _Prometheus([{"route": "/a"}]), _Prometheus([{"route": "/b"}])
    routed = RoutedSource({"a": a, "b": b}, lambda slo: slo.datasource or "a")  # type: ignore[dict-item]
    on_b = dataclasses.replace(shop()[1], datasource="b")
    assert instant_query_for(routed, on_b) == b.query_instant
    assert discover(routed, [on_b], T0)[BASE].series == ({"route": "/b"},)
    assert a.queries == [] and len(b.queries) == 1
