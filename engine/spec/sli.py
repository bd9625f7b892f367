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
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from engine.spec.durations import Duration
from engine.spec.models import SLI, WINDOW_PLACEHOLDER, LatencySLI


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


def total_rate(sli: SLI, window: Duration) -> str:
    if sli.events is not None:
        return _with_window(sli.events.total, window)
    if sli.latency is not None:
        lat = sli.latency
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
        return f"sum(rate({lat.histogram}_bucket{_latency_selector(lat, le_matcher(lat.threshold))}[{window}]))"
    return None


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
