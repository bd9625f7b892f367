"""OpenSLO `apiVersion: openslo/v1` objects → native model input.

Objects are gathered from every loaded file first, because an SLO may name its SLI
(`indicatorRef`), its Service (`spec.service`) and a DataSource (`metricSourceRef`) that live
in other documents or files. Each SLO becomes one single-SLO unit (so a model error maps
back to exactly the documents it came from); the loader then groups units by service.

Supported: kind SLO with `indicator` (inline) or `indicatorRef` → kind SLI whose
`ratioMetric` has `good` or `bad` plus `total`, each a Prometheus `metricSource`
(`spec.query`); `budgetingMethod: Occurrences`; one rolling `timeWindow`; one objective
(`target` 0.999 or `targetPercent` 99.9). Everything else that changes the meaning of the
SLO is an error naming the part; `alertPolicies` and alerting kinds are ignored with a
warning (slo-engine alerts with its own multiwindow burn-rate policy).

Queries: OpenSLO has no window placeholder. A query that already uses `{{window}}` (or
Sloth's `{{.window}}`) is taken as written. For a counter (`counter: true`) written as a
plain selector or `sum[ by (...)](selector)`, the windowed rate is built:
`sum(rate(selector[{{window}}]))`. Any other query cannot be windowed safely: an error.

Service fields: labels `tier`, `owner` (else `team`) and `depends_on` (a list, or a
comma-separated string) on the Service object (else on the SLO) fill tier, owner and
depends_on; the remaining single-valued labels with valid Prometheus names become labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.spec.document import ANY, SCALAR, Document, NativeUnit, Origins, check_shape
from engine.spec.errors import SpecError
from engine.spec.importers.sloth import window as sloth_window
from engine.spec.models import LABEL_NAME_RE

API_VERSION = "openslo/v1"
KINDS = ("SLO", "SLI", "Service", "DataSource")
IGNORED_KINDS = ("AlertPolicy", "AlertCondition", "AlertNotificationTarget")

_LABELS = ANY  # string or list of strings per key; checked where read
_METADATA = {"name": SCALAR, "displayName": SCALAR, "labels": _LABELS, "annotations": ANY}
_METRIC = {
    "metricSource": {
        "metricSourceRef": SCALAR,
        "type": SCALAR,
        "spec": ANY,
    }
}
_RATIO = {
    "counter": SCALAR,
    "good": _METRIC,
    "bad": _METRIC,
    "total": _METRIC,
    "rawType": SCALAR,
    "raw": ANY,
}
_SLI_SPEC = {"description": SCALAR, "ratioMetric": _RATIO, "thresholdMetric": ANY}
_OBJECTIVE = {
    "displayName": SCALAR,
    "name": SCALAR,
    "op": SCALAR,
    "value": SCALAR,
    "target": SCALAR,
    "targetPercent": SCALAR,
    "timeSliceTarget": SCALAR,
    "timeSliceWindow": SCALAR,
    "indicator": ANY,
    "indicatorRef": SCALAR,
    "compositeWeight": SCALAR,
}
_ENVELOPE = {"apiVersion": SCALAR, "kind": SCALAR, "metadata": _METADATA}
SHAPES: dict[str, dict[str, Any]] = {
    "SLO": {
        **_ENVELOPE,
        "spec": {
            "description": SCALAR,
            "service": SCALAR,
            "indicator": {"metadata": _METADATA, "spec": _SLI_SPEC},
            "indicatorRef": SCALAR,
            "budgetingMethod": SCALAR,
            "timeWindow": [
                {"duration": SCALAR, "isRolling": SCALAR, "calendar": ANY},
            ],
            "objectives": [_OBJECTIVE],
            "alertPolicies": ANY,
        },
    },
    "SLI": {**_ENVELOPE, "spec": _SLI_SPEC},
    "Service": {**_ENVELOPE, "spec": {"description": SCALAR}},
    "DataSource": {**_ENVELOPE, "spec": ANY},
}

# OpenSLO's own duration shorthand; M, Q and Y are fixed lengths by its definition.
_DURATION = re.compile(r"^(\d+)([mhdwMQY])$")
_UNIT_DAYS = {"M": 30, "Q": 90, "Y": 365}
_SELECTOR = r"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^{}]*\})?"
_COUNTER_QUERY = re.compile(
    rf"^\s*(?:sum\s*(?P<by>(?:by|without)\s*\([^()]*\))?\s*\(\s*(?P<inner>{_SELECTOR})\s*\)"
    rf"|(?P<plain>{_SELECTOR}))\s*$"
)
TIER_LABEL, OWNER_LABELS, DEPENDS_LABEL = "tier", ("owner", "team"), "depends_on"


@dataclass
class Catalog:
    """Every OpenSLO object of a load, by kind and name."""

    slos: list[Document] = field(default_factory=list)
    slis: dict[str, Document] = field(default_factory=dict)
    services: dict[str, Document] = field(default_factory=dict)
    data_sources: dict[str, Document] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[SpecError] = field(default_factory=list)

    def add(self, doc: Document) -> None:
        kind = doc.data.get("kind")
        if kind in IGNORED_KINDS:
            self.warnings.append(
                doc.error(
                    ("kind",),
                    f"OpenSLO kind {kind} is ignored",
                    "slo-engine alerts with its own multiwindow burn-rate policy; see alerting in docs/readme/specs.md",
                    severity="warning",
                )
            )
            return
        if kind not in KINDS:
            self.errors.append(
                doc.error(
                    ("kind",) if "kind" in doc.data else (),
                    f"unsupported OpenSLO kind {kind!r}"
                    if kind is not None
                    else "missing required key 'kind'",
                    "use one of " + ", ".join(KINDS),
                )
            )
            return
        shape_errors = check_shape(doc, SHAPES[kind])
        if shape_errors:
            self.errors.extend(shape_errors)
            return
        name = doc.get(("metadata", "name"))
        if kind != "SLO" and not isinstance(name, str):
            self.errors.append(
                doc.error(
                    ("metadata",) if "metadata" in doc.data else (),
                    "missing required key 'metadata.name'",
                    f"every OpenSLO {kind} needs a name so others can refer to it",
                )
            )
            return
        if kind == "SLO":
            self.slos.append(doc)
        else:
            table = {"SLI": self.slis, "Service": self.services, "DataSource": self.data_sources}[
                kind
            ]
            if name in table:
                first = table[name]
                first_mark = first.mark(("metadata", "name"))
                self.errors.append(
                    doc.error(
                        ("metadata", "name"),
                        f"OpenSLO {kind} {name!r} is defined twice",
                        f"also at {first.file}:{first_mark.line}:{first_mark.column}; rename one",
                    )
                )
                return
            table[name] = doc


def convert_all(catalog: Catalog) -> tuple[list[NativeUnit], list[SpecError], list[SpecError]]:
    units, errors = [], list(catalog.errors)
    for doc in catalog.slos:
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

    errors += _budgeting(doc, spec)
    period, period_errors = _period(doc, spec)
    errors += period_errors
    if period is not None:
        slo_out["period"] = period
        origins.add((*base, "period"), doc, ("spec", "timeWindow", 0, "duration"))
    objective, objective_errors = _objective(doc, spec, origins)
    errors += objective_errors
    if objective is not None:
        slo_out["objective"] = objective
    sli, sli_errors = _indicator(doc, spec, catalog, origins)
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


def _budgeting(doc: Document, spec: dict[str, Any]) -> list[SpecError]:
    method = spec.get("budgetingMethod")
    if method == "Occurrences":
        return []
    if method is None:
        return [
            doc.error(
                ("spec",),
                "missing required key 'budgetingMethod'",
                "add budgetingMethod: Occurrences",
                at_key=True,
            )
        ]
    return [
        doc.error(
            ("spec", "budgetingMethod"),
            f"budgetingMethod {method} is not supported",
            "slo-engine counts events (Occurrences); time-slice budgets are not computed",
        )
    ]


def _period(doc: Document, spec: dict[str, Any]) -> tuple[str | None, list[SpecError]]:
    windows = spec.get("timeWindow")
    if not windows:
        return None, [
            doc.error(
                ("spec",),
                "missing required key 'timeWindow'",
                "add timeWindow: [{duration: 28d, isRolling: true}]",
                at_key=True,
            )
        ]
    if len(windows) > 1:
        return None, [
            doc.error(
                ("spec", "timeWindow", 1),
                "more than one timeWindow",
                "an SLO has one rolling period; keep one entry",
            )
        ]
    entry = windows[0]
    path = ("spec", "timeWindow", 0)
    if entry.get("calendar") is not None or entry.get("isRolling") is False:
        at = "calendar" if entry.get("calendar") is not None else "isRolling"
        return None, [
            doc.error(
                (*path, at),
                "calendar-aligned time windows are not supported",
                "use a rolling window: isRolling: true without calendar",
                at_key=True,
            )
        ]
    if entry.get("isRolling") is not True:
        return None, [
            doc.error(
                path,
                "timeWindow must say isRolling: true",
                "slo-engine evaluates rolling windows only",
            )
        ]
    duration = entry.get("duration")
    match = _DURATION.match(duration) if isinstance(duration, str) else None
    if match is None:
        return None, [
            doc.error(
                (*path, "duration"),
                f"{duration!r} is not an OpenSLO duration",
                "write a number and one unit of m h d w M Q Y, e.g. 28d",
            )
        ]
    count, unit = int(match.group(1)), match.group(2)
    if unit in _UNIT_DAYS:
        return f"{count * _UNIT_DAYS[unit]}d", []
    return f"{count}{unit}", []


def _objective(
    doc: Document, spec: dict[str, Any], origins: Origins
) -> tuple[Any, list[SpecError]]:
    objectives = spec.get("objectives")
    if not objectives:
        return None, [
            doc.error(
                ("spec",),
                "missing required key 'objectives'",
                "add objectives: [{target: 0.999}]",
                at_key=True,
            )
        ]
    if len(objectives) > 1:
        return None, [
            doc.error(
                ("spec", "objectives", 1),
                "more than one objective is not supported",
                "slo-engine has one objective per SLO; write one SLO document per target",
            )
        ]
    objective = objectives[0]
    path = ("spec", "objectives", 0)
    for key, why in (
        ("op", "op/value belong to thresholdMetric, which is not supported"),
        ("value", "op/value belong to thresholdMetric, which is not supported"),
        ("timeSliceTarget", "time slices belong to Timeslices budgeting, which is not supported"),
        ("timeSliceWindow", "time slices belong to Timeslices budgeting, which is not supported"),
        ("indicator", "per-objective indicators (composite SLOs) are not supported"),
        ("indicatorRef", "per-objective indicators (composite SLOs) are not supported"),
        ("compositeWeight", "composite SLOs are not supported"),
    ):
        if key in objective:
            return None, [
                doc.error(
                    (*path, key),
                    f"objective.{key} is not supported",
                    why + "; remove it",
                    at_key=True,
                )
            ]
    if "target" in objective and "targetPercent" in objective:
        return None, [
            doc.error(
                (*path, "targetPercent"),
                "give target or targetPercent, not both",
                "keep one",
                at_key=True,
            )
        ]
    if "targetPercent" in objective:
        origins.add(("slos", 0, "objective"), doc, (*path, "targetPercent"))
        return objective["targetPercent"], []
    target = objective.get("target")
    if target is None:
        return None, [
            doc.error(
                path,
                "missing required key 'target'",
                "add target: 0.999 (a fraction) or targetPercent: 99.9",
            )
        ]
    origins.add(("slos", 0, "objective"), doc, (*path, "target"))
    if isinstance(target, bool) or not isinstance(target, int | float):
        return target, []  # the model explains what a number looks like
    if not (0 < target < 1):
        return None, [
            doc.error(
                (*path, "target"),
                f"target {target} is out of range",
                "OpenSLO's target is a fraction, 0 < target < 1 (write 0.999, or targetPercent: 99.9)",
            )
        ]
    # repr keeps what was typed (0.999, not 0.99899999…); ×100 in Decimal is exact.
    return str((Decimal(repr(target)) * 100).normalize()), []


def _indicator(
    doc: Document, spec: dict[str, Any], catalog: Catalog, origins: Origins
) -> tuple[dict[str, Any] | None, list[SpecError]]:
    if "indicator" in spec and "indicatorRef" in spec:
        return None, [
            doc.error(
                ("spec", "indicatorRef"),
                "give indicator or indicatorRef, not both",
                "keep one",
                at_key=True,
            )
        ]
    if "indicatorRef" in spec:
        ref = spec["indicatorRef"]
        sli_doc = catalog.slis.get(ref) if isinstance(ref, str) else None
        if sli_doc is None:
            known = ", ".join(sorted(catalog.slis)) or "none loaded"
            return None, [
                doc.error(
                    ("spec", "indicatorRef"),
                    f"indicatorRef {ref!r} names no OpenSLO SLI",
                    f"define a kind: SLI with metadata.name {ref!r} in the loaded files (known: {known})",
                )
            ]
        return _sli(sli_doc, ("spec",), catalog, origins)
    if "indicator" in spec:
        return _sli(doc, ("spec", "indicator", "spec"), catalog, origins)
    return None, [
        doc.error(
            ("spec",),
            "missing required key 'indicator'",
            "add indicator: (inline SLI) or indicatorRef: <SLI name>",
            at_key=True,
        )
    ]


def _sli(
    doc: Document, path: tuple[str, ...], catalog: Catalog, origins: Origins
) -> tuple[dict[str, Any] | None, list[SpecError]]:
    sli = doc.get(path) or {}
    if "thresholdMetric" in sli:
        return None, [
            doc.error(
                (*path, "thresholdMetric"),
                "thresholdMetric is not supported",
                "express the SLI as a ratioMetric (good or bad, and total)",
                at_key=True,
            )
        ]
    ratio = sli.get("ratioMetric")
    if not isinstance(ratio, dict):
        return None, [
            doc.error(
                path, "missing required key 'ratioMetric'", "add ratioMetric: good|bad + total"
            )
        ]
    rpath = (*path, "ratioMetric")
    if "raw" in ratio or "rawType" in ratio:
        return None, [
            doc.error(
                (*rpath, "raw" if "raw" in ratio else "rawType"),
                "a raw ratioMetric is not supported",
                "give good or bad, and total, as event counters",
                at_key=True,
            )
        ]
    present = [k for k in ("good", "bad") if k in ratio]
    if len(present) != 1:
        return None, [
            doc.error(
                rpath,
                "ratioMetric needs exactly one of good or bad"
                + (" (found both)" if len(present) == 2 else ""),
                "keep one of them next to total",
            )
        ]
    if "total" not in ratio:
        return None, [doc.error(rpath, "missing required key 'total'", "add total: metricSource")]
    counter = ratio.get("counter", False)
    events: dict[str, Any] = {}
    errors: list[SpecError] = []
    for key in (present[0], "total"):
        query, query_errors = _query(doc, (*rpath, key), counter is True, catalog)
        errors += query_errors
        events[key] = query
        origins.add(
            ("slos", 0, "sli", "events", key),
            doc,
            (*rpath, key, "metricSource", "spec", "query"),
        )
    origins.add(("slos", 0, "sli"), doc, rpath)
    return ({"events": events} if not errors else None), errors


def _query(
    doc: Document, path: tuple[Any, ...], counter: bool, catalog: Catalog
) -> tuple[str | None, list[SpecError]]:
    source_path = (*path, "metricSource")
    source = doc.get(source_path)
    if not isinstance(source, dict):
        return None, [doc.error(path, "missing required key 'metricSource'", "add metricSource")]
    source_type = source.get("type")
    if source_type is None and isinstance(source.get("metricSourceRef"), str):
        ref_doc = catalog.data_sources.get(source["metricSourceRef"])
        source_type = ref_doc.get(("spec", "type")) if ref_doc else None
    if not (isinstance(source_type, str) and source_type.lower() == "prometheus"):
        return None, [
            doc.error(
                (*source_path, "type") if "type" in source else source_path,
                f"metric source {source_type!r} is not supported",
                "slo-engine reads Prometheus: type: Prometheus with spec.query",
            )
        ]
    query = (
        (source.get("spec") or {}).get("query") if isinstance(source.get("spec"), dict) else None
    )
    qpath = (*source_path, "spec", "query")
    if not isinstance(query, str) or not query.strip():
        return None, [
            doc.error(
                (*source_path, "spec"),
                "missing required key 'query'",
                "give the PromQL as spec.query",
            )
        ]
    query = sloth_window(query).strip()
    if "{{window}}" in query:
        return query, []
    match = _COUNTER_QUERY.match(query) if counter else None
    if match is None:
        why = (
            "only a counter written as a selector or sum(selector) can be windowed automatically"
            if counter
            else "with counter: false the query must already count events over [{{window}}]"
        )
        return None, [
            doc.error(
                qpath,
                "cannot turn this query into a rate over a window",
                f"{why}; write it with a [{{{{window}}}}] range, e.g. sum(rate(x_total[{{{{window}}}}]))",
            )
        ]
    selector = match.group("inner") or match.group("plain")
    by = f" {match.group('by')} " if match.group("by") else ""
    return f"sum{by}(rate({selector}[{{{{window}}}}]))", []


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
                    f"label {key!r} is not a valid Prometheus label name and is not copied",
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
