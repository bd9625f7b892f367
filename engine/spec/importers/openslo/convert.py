"""One OpenSLO SLO (with the objects it names) → one single-SLO native unit, and the
service fields (tier, owner, depends_on, labels) taken from its Service object's labels."""

from __future__ import annotations

from typing import Any

from engine.spec.document import Document, NativeUnit, Origins
from engine.spec.errors import SpecError
from engine.spec.importers.openslo.calendar import convert_window
from engine.spec.importers.openslo.catalog import Catalog
from engine.spec.importers.openslo.composite import convert_composite, is_composite
from engine.spec.importers.openslo.indicator import convert_indicator
from engine.spec.importers.openslo.objective import (
    check_budgeting,
    convert_objective,
)
from engine.spec.importers.openslo.timeslices import convert_timeslices, is_timeslices
from engine.spec.models import LABEL_NAME_RE
from engine.spec.yaml_safety import shown

TIER_LABEL, OWNER_LABELS, DEPENDS_LABEL = "tier", ("owner", "team"), "depends_on"


def convert_all(catalog: Catalog) -> tuple[list[NativeUnit], list[SpecError], list[SpecError]]:
    units, errors = [], list(catalog.errors)
    for doc in catalog.slos:
        if is_composite(doc):  # one document, several SLOs (composite.py)
            composite_units, slo_errors = convert_composite(doc, catalog)
            units += composite_units
            errors += slo_errors
            continue
        unit, slo_errors = _convert_slo(doc, catalog)
        errors.extend(slo_errors)
        if unit is not None:
            units.append(unit)
    return units, errors, list(catalog.warnings)


def _convert_slo(doc: Document, catalog: Catalog) -> tuple[NativeUnit | None, list[SpecError]]:
    spec = doc.data.get("spec")
    if not isinstance(spec, dict):
        return None, [doc.error((), "missing required key 'spec'", "add the SLO's spec")]
    errors: list[SpecError] = []
    origins = Origins.identity(doc)
    slo_out: dict[str, Any] = {}
    base = ("slos", 0)

    name = doc.get(("metadata", "name"))
    slo_out["name"] = name
    origins.add((*base, "name"), doc, ("metadata", "name"))
    if name is None:
        errors.append(
            doc.error(("metadata",), "missing required key 'metadata.name'", "name the SLO")
        )
    if spec.get("description") is not None:
        slo_out["description"] = spec["description"]
        origins.add((*base, "description"), doc, ("spec", "description"))

    errors += check_budgeting(doc, spec)
    period, period_errors = convert_window(doc, spec)  # rolling or calendar (calendar.py)
    errors += period_errors
    if period is not None:
        slo_out.update(period)
        origins.add((*base, "period"), doc, ("spec", "timeWindow", 0, "duration"))
        if "timezone" in period:
            origins.add((*base, "timezone"), doc, ("spec", "timeWindow", 0, "calendar"))
    objective, objective_errors = convert_objective(doc, spec, origins)
    errors += objective_errors
    if objective is not None:
        slo_out["objective"] = objective
    if is_timeslices(spec):  # good slices, not events (timeslices.py)
        timeslices, timeslice_errors = convert_timeslices(doc, spec, origins)
        errors += timeslice_errors
        if timeslices is not None:
            slo_out["timeslices"] = timeslices
    sli, sli_errors = convert_indicator(doc, spec, catalog, origins)
    errors += sli_errors
    if sli is not None:
        slo_out["sli"] = sli
    runbook = _annotation(doc, ("runbook_url", "runbook"))
    if runbook is not None:
        slo_out["alerting"] = {"runbook_url": runbook[1]}
        origins.add(
            (*base, "alerting", "runbook_url"), doc, ("metadata", "annotations", runbook[0])
        )
    if "alertPolicies" in spec:
        errors.append(
            doc.error(
                ("spec", "alertPolicies"),
                "OpenSLO alertPolicies are ignored",
                "slo-engine alerts with its multiwindow burn-rate policy (page/ticket)",
                at_key=True,
                severity="warning",
            )
        )

    service_name = spec.get("service")
    native: dict[str, Any] = {"apiVersion": "slo-engine/v1", "service": service_name}
    origins.add(("service",), doc, ("spec", "service"))
    if service_name is None:
        errors.append(
            doc.error(
                ("spec",),
                "missing required key 'service'",
                "name the service this SLO belongs to (spec.service)",
                at_key=True,
            )
        )
    service_doc = catalog.services.get(service_name) if isinstance(service_name, str) else None
    # Service-level fields come from the Service object when there is one, else the SLO.
    errors += _service_fields(service_doc or doc, native, origins)
    native["slos"] = [slo_out]
    origins.add(base, doc, ())

    hard = [e for e in errors if e.severity == "error"]
    if hard:
        return None, errors
    return NativeUnit(doc, native, origins, notes=errors), []


def _labels(doc: Document) -> dict[str, Any]:
    labels = doc.get(("metadata", "labels"))
    return labels if isinstance(labels, dict) else {}


def _annotation(doc: Document, keys: tuple[str, ...]) -> tuple[str, Any] | None:
    annotations = doc.get(("metadata", "annotations"))
    if isinstance(annotations, dict):
        for key in keys:
            if key in annotations:
                return key, annotations[key]
    return None


def _single(value: Any) -> Any:
    """OpenSLO label values may be lists; a one-item list is that item."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def _service_fields(doc: Document, native: dict[str, Any], origins: Origins) -> list[SpecError]:
    labels = _labels(doc)
    warnings: list[SpecError] = []
    lpath = ("metadata", "labels")
    if TIER_LABEL in labels:
        native["tier"] = _single(labels[TIER_LABEL])
        origins.add(("tier",), doc, (*lpath, TIER_LABEL))
    for key in OWNER_LABELS:
        if key in labels:
            native["owner"] = _single(labels[key])
            origins.add(("owner",), doc, (*lpath, key))
            break
    if DEPENDS_LABEL in labels:
        deps = labels[DEPENDS_LABEL]
        if isinstance(deps, str):
            deps = [d.strip() for d in deps.split(",") if d.strip()]
        native["depends_on"] = deps
        origins.add(("depends_on",), doc, (*lpath, DEPENDS_LABEL))
    copied: dict[str, str] = {}
    for key, value in labels.items():
        if key in (TIER_LABEL, DEPENDS_LABEL, *OWNER_LABELS):
            continue
        value = _single(value)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        if not LABEL_NAME_RE.match(str(key)):
            warnings.append(
                doc.error(
                    (*lpath, key),
                    f"label {shown(key)} is not a valid Prometheus label name and is not copied",
                    "use letters, digits and '_' to keep it on generated rules",
                    at_key=True,
                    severity="warning",
                )
            )
            continue
        copied[key] = value
        origins.add(("labels", key), doc, (*lpath, key))
    if copied:
        native["labels"] = copied
    return warnings
