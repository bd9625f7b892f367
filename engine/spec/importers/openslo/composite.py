"""OpenSLO v1 composite SLOs → native component SLOs plus one composite SLO.

In OpenSLO v1 an SLO is composite when its indicator moves into its objectives: each
objective carries its own `indicator` (inline) or `indicatorRef`, its own `target` /
`targetPercent`, and an optional `compositeWeight` (> 0, default 1); `spec` has no
indicator of its own. Such a document becomes, in its service:

- one SLO per objective, named `<slo>-<objective displayName as a name>` (else
  `<slo>-<position>`), with that objective's target and indicator — alerting and
  incidents of its own, as any SLO;
- the composite `<slo>` itself: `sli.composite` over those SLOs with their weights,
  event-weighted (engine.spec.composite). Its objective is the strictest of the
  objectives' targets: one budget cannot hold parts to different targets, and the journey
  is held to its most demanding part (docs/budgets.md).

Only `budgetingMethod: Occurrences` composites are imported; a time-slice composite (a
slice bad when bad for any objective) is refused with the reason. v2alpha's
`CompositeSLO`/`sliRef` spelling is not v1 and is not accepted.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.spec.document import Document, NativeUnit, Origins
from engine.spec.errors import SpecError
from engine.spec.importers.openslo.catalog import Catalog
from engine.spec.importers.openslo.indicator import _sli as indicator_at
from engine.spec.importers.openslo.objective import convert_period
from engine.spec.models import NAME_RE
from engine.spec.yaml_safety import shown


def is_composite(doc: Document) -> bool:
    """Whether an OpenSLO SLO document is a v1 composite (an objective with an indicator)."""
    objectives = doc.get(("spec", "objectives"))
    return isinstance(objectives, list) and any(
        isinstance(o, dict) and ("indicator" in o or "indicatorRef" in o) for o in objectives
    )


def convert_composite(doc: Document, catalog: Catalog) -> tuple[list[NativeUnit], list[SpecError]]:
    """The component units and the composite's unit, or the errors (then no unit at all)."""
    spec = doc.data["spec"]
    name = doc.get(("metadata", "name"))
    errors = _shape_errors(doc, spec)
    period, period_errors = convert_period(doc, spec)
    errors += period_errors
    if errors or not isinstance(name, str):
        return [], errors or [doc.error(("metadata",), "missing required key 'metadata.name'")]
    units: list[NativeUnit] = []
    refs: list[dict[str, Any]] = []
    targets: list[Decimal] = []
    for i, objective in enumerate(spec["objectives"]):
        path = ("spec", "objectives", i)
        component = f"{name}-{_suffix(objective, i, name)}"
        origins = Origins.identity(doc)
        origins.add(("slos", 0), doc, path)
        origins.add(("slos", 0, "name"), doc, path)
        origins.add(("slos", 0, "objective"), doc, path)
        target, target_errors = _target(doc, objective, path)
        sli, sli_errors = _indicator(doc, objective, path, catalog, origins)
        errors += target_errors + sli_errors
        if target is None or sli is None:
            continue
        targets.append(target)
        slo = {"name": component, "objective": str(target), "period": period, "sli": sli}
        units.append(_unit(doc, slo, origins, catalog))
        weight = objective.get("compositeWeight", 1)
        refs.append({"slo": f"{spec['service']}/{component}", "weight": weight})
    if errors:
        return [], errors
    origins = Origins.identity(doc)
    origins.add(("slos", 0), doc, ())
    origins.add(("slos", 0, "name"), doc, ("metadata", "name"))
    origins.add(("slos", 0, "objective"), doc, ("spec", "objectives"))
    for i in range(len(refs)):
        if "compositeWeight" in spec["objectives"][i]:
            origins.add(
                ("slos", 0, "sli", "composite", "objectives", i, "weight"),
                doc,
                ("spec", "objectives", i, "compositeWeight"),
            )
    composite = {
        "name": name,
        "objective": str(max(targets)),
        "period": period,
        "sli": {"composite": {"objectives": refs}},
    }
    if spec.get("description") is not None:
        composite["description"] = spec["description"]
    units.append(_unit(doc, composite, origins, catalog))
    return units, []


def _shape_errors(doc: Document, spec: dict[str, Any]) -> list[SpecError]:
    errors: list[SpecError] = []
    if not isinstance(spec.get("service"), str):
        errors.append(
            doc.error(("spec",), "missing required key 'service'", "add spec.service", at_key=True)
        )
    method = spec.get("budgetingMethod")
    if method != "Occurrences":
        errors.append(
            doc.error(
                ("spec", "budgetingMethod") if "budgetingMethod" in spec else ("spec",),
                f"a composite SLO with budgetingMethod {shown(method)} is not supported",
                "composite SLOs are imported with budgetingMethod: Occurrences (events)",
            )
        )
    for key in ("indicator", "indicatorRef"):
        if key in spec:
            errors.append(
                doc.error(
                    ("spec", key),
                    f"a composite SLO has no spec.{key}: its objectives carry the indicators",
                    f"remove spec.{key}, or the objectives' indicators",
                    at_key=True,
                )
            )
    for i, objective in enumerate(spec["objectives"]):
        path = ("spec", "objectives", i)
        if not isinstance(objective, dict):
            errors.append(doc.error(path, "an objective must be a mapping"))
        elif not ("indicator" in objective or "indicatorRef" in objective):
            errors.append(
                doc.error(
                    path,
                    "every objective of a composite SLO needs indicator or indicatorRef",
                    "add this objective's indicator",
                )
            )
        else:
            errors += _unsupported(doc, objective, path)
    return errors


def _unsupported(doc: Document, objective: dict[str, Any], path: tuple) -> list[SpecError]:
    for key in ("op", "value", "timeSliceTarget", "timeSliceWindow"):
        if key in objective:
            return [
                doc.error(
                    (*path, key),
                    f"objective.{key} is not supported in a composite SLO",
                    "composite objectives are ratioMetric event counts; remove it",
                    at_key=True,
                )
            ]
    weight = objective.get("compositeWeight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        return [
            doc.error(
                (*path, "compositeWeight"),
                f"compositeWeight {shown(weight)} must be a number greater than 0",
                "OpenSLO's compositeWeight defaults to 1",
            )
        ]
    return []


def _target(
    doc: Document, objective: dict[str, Any], path: tuple
) -> tuple[Decimal | None, list[SpecError]]:
    """The objective's target as a percentage."""
    if "target" in objective and "targetPercent" in objective:
        return None, [doc.error((*path, "targetPercent"), "give target or targetPercent, not both")]
    key = "targetPercent" if "targetPercent" in objective else "target"
    value = objective.get(key)
    try:
        number = Decimal(repr(value)) if isinstance(value, int | float) else None
    except InvalidOperation:
        number = None
    if isinstance(value, bool) or number is None:
        return None, [
            doc.error(
                (*path, key) if key in objective else path,
                f"objective {key} {shown(value)} is not a number"
                if key in objective
                else "missing required key 'target'",
                "add target: 0.999 (a fraction) or targetPercent: 99.9",
            )
        ]
    percent = number if key == "targetPercent" else number * 100
    if not (0 < percent < 100):
        return None, [doc.error((*path, key), f"{key} {value} is out of range")]
    return percent.normalize(), []


def _indicator(
    doc: Document, objective: dict[str, Any], path: tuple, catalog: Catalog, origins: Origins
) -> tuple[dict[str, Any] | None, list[SpecError]]:
    """The objective's SLI, read where it is written (inline, or the named SLI object) by
    the plain importer's ratioMetric reader."""
    if "indicator" in objective and "indicatorRef" in objective:
        return None, [
            doc.error((*path, "indicatorRef"), "give indicator or indicatorRef, not both")
        ]
    if "indicator" in objective:
        return indicator_at(doc, (*path, "indicator", "spec"), catalog, origins)
    ref = objective["indicatorRef"]
    sli_doc = catalog.slis.get(ref) if isinstance(ref, str) else None
    if sli_doc is None:
        return None, [
            doc.error(
                (*path, "indicatorRef"),
                f"indicatorRef {shown(ref)} names no OpenSLO SLI",
                f"define a kind: SLI with metadata.name {shown(ref)} in the loaded files",
            )
        ]
    return indicator_at(sli_doc, ("spec",), catalog, origins)


_SLUG = re.compile(r"[^a-z0-9]+")


def _suffix(objective: dict[str, Any], index: int, name: str) -> str:
    shown_name = objective.get("displayName") if isinstance(objective, dict) else None
    if isinstance(shown_name, str):
        slug = _SLUG.sub("-", shown_name.lower()).strip("-")
        if slug and NAME_RE.match(f"{name}-{slug}"):
            return slug
    return str(index + 1)


def _unit(doc: Document, slo: dict[str, Any], origins: Origins, catalog: Catalog) -> NativeUnit:
    """One single-SLO unit, service fields as the plain importer takes them (the Service
    object's labels, else the SLO's)."""
    # Imported here: convert.py imports this module to hand composites over.
    from engine.spec.importers.openslo.convert import _service_fields

    service = doc.data["spec"]["service"]
    native: dict[str, Any] = {"apiVersion": "slo-engine/v1", "service": service}
    origins.add(("service",), doc, ("spec", "service"))
    notes = _service_fields(catalog.services.get(service) or doc, native, origins)
    native["slos"] = [slo]
    return NativeUnit(doc, native, origins, notes=notes)
