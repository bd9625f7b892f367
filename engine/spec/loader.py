"""Load SLO specs from files and directories, in any supported format, with exact errors.

    result = load_specs([Path("slo_specs")])
    if result.errors: print(*result.errors, sep="\\n")
    for slo in result.slos: ...

Each YAML document is recognised on its own: native (`apiVersion: slo-engine/v1`), Sloth
(`version: "prometheus/v1"`) or OpenSLO (`apiVersion: openslo/v1`). Importers turn foreign
documents into native model input; the pydantic models then validate everything, and every
complaint is mapped back to the line and column the SRE wrote. Cross-file checks (SLO ids,
`depends_on`) and one batched PromQL syntax check run last.

The steps live in their own modules: `reading` (files, documents, format), `validation`
(model errors → positions), `cross_checks` (ids, dependencies, reserved labels) and
`query_checks` (PromQL); this one runs them in order and assembles the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.spec.composite_checks import check_composites
from engine.spec.cross_checks import (
    check_depends_on,
    check_duplicate_ids,
    check_reserved_severity_labels,
)
from engine.spec.document import NativeUnit
from engine.spec.group_checks import check_groupings
from engine.spec.importers import openslo
from engine.spec.load_result import LoadResult
from engine.spec.models import SLO, ServiceSpec
from engine.spec.query_checks import check_promql
from engine.spec.reading import (
    ACCEPTED,
    NATIVE_API_VERSION,
    SPEC_SUFFIXES,
    dispatch_document,
    read_documents,
    spec_files,
)
from engine.spec.validation import check_raw_slos, validate_unit

__all__ = [
    "ACCEPTED",
    "NATIVE_API_VERSION",
    "SPEC_SUFFIXES",
    "LoadResult",
    "SpecLoading",
    "load_specs",
    "spec_files",
]


def load_specs(paths: Sequence[Path], defer_promql: bool = False) -> LoadResult:
    """Every spec under `paths`, validated. With `defer_promql`, promtool's parse of the
    queries is left running: the caller must `settle()` the result before trusting it (a
    one-shot `evaluate` asks Prometheus in the meantime; an SLO promtool rejects is then
    still among `slos`, and the settled errors make the run fail as before)."""
    loading = SpecLoading(paths)
    loading.read(loading.files)
    return loading.finish(defer_promql)


class SpecLoading:
    """`load_specs` in steps: `read` the files in as many batches as the caller likes,
    then `finish` (OpenSLO's cross-file references, the cross-file checks, PromQL). What
    `finish` returns does not depend on the batches. `read` returns the SLOs of the native
    and Sloth documents it validated — provisional: `finish` may still reject some (a
    duplicate id, invalid PromQL) — so a one-shot `evaluate` can ask Prometheus about the
    first files while it reads the rest."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.result = LoadResult()
        self.result.files, self.result.errors = spec_files([Path(p) for p in paths])
        self._catalog = openslo.Catalog()
        self._validated: list[tuple[NativeUnit, ServiceSpec]] = []

    @property
    def files(self) -> list[Path]:
        return list(self.result.files)

    def read(self, files: Sequence[Path]) -> list[SLO]:
        result, units = self.result, []
        for path in files:
            for doc in read_documents(path, result):
                dispatch_document(doc, units, self._catalog, result)
        provisional: list[SLO] = []
        for unit in units:
            spec = self._validate(unit)
            if spec is not None:
                provisional.extend(spec.slo_records(source=unit.doc.file))
        return provisional

    def _validate(self, unit: NativeUnit) -> ServiceSpec | None:
        spec = validate_unit(unit, self.result)
        if spec is not None:
            self._validated.append((unit, spec))
            self.result.warnings += unit.notes
        else:
            check_raw_slos(unit, self.result)
        return spec

    def finish(self, defer_promql: bool = False) -> LoadResult:
        result = self.result
        openslo_units, openslo_errors, openslo_warnings = openslo.convert_all(self._catalog)
        result.errors += openslo_errors
        result.warnings += openslo_warnings
        for unit in openslo_units:
            self._validate(unit)

        validated = check_duplicate_ids(self._validated, result)
        bad_ids = check_promql(validated, result, defer=defer_promql)
        bad_ids |= check_groupings(validated, bad_ids, result)
        bad_ids |= check_composites(validated, bad_ids, result)
        _assemble(validated, bad_ids, result)
        check_depends_on(validated, result)
        check_reserved_severity_labels(validated, result)
        # Importers may file a warning among their errors; sort each into its place, once.
        everything = set(result.errors) | set(result.warnings)
        result.errors = sorted(e for e in everything if e.severity == "error")
        result.warnings = sorted(e for e in everything if e.severity == "warning")
        return result


def _assemble(
    validated: list[tuple[NativeUnit, ServiceSpec]], bad_ids: set[str], result: LoadResult
) -> None:
    """Keep only SLOs without errors; OpenSLO SLOs of one service become one ServiceSpec."""
    openslo_index: dict[str, int] = {}
    for unit, spec in validated:
        keep = [s for s in spec.slos if f"{spec.service}/{s.name}" not in bad_ids]
        if not keep:
            continue
        if len(keep) != len(spec.slos):
            spec = spec.model_copy(update={"slos": keep})
        result.slos.extend(spec.slo_records(source=unit.doc.file))
        if unit.doc.data.get("apiVersion") != openslo.API_VERSION:
            result.services.append(spec)
        elif spec.service in openslo_index:
            i = openslo_index[spec.service]
            base = result.services[i]
            result.services[i] = base.model_copy(update={"slos": [*base.slos, *spec.slos]})
        else:
            openslo_index[spec.service] = len(result.services)
            result.services.append(spec)
