"""Load SLO specs from files and directories, in any supported format, with exact errors.

    result = load_specs([Path("slo_specs")])
    if result.errors: print(*result.errors, sep="\\n")
    for slo in result.slos: ...

Each YAML document is recognised on its own: native (`apiVersion: slo-engine/v1`), Sloth
(`version: "prometheus/v1"`) or OpenSLO (`apiVersion: openslo/v1`). Importers turn foreign
documents into native model input; the pydantic models then validate everything, and every
complaint is mapped back to the line and column the SRE wrote. Cross-file checks (SLO ids,
`depends_on`) and one batched PromQL syntax check run last.

`depends_on` naming a service that no loaded spec defines is a *warning*, not an error:
a service may depend on one whose SLOs live in another repository, and validating one
file on its own must not fail for that. Warnings never change the exit code.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from engine.spec import promql
from engine.spec.document import Document, NativeUnit, Origins, did_you_mean
from engine.spec.errors import SpecError, split_hint
from engine.spec.importers import openslo, sloth
from engine.spec.labels import RENAMED_LABEL_PREFIX, RESERVED_ALERT_LABELS
from engine.spec.models import SLO, ServiceSpec
from engine.spec.yaml_lines import Mark, MarkedList, MarkedMap, parse_yaml

NATIVE_API_VERSION = "slo-engine/v1"
ACCEPTED = (
    f"apiVersion: {NATIVE_API_VERSION} (native), version: {sloth.VERSION} (Sloth) "
    f"or apiVersion: {openslo.API_VERSION} (OpenSLO)"
)
SPEC_SUFFIXES = (".yml", ".yaml")


@dataclass
class LoadResult:
    services: list[ServiceSpec] = field(default_factory=list)
    slos: list[SLO] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[SpecError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    # False when promtool was not found and only bracket/quote balance was checked.
    promql_parsed: bool = True

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def problems(self) -> list[SpecError]:
        """Errors and warnings together, sorted by file and position."""
        return sorted([*self.errors, *self.warnings])


def spec_files(paths: Sequence[Path]) -> tuple[list[Path], list[SpecError]]:
    """Files named directly, plus `*.yml`/`*.yaml` found recursively under directories."""
    files: list[Path] = []
    errors: list[SpecError] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SPEC_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                errors.append(
                    SpecError(
                        str(path),
                        1,
                        1,
                        "no *.yml or *.yaml files in this directory",
                        "point validate at the directory that holds the SLO specs",
                    )
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(SpecError(str(path), 1, 1, "no such file or directory"))
    unique = list(dict.fromkeys(files))
    return unique, errors


def load_specs(paths: Sequence[Path]) -> LoadResult:
    result = LoadResult()
    result.files, result.errors = spec_files([Path(p) for p in paths])
    units: list[NativeUnit] = []
    catalog = openslo.Catalog()
    for path in result.files:
        for doc in _read_documents(path, result):
            _dispatch(doc, units, catalog, result)
    openslo_units, openslo_errors, openslo_warnings = openslo.convert_all(catalog)
    result.errors += openslo_errors
    result.warnings += openslo_warnings

    validated: list[tuple[NativeUnit, ServiceSpec]] = []
    for unit in [*units, *openslo_units]:
        spec = _validate(unit, result)
        if spec is not None:
            validated.append((unit, spec))
            result.warnings += unit.notes
        else:
            _check_raw_slos(unit, result)

    validated = _check_duplicate_ids(validated, result)
    bad_ids = _check_promql(validated, result)
    _assemble(validated, bad_ids, result)
    _check_depends_on(validated, result)
    _check_reserved_severity_labels(validated, result)
    # Importers may file a warning among their errors; sort each into its place, once.
    everything = set(result.errors) | set(result.warnings)
    result.errors = sorted(e for e in everything if e.severity == "error")
    result.warnings = sorted(e for e in everything if e.severity == "warning")
    return result


# --- reading -------------------------------------------------------------------------


def _read_documents(path: Path, result: LoadResult) -> list[Document]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        result.errors.append(
            SpecError(name, 1, 1, f"not UTF-8 text ({exc.reason})", "save the file as UTF-8")
        )
        return []
    except OSError as exc:
        result.errors.append(SpecError(name, 1, 1, f"cannot read file: {exc.strerror}"))
        return []
    parsed = parse_yaml(text)
    for dup in parsed.duplicates:
        result.errors.append(
            SpecError(
                name,
                dup.second.line,
                dup.second.column,
                f"duplicate key '{dup.key}' (first at line {dup.first.line})",
                "YAML keeps only the last one; remove or rename one of them",
            )
        )
    if parsed.syntax_error is not None:
        err = parsed.syntax_error
        result.errors.append(SpecError(name, err.mark.line, err.mark.column, err.message, err.hint))
        return []  # documents before the error may be half a spec; report the syntax first
    documents = []
    for ydoc in parsed.documents:
        if ydoc.data is None:
            continue  # an empty document between `---` separators
        if isinstance(ydoc.data, MarkedList) and all(
            isinstance(item, dict) and item.get("apiVersion") == openslo.API_VERSION
            for item in ydoc.data
        ):
            # OpenSLO allows a list of objects in one document.
            documents.extend(
                Document(name, item, ydoc.data, ydoc.data.item_marks[i], (i,))
                for i, item in enumerate(ydoc.data)
            )
        else:
            documents.append(Document(name, ydoc.data, ydoc.data, ydoc.start))
    if not documents:
        result.errors.append(
            SpecError(
                name,
                1,
                1,
                "file is empty",
                f"write an SLO spec ({ACCEPTED}) or remove the file",
            )
        )
    return documents


def _dispatch(
    doc: Document, units: list[NativeUnit], catalog: openslo.Catalog, result: LoadResult
) -> None:
    """Recognise the format of one document and hand it to its converter."""
    data = doc.data
    if not isinstance(data, dict):
        result.errors.append(
            doc.error(
                (),
                f"not an SLO spec: the document is {'a list' if isinstance(data, list) else 'a single value'}",
                f"accepted formats: {ACCEPTED}",
            )
        )
        return
    api_version = data.get("apiVersion")
    version = data.get("version")
    if api_version == NATIVE_API_VERSION:
        units.append(NativeUnit(doc, dict(data), Origins.identity(doc)))
    elif api_version == openslo.API_VERSION:
        catalog.add(doc)
    elif api_version is None and version == sloth.VERSION:
        converted, errors = sloth.convert(doc)
        units.extend(converted)
        result.errors += errors
    elif api_version is not None:
        hint = f"accepted formats: {ACCEPTED}"
        if isinstance(api_version, str) and api_version.startswith("openslo/"):
            hint = f"only {openslo.API_VERSION} of OpenSLO is supported"
        elif isinstance(api_version, str) and api_version.startswith("slo-engine/"):
            hint = f"write apiVersion: {NATIVE_API_VERSION}"
        elif isinstance(api_version, str) and "sloth" in api_version:
            hint = f"Sloth's Kubernetes CRD is not read; use a plain Sloth file (version: {sloth.VERSION})"
        result.errors.append(
            doc.error(("apiVersion",), f"unsupported apiVersion {api_version!r}", hint)
        )
    elif version is not None:
        result.errors.append(
            doc.error(
                ("version",),
                f"unsupported Sloth version {version!r}",
                f'write version: "{sloth.VERSION}"',
            )
        )
    elif "service" in data and "slos" in data:
        result.errors.append(
            doc.error(
                (),
                "missing required key 'apiVersion'",
                f"start the file with apiVersion: {NATIVE_API_VERSION}",
            )
        )
    else:
        result.errors.append(
            doc.error(
                (), "not an SLO spec: no apiVersion or version key", f"accepted formats: {ACCEPTED}"
            )
        )


# --- model validation, mapped back to source positions ----------------------------------

_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "list_type": "a list (lines starting with '- ')",
    "float_type": "a number",
    "float_parsing": "a number",
}
_MISSING_HINTS = {
    "apiVersion": f"add apiVersion: {NATIVE_API_VERSION}",
    "service": "add service: <name>, e.g. service: api",
    "slos": "add slos: with at least one SLO (name, objective, sli)",
    "name": "add name: <slo name>, e.g. name: availability",
    "objective": "add objective: <percent>, e.g. objective: 99.9",
    "sli": "add sli: with one of events, latency or availability",
    "total": "add total: <PromQL counting all events over [{{window}}]>",
    "histogram": "add histogram: <base name>, e.g. http_request_duration_seconds",
    "threshold": "add threshold: <bucket bound>, e.g. 500ms",
    "metric": 'add metric: <0/1 gauge selector>, e.g. up{job="db"}',
    "severity": "add severity: page or ticket",
    "long_window": "add long_window: <duration>, e.g. 1h",
    "short_window": "add short_window: <duration>, e.g. 5m",
}


def _validate(unit: NativeUnit, result: LoadResult) -> ServiceSpec | None:
    try:
        spec = ServiceSpec.model_validate(unit.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # A misspelt key also makes the real key "missing"; the did-you-mean says it all.
        misspelt = set()
        for error in errors:
            if error["type"] == "extra_forbidden":
                model = _model_at(error["loc"][:-1])
                for close in difflib.get_close_matches(
                    str(error["loc"][-1]), _allowed_keys(model) if model else [], n=1, cutoff=0.6
                ):
                    misspelt.add((*error["loc"][:-1], close))
        for error in errors:
            if error["type"] == "missing" and tuple(error["loc"]) in misspelt:
                continue
            result.errors.append(_map_error(unit, error))
        return None
    ratio_like = [i for i, slo in enumerate(spec.slos) if slo.objective < 1]
    for i in ratio_like:
        _report_ratio_like(unit, i, spec.slos[i].objective, result)
    return None if ratio_like else spec


def _report_ratio_like(unit: NativeUnit, index: int, value: Decimal, result: LoadResult) -> None:
    doc, path = unit.origins.resolve(("slos", index, "objective"))
    result.errors.append(
        doc.error(
            path,
            f"objective {value} looks like a ratio, but objectives are percentages",
            f"write {(value * 100).normalize():f}, not {value}",
        )
    )


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = ServiceSpec
    for step in loc:
        if isinstance(step, int):
            continue
        if model is None:
            return None
        match = [f for n, f in model.model_fields.items() if step in (n, f.alias)]
        model = _inner_model(match[0].annotation) if match else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"


def _map_error(unit: NativeUnit, error: Any) -> SpecError:
    loc: tuple[Any, ...] = tuple(error["loc"])
    kind: str = error["type"]
    doc, path = unit.origins.resolve(loc)
    key = str(path[-1]) if path and isinstance(path[-1], str) else (str(loc[-1]) if loc else "")
    value = error.get("input")

    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        hint = did_you_mean(str(loc[-1]), _allowed_keys(model)) if model else ""
        return doc.error(path, f"unknown key '{loc[-1]}'", hint, at_key=True)
    if kind == "missing":
        field_name = str(loc[-1])
        return doc.error(
            path,
            f"missing required key '{field_name}'",
            _MISSING_HINTS.get(field_name, f"add {field_name}:"),
        )
    if kind in _EXPECTED:
        hint = (
            "quote the value"
            if kind == "string_type" and not isinstance(value, dict | list)
            else ""
        )
        return doc.error(path, f"'{key}' must be {_EXPECTED[kind]}, found {_describe(value)}", hint)
    if kind in ("enum", "literal_error"):
        expected = error.get("ctx", {}).get("expected", "")
        return doc.error(path, f"'{key}' cannot be {value!r}", f"use one of {expected}")
    if kind == "string_pattern_mismatch":
        return doc.error(
            path,
            f"'{key}' value {value!r} is not a valid name",
            "use letters, digits, '_' and ':' (not starting with a digit)",
        )

    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    text, hint = split_hint(message)
    if not hint and text.endswith("is not a valid Prometheus label name"):
        hint = "use letters, digits and '_', not starting with a digit (e.g. team_name)"
    node = doc.get(path)
    # Model-level errors name the offending entry; point at it rather than at its parent.
    if isinstance(node, MarkedMap):
        if text.startswith("an sli has exactly one kind"):
            kinds = [k for k in ("events", "latency", "availability") if k in node]
            if len(kinds) > 1:
                return doc.error((*path, kinds[1]), text, hint or "keep one kind", at_key=True)
        for name in node:
            if f"{name!r}" in text:
                return doc.error((*path, name), text, hint, at_key=True)
    if "appears twice in service" in text and isinstance(node, MarkedMap):
        return _duplicate_name_error(doc, path, node, text)
    if not hint and len(loc) and kind in ("greater_than", "greater_than_equal", "too_short"):
        hint = f"check '{key}'"
    prefix = key and isinstance(path[-1], str) and not text.startswith(key)
    return doc.error(path, f"{key}: {text}" if prefix else text, hint)


def _duplicate_name_error(
    doc: Document, path: tuple[Any, ...], node: MarkedMap, text: str
) -> SpecError:
    seen: dict[Any, int] = {}
    slos = node.get("slos") or []
    for i, slo in enumerate(slos):
        name = slo.get("name") if isinstance(slo, dict) else None
        if name in seen:
            first = doc.mark((*path, "slos", seen[name], "name"))
            return doc.error(
                (*path, "slos", i, "name"),
                text,
                f"first defined at line {first.line}; rename one",
            )
        seen[name] = i
    return doc.error(path, text)


# --- checks across specs ----------------------------------------------------------------


def _name_position(unit: NativeUnit, index: int) -> tuple[str, Mark]:
    doc, path = unit.origins.resolve(("slos", index, "name"))
    return doc.file, doc.mark(path)


def _check_duplicate_ids(
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


def _check_depends_on(validated: list[tuple[NativeUnit, ServiceSpec]], result: LoadResult) -> None:
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


def _check_reserved_severity_labels(
    validated: list[tuple[NativeUnit, ServiceSpec]], result: LoadResult
) -> None:
    """A per-severity label named like one the alert routing owns is kept, renamed: warn.

    Native specs only. In a Sloth file, `severity: critical|warning` on page_alert or
    ticket_alert is the norm, and carrying it as `spec_severity` is the documented import
    mapping (docs/readme/generate.md), not a mistake in the file.
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


@dataclass(frozen=True)
class _Query:
    slo_id: str
    text: str  # what promtool parses
    written: str  # what the SRE wrote, for balance checks whose offsets must match it
    file: str
    mark: Mark


def _queries(unit: NativeUnit, spec: ServiceSpec) -> list[_Query]:
    found = []
    for i, slo in enumerate(spec.slos):
        slo_id = f"{spec.service}/{slo.name}"
        base = ("slos", i, "sli")
        candidates: list[tuple[tuple[Any, ...], str, str]] = []
        if slo.sli.events is not None:
            for key in ("bad", "good", "total"):
                text = getattr(slo.sli.events, key)
                if text is not None:
                    candidates.append(((*base, "events", key), text, text))
        elif slo.sli.latency is not None:
            lat = slo.sli.latency
            candidates.append(
                (
                    (*base, "latency", "selector"),
                    f"{lat.histogram}_bucket{{{lat.selector}}}",
                    lat.selector,
                )
            )
        elif slo.sli.availability is not None:
            metric = slo.sli.availability.metric
            candidates.append(((*base, "availability", "metric"), metric, metric))
        for loc, text, written in candidates:
            doc, path = unit.origins.resolve(loc)
            found.append(_Query(slo_id, text, written, doc.file, doc.mark(path)))
    return found


def _check_raw_slos(unit: NativeUnit, result: LoadResult) -> None:
    """The checks that run after model validation (ratio-like objectives, bracket/quote
    balance), applied to the raw SLOs of a service that failed it, so one `validate` round
    reports everything instead of revealing these only after the other errors are fixed."""
    slos = unit.data.get("slos")
    for i, slo in enumerate(slos if isinstance(slos, list) else []):
        objective = slo.get("objective") if isinstance(slo, dict) else None
        if (
            isinstance(objective, int | float)
            and not isinstance(objective, bool)
            and 0 < objective < 1
        ):
            _report_ratio_like(unit, i, Decimal(repr(objective)), result)
        sli = slo.get("sli") if isinstance(slo, dict) else None
        if not isinstance(sli, dict):
            continue
        for kind, keys in (
            ("events", ("bad", "good", "total")),
            ("latency", ("selector",)),
            ("availability", ("metric",)),
        ):
            body = sli.get(kind)
            for key in keys if isinstance(body, dict) else ():
                written = body.get(key)
                problem = promql.balance_problem(written) if isinstance(written, str) else None
                if problem is not None:
                    doc, path = unit.origins.resolve(("slos", i, "sli", kind, key))
                    mark = doc.mark(path)
                    result.errors.append(SpecError(doc.file, mark.line, mark.column, *problem))


def _check_promql(validated: list[tuple[NativeUnit, ServiceSpec]], result: LoadResult) -> set[str]:
    """Balance checks always; the full parse through one promtool call when available."""
    bad_ids: set[str] = set()
    to_parse: list[_Query] = []
    for unit, spec in validated:
        for query in _queries(unit, spec):
            problem = promql.balance_problem(query.written)
            if problem is not None:
                bad_ids.add(query.slo_id)
                result.errors.append(
                    SpecError(query.file, query.mark.line, query.mark.column, *problem)
                )
            else:
                to_parse.append(query)
    tool = promql.promtool_path()
    if tool is None:
        result.promql_parsed = False
        return bad_ids
    for problem in promql.promtool_problems([q.text for q in to_parse], tool):
        if problem.index < 0:
            first = to_parse[0]
            result.errors.append(SpecError(first.file, 1, 1, problem.message, problem.hint))
            bad_ids.update(q.slo_id for q in to_parse)
            continue
        query = to_parse[problem.index]
        bad_ids.add(query.slo_id)
        if any(
            (e.file, e.line, e.column) == (query.file, query.mark.line, query.mark.column)
            for e in result.errors
        ):
            continue  # one source query feeding two rules (a Sloth raw SLI): say it once
        result.errors.append(
            SpecError(query.file, query.mark.line, query.mark.column, problem.message, problem.hint)
        )
    return bad_ids


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
