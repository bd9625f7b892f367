"""Which series remote read must fetch for a query plan, each series once.

Remote read matches series by label matchers only, so an atom qualifies when it is a plain
`sum(rate|increase(metric{matchers}[w]))` (engine.source.query_plan). Atoms are then merged
so that a series several atoms read is fetched once: atoms of one metric, function, range
and regex matchers differing only in equality matchers (`job="a"` vs `job="b"`, or the
`variant!="v3"` of a benchmark) become one read whose selector keeps the matchers they share
plus `label=~"a|b|…"` for the label each pins to its own value; each series that comes back
is given to every atom whose remaining `=`/`!=` matchers its labels satisfy — the same test
Prometheus applies. Regex matchers are never evaluated here (Go's RE2 is not Python's `re`):
atoms differing in them are read separately, server-side. Atoms pinning no common label are
not merged either (the shared selector could be much broader than any of them).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.source.prompb import Matcher
from engine.source.query_plan import QueryPlan, Selector, decompose
from engine.spec.durations import Duration

# Label values per read (the `=~"a|b|…"` alternation): bounds each response.
READ_ATOMS = 250
_READABLE_FUNCS = frozenset({"rate", "increase"})
# Values that can sit in a `=~"a|b"` alternation unescaped (as in the query planner); a '.'
# may match extra series, which the per-atom check then drops.
_ALTERNATION_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:./ -"
)


@dataclass(frozen=True)
class Read:
    """One remote-read query; the series it returns go to the atoms whose checks they pass."""

    matchers: tuple[Matcher, ...]  # sent to the server
    func: str  # rate or increase
    range_ms: int
    # (atom, the `=`/`!=` matchers still to check on a series' labels)
    atoms: tuple[tuple[int, tuple[Matcher, ...]], ...]
    # The label the atoms pin to their own values (the alternation), to look them up by.
    label: str | None = None
    by_value: dict[str, tuple[tuple[int, tuple[Matcher, ...]], ...]] = field(
        default_factory=dict, compare=False
    )

    def atoms_for(self, labels: dict[str, str]) -> list[int]:
        """The atoms a series with these labels belongs to."""
        candidates = (
            self.atoms if self.label is None else self.by_value.get(labels.get(self.label, ""), ())
        )
        return [atom for atom, checks in candidates if _matches(labels, checks)]


def _matches(labels: dict[str, str], checks: Sequence[Matcher]) -> bool:
    return all((labels.get(name, "") == value) == (op == "=") for name, op, value in checks)


def _unquote(value: str) -> str | None:
    """A PromQL string literal's content as the server compares it; None when it uses an
    escape JSON does not share (that atom then stays on query_range)."""
    if "\\" not in value:
        return value
    try:
        text = json.loads(f'"{value}"')
    except ValueError:
        return None
    return text if isinstance(text, str) else None


def readable_selector(
    atom: str, selector: Selector | None = None
) -> tuple[Selector, tuple[Matcher, ...]] | None:
    """The atom's selector (parsed by the planner, or here) and its matchers (values
    unescaped) when it is a plain `sum(rate|increase(…))`; else None."""
    if selector is None:
        parsed = decompose(atom)
        if parsed is None:
            return None
        combo, selectors = parsed
        if len(selectors) != 1 or list(combo.values()) != [1.0]:
            return None
        selector = next(iter(selectors.values()))
    if selector.func not in _READABLE_FUNCS:
        return None
    matchers = []
    for name, op, raw in selector.matchers:
        value = _unquote(raw)
        if value is None:
            return None
        matchers.append((name, op, value))
    return selector, tuple(matchers)


def plan_reads(plan: QueryPlan) -> tuple[list[Read], set[int]]:
    """Remote-read queries for the plan's plain-selector atoms, and the set of those atoms."""
    groups: dict[tuple, list[tuple[int, tuple[Matcher, ...]]]] = defaultdict(list)
    for atom, selector in plan.selectors.items():
        found = readable_selector(plan.atoms[atom], selector)
        if found is None:
            continue
        selector, matchers = found
        regex = tuple(m for m in matchers if m[1] in ("=~", "!~"))
        key = (selector.metric, selector.func, Duration.parse(selector.window).ms, regex)
        groups[key].append((atom, matchers))
    reads: list[Read] = []
    for (metric, func, range_ms, regex), members in groups.items():
        reads += _merged(metric, func, range_ms, regex, members)
    return reads, {atom for read in reads for atom, _ in read.atoms}


def _pins(matchers: tuple[Matcher, ...]) -> dict[str, str]:
    """Labels the atom pins with exactly one `=` to a value an alternation can hold."""
    equal = [(n, v) for n, op, v in matchers if op == "="]
    names = [n for n, _ in equal]
    return {n: v for n, v in equal if names.count(n) == 1 and v and set(v) <= _ALTERNATION_SAFE}


def _pinned_label(members: list[tuple[int, tuple[Matcher, ...]]]) -> str | None:
    """The label most members pin (ties: most distinct values, then by name); None when no
    label is pinned by two members."""
    values: dict[str, set[str]] = defaultdict(set)
    pinned_by: dict[str, int] = defaultdict(int)
    for _, matchers in members:
        for name, value in _pins(matchers).items():
            values[name].add(value)
            pinned_by[name] += 1
    candidates = [n for n in sorted(values) if pinned_by[n] > 1]
    if not candidates:
        return None
    return max(candidates, key=lambda n: (pinned_by[n], len(values[n])))


def _merged(
    metric: str,
    func: str,
    range_ms: int,
    regex: tuple[Matcher, ...],
    members: list[tuple[int, tuple[Matcher, ...]]],
) -> list[Read]:
    label = _pinned_label(members)
    by_value: dict[str, list[tuple[int, tuple[Matcher, ...]]]] = defaultdict(list)
    alone = []
    for atom, matchers in members:
        value = _pins(matchers).get(label) if label is not None else None
        if value is None:
            alone.append((atom, matchers))
        else:
            by_value[value].append((atom, matchers))
    # Atoms not pinning the label: on their own, every matcher server-side.
    reads = [
        Read((("__name__", "=", metric), *matchers), func, range_ms, ((atom, ()),))
        for atom, matchers in alone
    ]
    values = sorted(by_value)
    for lo in range(0, len(values), READ_ATOMS):
        chunk = values[lo : lo + READ_ATOMS]
        atoms = [m for v in chunk for m in by_value[v]]
        owners = [v for v in chunk for _ in by_value[v]]  # the value each atom pins
        equal = [{m for m in matchers if m[1] in ("=", "!=")} for _, matchers in atoms]
        # The pinned label stays in every atom's checks: a '.' in the alternation may
        # match a value nobody asked for.
        server = {m for m in set.intersection(*equal) if m[0] != label}
        alternation = (label, "=~", "|".join(chunk))
        checks = tuple(
            (atom, tuple(sorted(e - server))) for (atom, _), e in zip(atoms, equal, strict=True)
        )
        request = (("__name__", "=", metric), *regex, *sorted(server), alternation)
        lookup: dict[str, list[tuple[int, tuple[Matcher, ...]]]] = defaultdict(list)
        for check, value in zip(checks, owners, strict=True):
            lookup[value].append(check)
        index = {value: tuple(found) for value, found in lookup.items()}
        reads.append(Read(request, func, range_ms, checks, label, index))
    return reads


def readable_rows(plan: QueryPlan, readable: set[int], n_rows: int) -> np.ndarray:
    """bool[S]: SLOs all of whose atoms (bad and total) can be read remotely."""
    ok = np.ones(n_rows, dtype=bool)
    for terms in (plan.bad, plan.total):
        unreadable = ~np.isin(terms.atoms, list(readable))
        ok[terms.rows[unreadable]] = False
    return ok
