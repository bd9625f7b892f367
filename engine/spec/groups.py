"""Instances of grouped SLOs: from one spec-level SLO to one SLO per group of label values.

A grouped SLO (`group_by: [route]`) is evaluated as many SLOs as there are routes with
traffic. Finding them is one instant query per SLO (`discovery_query`); its result names
the groups (`groups_from_result`, capped at `max_groups` so memory never grows without
bound); `instantiate` then makes each group an ordinary SLO whose queries select only that
group's series. Pure: no I/O, nothing cached — the caller decides when to rediscover.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.spec.durations import Duration
from engine.spec.models import SLI, SLO, AvailabilitySLI, EventsSLI, LatencySLI
from engine.spec.promql_groups import matchers_text, with_group_matchers
from engine.spec.sli import total_rate

Group = dict[str, str]


def group_key(group: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A group as `SLO.group` holds it: (label, value) pairs sorted by label."""
    return tuple(sorted(group.items()))


def _check_group(slo: SLO, group: Mapping[str, str]) -> None:
    if not slo.group_by:
        raise ValueError(f"{slo.id} has no group_by: it has no instances")
    if slo.group:
        raise ValueError(f"{slo.id} is already an instance of {slo.base_id}")
    if set(group) != set(slo.group_by):
        raise ValueError(
            f"a group of {slo.id} gives a value for each of {', '.join(slo.group_by)}, "
            f"not for {', '.join(sorted(group)) or 'nothing'}"
        )


def _events(events: EventsSLI, group: Mapping[str, str]) -> EventsSLI:
    rewrite = {
        key: with_group_matchers(query, group)
        for key in ("bad", "good", "total")
        if (query := getattr(events, key)) is not None
    }
    return events.model_copy(update=rewrite)


def _latency(latency: LatencySLI, group: Mapping[str, str]) -> LatencySLI:
    selector = ",".join(part for part in (latency.selector, matchers_text(group)) if part)
    return latency.model_copy(update={"selector": selector})


def _availability(availability: AvailabilitySLI, group: Mapping[str, str]) -> AvailabilitySLI:
    return availability.model_copy(
        update={"metric": with_group_matchers(availability.metric, group)}
    )


def instance_sli(sli: SLI, group: Mapping[str, str]) -> SLI:
    """The SLI restricted to one group's series: events queries and availability metrics
    get the group's matchers on every selector (and lose their `by (group labels)`), a
    latency SLI's selector gets them appended."""
    if sli.events is not None:
        return sli.model_copy(update={"events": _events(sli.events, group)})
    if sli.latency is not None:
        return sli.model_copy(update={"latency": _latency(sli.latency, group)})
    assert sli.availability is not None
    return sli.model_copy(update={"availability": _availability(sli.availability, group)})


def instantiate(slo: SLO, group: Mapping[str, str]) -> SLO:
    """The SLO instance of one group: same spec, `group` set (so its `id` is
    `<service>/<name>{label="value",...}`), its SLI restricted to the group's series, and
    the group labels added to its `labels` (so alerts carry them, as the generated rules'
    alerts do). Raises ValueError when `slo` is ungrouped, already an instance, or `group`
    does not give exactly the `group_by` labels. Raises PromQLSyntaxError for a query the
    rewriter cannot read (validation rejects those for grouped SLOs)."""
    _check_group(slo, group)
    return dataclasses.replace(
        slo,
        sli=instance_sli(slo.sli, group),
        group=group_key(group),
        labels={**slo.labels, **dict(group_key(group))},
    )


def discovery_query(slo: SLO, window: Duration) -> str:
    """An instant query whose result has one series per group with series in `window`,
    carrying exactly the group labels: `count by (route) (<total rate grouped by route>)`.

    A quiet group (its counters exist but did not move) is found too — a rate of 0 is
    still a series — so quiet groups are evaluated (usually to "no alert") rather than
    mistaken for vanished ones.
    """
    if not slo.group_by:
        raise ValueError(f"{slo.id} has no group_by: there is nothing to discover")
    labels = ", ".join(slo.group_by)
    return f"count by ({labels}) (\n{total_rate(slo.sli, window, by=slo.group_by)}\n)"


@dataclass(frozen=True)
class GroupSelection:
    """The groups to evaluate and the ones left out because of `max_groups`.

    Both sorted by their (label, value) pairs. `dropped` is empty unless the SLO found
    more groups than its `max_groups`; the caller warns, counts them in a metric and shows
    a status on the SLO.
    """

    kept: list[Group]
    dropped: list[Group]


def groups_from_result(
    slo: SLO,
    series_labels: Iterable[Mapping[str, str]],
    known: Iterable[Mapping[str, str]] = (),
) -> GroupSelection:
    """The groups named by a discovery result (each series' labels; other labels than the
    group's are ignored, a missing one is the empty value — as in PromQL, the series
    without that label form a group of their own).

    At most `slo.max_groups` are kept. Groups in `known` (those evaluated so far) keep
    their place and the newest are the ones dropped, so a burst of new label values never
    evicts a group that already has history; among groups equally new, the first in
    sorted order win, so the choice is the same on every run. A known group missing from
    the result is in neither list: it has vanished, and the caller keeps it as no data.
    """
    found = {group_key({n: labels.get(n, "") for n in slo.group_by}) for labels in series_labels}
    old = {group_key({n: g.get(n, "") for n in slo.group_by}) for g in known}
    ordered = sorted(found & old) + sorted(found - old)
    kept = set(ordered[: slo.max_groups])
    return GroupSelection(
        kept=[dict(key) for key in sorted(kept)],
        dropped=[dict(key) for key in sorted(found - kept)],
    )


def instances(slo: SLO, groups: Iterable[Mapping[str, str]]) -> list[SLO]:
    """`instantiate` for each group, in the given order."""
    return [instantiate(slo, group) for group in groups]
