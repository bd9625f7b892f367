"""`promql.balance_problem` against the character-by-character scan it replaced.

The new check reads a query's skeleton (quotes, brackets, '#'; closed strings dropped first
when there are backslashes) in C, remembers the shapes that balance, and scans only the
characters that matter when it has to; whatever it does, messages, 1-based offsets and hints
must stay those of the old scan, kept here as the oracle. Thousands of random strings (seeded) and every query in the repository's specs and
fixtures are compared.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml

from engine.spec import promql

ROOT = Path(__file__).resolve().parents[1]
_PAIRS = {")": "(", "]": "[", "}": "{"}


def old_balance_problem(query: str) -> tuple[str, str] | None:
    """The implementation before the skeleton and the regex scan, verbatim."""
    stack: list[tuple[str, int]] = []
    quote: tuple[str, int] | None = None
    escaped = False
    for offset, char in enumerate(query):
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\" and quote[0] != "`":
                escaped = True
            elif char == quote[0]:
                quote = None
            continue
        if char in "\"'`":
            quote = (char, offset)
        elif char == "#":
            break  # a PromQL comment runs to the end of the line; good enough for balance
        elif char in "([{":
            stack.append((char, offset))
        elif char in ")]}":
            if not stack or stack[-1][0] != _PAIRS[char]:
                return (
                    f"unbalanced PromQL: '{char}' at character {offset + 1} closes nothing",
                    "remove it or add the matching opening bracket",
                )
            stack.pop()
    if quote is not None:
        return (
            f"unbalanced PromQL: the string opened with {quote[0]} at character {quote[1] + 1} is never closed",
            f"close it with a matching {quote[0]}",
        )
    if stack:
        char, offset = stack[-1]
        closing = {v: k for k, v in _PAIRS.items()}[char]
        return (
            f"unbalanced PromQL: '{char}' at character {offset + 1} is never closed",
            f"add the matching '{closing}'",
        )
    return None


def _agree(query: str) -> None:
    expected = old_balance_problem(query)
    assert promql.balance_problem(query) == expected, repr(query)
    assert promql._first_problem(query) == expected, repr(query)  # the scan without shapes


# Specials, the ordinary letter and space, a newline, and characters that are not one UTF-8
# byte (offsets count characters, not bytes; a lone surrogate must not break the encoding).
ALPHABET = "()[]{}\"'`\\#a \n" + "é日\U0001f600\ud800"
WEIGHTS = [6, 6, 4, 4, 4, 4, 5, 3, 3, 4, 1, 8, 5, 1, 1, 1, 1, 1]


def _noise(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(ALPHABET, WEIGHTS, k=length))


def _string(rng: random.Random) -> str:
    """A closed string literal: escapes are whole pairs, except in backticks (none there)."""
    quote = rng.choice("\"'`")
    plain = ["a", "x y", "(", "]", "{", "#", "é", "\n", "'" if quote == '"' else '"']
    escapes = ["\\\\", "\\" + quote, "\\n", "\\(", "\\\n"] if quote != "`" else ["\\"]
    return quote + "".join(rng.choices(plain + escapes, k=rng.randrange(6))) + quote


def _balanced(rng: random.Random, depth: int = 0) -> str:
    """Mostly well-formed: nested brackets, strings with escapes, words, now and then '#'."""
    parts = []
    for _ in range(rng.randrange(1, 5)):
        kind = rng.random()
        if kind < 0.35 and depth < 6:
            opener = rng.choice("([{")
            parts.append(opener + _balanced(rng, depth + 1) + promql._CLOSER_OF[opener])
        elif kind < 0.6:
            parts.append(_string(rng))
        elif kind < 0.63:
            parts.append("# " + _noise(rng, 4))
        else:
            parts.append(rng.choice(["sum", "rate", "x", " ", "=~", ",", "\n", "é", "\\", "by"]))
    return "".join(parts)


def _mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randrange(1, 3)):
        at = rng.randrange(len(text) + 1)
        if rng.random() < 0.5 and text:
            text = text[:at] + text[at + 1 :]  # drop one character
        else:
            text = text[:at] + rng.choice(ALPHABET) + text[at:]
    return text


@pytest.mark.parametrize("seed", range(4))
def test_random_noise_agrees_with_the_old_scan(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2500):
        _agree(_noise(rng, rng.randrange(0, 40)))


@pytest.mark.parametrize("seed", range(4))
def test_random_structured_queries_agree_with_the_old_scan(seed: int) -> None:
    rng = random.Random(1000 + seed)
    balanced = 0
    for _ in range(1500):
        query = _balanced(rng)
        balanced += old_balance_problem(query) is None
        _agree(query)
        _agree(query)  # the second time its shape is remembered
        _agree(_mutate(rng, query))
    assert balanced > 500  # the fast path was taken, not only the problem reports


def test_long_queries_agree_beyond_the_remembered_shapes() -> None:
    rng = random.Random(7)
    for _ in range(40):
        query = "".join(_balanced(rng) for _ in range(60))
        _agree(query)
        _agree(_mutate(rng, query))
        _agree(_noise(rng, 700))
    deep = "(" * 600 + 'x{a="b"}' + ")" * 600
    for query in (deep, deep[:-1], deep[1:], deep + "]"):
        _agree(query)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('x{a="\\""}', None),  # an escaped quote does not close the string
        ('x{a="\\\\"}', None),  # nor does an escaped backslash escape the quote after it
        ("x{a=`\\`}", None),  # no escapes in backtick strings
        ('x{a="\\', ('the string opened with " at character 5 is never closed', '"')),
        ("sum(x) # ) [ unclosed", None),  # a comment ends the check
        ('x{a="#"}(', ("'(' at character 9 is never closed", ")")),
        ("é日(]", ("']' at character 4 closes nothing", "opening bracket")),
    ],
)
def test_edge_cases(query: str, expected: tuple[str, str] | None) -> None:
    _agree(query)
    got = promql.balance_problem(query)
    if expected is None:
        assert got is None
    else:
        assert got is not None and expected[0] in got[0] and expected[1] in got[1]


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


_QUERY_LINE = re.compile(
    r"^\s*(?:bad|good|total|expr|selector|metric|error_query|total_query|query)\s*:\s*(.+)$",
    re.MULTILINE,
)


def _repository_queries() -> list[str]:
    queries: list[str] = []
    for path in sorted([*ROOT.glob("slo_specs/**/*.y*ml"), *ROOT.glob("tests/**/*.y*ml")]):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue
        queries.extend(s for doc in documents for s in _strings(doc))
    for path in sorted(ROOT.glob("tests/*.py")):
        for line in _QUERY_LINE.findall(path.read_text()):
            queries.extend((line, line.strip().strip("'\"")))  # as written, and unquoted
    return queries


def test_real_queries_agree_with_the_old_scan() -> None:
    queries = _repository_queries()
    assert len(queries) > 200
    assert any("{{window}}" in q for q in queries)
    for query in queries:
        _agree(query)
        _agree(query + ")")
        _agree(query[:-1])
