"""The range reads of a rule group: what a generated group costs Prometheus per evaluation.

Almost all of a rule group's cost is its range selectors over raw series (`x{…}[3d]` decodes
three days of samples of every matching series, every evaluation); instant selectors of
recorded `slo:*` series are one sample each. Prometheus evaluates both sides of `or`, `and`
and `unless` and shares nothing between rules or subexpressions, so every occurrence of a
range in the text is a read. This module lists them, so tests can hold the generator to
"each raw range read once per window per evaluation" and benchmarks can count reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.spec.promql_parse import Token, tokenize

RECORDED_PREFIX = "slo:"


@dataclass(frozen=True)
class RangeRead:
    operand: str  # the selector or subquery expression, whitespace removed
    window: str  # "5m", or "5m:30s" for a subquery
    rule: int  # position of the rule in its group
    name: str  # the rule's record or alert name

    @property
    def recorded(self) -> bool:
        """Reads a series recorded by the generated rules (cheap, one series)."""
        return self.operand.startswith(RECORDED_PREFIX)


def _operand_start(tokens: Sequence[Token], end: int) -> int:
    """Index of the first token of the operand ending at tokens[end] (a `}` or `)`
    closes a selector or a parenthesised expression; a bare name is itself)."""
    closing = tokens[end].text
    if closing not in ("}", ")"):
        return end
    opening = "{" if closing == "}" else "("
    depth, i = 0, end
    while i >= 0:
        if tokens[i].kind == "punct" and tokens[i].text == closing:
            depth += 1
        elif tokens[i].kind == "punct" and tokens[i].text == opening:
            depth -= 1
            if depth == 0:
                break
        i -= 1
    if closing == "}" and i > 0 and tokens[i - 1].kind == "ident":
        return i - 1
    return i


def expr_range_reads(expr: str) -> list[tuple[str, str]]:
    """(operand, window) of every range or subquery in a PromQL expression, in order."""
    tokens = tokenize(expr)
    reads = []
    for i, token in enumerate(tokens):
        if token.kind != "range" or i == 0:
            continue
        start = _operand_start(tokens, i - 1)
        operand = "".join(expr[tokens[start].start : tokens[i - 1].end].split())
        reads.append((operand, token.text[1:-1]))
    return reads


def group_range_reads(group: Mapping[str, Any]) -> list[RangeRead]:
    out = []
    for index, rule in enumerate(group["rules"]):
        name = rule.get("record") or rule.get("alert") or ""
        for operand, window in expr_range_reads(rule["expr"]):
            out.append(RangeRead(operand, window, index, name))
    return out


def repeated_raw_reads(group: Mapping[str, Any]) -> dict[tuple[str, str], list[RangeRead]]:
    """Raw ranges the group reads more than once per evaluation, with every read."""
    seen: dict[tuple[str, str], list[RangeRead]] = {}
    for read in group_range_reads(group):
        if not read.recorded:
            seen.setdefault((read.operand, read.window), []).append(read)
    return {key: reads for key, reads in seen.items() if len(reads) > 1}
