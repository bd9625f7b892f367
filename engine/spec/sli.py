"""PromQL for an SLO's bad and total event *rates* (events per second) over a window.

Shared by the Prometheus source (which asks for per-step rates and multiplies by the step)
and the rule generator (which records the same expressions), so a daemon alert and a
Prometheus alert are computed from identical queries.

Bad events are either queried (`events.bad`) or *derived* as total − good (`events.good`,
and latency SLIs: `_count − _bucket{le=threshold}`). The two differ when a series is
missing: an error counter that does not exist yet means no errors, but a missing good
series means nothing is known — for latency usually a threshold that is not a bucket bound,
for `good` queries a wrong selector or every request failing. `good_rate` exposes the good
side so the source and the rules can tell the cases apart (engine.source.prometheus,
engine.generate.rules).

Native-histogram latency SLIs (`native: true`) count with `histogram_count` and
`histogram_fraction` over the histograms summed first (`sum(rate(h{…}[w]))`: one histogram,
so the fraction is of all requests), so any threshold works — Prometheus 2.42 interpolates
linearly inside the bucket that holds it. `histogram_fraction` of an empty histogram (no
requests in the window) is NaN, which would make a quiet step's bad count NaN and poison
every sum over it; the good side therefore falls back to `0 * count` there, so a quiet step
is 0 of 0 as with classic histograms. No histogram at all stays no data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Protocol, TypeVar

from engine.spec.durations import Duration
from engine.spec.models import SLI, WINDOW_PLACEHOLDER, LatencySLI
from engine.spec.promql_groups import with_grouping

_Query = TypeVar("_Query", str, str | None)
_QueryOut = TypeVar("_QueryOut", str, str | None, covariant=True)


class RateQuery(Protocol[_QueryOut]):
    def __call__(self, sli: SLI, window: Duration, by: Sequence[str] = ()) -> _QueryOut: ...


def groupable(build: Callable[[SLI, Duration], _Query]) -> RateQuery[_Query]:
    """Give a rate query the `by` argument of grouped SLOs (`SLO.group_by`): with labels,
    every aggregation of the query keeps them, so the result is one series per group —
    the form the recording rules need (engine.spec.promql_groups.with_grouping). Without,
    the query is exactly what it always was."""

    @functools.wraps(build)
    def grouped(sli: SLI, window: Duration, by: Sequence[str] = ()) -> _Query:
        query = build(sli, window)
        return with_grouping(query, by) if query is not None and by else query

    return grouped


def _with_window(query: str, window: Duration) -> str:
    return query.replace(WINDOW_PLACEHOLDER, str(window))


def le_spellings(threshold: Duration) -> tuple[str, ...]:
    """The `le` values a bucket bound may be written as: ("0.5",) or ("1", "1.0")."""
    seconds = threshold.decimal_seconds.normalize()
    if seconds == seconds.to_integral():
        whole = format(seconds.quantize(Decimal(1)), "f")
        return (whole, f"{whole}.0")
    return (format(seconds, "f"),)


def le_matcher(threshold: Duration) -> str:
    """`le` matcher for a bucket bound, matching both spellings of whole numbers.

    Prometheus 3 normalises `le="1"` to `le="1.0"`; older exporters write either, so a
    whole-number bound is matched as `le=~"1|1.0"`.
    """
    spellings = le_spellings(threshold)
    if len(spellings) > 1:
        return f'le=~"{"|".join(spellings)}"'
    return f'le="{spellings[0]}"'


def bucket_text(threshold: Duration) -> str:
    """The bucket a threshold needs, for people: `le="0.5"`, `le="1" (or "1.0")`."""
    first, *others = le_spellings(threshold)
    return f'le="{first}"' + "".join(f' (or "{o}")' for o in others)


def missing_bucket_message(sli: LatencySLI, bounds: Sequence[str] = ()) -> str:
    """What to tell a person whose latency threshold matches no bucket of the histogram
    (its `_count` has data, its `_bucket{le=threshold}` does not). `bounds`: the `le`
    values the histogram does have, when known."""
    bucket = bucket_text(sli.threshold)
    where = f" for selector {sli.selector}" if sli.selector else ""
    message = (
        f"histogram {sli.histogram} has no bucket {bucket}{where} while its _count has "
        f"data — the threshold ({sli.threshold}) must equal one of its bucket bounds"
    )
    if bounds:
        message += f"; it has le={', '.join(bounds)}"
    return message


def _latency_selector(sli: LatencySLI, extra: str = "") -> str:
    parts = [p for p in (sli.selector, extra) if p]
    return "{" + ",".join(parts) + "}"


def _native_total(sli: LatencySLI, window: Duration) -> str:
    return f"sum(histogram_count(rate({sli.histogram}{_latency_selector(sli)}[{window}])))"


def _native_good(sli: LatencySLI, window: Duration) -> str:
    """Requests up to the threshold per second: the summed histogram's share at or below it
    times its count; 0 when the window saw no request (see the module docstring)."""
    summed = f"sum(rate({sli.histogram}{_latency_selector(sli)}[{window}]))"
    count = f"histogram_count({summed})"
    fraction = f"histogram_fraction(0, {_seconds(sli.threshold)}, {summed})"
    # `>= 0` drops the NaN sample of an empty histogram; `or` then supplies 0 × count.
    return f"({fraction} >= 0) * {count} or 0 * {count}"


@groupable
def total_rate(sli: SLI, window: Duration) -> str:
    if sli.events is not None:
        return _with_window(sli.events.total, window)
    if sli.latency is not None:
        lat = sli.latency
        if lat.native:
            return _native_total(lat, window)
        return f"sum(rate({lat.histogram}_count{_latency_selector(lat)}[{window}]))"
    assert sli.availability is not None
    # Samples per second of the 0/1 gauge, so "events" are samples and the sums line up.
    ranged = _ranged(sli.availability.metric, window)
    return f"sum(count_over_time({ranged})) / {_seconds(window)}"


def derives_bad(sli: SLI) -> bool:
    """Whether bad events are total − good (latency SLIs, events SLIs written with `good`).

    For these, a step with a total but no bad rate means the good series is missing, which
    is not "0 bad events" (see the module docstring)."""
    return sli.latency is not None or (sli.events is not None and sli.events.good is not None)


@groupable
def good_rate(sli: SLI, window: Duration) -> str | None:
    """The good-event rate of an SLI whose bad events are derived as total − good; None
    when bad events are queried themselves (`events.bad`) or counted from one series
    (availability)."""
    if not derives_bad(sli):
        return None
    if sli.events is not None:
        assert sli.events.good is not None
        return _with_window(sli.events.good, window)
    if sli.latency is not None:
        lat = sli.latency
        if lat.native:
            return _native_good(lat, window)
        return f"sum(rate({lat.histogram}_bucket{_latency_selector(lat, le_matcher(lat.threshold))}[{window}]))"
    return None


@groupable
def bad_rate(sli: SLI, window: Duration) -> str:
    good = good_rate(sli, window)
    if good is not None:
        return f"({total_rate(sli, window)}) - ({good})"
    if sli.events is not None:
        assert sli.events.bad is not None
        return _with_window(sli.events.bad, window)
    assert sli.availability is not None
    ranged = _ranged(sli.availability.metric, window)
    return f"(sum(count_over_time({ranged})) - sum(sum_over_time({ranged}))) / {_seconds(window)}"


_PLAIN_SELECTOR = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}]*\})?$")
# Resolution of the subquery used when an availability SLI is an expression, not a series.
AVAILABILITY_SUBQUERY_STEP = "30s"


def _ranged(metric: str, window: Duration) -> str:
    """`metric[window]` for a plain selector, a subquery for an expression such as
    `time() - backup_last_success_timestamp_seconds <= bool 900`."""
    if _PLAIN_SELECTOR.match(metric.strip()):
        return f"{metric}[{window}]"
    return f"({metric})[{window}:{AVAILABILITY_SUBQUERY_STEP}]"


def _seconds(window: Duration) -> str:
    return format(window.decimal_seconds.normalize(), "f")
