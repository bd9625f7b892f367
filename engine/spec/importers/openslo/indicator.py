"""The SLI of an OpenSLO SLO (inline `indicator` or `indicatorRef`): a `ratioMetric` of
Prometheus queries, each turned into a rate over `{{window}}` when that can be done safely."""

from __future__ import annotations

import re
from typing import Any

from engine.spec.document import Document, Origins
from engine.spec.errors import SpecError
from engine.spec.importers.openslo.catalog import Catalog
from engine.spec.importers.sloth import window as sloth_window
from engine.spec.yaml_safety import shown

_SELECTOR = r"[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^{}]*\})?"
_COUNTER_QUERY = re.compile(
    rf"^\s*(?:sum\s*(?P<by>(?:by|without)\s*\([^()]*\))?\s*\(\s*(?P<inner>{_SELECTOR})\s*\)"
    rf"|(?P<plain>{_SELECTOR}))\s*$"
)


def convert_indicator(
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
                    f"indicatorRef {shown(ref)} names no OpenSLO SLI",
                    f"define a kind: SLI with metadata.name {shown(ref)} in the loaded files (known: {known})",
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
                f"metric source {shown(source_type)} is not supported",
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
