"""Grouped SLOs in the spec: `group_by`/`max_groups` (SLO and service default), the SLO
record's ids, and instances — their queries, discovery and the `max_groups` cap."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from engine.source.query_plan import plan_queries
from engine.spec.durations import Duration
from engine.spec.group_labels import label_set_text
from engine.spec.groups import (
    GroupSelection,
    discovery_query,
    group_key,
    groups_from_result,
    instance_sli,
    instances,
    instantiate,
)
from engine.spec.models import SLO, ServiceSpec
from engine.spec.sli import bad_rate, total_rate

W = Duration.parse("5m")
EVENTS = {
    "events": {
        "bad": 'sum by (route) (rate(http_requests_total{job="shop",code=~"5.."}[{{window}}]))',
        "total": 'sum by (route) (rate(http_requests_total{job="shop"}[{{window}}]))',
    }
}


def service(**fields: Any) -> dict[str, Any]:
    slo = {"name": "availability", "objective": 99.9, "sli": EVENTS}
    return {
        "apiVersion": "slo-engine/v1",
        "service": "shop",
        "slos": [{**slo, **fields.pop("slo", {})}],
        **fields,
    }


def record(**fields: Any) -> SLO:
    (slo,) = ServiceSpec.model_validate(service(**fields)).slo_records()
    return slo


# --- spec fields and the SLO record ------------------------------------------------------


def test_group_by_on_the_slo() -> None:
    slo = record(slo={"group_by": ["route"], "max_groups": 50})
    assert (slo.group_by, slo.max_groups, slo.group) == (("route",), 50, ())
    assert slo.grouped


def test_service_default_applies_and_an_empty_list_turns_it_off() -> None:
    inherited = record(group_by=["route", "region"], max_groups=7)
    assert (inherited.group_by, inherited.max_groups) == (("route", "region"), 7)
    off = record(group_by=["route"], slo={"group_by": []})
    assert off.group_by == () and not off.grouped
    own = record(group_by=["route"], max_groups=7, slo={"group_by": ["region"], "max_groups": 3})
    assert (own.group_by, own.max_groups) == (("region",), 3)


def test_defaults_leave_slos_ungrouped() -> None:
    slo = record()
    assert (slo.group_by, slo.max_groups, slo.group) == ((), 200, ())
    assert slo.id == slo.base_id == "shop/availability"


@pytest.mark.parametrize(
    ("group_by", "message"),
    [
        (["9route"], "is not a valid Prometheus label name"),
        (["__name__"], "cannot group by '__name__'"),
        (["slo"], "cannot group by 'slo', an alert label"),
        (["severity"], "cannot group by 'severity', an alert label"),
        (["route", "route"], "group_by lists 'route' more than once"),
    ],
)
def test_invalid_group_labels(group_by: list[str], message: str) -> None:
    for fields in ({"slo": {"group_by": group_by}}, {"group_by": group_by}):
        with pytest.raises(ValidationError, match=message):
            record(**fields)


@pytest.mark.parametrize("value", [0, 10_001, -5])
def test_max_groups_range(value: int) -> None:
    for fields in ({"slo": {"max_groups": value}}, {"max_groups": value}):
        with pytest.raises(ValidationError, match="1 ≤ max_groups ≤ 10000"):
            record(**fields)
    assert record(max_groups=10_000).max_groups == 10_000
    assert record(slo={"max_groups": 1}).max_groups == 1


def test_instance_id_labels_and_hash() -> None:
    slo = record(labels={"team": "web"}, slo={"group_by": ["route", "method"]})
    one = instantiate(slo, {"route": "/cart", "method": "GET"})
    assert one.id == 'shop/availability{method="GET",route="/cart"}'
    assert one.base_id == "shop/availability"
    assert one.group == (("method", "GET"), ("route", "/cart"))
    assert one.group_labels == {"method": "GET", "route": "/cart"}
    assert one.labels == {"team": "web", "method": "GET", "route": "/cart"}
    assert one.group_by == slo.group_by and one.max_groups == slo.max_groups
    other = instantiate(slo, {"route": "/pay", "method": "GET"})
    assert len({slo, one, other, instantiate(slo, {"route": "/cart", "method": "GET"})}) == 3
    assert one != slo


def test_instance_id_escapes_like_prometheus() -> None:
    assert label_set_text([("b", 'x"y'), ("a", "c:\\d\ne")]) == '{a="c:\\\\d\\ne",b="x\\"y"}'


# --- instances ---------------------------------------------------------------------------


def test_events_instance_selects_its_group_only() -> None:
    slo = instantiate(record(slo={"group_by": ["route"]}), {"route": "/cart"})
    assert slo.sli.events is not None
    assert slo.sli.events.bad == (
        'sum(rate(http_requests_total{job="shop",code=~"5..",route="/cart"}[{{window}}]))'
    )
    assert slo.sli.events.total == (
        'sum(rate(http_requests_total{job="shop",route="/cart"}[{{window}}]))'
    )


def test_good_queries_too() -> None:
    sli = {
        "events": {
            "good": 'sum by (route) (rate(req{code!~"5.."}[{{window}}]))',
            "total": "sum(rate(req[{{window}}]))",
        }
    }
    slo = instantiate(record(slo={"sli": sli, "group_by": ["route"]}), {"route": "a"})
    assert slo.sli.events is not None
    assert slo.sli.events.good == 'sum(rate(req{code!~"5..",route="a"}[{{window}}]))'
    assert slo.sli.events.total == 'sum(rate(req{route="a"}[{{window}}]))'
    assert slo.sli.events.bad is None


def test_latency_instance_extends_the_selector() -> None:
    sli = {"latency": {"histogram": "h", "selector": 'job="shop"', "threshold": "300ms"}}
    slo = instantiate(record(slo={"sli": sli, "group_by": ["route"]}), {"route": "/cart"})
    assert slo.sli.latency is not None
    assert slo.sli.latency.selector == 'job="shop",route="/cart"'
    assert total_rate(slo.sli, W) == 'sum(rate(h_count{job="shop",route="/cart"}[5m]))'
    bare = {"latency": {"histogram": "h", "threshold": "300ms"}}
    slo = instantiate(record(slo={"sli": bare, "group_by": ["route"]}), {"route": "/x"})
    assert slo.sli.latency is not None and slo.sli.latency.selector == 'route="/x"'


def test_availability_instance_for_selectors_and_expressions() -> None:
    for metric, expected in (
        ('up{job="db"}', 'up{job="db",instance="db-1"}'),
        (
            "time() - backup_last_success_timestamp_seconds <= bool 900",
            'time() - backup_last_success_timestamp_seconds{instance="db-1"} <= bool 900',
        ),
    ):
        spec = record(slo={"sli": {"availability": {"metric": metric}}, "group_by": ["instance"]})
        slo = instantiate(spec, {"instance": "db-1"})
        assert slo.sli.availability is not None
        assert slo.sli.availability.metric == expected


def test_instance_sli_leaves_the_original_alone() -> None:
    slo = record(slo={"group_by": ["route"]})
    before = slo.sli
    instance_sli(slo.sli, {"route": "a"})
    assert slo.sli == before


def test_instantiate_refuses_what_is_no_group() -> None:
    grouped = record(slo={"group_by": ["route"]})
    with pytest.raises(ValueError, match="has no group_by"):
        instantiate(record(), {"route": "a"})
    with pytest.raises(ValueError, match="a value for each of route"):
        instantiate(grouped, {"path": "a"})
    with pytest.raises(ValueError, match="already an instance"):
        instantiate(instantiate(grouped, {"route": "a"}), {"route": "b"})


def test_discovery_query_names_every_group_by_its_labels() -> None:
    slo = record(slo={"group_by": ["route", "method"]})
    assert discovery_query(slo, W) == (
        "count by (route, method) (\n"
        'sum by (route, method) (rate(http_requests_total{job="shop"}[5m]))\n'
        ")"
    )
    sli = {"latency": {"histogram": "h", "selector": 'job="shop"', "threshold": "1s"}}
    latency = record(slo={"sli": sli, "group_by": ["route"]})
    assert discovery_query(latency, W) == (
        'count by (route) (\nsum by (route) (rate(h_count{job="shop"}[5m]))\n)'
    )
    with pytest.raises(ValueError):
        discovery_query(record(), W)


def test_groups_from_result_sorted_deduplicated_and_capped() -> None:
    slo = dataclasses.replace(record(slo={"group_by": ["route"]}), max_groups=2)
    series = [{"route": "/c"}, {"route": "/a", "instance": "x"}, {"route": "/b"}, {"route": "/a"}]
    assert groups_from_result(slo, series) == GroupSelection(
        kept=[{"route": "/a"}, {"route": "/b"}], dropped=[{"route": "/c"}]
    )
    # Known groups keep their place: the newest are the ones dropped.
    assert groups_from_result(slo, series, known=[{"route": "/c"}]) == GroupSelection(
        kept=[{"route": "/a"}, {"route": "/c"}], dropped=[{"route": "/b"}]
    )
    # The same answer in any order of the result.
    assert groups_from_result(slo, reversed(series)) == groups_from_result(slo, series)


def test_series_without_a_group_label_are_a_group_of_their_own() -> None:
    slo = record(slo={"group_by": ["route", "method"]})
    selection = groups_from_result(slo, [{"route": "/a"}, {}])
    assert selection.kept == [{"method": "", "route": ""}, {"method": "", "route": "/a"}]
    assert instantiate(slo, selection.kept[0]).id == 'shop/availability{method="",route=""}'


def test_instances_of_one_atom_are_batched_into_one_sum_by_request() -> None:
    slo = record(slo={"group_by": ["route"]})
    routes = [{"route": r} for r in ("/a", "/b", "/c")]
    pairs = [(bad_rate(i.sli, W), total_rate(i.sli, W)) for i in instances(slo, routes)]
    plan = plan_queries(pairs)
    assert sorted(p.expr for p in plan.parts) == [
        'sum by (route) (rate(http_requests_total{code=~"5..",job="shop",route=~"/a|/b|/c"}[5m]))',
        'sum by (route) (rate(http_requests_total{job="shop",route=~"/a|/b|/c"}[5m]))',
    ]
    assert all(p.group_label == "route" for p in plan.parts)
    assert [p.values for p in plan.parts] == [("/a", "/b", "/c")] * 2


def test_group_key_sorts_by_label() -> None:
    assert group_key({"b": "1", "a": "2"}) == (("a", "2"), ("b", "1"))


def test_objective_and_other_fields_are_the_specs() -> None:
    slo = record(slo={"group_by": ["route"]})
    one = instantiate(slo, {"route": "a"})
    assert one.objective == Decimal("0.999") and one.period == slo.period
    assert one.alerting == slo.alerting and one.tier == slo.tier
