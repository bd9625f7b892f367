"""Model validation of one native unit, every pydantic complaint mapped back to the line and
column the SRE wrote, with a hint on how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from engine.spec import promql
from engine.spec.document import Document, NativeUnit, did_you_mean
from engine.spec.errors import SpecError, split_hint
from engine.spec.load_result import LoadResult
from engine.spec.models import ServiceSpec
from engine.spec.reading import NATIVE_API_VERSION
from engine.spec.yaml_lines import MarkedMap

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


def validate_unit(unit: NativeUnit, result: LoadResult) -> ServiceSpec | None:
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


def check_raw_slos(unit: NativeUnit, result: LoadResult) -> None:
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
