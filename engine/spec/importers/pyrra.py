"""Pyrra `pyrra.dev/v1alpha1` `ServiceLevelObjective` resources → native model input.

One resource is one SLO (and one unit, like an OpenSLO SLO). Mapping:
- Service: the label `pyrra.dev/service` when present, else `metadata.namespace`. Pyrra has
  no service; it turns a `pyrra.dev/x` label into the Prometheus label `x` on its rules, so
  `pyrra.dev/service: checkout` already means "service checkout" there, and a namespace is
  what teams usually run one service per. Neither: an error.
- Labels: each `pyrra.dev/x` label becomes the rule label `x`, as Pyrra does; `tier` and
  `owner` (else `team`) also fill the service's tier and owner. The other labels
  (`prometheus: k8s`, `role: alert-rules`) select Pyrra's PrometheusRule object for the
  Prometheus operator and mean nothing to slo-engine's rules: not copied.
- `metadata.name` → the SLO name; `spec.target` (a percent string, "99.5") → `objective`;
  `spec.window` → `period`; `spec.description` → `description`.
- `indicator.ratio{errors, total}` → events `bad`/`total` as `sum(rate(<metric>[{{window}}]))`.
- `indicator.latency{success, total}`: the success metric is `<histogram>_bucket{…, le="x"}`;
  when the total is `<histogram>_count` with the same other matchers (and x is a whole number
  of milliseconds) it is a latency SLI with threshold x seconds, otherwise an events SLI
  with `good` = success and `total` (what Pyrra computes either way).
- `indicator.latencyNative{latency, total}` → a native-histogram latency SLI (`native: true`)
  on the total's histogram, threshold `latency`.
- `indicator.bool_gauge{metric}` → an availability SLI over that 0/1 gauge.
- `grouping` → the SLO's `group_by` (one SLO per label value; the queries aggregate
  `sum by (labels)`). Without `group_by` support in the model it is an error at its line.
- `alerting.disabled: true` or `alerting.burnrates: false` → no page and no ticket alerts;
  `alerting.name` → the burn-rate alert name. `absent: false`, `absentName` and `severities`
  are ignored with a warning: slo-engine always raises `SLONoData` and alerts with
  severity page|ticket. `ruleOutput` is ignored with a warning (`slo-engine generate`
  writes the rules). `performanceOverAccuracy` changes the numbers: an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.spec.document import ANY, SCALAR, STR_MAP, Document, NativeUnit, Origins, check_shape
from engine.spec.errors import SpecError
from engine.spec.labels import RESERVED_ALERT_LABELS
from engine.spec.models import SLOSpec
from engine.spec.yaml_safety import shown

API_VERSION = "pyrra.dev/v1alpha1"
KIND = "ServiceLevelObjective"
LABEL_PREFIX = "pyrra.dev/"
SERVICE_LABEL = f"{LABEL_PREFIX}service"
TIER_LABEL, OWNER_LABELS = "tier", ("owner", "team")

_METRIC = {"metric": SCALAR}
_GROUPING = [SCALAR]
INDICATOR_SHAPES: dict[str, Any] = {
    "ratio": {"errors": _METRIC, "total": _METRIC, "grouping": _GROUPING},
    "latency": {"success": _METRIC, "total": _METRIC, "grouping": _GROUPING},
    "latencyNative": {"latency": SCALAR, "total": _METRIC, "grouping": _GROUPING},
    "bool_gauge": {"metric": SCALAR, "grouping": _GROUPING},
}
# Kubernetes bookkeeping a resource exported from a cluster carries; none of it matters here.
_K8S_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
    "finalizers",
    "ownerReferences",
    "generateName",
    "selfLink",
)
SHAPE: dict[str, Any] = {
    "apiVersion": SCALAR,
    "kind": SCALAR,
    "metadata": {
        "name": SCALAR,
        "namespace": SCALAR,
        "labels": STR_MAP,
        "annotations": STR_MAP,
        **dict.fromkeys(_K8S_METADATA, ANY),
    },
    "spec": {
        "description": SCALAR,
        "target": SCALAR,
        "window": SCALAR,
        "indicator": INDICATOR_SHAPES,
        "alerting": {
            "disabled": SCALAR,
            "burnrates": SCALAR,
            "absent": SCALAR,
            "name": SCALAR,
            "absentName": SCALAR,
            "severities": ANY,
        },
        "performanceOverAccuracy": ANY,
        "ruleOutput": ANY,
    },
    "status": ANY,
}

_SLO = ("slos", 0)
_SLI = (*_SLO, "sli")
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_STRING = r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'"
_SELECTOR = re.compile(rf"^\s*({_NAME})\s*(?:\{{(.*)\}})?\s*$", re.DOTALL)
_MATCHER = re.compile(rf"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*({_STRING})\s*")
_SELECTOR_HINT = 'write a metric selector, e.g. http_requests_total{job="api",code=~"5.."}'


@dataclass(frozen=True)
class Selector:
    """`name{label op "value", …}`; values keep their quotes, as written."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]

    @property
    def text(self) -> str:
        return f"{self.name}{{{self.matcher_text}}}" if self.matchers else self.name

    @property
    def matcher_text(self) -> str:
        return ",".join(f"{label}{op}{value}" for label, op, value in self.matchers)


def parse_selector(text: str) -> Selector | None:
    """A plain series selector, or None for anything else (functions, `{__name__=…}`)."""
    match = _SELECTOR.match(text)
    if match is None:
        return None
    body, matchers, pos = match.group(2) or "", [], 0
    while body[pos:].strip():
        found = _MATCHER.match(body, pos)
        if found is None:
            return None
        matchers.append((found.group(1), found.group(2), found.group(3)))
        pos = found.end()
        if pos < len(body) and body[pos] != ",":
            return None
        pos += 1
    return Selector(match.group(1), tuple(matchers))


def convert(doc: Document) -> tuple[list[NativeUnit], list[SpecError]]:
    """One ServiceLevelObjective → one unit; (units, errors). Warnings about ignored parts
    travel as the unit's notes (shown when it is valid)."""
    errors = check_shape(doc, SHAPE)
    if errors:
        return [], errors
    data = doc.data
    if data.get("kind") != KIND:
        return [], [
            doc.error(
                ("kind",), f"unsupported Pyrra kind {shown(data['kind'])}", f"write kind: {KIND}"
            )
            if "kind" in data
            else doc.error((), "missing required key 'kind'", f"add kind: {KIND}")
        ]
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return [], [doc.error((), "missing required key 'spec'", "add the SLO's spec")]
    origins = Origins.identity(doc)
    native: dict[str, Any] = {"apiVersion": "slo-engine/v1"}
    origins.add(("apiVersion",), doc, ("apiVersion",))
    errors = _service(doc, native, origins)
    notes = _labels(doc, native, origins)
    slo: dict[str, Any] = {}
    origins.add(_SLO, doc, ("spec",))
    problems = _slo_fields(doc, spec, slo, origins)
    problems += _indicator(doc, spec, slo, origins)
    problems += _alerting(doc, spec, slo, origins)
    native["slos"] = [slo]
    errors += [p for p in problems if p.severity == "error"]
    notes += [p for p in problems if p.severity == "warning"]
    if errors:
        return [], errors
    return [NativeUnit(doc, native, origins, notes)], []


def _service(doc: Document, native: dict[str, Any], origins: Origins) -> list[SpecError]:
    for path in (("metadata", "labels", SERVICE_LABEL), ("metadata", "namespace")):
        if doc.get(path) is not None:
            native["service"] = doc.get(path)
            origins.add(("service",), doc, path)
            return []
    return [
        doc.error(
            ("metadata",) if "metadata" in doc.data else (),
            "no service: a Pyrra SLO names its service with the label "
            f"{SERVICE_LABEL} or its metadata.namespace",
            f"add the label {SERVICE_LABEL}: <service> (or metadata.namespace)",
            at_key=True,
        )
    ]


def _labels(doc: Document, native: dict[str, Any], origins: Origins) -> list[SpecError]:
    """`pyrra.dev/x` labels: rule labels `x`, and the service's tier and owner."""
    labels = doc.get(("metadata", "labels")) or {}
    copied: dict[str, Any] = {}
    warnings: list[SpecError] = []
    for key, value in labels.items():
        name = str(key).removeprefix(LABEL_PREFIX)
        if not str(key).startswith(LABEL_PREFIX) or key == SERVICE_LABEL:
            continue
        path = ("metadata", "labels", key)
        if name == TIER_LABEL:
            native["tier"] = value
            origins.add(("tier",), doc, path)
            continue
        if name in OWNER_LABELS and ("owner" not in native or name == "owner"):
            native["owner"] = value
            origins.add(("owner",), doc, path)
        if name in RESERVED_ALERT_LABELS:
            warnings.append(
                doc.error(
                    path,
                    f"label {shown(key)} is not copied: slo-engine sets '{name}' on its alerts",
                    "remove it, or give it another name",
                    at_key=True,
                    severity="warning",
                )
            )
            continue
        copied[name] = value
        origins.add(("labels", name), doc, path)
    if copied:
        native["labels"] = copied
    return warnings


def _slo_fields(
    doc: Document, spec: dict[str, Any], slo: dict[str, Any], origins: Origins
) -> list[SpecError]:
    """Name, objective, period and description; the parts Pyrra computes differently."""
    problems: list[SpecError] = []
    slo["name"] = doc.get(("metadata", "name"))
    origins.add((*_SLO, "name"), doc, ("metadata", "name"))
    if slo["name"] is None:
        problems.append(doc.error((), "missing required key 'metadata.name'", "name the SLO"))
    for key, native_key, hint in (
        ("target", "objective", 'add target: "99.9" (a percentage, as a string)'),
        ("window", "period", "add window: 28d (the SLO period)"),
    ):
        if spec.get(key) is None:
            problems.append(doc.error(("spec",), f"missing required key '{key}'", hint))
        slo[native_key] = spec.get(key)
        origins.add((*_SLO, native_key), doc, ("spec", key))
    if spec.get("description") is not None:
        slo["description"] = spec["description"]
        origins.add((*_SLO, "description"), doc, ("spec", "description"))
    if "performanceOverAccuracy" in spec:
        problems.append(
            doc.error(
                ("spec", "performanceOverAccuracy"),
                "performanceOverAccuracy is not supported",
                "remove it: slo-engine evaluates every window from recorded bad and total "
                "events, there is no faster approximation to choose",
                at_key=True,
            )
        )
    if "ruleOutput" in spec:
        problems.append(
            doc.error(
                ("spec", "ruleOutput"),
                "ruleOutput is ignored",
                "slo-engine writes its own rule files: slo-engine generate",
                at_key=True,
                severity="warning",
            )
        )
    return problems


def _indicator(
    doc: Document, spec: dict[str, Any], slo: dict[str, Any], origins: Origins
) -> list[SpecError]:
    indicator = spec.get("indicator")
    kinds = [k for k in INDICATOR_SHAPES if isinstance(indicator, dict) and k in indicator]
    if len(kinds) != 1:
        return [
            doc.error(
                ("spec", "indicator") if indicator is not None else ("spec",),
                "an indicator has exactly one of "
                + ", ".join(INDICATOR_SHAPES)
                + (f" (found {', '.join(kinds)})" if kinds else ""),
                "keep one of them",
                at_key=True,
            )
        ]
    path = ("spec", "indicator", kinds[0])
    body = doc.get(path) or {}
    grouping, problems = _grouping(doc, path, body, slo, origins)
    converters = {
        "ratio": _ratio,
        "latency": _latency,
        "latencyNative": _latency_native,
        "bool_gauge": _bool_gauge,
    }
    sli, sli_problems = converters[kinds[0]](doc, path, grouping, origins)
    if sli is not None:
        slo["sli"] = sli
        origins.add(_SLI, doc, path)
    return problems + sli_problems


def _grouping(
    doc: Document,
    path: tuple[str, ...],
    body: dict[str, Any],
    slo: dict[str, Any],
    origins: Origins,
) -> tuple[list[str], list[SpecError]]:
    """`grouping` → the SLO's `group_by` when the model has it; an error when it has not."""
    grouping = body.get("grouping") or []
    if not grouping:
        return [], []
    if "group_by" not in SLOSpec.model_fields:
        return [], [
            doc.error(
                (*path, "grouping"),
                "grouping needs group_by support, which this slo-engine does not have",
                "remove grouping for one SLO over all series, or write one SLO per label "
                "value with a matcher in its metrics",
                at_key=True,
            )
        ]
    slo["group_by"] = list(grouping)
    origins.add((*_SLO, "group_by"), doc, (*path, "grouping"))
    return [str(label) for label in grouping], []


def _metric(doc: Document, path: tuple[str, ...]) -> tuple[Selector | None, list[SpecError]]:
    """The selector at `path` + `metric` (or at `path` itself when it names a scalar)."""
    value = doc.get(path)
    if isinstance(value, dict):
        value, path = value.get("metric"), (*path, "metric")
    if not isinstance(value, str) or not value.strip():
        return None, [doc.error(path, "missing required key 'metric'", _SELECTOR_HINT)]
    selector = parse_selector(value)
    if selector is None:
        return None, [
            doc.error(path, f"{shown(value.strip())} is not a metric selector", _SELECTOR_HINT)
        ]
    return selector, []


def _rate(selector: Selector, grouping: list[str]) -> str:
    by = f" by ({', '.join(grouping)}) " if grouping else ""
    return f"sum{by}(rate({selector.text}[{{{{window}}}}]))"


def _ratio(
    doc: Document, path: tuple[str, ...], grouping: list[str], origins: Origins
) -> tuple[dict[str, Any] | None, list[SpecError]]:
    errors_metric, problems = _metric(doc, (*path, "errors"))
    total, total_problems = _metric(doc, (*path, "total"))
    if errors_metric is None or total is None:
        return None, problems + total_problems
    origins.add((*_SLI, "events", "bad"), doc, (*path, "errors", "metric"))
    origins.add((*_SLI, "events", "total"), doc, (*path, "total", "metric"))
    return {"events": {"bad": _rate(errors_metric, grouping), "total": _rate(total, grouping)}}, []


def _latency(
    doc: Document, path: tuple[str, ...], grouping: list[str], origins: Origins
) -> tuple[dict[str, Any] | None, list[SpecError]]:
    success, problems = _metric(doc, (*path, "success"))
    total, total_problems = _metric(doc, (*path, "total"))
    if success is None or total is None:
        return None, problems + total_problems
    success_path = (*path, "success", "metric")
    les = [m for m in success.matchers if m[0] == "le"]
    if len(les) != 1 or les[0][1] != "=" or not success.name.endswith("_bucket"):
        return None, [
            doc.error(
                success_path,
                'the success metric must be a histogram bucket with one le="<seconds>" matcher',
                'e.g. http_request_duration_seconds_bucket{job="api",le="0.5"}',
            )
        ]
    histogram = success.name.removesuffix("_bucket")
    rest = tuple(m for m in success.matchers if m[0] != "le")
    threshold = _threshold(les[0])
    same_histogram = total.name == f"{histogram}_count" and sorted(total.matchers) == sorted(rest)
    if same_histogram and threshold is not None:
        for key in ("histogram", "threshold"):
            origins.add((*_SLI, "latency", key), doc, success_path)
        origins.add((*_SLI, "latency"), doc, (*path, "total", "metric"))
        selector = Selector(histogram, rest).matcher_text
        return {
            "latency": {"histogram": histogram, "selector": selector, "threshold": threshold}
        }, []
    # Another total (e.g. all requests, not only the bucket's matchers), or a bound that is
    # no whole number of milliseconds: good over total, which is what Pyrra computes.
    origins.add((*_SLI, "events", "good"), doc, success_path)
    origins.add((*_SLI, "events", "total"), doc, (*path, "total", "metric"))
    return {"events": {"good": _rate(success, grouping), "total": _rate(total, grouping)}}, []


def _threshold(le: tuple[str, str, str]) -> str | None:
    """`le="0.25"` → "250ms"; None unless a positive whole number of milliseconds."""
    try:
        ms = Decimal(le[2][1:-1]) * 1000
    except InvalidOperation:
        return None
    if not ms.is_finite() or ms <= 0 or ms != ms.to_integral_value():
        return None
    return f"{int(ms)}ms"


def _latency_native(
    doc: Document, path: tuple[str, ...], grouping: list[str], origins: Origins
) -> tuple[dict[str, Any] | None, list[SpecError]]:
    total, problems = _metric(doc, (*path, "total"))
    if total is None:
        return None, problems
    if doc.get((*path, "latency")) is None:
        return None, [
            doc.error(path, "missing required key 'latency'", "add latency: 300ms (the threshold)")
        ]
    origins.add((*_SLI, "latency"), doc, (*path, "total", "metric"))
    origins.add((*_SLI, "latency", "threshold"), doc, (*path, "latency"))
    latency = {
        "histogram": total.name,
        "selector": total.matcher_text,
        "threshold": doc.get((*path, "latency")),
        "native": True,
    }
    return {"latency": latency}, []


def _bool_gauge(
    doc: Document, path: tuple[str, ...], grouping: list[str], origins: Origins
) -> tuple[dict[str, Any] | None, list[SpecError]]:
    gauge, problems = _metric(doc, (*path, "metric"))
    if gauge is None:
        return None, problems
    origins.add((*_SLI, "availability"), doc, (*path, "metric"))
    return {"availability": {"metric": doc.get((*path, "metric")).strip()}}, []


def _alerting(
    doc: Document, spec: dict[str, Any], slo: dict[str, Any], origins: Origins
) -> list[SpecError]:
    alerting = spec.get("alerting") or {}
    base = ("spec", "alerting")
    out: dict[str, Any] = {}
    for key, off_when in (("disabled", True), ("burnrates", False)):
        if key not in alerting:
            continue
        value = alerting[key]
        # Booleans map; anything else goes to the model as is, which says what it wants.
        enabled = (value != off_when) if isinstance(value, bool) else value
        for severity in ("page", "ticket"):
            if out.get(severity) is not False:
                out[severity] = enabled
                origins.add((*_SLO, "alerting", severity), doc, (*base, key))
    if "name" in alerting:
        out["name"] = alerting["name"]
        origins.add((*_SLO, "alerting", "name"), doc, (*base, "name"))
    if out:
        slo["alerting"] = out
    ignored = {
        "absent": "slo-engine always raises SLONoData (a ticket) when an SLO records no data",
        "absentName": "the no-data alert is always named SLONoData",
        "severities": "slo-engine's alerts carry severity=page|ticket; route on those",
    }
    return [
        doc.error((*base, key), f"alerting.{key} is ignored", hint, at_key=True, severity="warning")
        for key, hint in ignored.items()
        if key in alerting and not (key == "absent" and alerting[key] is True)
    ]
