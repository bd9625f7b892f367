"""Atoms answered by a wider atom's series: a bad selector that is its total plus one matcher.

The usual events SLI reads one metric twice per window: `total` as
`sum(rate(http_requests_total{service="api"}[W]))` and `bad` as the same with
`code=~"5.."` added. Prometheus decodes the bad series' samples in both queries. Asked once
as `sum by (code) (rate(http_requests_total{service="api"}[W]))`, the rows give the total
(their sum) and the bad count (the sum of the rows whose `code` matches) from one read.

Pure: the planner (engine.source.query_plan) decides with `derivations`, a response is
read with `Derived.matches`. Only for one-shot whole-window counts (engine.source.
window_counts): a row per label value is cheap once per window, not per step of a range.

A matched value is compared as Prometheus does: `=`/`!=` exactly, `=~`/`!~` as an anchored
regex. Python's `re` and Prometheus' RE2 agree on plain patterns (literals, `.`, `|`, `*`,
`+`, `?`, classes, groups), so only such patterns are derived; any other stays its own
query. A series without the label has the empty value in both.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from engine.source.query_plan import Matcher, Selector

# Values (and patterns) read the same by Python and by Prometheus: no escapes, no braces,
# no anchors or flags — a pattern needing those is asked as written.
_PLAIN = re.compile(r"^[A-Za-z0-9_:./ |*+?()\[\]-]*$")


class Derived(NamedTuple):
    """Atom `atom` = the rows of group value `group` ("" for an ungrouped part) whose
    `label` matches (`op`, `value`). A tuple: plans copy thousands of them per window
    (`Part.moved` rebuilds one as `(*rest, atom)`, so `atom` stays the last field)."""

    group: str
    label: str
    op: str
    value: str
    atom: int

    def matches(self, found: str) -> bool:
        if self.op == "=":
            return found == self.value
        if self.op == "!=":
            return found != self.value
        hit = _pattern(self.value).fullmatch(found) is not None
        return hit if self.op == "=~" else not hit


@functools.lru_cache(maxsize=1024)
def _pattern(value: str) -> re.Pattern[str]:
    return re.compile(value)


def derivations(selectors: Mapping[int, Selector]) -> dict[int, tuple[int, Matcher]]:
    """Atom → (its parent atom, the one matcher it adds): atoms whose selector is another
    atom's plus one matcher on a label the parent does not match. A parent is never itself
    derived, and a parent's children all split it by the same label (the first one found)
    so each parent needs one more grouping label at most."""
    by_key = {(s.func, s.metric, s.window, s.matchers): i for i, s in selectors.items()}
    found: dict[int, tuple[int, Matcher]] = {}
    split_of: dict[int, str] = {}
    for i, selector in sorted(selectors.items(), key=lambda kv: (len(kv[1].matchers), kv[0])):
        counts = Counter(label for label, _, _ in selector.matchers)
        for matcher in selector.matchers:
            label, op, value = matcher
            if counts[label] != 1 or label == "__name__" or not _PLAIN.match(value):
                continue
            if op in ("=~", "!~") and not _compiles(value):
                continue
            rest = tuple(m for m in selector.matchers if m != matcher)
            parent = by_key.get((selector.func, selector.metric, selector.window, rest))
            if parent is None or parent in found or split_of.get(parent, label) != label:
                continue
            found[i] = (parent, matcher)
            split_of[parent] = label
            break
    return found


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True
