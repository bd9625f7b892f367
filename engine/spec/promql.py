"""PromQL syntax checks for spec queries.

The real parser is promtool's: every query of a validate run goes into ONE temporary rule
file as a recording rule (with `{{window}}` replaced by 5m) and a single `promtool check
rules` call parses them all, so checking fifty SLOs costs one process start, not fifty.
Without promtool (a pip install, a slim image) the `promql-parser` package parses them —
Prometheus' grammar in Rust, in process — with the same messages but no positions inside the
query (the error still points at the query's line). Without either we still catch what
people actually get wrong — unbalanced brackets and quotes — and say once that the full
check was skipped.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import yaml

from engine.spec.models import WINDOW_PLACEHOLDER

# What a window placeholder becomes for parsing; any valid duration would do.
CHECK_WINDOW = "5m"
_RECORD_PREFIX = "slo_engine:validate:"
_CLOSER_OF = {"(": ")", "[": "]", "{": "}"}
# What the balance scan stops at outside strings (a backslash there escapes nothing).
_SPECIAL = re.compile(r"[\"'`#()\[\]{}]")
# Every byte but those and the backslash, for the skeleton of a query; longer skeletons
# than _SHAPE_LIMIT are scanned, not remembered.
_NOT_SPECIAL = bytes(b for b in range(256) if chr(b) not in "\"'`#()[]{}\\")
_SHAPE_LIMIT = 512
# The string literals _first_problem skips, found left to right in the UTF-8 bytes.
_CLOSED_STRINGS = re.compile(
    rb'"[^"\\]*(?:\\.[^"\\]*)*"|\'[^\'\\]*(?:\\.[^\'\\]*)*\'|`[^`]*`', re.DOTALL
)
# From just after an opening quote to just after its closing quote; None if never closed.
_STRING_REST = {
    '"': re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL),
    "'": re.compile(r"[^'\\]*(?:\\.[^'\\]*)*'", re.DOTALL),
    "`": re.compile(r"[^`]*`"),  # no escapes in backtick strings
}
# Queries json.dumps writes as YAML reads them: printable ASCII, tabs and newlines (json
# escapes those two as YAML does; other control characters and non-ASCII go through YAML).
_JSON_SAFE = re.compile(r"^[\x20-\x7e\t\n]*$")
_PROMTOOL_LINE = re.compile(
    r'rule \d+, "' + re.escape(_RECORD_PREFIX) + r'(\d+)": (?:could not parse expression: )?(.*)$'
)


@dataclass(frozen=True)
class Problem:
    """A syntax problem in query number `index` of the checked batch."""

    index: int
    message: str
    hint: str


def balance_problem(query: str) -> tuple[str, str] | None:
    """Unbalanced (), [], {} or an unterminated string literal, with the character offset.

    Most queries are fine, and whether one is depends only on its quotes, brackets and '#'
    once no backslash is left to escape something: those few bytes (one C pass) are looked
    up among the shapes already seen, and only a new shape or a problem needs the full scan.
    UTF-8 puts no ASCII byte inside a multi-byte character, so the bytes see what it sees."""
    encoded = query.encode("utf-8", "surrogatepass")
    skeleton = encoded.translate(None, _NOT_SPECIAL)
    if b"\\" in skeleton:  # closed strings go first, escapes and all, the way the scan reads
        skeleton = _CLOSED_STRINGS.sub(b"", encoded).translate(None, _NOT_SPECIAL)
        if skeleton.translate(None, b"()[]{}#"):  # a quote or backslash left: scan it
            return _first_problem(query)
    if len(skeleton) <= _SHAPE_LIMIT and _balanced_shape(skeleton):
        return None
    return _first_problem(query)


@functools.lru_cache(maxsize=4096)
def _balanced_shape(skeleton: bytes) -> bool:
    return _first_problem(skeleton.decode("ascii")) is None


def _first_problem(query: str) -> tuple[str, str] | None:
    """`balance_problem`, visiting only the characters that matter: a regex finds the next
    quote, bracket or '#' outside strings, and one match skips a string to its closing quote
    (a backslash escapes whatever follows it, except in backtick strings)."""
    stack: list[tuple[str, int]] = []
    search = _SPECIAL.search
    pos = 0
    while (found := search(query, pos)) is not None:
        char = found.group()
        offset = found.start()
        pos = offset + 1
        rest = _STRING_REST.get(char)
        if rest is not None:
            closed = rest.match(query, pos)
            if closed is None:
                return (
                    f"unbalanced PromQL: the string opened with {char} at character {offset + 1} is never closed",
                    f"close it with a matching {char}",
                )
            pos = closed.end()
        elif char == "#":
            break  # a PromQL comment runs to the end of the line; good enough for balance
        elif char in _CLOSER_OF:
            stack.append((char, offset))
        elif stack and _CLOSER_OF[stack[-1][0]] == char:
            stack.pop()
        else:
            return (
                f"unbalanced PromQL: '{char}' at character {offset + 1} closes nothing",
                "remove it or add the matching opening bracket",
            )
    if stack:
        char, offset = stack[-1]
        return (
            f"unbalanced PromQL: '{char}' at character {offset + 1} is never closed",
            f"add the matching '{_CLOSER_OF[char]}'",
        )
    return None


def for_parsing(query: str) -> str:
    return query.replace(WINDOW_PLACEHOLDER, CHECK_WINDOW)


def promtool_path() -> str | None:
    return shutil.which("promtool")


def promtool_problems(queries: Sequence[str], promtool: str) -> list[Problem]:
    """Parse every query with one `promtool check rules` run; map its complaints back by index."""
    return start_promtool(queries, promtool)()


def start_promtool(queries: Sequence[str], promtool: str) -> Callable[[], list[Problem]]:
    """Start the `promtool check rules` run of `promtool_problems` and return at once; the
    returned function waits for it (120 s at most) and gives its problems. A one-shot
    `evaluate` asks Prometheus meanwhile and reads the verdict before printing anything."""
    if not queries:
        return list
    rules = [
        {"record": f"{_RECORD_PREFIX}{i}", "expr": for_parsing(q)} for i, q in enumerate(queries)
    ]
    tmp = tempfile.TemporaryDirectory(prefix="slo-engine-validate-")
    path = Path(tmp.name) / "queries.rules.yml"
    document = {"groups": [{"name": "validate", "rules": rules}]}
    if all(_JSON_SAFE.match(q) for q in queries):
        # JSON is YAML, and json's C encoder writes 2,000 queries in a few milliseconds.
        path.write_text(json.dumps(document, ensure_ascii=False))
    else:  # characters YAML wants escaped its own way: let a YAML emitter do it
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        path.write_text(yaml.dump(document, Dumper=dumper))
    proc = subprocess.Popen(
        [promtool, "check", "rules", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def verdict() -> list[Problem]:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        finally:
            tmp.cleanup()
        return _promtool_verdict(proc.returncode, out, err)

    return verdict


def _promtool_verdict(returncode: int, stdout: str, stderr: str) -> list[Problem]:
    if returncode == 0:
        return []
    problems = []
    for line in (stdout + stderr).splitlines():
        match = _PROMTOOL_LINE.search(line)
        if match:
            detail = match.group(2).strip()
            # promtool says "1:16: parse error: ..."; the position is within the substituted
            # query, not the file, so keep only the words.
            detail = re.sub(r"^\d+:\d+: ", "", detail)
            problems.append(
                Problem(
                    int(match.group(1)),
                    f"invalid PromQL: {detail}",
                    "promtool could not parse this query; check it in the Prometheus UI",
                )
            )
    if not problems:
        # promtool failed in a way we cannot attribute; never pretend the queries are fine.
        tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
        problems.append(
            Problem(-1, f"promtool check rules failed: {tail[0]}", "run promtool by hand")
        )
    return problems


def promql_parser() -> ModuleType | None:
    """The `promql-parser` module, or None when it is not installed."""
    try:
        return importlib.import_module("promql_parser")
    except ImportError:
        return None


def parser_problems(queries: Sequence[str]) -> list[Problem] | None:
    """Parse every query with `promql-parser` (no promtool needed); None without it."""
    parser = promql_parser()
    if parser is None:
        return None
    problems = []
    for index, query in enumerate(queries):
        try:
            parser.parse(for_parsing(query))
        except ValueError as exc:
            problems.append(
                Problem(
                    index,
                    f"invalid PromQL: {exc}",
                    "promql-parser could not parse this query (promtool, when installed, "
                    "also gives the position); check it in the Prometheus UI",
                )
            )
    return problems
