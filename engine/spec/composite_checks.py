"""Cross-file checks of composite SLOs (engine.spec.composite), located where written.

A composite is valid only with every component loaded, valid, ungrouped and without a
cycle; otherwise the composite itself is left out with an error on its objective (the
evaluation could never compute it, and a half-computed journey would look healthy).
A grouped composite is refused too: its events are the components' whole-SLO events,
which have no groups to split by.
"""

from __future__ import annotations

from engine.spec.composite import CompositeSLI, composite_problems
from engine.spec.document import NativeUnit
from engine.spec.load_result import LoadResult
from engine.spec.models import ServiceSpec


def check_composites(
    validated: list[tuple[NativeUnit, ServiceSpec]], bad_ids: set[str], result: LoadResult
) -> set[str]:
    """Errors for composites that cannot be computed; returns their ids (to leave out)."""
    composites: dict[str, CompositeSLI] = {}
    where: dict[str, tuple[NativeUnit, int]] = {}
    grouped: set[str] = set()
    sliced: set[str] = set()
    known: set[str] = set()
    refused: set[str] = set()
    for unit, spec in validated:
        for i, slo in enumerate(spec.slos):
            slo_id = f"{spec.service}/{slo.name}"
            group_by = spec.group_by if slo.group_by is None else slo.group_by
            known.add(slo_id)
            if group_by:
                grouped.add(slo_id)
            # Time-slice SLOs count slices, not events: no sum with events means anything.
            if getattr(slo, "timeslices", None) is not None:
                sliced.add(slo_id)
            if slo.sli.composite is None:
                continue
            composites[slo_id], where[slo_id] = slo.sli.composite, (unit, i)
            if group_by or slo_id in sliced:
                refused.add(slo_id)
                message = _GROUPED if group_by else _SLICED
                _error(unit, ("slos", i, "sli", "composite"), result, message, "")
    for slo_id, sli in composites.items():
        sliced_refs = [j for j, ref in enumerate(sli.refs) if ref in sliced]
        if sliced_refs and slo_id not in refused:
            refused.add(slo_id)
            unit, i = where[slo_id]
            ref = sli.refs[sliced_refs[0]]
            _error(
                unit,
                ("slos", i, "sli", "composite", "objectives", sliced_refs[0], "slo"),
                result,
                f"composite {slo_id} names time-slice SLO {ref!r}; composites combine "
                "events, not slices",
                "name an SLO that counts events",
            )
    for problem in composite_problems(composites, grouped, known):
        unit, i = where[problem.slo_id]
        path: tuple[str | int, ...] = ("slos", i, "sli", "composite", "objectives")
        if problem.index is not None:
            path = (*path, problem.index, "slo")
        _error(unit, path, result, problem.message, problem.hint)
        refused.add(problem.slo_id)
    # A composite built on an SLO left out (its own errors, a refused composite) cannot be
    # computed either.
    while dropped := {
        slo_id
        for slo_id, sli in composites.items()
        if slo_id not in refused | bad_ids and any(r in refused | bad_ids for r in sli.refs)
    }:
        for slo_id in dropped:
            unit, i = where[slo_id]
            _error(
                unit,
                ("slos", i, "sli", "composite", "objectives"),
                result,
                f"composite {slo_id} builds on an SLO with errors: "
                + ", ".join(r for r in composites[slo_id].refs if r in refused | bad_ids),
                "fix the errors of its components first",
            )
        refused |= dropped
    return refused


_GROUPED = "a composite SLO cannot be grouped (group_by): its events are whole SLOs' events"
_SLICED = "a composite SLO cannot count time slices: its events are its components' events"


def _error(
    unit: NativeUnit, path: tuple[str | int, ...], result: LoadResult, message: str, hint: str
) -> None:
    doc, resolved = unit.origins.resolve(path)
    hint = hint or (
        "set group_by: [] on the composite" if message == _GROUPED else "remove its timeslices"
    )
    result.errors.append(doc.error(resolved, message, hint))
