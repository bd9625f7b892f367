"""Sloth `version: "prometheus/v1"` files → native model input.

Mapping (documented in docs/specs.md):
- `service`, `labels` → the service; labels `tier`, `owner` (else `team`) and `depends_on`
  (comma-separated) also fill those service fields. Sloth has no period in the file; 30d.
- `slos[].labels` and `alerting.labels` → `alerting.labels` (both end up on the SLO's rules).
- `events.error_query/total_query` → `events.bad/total`; `{{.window}}` → `{{window}}`.
- `raw.error_ratio_query` (a ready-made 0–1 error ratio): our maths needs bad and total
  counts, so it becomes an events SLI with bad = the ratio and total = `ratio * 0 + 1`:
  one synthetic "event" per second with the ratio's own labels (so `bad / total` matches
  series and is NaN exactly when the ratio is). Over any window, bad/total is then the
  time-weighted mean of the ratio — the best a pre-computed ratio allows — and the
  low-traffic guard is switched off because those counts are not real requests. A warning
  says so.
- `alerting.name` → `alerting.name`; `page_alert`/`ticket_alert` → `page`/`ticket`
  (`disable`) and `page_labels`/`page_annotations`/`ticket_labels`/`ticket_annotations`;
  annotation `runbook_url` (or `runbook`) → `runbook_url`.
- `sli.plugin` cannot be expanded without Sloth's plugin code: an error.
"""

from __future__ import annotations

import re
from typing import Any

from engine.spec.document import ANY, SCALAR, STR_MAP, Document, NativeUnit, Origins, check_shape
from engine.spec.errors import SpecError

VERSION = "prometheus/v1"
_WINDOW = re.compile(r"\{\{\s*\.window\s*\}\}")

_ALERT = {"disable": SCALAR, "labels": STR_MAP, "annotations": STR_MAP}
SHAPE: dict[str, Any] = {
    "version": SCALAR,
    "service": SCALAR,
    "labels": STR_MAP,
    "slos": [
        {
            "name": SCALAR,
            "objective": SCALAR,
            "description": SCALAR,
            "labels": STR_MAP,
            "sli": {
                "events": {"error_query": SCALAR, "total_query": SCALAR},
                "raw": {"error_ratio_query": SCALAR, "errorRatioQuery": SCALAR},
                "plugin": ANY,
            },
            "alerting": {
                "name": SCALAR,
                "labels": STR_MAP,
                "annotations": STR_MAP,
                "page_alert": _ALERT,
                "ticket_alert": _ALERT,
            },
        }
    ],
}

# Service labels that fill service fields instead of (only) being Prometheus labels.
TIER_LABEL, OWNER_LABELS, DEPENDS_LABEL = "tier", ("owner", "team"), "depends_on"


def window(query: Any) -> Any:
    """Sloth's Go-template placeholder to ours; anything but a string is left for the model."""
    return _WINDOW.sub("{{window}}", query) if isinstance(query, str) else query


def convert(doc: Document) -> tuple[list[NativeUnit], list[SpecError]]:
    errors = check_shape(doc, SHAPE)
    if errors:
        return [], errors
    data = doc.data
    origins = Origins.identity(doc)
    labels = dict(data.get("labels") or {})
    native: dict[str, Any] = {
        "apiVersion": "slo-engine/v1",
        "service": data.get("service"),
        "labels": labels,
    }
    origins.add(("apiVersion",), doc, ("version",))
    if TIER_LABEL in labels:
        native["tier"] = labels[TIER_LABEL]
        origins.add(("tier",), doc, ("labels", TIER_LABEL))
    for key in OWNER_LABELS:
        if key in labels:
            native["owner"] = labels[key]
            origins.add(("owner",), doc, ("labels", key))
            break
    if isinstance(labels.get(DEPENDS_LABEL), str):
        native["depends_on"] = [s.strip() for s in labels[DEPENDS_LABEL].split(",") if s.strip()]
        for j in range(len(native["depends_on"])):
            origins.add(("depends_on", j), doc, ("labels", DEPENDS_LABEL))

    slos = data.get("slos")
    if slos is None:
        return [], [
            doc.error(
                (),
                "missing required key 'slos'",
                "add slos: with at least one SLO (name, objective, sli)",
            )
        ]
    notes: list[SpecError] = []
    native_slos = []
    for i, slo in enumerate(slos):
        if not isinstance(slo, dict):  # an empty `- ` (a file cut short): nothing to convert
            errors.append(
                doc.error(
                    ("slos", i),
                    "an SLO must be a mapping",
                    "write name:, objective: and sli: under the '- '",
                )
            )
            continue
        converted, slo_errors, slo_notes = _convert_slo(doc, i, slo, origins)
        errors.extend(slo_errors)
        notes.extend(slo_notes)
        native_slos.append(converted)
    native["slos"] = native_slos
    if errors:
        return [], errors
    return [NativeUnit(doc, native, origins, notes)], []


def _convert_slo(
    doc: Document, i: int, slo: dict[str, Any], origins: Origins
) -> tuple[dict[str, Any], list[SpecError], list[SpecError]]:
    base = ("slos", i)
    out: dict[str, Any] = {}
    for key in ("name", "objective", "description"):
        if key in slo:
            out[key] = slo[key]
    if slo.get("description") is None:
        out.pop("description", None)

    errors: list[SpecError] = []
    notes: list[SpecError] = []
    sli = slo.get("sli")
    if isinstance(sli, dict):
        errors, notes = _convert_sli(doc, base, sli, out, origins)
    if "sli" in slo:
        origins.add((*base, "sli"), doc, (*base, "sli"))
    _convert_alerting(doc, base, slo, out, origins)
    return out, errors, notes


def _convert_sli(
    doc: Document,
    base: tuple[Any, ...],
    sli: dict[str, Any],
    out: dict[str, Any],
    origins: Origins,
) -> tuple[list[SpecError], list[SpecError]]:
    """`sli.events` or `sli.raw` into `out["sli"]`; (errors, notes)."""
    kinds = [k for k in ("events", "raw", "plugin") if k in sli]
    if "plugin" in sli:
        return [
            doc.error(
                (*base, "sli", "plugin"),
                "Sloth SLI plugins are not supported",
                "write the plugin's queries out as sli.events (error_query, total_query)",
                at_key=True,
            )
        ], []
    if len(kinds) > 1:
        return [
            doc.error(
                (*base, "sli", kinds[1]),
                f"an sli has exactly one kind (found {', '.join(kinds)})",
                "keep either events or raw",
                at_key=True,
            )
        ], []
    if "events" in sli:
        events = sli["events"] or {}
        out["sli"] = {
            "events": {
                k: window(events.get(src))
                for k, src in (("bad", "error_query"), ("total", "total_query"))
                if src in events
            }
        }
        origins.add((*base, "sli", "events", "bad"), doc, (*base, "sli", "events", "error_query"))
        origins.add((*base, "sli", "events", "total"), doc, (*base, "sli", "events", "total_query"))
        origins.add((*base, "sli", "events"), doc, (*base, "sli", "events"))
    elif "raw" in sli:
        return _convert_raw_sli(doc, base, sli["raw"] or {}, out, origins)
    return [], []


def _convert_raw_sli(
    doc: Document,
    base: tuple[Any, ...],
    raw: dict[str, Any],
    out: dict[str, Any],
    origins: Origins,
) -> tuple[list[SpecError], list[SpecError]]:
    """A ready-made error ratio as bad = ratio, total = 1 per second (see the module doc)."""
    key = "error_ratio_query" if "error_ratio_query" in raw else "errorRatioQuery"
    ratio = window(raw.get(key))
    if not isinstance(ratio, str):
        return [
            doc.error(
                (*base, "sli", "raw"),
                "missing required key 'error_ratio_query'",
                "give a PromQL error ratio (0–1) using [{{.window}}]",
                at_key=True,
            )
        ], []
    ratio = ratio.strip()
    out["sli"] = {"events": {"bad": f"({ratio})", "total": f"({ratio}) * 0 + 1"}}
    out.setdefault("alerting", {})["low_traffic"] = {"enabled": False}
    for native_key in ("bad", "total"):
        origins.add((*base, "sli", "events", native_key), doc, (*base, "sli", "raw", key))
    return [], [
        doc.error(
            (*base, "sli", "raw"),
            "raw error-ratio SLI imported as a time-weighted ratio",
            "every second counts equally (not every request) and the low-traffic "
            "guard is off; prefer sli.events with error_query/total_query",
            at_key=True,
            severity="warning",
        )
    ]


def _convert_alerting(
    doc: Document,
    base: tuple[Any, ...],
    slo: dict[str, Any],
    out: dict[str, Any],
    origins: Origins,
) -> None:
    """Labels, annotations, the alert name and `page_alert`/`ticket_alert` into `alerting`."""
    alerting = slo.get("alerting") or {}
    native_alerting: dict[str, Any] = out.setdefault("alerting", {})
    labels: dict[str, Any] = {}
    for source in ((*base, "labels"), (*base, "alerting", "labels")):
        for k, v in (doc.get(source) or {}).items():
            labels[k] = v
            origins.add((*base, "alerting", "labels", k), doc, (*source, k))
    if labels:
        native_alerting["labels"] = labels
    annotations = dict(alerting.get("annotations") or {})
    for key in ("runbook_url", "runbook"):
        if key in annotations:
            native_alerting["runbook_url"] = annotations.pop(key)
            origins.add(
                (*base, "alerting", "runbook_url"), doc, (*base, "alerting", "annotations", key)
            )
            break
    if annotations:
        native_alerting["annotations"] = annotations
    if "name" in alerting:
        native_alerting["name"] = alerting["name"]
    for severity in ("page", "ticket"):
        alert = alerting.get(f"{severity}_alert") or {}
        src = (*base, "alerting", f"{severity}_alert")
        if "disable" in alert:
            # Sloth's `disable: true` is our `page: false`; keep non-booleans for the model.
            disable = alert["disable"]
            native_alerting[severity] = (not disable) if isinstance(disable, bool) else disable
            origins.add((*base, "alerting", severity), doc, (*src, "disable"))
        for part in ("labels", "annotations"):
            if alert.get(part):
                native_alerting[f"{severity}_{part}"] = dict(alert[part])
                origins.add((*base, "alerting", f"{severity}_{part}"), doc, (*src, part))
    origins.add((*base, "alerting"), doc, (*base, "alerting"))
