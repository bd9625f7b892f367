"""Recording rules: an SLO's event rates, error ratios, burn rates and budget, per window.

Bad and total event rates are recorded *separately* for every window the policy reads, so
every ratio derived from them is weighted by events: the period's error ratio is total bad
events ÷ total events, never an average of short-window ratios (which over-weights quiet
hours). The period rates are a mean of rates — a mean of rates is a sum of events —
computed for bad and total apart.

Each raw range is read once per window and evaluation, as in Sloth's rules: rules of a
group run in order and each sees what the earlier ones recorded at the same timestamp, so
the total is recorded first and the bad rate's "no error series yet" fallback multiplies
that recorded total by 0 instead of reading the raw total again; where bad is total − good,
the good rate is recorded first, the total gated on it and bad is their difference (the
same subtraction as before, so the same number). `event_rate_rules` builds these for the
window group and for the period group's tiles alike.

The period rollup reads *tiles*: the period group (every 5 minutes) records the 5-minute
rates itself, so consecutive samples cover consecutive, non-overlapping 5-minute spans,
and the period's rate is the mean of the tiles in the period. That reads 8,640 samples per
series for 30 days, where averaging the window group's 5m rates (recorded every minute,
each span counted five times over) read 43,200; the budget still lags by at most one
tile (5 minutes). Hourly tiles would read 720, but leave the budget up to an hour behind an
outage, in the dashboards and in the page's "budget remaining", and the window groups cost
far more than either (docs/generate.md).

Grouped SLOs (`group_by`) are recorded per group, not per instance: every rate is a
`sum by (<group labels>)`, so each recorded series carries the group labels next to the
SLO's, and every ratio, burn rate and alert derived from them — all plain vector
operations between series with the same labels — is per group too. The one operator
that names its matching labels, `and on()`, matches on the group labels.

Everything here is pure: SLOs in, rule groups (plain dicts) out.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from engine.evaluation.policy import AlertPolicy, exact, policy_for
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.promql_groups import outer_sum_labels
from engine.spec.sli import bad_rate, derives_bad, good_rate, total_rate

# The period group runs every 5 minutes and records one 5-minute tile per run; it must not
# run less often than Prometheus' 5m lookback, or its series would vanish from instant
# queries (dashboards, alert templates) between two runs.
PERIOD_GROUP_INTERVAL = Duration.parse("5m")
# Resolution of the period rollup when the policy has no windows of its own (alerting off).
FALLBACK_BASE_WINDOW = Duration.parse("5m")

Rule = dict[str, Any]
Group = dict[str, Any]


def decimal_text(value: Decimal) -> str:
    """A Decimal as PromQL writes numbers: plain notation, no exponent, no float noise."""
    return format(exact(value), "f")


def slo_labels(slo: SLO) -> dict[str, str]:
    """Labels on every series and alert of an SLO: the spec's labels, then ours (ours win:
    dashboards, routing and inhibition all join on service/slo/tier). A grouped SLO's `slo`
    is its spec's id; the group labels come with the series."""
    ours = {"service": slo.service, "slo": slo.base_id, "tier": str(slo.tier)}
    spec = {name: slo.labels[name] for name in sorted(slo.labels) if name not in ours}
    return {**ours, **spec}


def _closing_paren(expr: str, start: int) -> int:
    """Index of the parenthesis closing the one at `start`, skipping quoted strings."""
    depth, i, quote = 0, start, ""
    while i < len(expr):
        char = expr[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def summed(expr: str, by: Sequence[str] = ()) -> str:
    """`sum(expr)`: one series per SLO whatever labels the SLI keeps — unless `expr` is
    already one plain `sum(...)`, which needs no second wrapper. With `by` (a grouped
    SLO's labels): `sum by (labels) (expr)`, one series per group, unless `expr` already
    is exactly that."""
    expr = expr.strip()
    if by:
        written = outer_sum_labels(expr)
        if written is not None and set(written) == set(by):
            return expr
        return f"sum by ({', '.join(by)}) ({expr})"
    if expr.startswith("sum(") and _closing_paren(expr, 3) == len(expr) - 1:
        return expr
    return f"sum({expr})"


def selector(slo: SLO) -> str:
    """Selects one SLO's recorded series (all groups of a grouped one); the `slo` label is
    `<service>/<name>`, unique."""
    return '{slo="' + slo.base_id + '"}'


def bad_events_metric(window: Duration) -> str:
    return f"slo:bad_events:rate{window}"


def good_events_metric(window: Duration) -> str:
    """Recorded only where bad is total − good: the good side, read once for both."""
    return f"slo:good_events:rate{window}"


def total_events_metric(window: Duration) -> str:
    return f"slo:total_events:rate{window}"


def bad_tile_metric(window: Duration) -> str:
    """The period group's own `window` rate, one sample per run: a tile of the period."""
    return f"slo:bad_events:rate{window}_every{PERIOD_GROUP_INTERVAL}"


def total_tile_metric(window: Duration) -> str:
    return f"slo:total_events:rate{window}_every{PERIOD_GROUP_INTERVAL}"


def good_tile_metric(window: Duration) -> str:
    return f"slo:good_events:rate{window}_every{PERIOD_GROUP_INTERVAL}"


def error_ratio_metric(window: Duration) -> str:
    return f"slo:error_ratio:rate{window}"


def burn_rate_metric(window: Duration) -> str:
    return f"slo:burn_rate:{window}"


OBJECTIVE_METRIC = "slo:objective:ratio"
ERROR_BUDGET_METRIC = "slo:error_budget:ratio"
PERIOD_METRIC = "slo:period:seconds"
BUDGET_REMAINING_METRIC = "slo:error_budget_remaining:ratio"


def rolling_windows(policy: AlertPolicy) -> tuple[Duration, ...]:
    """Windows recorded straight from the raw metrics: every policy window but the period."""
    return tuple(w for w in policy.windows if w != policy.period)


def base_window(policy: AlertPolicy) -> Duration:
    """The shortest recorded window: its rates, averaged, give the period's rates."""
    windows = rolling_windows(policy)
    return windows[0] if windows else FALLBACK_BASE_WINDOW


def tile_window(policy: AlertPolicy) -> Duration:
    """The span of one period tile: the group's interval, so tiles neither overlap nor
    leave gaps — unless the policy's shortest window is longer (an SLI scraped too slowly
    for 5m rates), in which case tiles overlap and the mean is still a mean of rates."""
    return max(base_window(policy), PERIOD_GROUP_INTERVAL)


def sli_group_name(slo: SLO) -> str:
    return f"slo:{slo.base_id}"


def period_group_name(slo: SLO) -> str:
    return f"slo:{slo.base_id}:period"


def group_variable(label: str) -> str:
    """The dashboard variable selecting the groups of a group label (`var-<name>` in
    links): the label's own name, unless the dashboards already use that name."""
    return f"group_{label}" if label == "datasource" else label


def _record(metric: str, expr: str, labels: dict[str, str]) -> Rule:
    return {"record": metric, "expr": expr, "labels": dict(labels)}


def _ratio_and_burn(slo: SLO, window: Duration, labels: dict[str, str]) -> list[Rule]:
    sel = selector(slo)
    budget = decimal_text(slo.error_budget)
    return [
        _record(
            error_ratio_metric(window),
            f"{bad_events_metric(window)}{sel} / {total_events_metric(window)}{sel}",
            labels,
        ),
        _record(burn_rate_metric(window), f"{error_ratio_metric(window)}{sel} / {budget}", labels),
    ]


def _on(slo: SLO) -> str:
    """The matching clause between an SLO's raw-side rate and its recorded series: `on()`
    (one series each), or `on(<group labels>)` so a grouped SLO matches group by group."""
    return f"on({', '.join(slo.group_by)})"


def bad_events_expr(slo: SLO, window: Duration, total_metric: str) -> str:
    """The bad-event rate of an explicit bad query, or 0 when it matches nothing but the
    total (recorded just before, in the same group and evaluation, as `total_metric`) has
    data.

    Error counters such as `http_requests_total{code=~"5.."}` usually do not exist until
    the first error; the daemon counts such a step as 0 bad events
    (`engine.evaluation.windows.normalize_step_counts`), and so must the rules, or a healthy SLO
    would record no error ratio at all (SLONoData, blind burn alerts). `or on()` adds the
    fallback exactly when the bad side is empty, and nothing when the total is empty too
    (no data stays no data): the recorded total got a staleness marker the evaluation it
    vanished. Grouped: `or on(<group labels>)`, so the fallback fills exactly the groups
    whose bad side is empty.

    Reading the recorded total rather than `0 * sum(rate(total[w]))` matters: PromQL
    evaluates both sides of `or`, so the raw fallback read the total's range a second
    time every evaluation, on top of the total's own rule.
    """
    by = slo.group_by
    bad = summed(bad_rate(slo.sli, window, by), by)
    return f"{bad}\nor {_on(slo)} 0 * {total_metric}{selector(slo)}"


def event_rate_rules(
    slo: SLO, window: Duration, names: tuple[str, str, str], labels: dict[str, str]
) -> list[Rule]:
    """Bad and total event rates of one window, recorded as `names` (bad, total, good),
    in an order where each rule reads the raw series once and the recorded rest.

    Explicit bad query (and availability): total, then bad with the 0 fallback over the
    recorded total (`bad_events_expr`).

    Bad = total − good (latency SLIs, `good` queries): no 0 fallback — an empty good side
    means the good series is missing (a latency threshold that is no bucket bound, a wrong
    good selector) and 0 would show a perfect SLO (`engine.spec.sli`). The daemon reports
    such a step as no data, bad and total alike (engine.source.prometheus), so the total is
    recorded only while the good rate exists: recording it regardless would leave totals
    without bad rates — a period rollup averaging different tiles for the two — and keep
    SLONoData, which watches the total, quiet while no ratio can be computed. Good first,
    then the total gated on it, then bad as their difference.
    """
    bad_metric, total_metric, good_metric = names
    by, sel = slo.group_by, selector(slo)
    total = summed(total_rate(slo.sli, window, by), by)
    if not derives_bad(slo.sli):
        return [
            _record(total_metric, total, labels),
            _record(bad_metric, bad_events_expr(slo, window, total_metric), labels),
        ]
    good = summed(good_rate(slo.sli, window, by), by)
    return [
        _record(good_metric, good, labels),
        _record(total_metric, f"{total}\nand {_on(slo)} {good_metric}{sel}", labels),
        _record(bad_metric, f"{total_metric}{sel} - {good_metric}{sel}", labels),
    ]


def sli_rules(slo: SLO, policy: AlertPolicy | None = None) -> list[Rule]:
    """Per rolling window: bad and total event rates (events/s), error ratio, burn rate.

    Each rate is wrapped in `sum()` exactly as the daemon's Prometheus source wraps it, so
    the recorded series is one per SLO (per group of a grouped SLO, `sum by`) whatever
    labels the SLI query keeps, and both modes
    read identical numbers; a missing bad rate with a known total is 0 and a missing good
    rate is no data, as in the daemon.
    """
    policy = policy or policy_for(slo)
    labels = slo_labels(slo)
    windows = rolling_windows(policy) or (FALLBACK_BASE_WINDOW,)
    rules: list[Rule] = []
    for window in windows:
        names = (bad_events_metric(window), total_events_metric(window), good_events_metric(window))
        rules += event_rate_rules(slo, window, names, labels)
    for window in windows:
        rules.extend(_ratio_and_burn(slo, window, labels))
    return rules


def period_rules(slo: SLO, policy: AlertPolicy | None = None) -> list[Rule]:
    """The period's event rates, ratio and burn, the budget left, and the SLO's constants."""
    policy = policy or policy_for(slo)
    labels = slo_labels(slo)
    tile, period = tile_window(policy), policy.period
    tiles = (bad_tile_metric(tile), total_tile_metric(tile), good_tile_metric(tile))
    # Rules of a group run in order: the averages below already see this run's tile.
    tile_rules = event_rate_rules(slo, tile, tiles, labels)
    return tile_rules + period_rollup_rules(slo, tile, period, _ratio_and_burn(slo, period, labels))


def period_rollup_rules(
    slo: SLO, tile: Duration, period: Duration, ratio_and_burn: list[Rule]
) -> list[Rule]:
    """After the tiles of a period group: the period's event rates as averages of the
    tiles, its ratio and burn (`ratio_and_burn`, per SLI kind), the budget left and the
    SLO's constants. One copy for plain, composite and time-slice SLOs."""
    labels, sel = slo_labels(slo), selector(slo)
    budget = decimal_text(slo.error_budget)
    return [
        _record(
            bad_events_metric(period),
            f"avg_over_time({bad_tile_metric(tile)}{sel}[{period}])",
            labels,
        ),
        _record(
            total_events_metric(period),
            f"avg_over_time({total_tile_metric(tile)}{sel}[{period}])",
            labels,
        ),
        *ratio_and_burn,
        # Share of the period's budget still unspent; negative once overspent.
        _record(
            BUDGET_REMAINING_METRIC, f"1 - {error_ratio_metric(period)}{sel} / {budget}", labels
        ),
        _record(OBJECTIVE_METRIC, f"vector({decimal_text(slo.objective)})", labels),
        _record(ERROR_BUDGET_METRIC, f"vector({budget})", labels),
        _record(PERIOD_METRIC, f"vector({decimal_text(period.decimal_seconds)})", labels),
    ]


def recording_groups(slo: SLO, policy: AlertPolicy | None = None) -> tuple[Group, Group]:
    """(windowed SLI group, period group) for one SLO; alerts are appended to the first by
    the alert generator so they read values recorded in the same evaluation."""
    policy = policy or policy_for(slo)
    sli = {"name": sli_group_name(slo), "rules": sli_rules(slo, policy)}
    period = {
        "name": period_group_name(slo),
        "interval": str(PERIOD_GROUP_INTERVAL),
        "rules": period_rules(slo, policy),
    }
    return sli, period
