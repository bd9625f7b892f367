"""PromQL for an SLO's bad and total event *rates* (events per second) over a window.

Shared by the Prometheus source (which asks for per-step rates and multiplies by the step)
and the rule generator (which records the same expressions), so a daemon alert and a
Prometheus alert are computed from identical queries.
"""

from __future__ import annotations

import re
from decimal import Decimal

from engine.spec.durations import Duration
from engine.spec.models import SLI, WINDOW_PLACEHOLDER, LatencySLI


def _with_window(query: str, window: Duration) -> str:
    return query.replace(WINDOW_PLACEHOLDER, str(window))


def le_matcher(threshold: Duration) -> str:
    """`le` matcher for a bucket bound, matching both spellings of whole numbers.

    Prometheus 3 normalises `le="1"` to `le="1.0"`; older exporters write either, so a
    whole-number bound is matched as `le=~"1|1.0"`.
    """
    seconds = threshold.decimal_seconds.normalize()
    text = format(seconds, "f")
    if seconds == seconds.to_integral():
        whole = format(seconds.quantize(Decimal(1)), "f")
        return f'le=~"{whole}|{whole}.0"'
    return f'le="{text}"'


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


def bad_rate(sli: SLI, window: Duration) -> str:
    if sli.events is not None:
        if sli.events.bad is not None:
            return _with_window(sli.events.bad, window)
        assert sli.events.good is not None
        return f"({_with_window(sli.events.total, window)}) - ({_with_window(sli.events.good, window)})"
    if sli.latency is not None:
        lat = sli.latency
        good = f"sum(rate({lat.histogram}_bucket{_latency_selector(lat, le_matcher(lat.threshold))}[{window}]))"
        return f"({total_rate(sli, window)}) - ({good})"
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
