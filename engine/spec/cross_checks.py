"""Checks across every loaded spec: SLO ids unique over all files, `depends_on` naming a
known service, and per-severity labels that collide with the ones alert routing owns.

`depends_on` naming a service that no loaded spec defines is a *warning*, not an error:
a service may depend on one whose SLOs live in another repository, and validating one
file on its own must not fail for that. Warnings never change the exit code.
"""

from __future__ import annotations

from engine.spec.document import NativeUnit, did_you_mean
from engine.spec.errors import SpecError
from engine.spec.labels import RENAMED_LABEL_PREFIX, RESERVED_ALERT_LABELS
from engine.spec.load_result import LoadResult
from engine.spec.models import ServiceSpec
from engine.spec.reading import NATIVE_API_VERSION
from engine.spec.yaml_lines import Mark


def _name_position(unit: NativeUnit, index: int) -> tuple[str, Mark]:
    doc, path = unit.origins.resolve(("slos", index, "name"))
    return doc.file, doc.mark(path)


def check_duplicate_ids(
    validated: list[tuple[NativeUnit, ServiceSpec]], result: LoadResult
) -> list[tuple[NativeUnit, ServiceSpec]]:
    """An SLO id (service/name) must be unique across every loaded file; point at both."""
    first_seen: dict[str, tuple[str, Mark]] = {}
    dup_positions: dict[str, list[tuple[str, Mark]]] = {}
    for unit, spec in validated:
        for i, slo in enumerate(spec.slos):
            slo_id = f"{spec.service}/{slo.name}"
            where = _name_position(unit, i)
            if slo_id in first_seen:
                dup_positions.setdefault(slo_id, [first_seen[slo_id]]).append(where)
            else:
                first_seen[slo_id] = where
    for slo_id, places in dup_positions.items():
        for file, mark in places:
            others = ", ".join(
                f"{f}:{m.line}:{m.column}" for f, m in places if (f, m) != (file, mark)
            )
            result.errors.append(
                SpecError(
                    file,
                    mark.line,
                    mark.column,
                    f"duplicate SLO id '{slo_id}' (also at {others})",
                    "SLO names must be unique within a service; rename one or remove the copy",
                )
            )
    if not dup_positions:
        return validated
    return [
        (unit, spec)
        for unit, spec in validated
        if not any(f"{spec.service}/{s.name}" in dup_positions for s in spec.slos)
    ]


def check_depends_on(validated: list[tuple[NativeUnit, ServiceSpec]], result: LoadResult) -> None:
    known = {spec.service for _, spec in validated}
    for unit, spec in validated:
        for j, dependency in enumerate(spec.depends_on):
            if dependency in known:
                continue
            doc, path = unit.origins.resolve(("depends_on", j))
            result.warnings.append(
                doc.error(
                    path,
                    f"depends_on names service '{dependency}', which no loaded spec defines",
                    did_you_mean(dependency, known - {spec.service})
                    if known - {spec.service}
                    else "load its spec too, or check the spelling",
                    severity="warning",
                )
            )


def check_reserved_severity_labels(
    validated: list[tuple[NativeUnit, ServiceSpec]], result: LoadResult
) -> None:
    """A per-severity label named like one the alert routing owns is kept, renamed: warn.

    Native specs only. In a Sloth file, `severity: critical|warning` on page_alert or
    ticket_alert is the norm, and carrying it as `spec_severity` is the documented import
    mapping (docs/generate.md), not a mistake in the file.
    """
    for unit, spec in validated:
        if unit.doc.data.get("apiVersion") != NATIVE_API_VERSION:
            continue
        for i, slo in enumerate(spec.slos):
            for key in ("page_labels", "ticket_labels"):
                labels = getattr(slo.alerting, key)
                for name in sorted(set(labels) & RESERVED_ALERT_LABELS):
                    doc, path = unit.origins.resolve(("slos", i, "alerting", key, name))
                    renamed = f"{RENAMED_LABEL_PREFIX}{name}"
                    result.warnings.append(
                        doc.error(
                            path,
                            f"alert label '{name}' is reserved; the alert carries "
                            f"{renamed}={labels[name]!r} instead",
                            "routing, inhibition and incidents rely on service, slo, tier and "
                            "severity=page|ticket; match on "
                            f"{renamed} in your Alertmanager routes, or drop the label",
                            at_key=True,
                            severity="warning",
                        )
                    )
