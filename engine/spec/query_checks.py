"""The SLI queries of every valid spec, checked in one batch: bracket/quote balance always
(offsets match what the SRE wrote), the full PromQL parse through one promtool call when
promtool is installed, else through the promql-parser package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.spec import promql
from engine.spec.document import Document, NativeUnit
from engine.spec.errors import SpecError
from engine.spec.load_result import LoadResult
from engine.spec.models import ServiceSpec
from engine.spec.yaml_lines import Path as YamlPath


@dataclass(frozen=True)
class _Query:
    slo_id: str
    text: str  # what promtool parses
    written: str  # what the SRE wrote, for balance checks whose offsets must match it
    doc: Document
    path: YamlPath  # in `doc`; its mark is looked up only for a query with a problem

    @property
    def file(self) -> str:
        return self.doc.file

    def error(self, message: str, hint: str) -> SpecError:
        mark = self.doc.mark(self.path)
        return SpecError(self.doc.file, mark.line, mark.column, message, hint)


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
            found.append(_Query(slo_id, text, written, doc, path))
    return found


def check_promql(
    validated: list[tuple[NativeUnit, ServiceSpec]], result: LoadResult, defer: bool = False
) -> set[str]:
    """Balance checks always; the full parse through one promtool call when available,
    else promql-parser; `result.promql_parsed` is False only when neither exists. With
    `defer`, the promtool run is left going and its verdict lands in `result.pending`
    (`LoadResult.settle`); the ids it would reject are then not known here."""
    bad_ids: set[str] = set()
    to_parse: list[_Query] = []
    for unit, spec in validated:
        for query in _queries(unit, spec):
            problem = promql.balance_problem(query.written)
            if problem is not None:
                bad_ids.add(query.slo_id)
                result.errors.append(query.error(*problem))
            else:
                to_parse.append(query)
    tool = promql.promtool_path()
    texts = [q.text for q in to_parse]
    if tool and defer:
        verdict = promql.start_promtool(texts, tool)
        result.pending.append(lambda: _record(verdict(), to_parse, result))
        return bad_ids
    problems = promql.promtool_problems(texts, tool) if tool else promql.parser_problems(texts)
    if problems is None:
        result.promql_parsed = False
        return bad_ids
    return bad_ids | _record(problems, to_parse, result)


def _record(problems: list[promql.Problem], to_parse: list[_Query], result: LoadResult) -> set[str]:
    """Each problem as an error at its query; the ids of the SLOs they belong to."""
    bad_ids: set[str] = set()
    for problem in problems:
        if problem.index < 0:
            first = to_parse[0]
            result.errors.append(SpecError(first.file, 1, 1, problem.message, problem.hint))
            bad_ids.update(q.slo_id for q in to_parse)
            continue
        query = to_parse[problem.index]
        bad_ids.add(query.slo_id)
        error = query.error(problem.message, problem.hint)
        if any(
            (e.file, e.line, e.column) == (error.file, error.line, error.column)
            for e in result.errors
        ):
            continue  # one source query feeding two rules (a Sloth raw SLI): say it once
        result.errors.append(error)
    return bad_ids
