"""Turn the bad/total rate expressions of many SLOs into few, cheap PromQL sub-queries.

Pure: expressions in, a plan out. Three steps, each measured in bench/bench_evaluate.py:

1. Decompose. An expression that is a linear combination of simple aggregations, such as
   the latency SLI's `(sum(rate(h_count{…}[w]))) - (sum(rate(h_bucket{…,le=…}[w])))` or
   an availability SLI's `(sum(count_over_time(m[w])) - sum(sum_over_time(m[w]))) / 60`,
   is split into its *atoms* (`sum(FUNC(metric{matchers}[w]))`) and coefficients; the
   combination is redone in numpy. NaN propagates exactly like PromQL's empty results.
   Anything else stays one opaque atom, queried as written.
2. Deduplicate. Identical atoms (SLOs of one service sharing a `total`) are asked once.
3. Group. Atoms that differ only in the value of one equality matcher (`job="a"`,
   `job="b"`, …) become one `sum by (job) (FUNC(metric{…, job=~"a|b|…"}[w]))`. Prometheus
   evaluates one selector instead of hundreds of expressions: on Prometheus 2.42 a group of
   1,000 atoms costs about what 20 `or`-joined expressions cost.

Each part is tagged with `label_replace(…, "__slo_id", "p<i>", "", "")` and parts are
joined with `or` as a balanced tree: a left-deep chain of n `or`s costs O(n²) per step.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from engine.source.derived_atoms import Derived, derivations

SLO_LABEL = "__slo_id"

_FUNCS = "rate|increase|count_over_time|sum_over_time"
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_STRING = r'"(?:[^"\\]|\\.)*"'
_SIMPLE = re.compile(
    rf"sum\s*\(\s*({_FUNCS})\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*"
    rf"(?:\{{((?:[^{{}}\"]|{_STRING})*)\}})?\s*\[\s*({_DURATION})\s*\]\s*\)\s*\)"
)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
# Values that can sit in a `=~"a|b"` alternation without escaping. A '.' matches any
# character, which can only add series for values nobody asked for; they are ignored.
_GROUPABLE_VALUE = re.compile(r"^[A-Za-z0-9_:./ -]+$")

Matcher = tuple[str, str, str]  # label, operator, value as written between the quotes


@dataclass(frozen=True)
class Selector:
    """A parsed atom: `sum(func(metric{matchers}[window]))`."""

    func: str
    metric: str
    matchers: tuple[Matcher, ...]
    window: str

    def text(self, matchers: Sequence[Matcher] | None = None) -> str:
        body = ",".join(f'{label}{op}"{value}"' for label, op, value in (matchers or self.matchers))
        return f"{self.func}({self.metric}{{{body}}}[{self.window}])"

    @property
    def canonical(self) -> str:
        return f"sum({self.text()})"


class _NotLinear(Exception):
    pass


def _parse_matchers(body: str) -> tuple[Matcher, ...] | None:
    found: list[Matcher] = []
    pos = 0
    while pos < len(body):
        match = _MATCHER.match(body, pos)
        if match is None:
            return None
        found.append((match.group(1), match.group(2), match.group(3)))
        pos = match.end()
        if pos < len(body):
            if body[pos] != ",":
                return None
            pos += 1
    return tuple(sorted(found))


class _Linear:
    """Recursive descent over `atom`, `( … )`, `+`, `-` and `/ number`; nothing else."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.selectors: dict[str, Selector] = {}

    def parse(self) -> dict[str, float]:
        combo = self._expr()
        self._ws()
        if self.pos != len(self.text):
            raise _NotLinear
        return combo

    def _ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        self._ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _expr(self) -> dict[str, float]:
        combo = self._term()
        while self._peek() in ("+", "-"):
            sign = 1.0 if self.text[self.pos] == "+" else -1.0
            self.pos += 1
            for atom, coef in self._term().items():
                combo[atom] = combo.get(atom, 0.0) + sign * coef
        return combo

    def _term(self) -> dict[str, float]:
        combo = self._factor()
        while self._peek() == "/":
            self.pos += 1
            self._ws()
            number = _NUMBER.match(self.text, self.pos)
            if number is None or float(number.group()) == 0:
                raise _NotLinear
            self.pos = number.end()
            combo = {atom: coef / float(number.group()) for atom, coef in combo.items()}
        return combo

    def _factor(self) -> dict[str, float]:
        if self._peek() == "(":
            self.pos += 1
            combo = self._expr()
            if self._peek() != ")":
                raise _NotLinear
            self.pos += 1
            return combo
        match = _SIMPLE.match(self.text, self.pos)
        if match is None:
            raise _NotLinear
        matchers = _parse_matchers(match.group(3) or "")
        if matchers is None:
            raise _NotLinear
        selector = Selector(match.group(1), match.group(2), matchers, match.group(4))
        self.selectors[selector.canonical] = selector
        self.pos = match.end()
        return {selector.canonical: 1.0}


def decompose(expr: str) -> tuple[dict[str, float], dict[str, Selector]] | None:
    """`expr` as {atom: coefficient} plus the parsed atoms, or None when it is not linear."""
    parser = _Linear(expr)
    try:
        combo = parser.parse()
    except _NotLinear:
        return None
    return combo, parser.selectors


@dataclass(frozen=True)
class Part:
    """One tagged sub-expression of a batched request, answering for one or more atoms."""

    expr: str
    atoms: tuple[int, ...]
    # Grouped parts return one series per value of this label; `values` aligns with atoms.
    group_label: str | None = None
    values: tuple[str, ...] = ()
    # Also grouped by this label: each row adds to its group's atom, and to the derived
    # atoms it matches (engine.source.derived_atoms).
    split_label: str | None = None
    derived: tuple[Derived, ...] = ()

    @property
    def opaque(self) -> bool:
        """An expression evaluated as written, not a `sum by` group."""
        return self.group_label is None

    @property
    def answers(self) -> tuple[int, ...]:
        """Every atom this part's response fills, derived ones included."""
        return self.atoms + tuple(d.atom for d in self.derived)

    def moved(self, expr: str, offset: int) -> Part:
        """This part for another copy of the plan's atoms (`offset` added to each)."""
        # Straight to tuple.__new__: plans copy thousands of these per window.
        derived = tuple(tuple.__new__(Derived, (*d[:-1], d.atom + offset)) for d in self.derived)
        atoms = tuple(a + offset for a in self.atoms)
        return replace(self, expr=expr, atoms=atoms, derived=derived)


@dataclass(frozen=True)
class Terms:
    """rate[rows[i]] += coefs[i] × atom_rate[atoms[i]]: one side (bad or total) of every SLO."""

    rows: np.ndarray  # int64
    atoms: np.ndarray  # int64
    coefs: np.ndarray  # float64

    def combine(self, atom_rates: np.ndarray, n_rows: int) -> np.ndarray:
        out = np.zeros((n_rows, atom_rates.shape[1]))
        # NaN (no data for an atom) propagates into every row that uses it.
        np.add.at(out, self.rows, self.coefs[:, None] * atom_rates[self.atoms])
        return out


@dataclass(frozen=True)
class QueryPlan:
    atoms: tuple[str, ...]
    parts: tuple[Part, ...]
    bad: Terms
    total: Terms
    # The parsed atoms (index → selector); opaque atoms have none.
    selectors: dict[int, Selector] = field(default_factory=dict, compare=False)

    def rows_using(self, atoms: set[int]) -> set[int]:
        found = set()
        for terms in (self.bad, self.total):
            mask = np.isin(terms.atoms, list(atoms))
            found.update(int(r) for r in terms.rows[mask])
        return found


def ungrouped(atom_index: int, atom: str) -> Part:
    # sum() makes a multi-series user expression one series. Newlines around it so a
    # trailing `# comment` cannot swallow the closing parenthesis.
    return Part(expr=f"sum(\n{atom}\n)", atoms=(atom_index,))


def plan_queries(
    pairs: Sequence[tuple[str, str]], group_size: int = 1000, derive: bool = False
) -> QueryPlan:
    """Plan for SLOs given as (bad rate expression, total rate expression) per row. With
    `derive`, an atom that is another's selector plus one matcher is read from the other's
    rows (engine.source.derived_atoms) instead of asked on its own."""
    atom_ids: dict[str, int] = {}
    selectors: dict[int, Selector] = {}
    sides: dict[str, tuple[list[int], list[int], list[float]]] = {
        "bad": ([], [], []),
        "total": ([], [], []),
    }
    # Each expression parsed once: coverage plans (total, total), and SLOs share totals.
    parsed_once: dict[str, tuple[dict[str, float], dict[str, Selector]] | None] = {}
    for row, (bad, total) in enumerate(pairs):
        for side, expr in (("bad", bad), ("total", total)):
            if expr in parsed_once:
                parsed = parsed_once[expr]
            else:
                parsed = parsed_once[expr] = decompose(expr)
            combo, parsed_selectors = parsed if parsed is not None else ({expr: 1.0}, {})
            rows, atoms, coefs = sides[side]
            for text, coef in combo.items():
                if coef == 0:
                    continue
                index = atom_ids.setdefault(text, len(atom_ids))
                if text in parsed_selectors:
                    selectors[index] = parsed_selectors[text]
                rows.append(row)
                atoms.append(index)
                coefs.append(coef)
    atoms = tuple(atom_ids)
    parts = _group(atoms, selectors, group_size, derivations(selectors) if derive else {})

    def terms(side: str) -> Terms:
        rows, atom_list, coefs = sides[side]
        return Terms(
            np.asarray(rows, dtype=np.int64),
            np.asarray(atom_list, dtype=np.int64),
            np.asarray(coefs, dtype=np.float64),
        )

    return QueryPlan(
        atoms=atoms,
        parts=tuple(parts),
        bad=terms("bad"),
        total=terms("total"),
        selectors=selectors,
    )


def _group_keys(selector: Selector) -> list[tuple]:
    labels = Counter(label for label, _, _ in selector.matchers)
    keys = []
    for label, op, value in selector.matchers:
        if op == "=" and labels[label] == 1 and _GROUPABLE_VALUE.match(value):
            rest = tuple(m for m in selector.matchers if m[0] != label)
            keys.append((selector.func, selector.metric, selector.window, label, rest))
    return keys


def _group(
    atoms: tuple[str, ...],
    selectors: dict[int, Selector],
    group_size: int,
    derived: dict[int, tuple[int, Matcher]],
) -> list[Part]:
    children: dict[int, list[tuple[int, Matcher]]] = defaultdict(list)
    for child, (parent, matcher) in derived.items():
        children[parent].append((child, matcher))
    # A parent's split label joins its group key: one extra grouping label per query.
    split = {p: kids[0][1][0] for p, kids in children.items()}
    candidates = {
        i: [(*key, split.get(i)) for key in _group_keys(s)]
        for i, s in selectors.items()
        if i not in derived
    }
    popularity = Counter(key for keys in candidates.values() for key in keys)
    groups: dict[tuple, list[int]] = defaultdict(list)
    parts: list[Part] = []
    for i in range(len(atoms)):
        if i in derived:
            continue
        keys = candidates.get(i, [])
        if keys:
            # Greedy: join the key most atoms share, so groups come out large.
            groups[max(keys, key=lambda k: (popularity[k], k[3]))].append(i)
        else:
            parts.append(_single(i, atoms[i], selectors.get(i), children.get(i)))
    for key, members in groups.items():
        if len(members) == 1:
            only = members[0]
            parts.append(_single(only, atoms[only], selectors[only], children.get(only)))
            continue
        func, metric, window, label, rest, split_label = key
        for lo in range(0, len(members), group_size):
            chunk = members[lo : lo + group_size]
            values = tuple(_value(selectors[i], label) for i in chunk)
            matcher = (label, "=~", "|".join(values))
            selector = Selector(func, metric, (*rest, matcher), window)
            by = label if split_label is None else f"{label}, {split_label}"
            parts.append(
                Part(
                    expr=f"sum by ({by}) ({selector.text()})",
                    atoms=tuple(chunk),
                    group_label=label,
                    values=values,
                    split_label=split_label,
                    derived=tuple(
                        Derived(value, *m, child)
                        for i, value in zip(chunk, values, strict=True)
                        for child, m in children.get(i, ())
                    ),
                )
            )
    return parts


def _single(
    atom: int, text: str, selector: Selector | None, kids: list[tuple[int, Matcher]] | None
) -> Part:
    """An atom asked on its own: as written, or with its derived atoms (a parsed parent)
    one `sum by (<split label>)`."""
    if not kids or selector is None:
        return ungrouped(atom, text)
    label = kids[0][1][0]
    return Part(
        expr=f"sum by ({label}) ({selector.text()})",
        atoms=(atom,),
        split_label=label,
        derived=tuple(Derived("", *m, child) for child, m in kids),
    )


def _value(selector: Selector, label: str) -> str:
    return next(v for name, _, v in selector.matchers if name == label)


def tagged(part: Part, tag: str) -> str:
    return f'label_replace({part.expr}, "{SLO_LABEL}", "{tag}", "", "")'


def or_tree(exprs: Sequence[str]) -> str:
    """`a or b or c …` as a balanced tree: O(n log n) work per step instead of O(n²)."""
    if len(exprs) == 1:
        return exprs[0]
    middle = len(exprs) // 2
    return f"({or_tree(exprs[:middle])}) or ({or_tree(exprs[middle:])})"
