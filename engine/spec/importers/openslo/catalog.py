"""Every OpenSLO object of a load, checked against its kind's shape and catalogued by name,
so an SLO can refer to SLIs, Services and DataSources defined in any loaded file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.spec.document import ANY, SCALAR, Document, check_shape
from engine.spec.errors import SpecError
from engine.spec.yaml_safety import shown

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
                    "slo-engine alerts with its own multiwindow burn-rate policy; see alerting in docs/specs.md",
                    severity="warning",
                )
            )
            return
        if kind not in KINDS:
            self.errors.append(
                doc.error(
                    ("kind",) if "kind" in doc.data else (),
                    f"unsupported OpenSLO kind {shown(kind)}"
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
                        f"OpenSLO {kind} {shown(name)} is defined twice",
                        f"also at {first.file}:{first_mark.line}:{first_mark.column}; rename one",
                    )
                )
                return
            table[name] = doc
