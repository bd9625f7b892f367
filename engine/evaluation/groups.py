"""Grouped SLOs over time: the instances an evaluation keeps for each grouped SLO.

`engine.spec.groups` says what one discovery result means (its groups, capped at
`max_groups`); the inventory remembers across discoveries, because a label value that stops
showing up is not the same thing as a group that recovered:

- A group found once stays an instance when a later discovery no longer lists it (its
  series went stale): its windows run out of data and it reads `no_data`, so an incident
  open on it is never resolved by silence. It is forgotten only after a whole period
  without it — by then every window, the period included, is empty — so churning label
  values (a pod name, a deleted route) do not pile up forever.
- `max_groups` counts the vanished groups too, and the newest groups are the ones dropped
  (known groups keep their place): memory never grows without bound, and a burst of new
  values never evicts a group that has history.
- A failed discovery keeps the last known groups: an unreachable Prometheus must never
  empty the inventory.
- A grouped SLO without any group yet is reported, never silently absent: `undiscovered()`
  names it and the evaluator shows it as one `no_data` evaluation under its base id.

Ordering is deterministic: the spec's order, each grouped SLO replaced in place by its
instances sorted by their (label, value) pairs — so instances follow their base.

Pure: discovery answers come in as data (`engine.source.discovery` asks Prometheus).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.evaluation.policy import policy_for
from engine.evaluation.result import SLOEvaluation, Status
from engine.spec.durations import Duration
from engine.spec.group_labels import label_set_text
from engine.spec.groups import Group, group_key, groups_from_result, instantiate
from engine.spec.models import SLO

GroupKey = tuple[tuple[str, str], ...]


def discovery_window(slo: SLO) -> Duration:
    """How far back discovery looks for a grouped SLO's series: its policy's longest alert
    window (3d by default), so any group an alert could fire for is found; the period when
    the SLO has no alert rule at all."""
    rules = policy_for(slo).rules
    return max((r.long_window for r in rules), default=slo.period)


@dataclass(frozen=True)
class Discovered:
    """One grouped SLO's discovery answer: the label sets of its result's series, or why
    there is none. `unreachable` tells a source that did not answer from a query it
    rejected (the first is the blind case, the second a broken spec)."""

    series: tuple[Mapping[str, str], ...] = ()
    error: str | None = None
    unreachable: bool = False


@dataclass
class _Entry:
    """What the inventory knows of one grouped (spec-level) SLO."""

    slo: SLO
    instances: dict[GroupKey, SLO] = field(default_factory=dict)
    last_seen: dict[GroupKey, float] = field(default_factory=dict)
    vanished: set[GroupKey] = field(default_factory=set)
    dropped: list[Group] = field(default_factory=list)
    discovered_at: float | None = None
    error: str | None = None

    def ordered(self) -> list[SLO]:
        return [self.instances[key] for key in sorted(self.instances)]


@dataclass(frozen=True)
class InventoryChange:
    """What one `update` changed. Ids are instance ids; `dropped` holds, per base id, the
    groups dropped by `max_groups` that were not dropped before (warn once for them)."""

    appeared: tuple[str, ...] = ()
    vanished: tuple[str, ...] = ()
    forgotten: tuple[str, ...] = ()
    dropped: dict[str, tuple[Group, ...]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def instances_changed(self) -> bool:
        """Whether the list of instances to evaluate changed (an evaluator must be told)."""
        return bool(self.appeared or self.forgotten)


def _group_text(slo: SLO, key: GroupKey) -> str:
    return slo.base_id + label_set_text(key)


class GroupInventory:
    """The instances of every grouped SLO, kept across discoveries (see the module doc)."""

    def __init__(self, slos: Sequence[SLO] = ()) -> None:
        self._slos: list[SLO] = []
        self._entries: dict[str, _Entry] = {}
        self.set_slos(slos)

    # --- the specs --------------------------------------------------------------------

    def set_slos(self, slos: Sequence[SLO]) -> None:
        """A spec (re)load: spec-level SLOs, grouped or not. A grouped SLO whose group_by is
        unchanged keeps its known groups (re-instantiated when its spec changed: queries,
        objective…); anything else starts with no group."""
        entries: dict[str, _Entry] = {}
        for slo in slos:
            if not slo.grouped:
                continue
            if slo.group:
                raise ValueError(f"{slo.id} is an instance: give the inventory the spec's SLOs")
            old = self._entries.get(slo.base_id)
            if old is None or old.slo.group_by != slo.group_by:
                entries[slo.base_id] = _Entry(slo)
                continue
            entry = _Entry(
                slo,
                instances=_reinstantiated(old, slo),
                last_seen=dict(old.last_seen),
                vanished=set(old.vanished),
                dropped=list(old.dropped),
                discovered_at=old.discovered_at,
                error=old.error,
            )
            _trim(entry)
            entries[slo.base_id] = entry
        self._slos = list(slos)
        self._entries = entries

    def reloaded(self, slos: Sequence[SLO]) -> GroupInventory:
        """A new inventory for a spec reload, carrying over the known groups (as
        `set_slos`) and leaving this one untouched — the caller swaps it in only once the
        new set is accepted."""
        new = GroupInventory()
        new._entries = self._entries
        new.set_slos(slos)
        return new

    @property
    def grouped(self) -> list[SLO]:
        """The spec-level grouped SLOs, in spec order (what discovery asks about)."""
        return [s for s in self._slos if s.grouped]

    # --- discovery answers ------------------------------------------------------------

    def update(self, at: float, found: Mapping[str, Discovered]) -> InventoryChange:
        """Take discovery answers made at `at`, per base id (SLOs not in `found` keep what
        they have). A failed answer keeps the last known groups."""
        appeared: list[str] = []
        vanished: list[str] = []
        forgotten: list[str] = []
        dropped: dict[str, tuple[Group, ...]] = {}
        failed: dict[str, str] = {}
        for base_id, answer in found.items():
            entry = self._entries.get(base_id)
            if entry is None:
                continue
            if answer.error is not None:
                entry.error = answer.error
                failed[base_id] = answer.error
                continue
            change = _apply(entry, at, answer.series)
            appeared += change.appeared
            vanished += change.vanished
            forgotten += change.forgotten
            if change.dropped:
                dropped[base_id] = change.dropped[base_id]
        return InventoryChange(tuple(appeared), tuple(vanished), tuple(forgotten), dropped, failed)

    # --- what to evaluate -------------------------------------------------------------

    def instances(self) -> list[SLO]:
        """Every SLO to evaluate: ungrouped SLOs as they are, each grouped SLO replaced by
        its instances (vanished ones included), in spec order."""
        out: list[SLO] = []
        for slo in self._slos:
            out.extend(self._entries[slo.base_id].ordered() if slo.grouped else [slo])
        return out

    def undiscovered(self) -> list[tuple[SLO, str]]:
        """Grouped SLOs without any instance yet, each with the reason (for its `no_data`
        evaluation under the base id)."""
        out = []
        for slo in self.grouped:
            entry = self._entries[slo.base_id]
            if entry.instances:
                continue
            labels = ", ".join(slo.group_by)
            if entry.error is not None:
                reason = f"no group of {labels} known: discovery failed: {entry.error}"
            elif entry.discovered_at is None:
                reason = f"groups of {labels} not discovered yet"
            else:
                reason = (
                    f"no group of {labels} found: its total query has no series in the "
                    f"last {discovery_window(slo)}"
                )
            out.append((slo, reason))
        return out

    def dropped_counts(self) -> dict[str, int]:
        """Base id → groups currently left out by `max_groups`, for every grouped SLO."""
        return {base_id: len(entry.dropped) for base_id, entry in self._entries.items()}

    def status(self) -> dict[str, dict[str, Any]]:
        """Per grouped SLO (base id): its groups, the vanished and dropped ones, the last
        discovery and its error — what the daemon's spec status shows."""
        out = {}
        for slo in self.grouped:
            entry = self._entries[slo.base_id]
            if entry.error is not None:
                state = "discovery_failed"
            elif entry.dropped:
                state = "capped"
            elif not entry.instances:
                state = "no_groups"
            else:
                state = "ok"
            out[slo.base_id] = {
                "status": state,
                "group_by": list(slo.group_by),
                "groups": len(entry.instances),
                "max_groups": slo.max_groups,
                "vanished": sorted(_group_text(slo, k) for k in entry.vanished),
                "dropped": len(entry.dropped),
                "dropped_groups": [_group_text(slo, group_key(g)) for g in entry.dropped[:20]],
                "discovered_at": entry.discovered_at,
                "error": entry.error,
            }
        return out


# SLO fields that do not take part in its equality (where it was read from, the service's
# anomaly settings...): an unchanged spec's instances take them from the new record.
_UNCOMPARED = tuple(f.name for f in dataclasses.fields(SLO) if not f.compare)


def _reinstantiated(old: _Entry, slo: SLO) -> dict[GroupKey, SLO]:
    """The known groups' instances of the reloaded `slo`. Rewriting the queries costs a
    PromQL parse per query and group (≈ 1 ms an instance), so an SLO whose spec did not
    change keeps its instances: a reload of one file among many stays cheap."""
    if old.slo != slo:
        return {key: instantiate(slo, dict(key)) for key in old.instances}
    fresh = {name: getattr(slo, name) for name in _UNCOMPARED}
    return {key: dataclasses.replace(i, **fresh) for key, i in old.instances.items()}


def _trim(entry: _Entry) -> None:
    """Fit the known groups into a lowered `max_groups`: groups still found first, then the
    vanished ones, each in sorted order."""
    keys = sorted(entry.instances, key=lambda k: (k in entry.vanished, k))
    for key in keys[entry.slo.max_groups :]:
        del entry.instances[key]
        entry.last_seen.pop(key, None)
        entry.vanished.discard(key)


def _apply(entry: _Entry, at: float, series: Iterable[Mapping[str, str]]) -> InventoryChange:
    """One successful discovery answer for one grouped SLO."""
    slo = entry.slo
    found = {group_key({n: labels.get(n, "") for n in slo.group_by}) for labels in series}
    known = set(entry.instances)
    present = known & found
    # Gone for longer than a period: every window is empty by now, let it go.
    missing = sorted(known - found, key=lambda k: (-entry.last_seen.get(k, at), k))
    missing = [k for k in missing if at - entry.last_seen.get(k, at) <= slo.period.seconds]
    # Under the cap: the groups found again first, then the vanished ones (the most recently
    # seen first; they all fit unless max_groups was lowered), then the newest found.
    room = max(0, slo.max_groups - len(present))
    still_vanished = set(missing[:room])
    selection = groups_from_result(
        dataclasses.replace(slo, max_groups=slo.max_groups - len(still_vanished)),
        [dict(k) for k in found],
        known=[dict(k) for k in present],
    )
    kept = {group_key(g) for g in selection.kept}
    removed = (known - kept) - still_vanished
    for key in removed:
        del entry.instances[key]
        entry.last_seen.pop(key, None)
    new = sorted(kept - known)
    for key in new:
        entry.instances[key] = instantiate(slo, dict(key))
    for key in kept:
        entry.last_seen[key] = at
    newly_vanished = sorted(still_vanished - entry.vanished)
    before = {group_key(g) for g in entry.dropped}
    newly_dropped = tuple(g for g in selection.dropped if group_key(g) not in before)
    entry.vanished = still_vanished
    entry.dropped = selection.dropped
    entry.discovered_at, entry.error = at, None
    return InventoryChange(
        appeared=tuple(_group_text(slo, k) for k in new),
        vanished=tuple(_group_text(slo, k) for k in newly_vanished),
        forgotten=tuple(_group_text(slo, k) for k in sorted(removed)),
        dropped={slo.base_id: newly_dropped} if newly_dropped else {},
    )


def undiscovered_evaluations(
    placeholders: Iterable[tuple[SLO, str]], evaluated_at: float, status: Status = "no_data"
) -> list[SLOEvaluation]:
    """One evaluation per grouped SLO without groups: `no_data` (or `error` when the source
    is down) under its base id, the reason in `error`, no windows and no alerts."""
    return [
        SLOEvaluation(slo=slo, evaluated_at=evaluated_at, status=status, error=reason)
        for slo, reason in placeholders
    ]


def in_spec_order(evaluations: Iterable[SLOEvaluation], slos: Sequence[SLO]) -> list[SLOEvaluation]:
    """Evaluations in the order of the spec's SLOs (`slos`, spec-level), instances after
    their base sorted by group: a grouped SLO's placeholder lands where its instances would."""
    position = {slo.base_id: i for i, slo in enumerate(slos)}
    return sorted(
        evaluations,
        key=lambda e: (position.get(e.slo.base_id, len(position)), e.slo.base_id, e.slo.group),
    )
