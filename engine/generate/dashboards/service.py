"""`slo-<service>`: one row per SLO of the service — the SLI against its objective, the
budget burn-down over the period, the burn rate per window with the policy's thresholds
drawn, the alert state and the event rates. Thresholds come from `policy_for`, never a copy.
Then the anomaly row: observed vs expected band per watched signal (`anomaly`).

A grouped SLO's panels show one series per group: each group label is a variable of the
dashboard (its values listed from the recorded series), selected in every query and named
in every legend."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import statetimeline
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from engine.alerting.alerts import burn_alert_name
from engine.alerting.links import service_dashboard_uid
from engine.evaluation.policy import AlertPolicy, policy_for
from engine.generate.alert_rules import NO_DATA_ALERT
from engine.generate.dashboards.anomaly import anomaly_items
from engine.generate.dashboards.panels import (
    BUDGET_STEPS,
    DATASOURCE,
    add_items,
    base_dashboard,
    custom_variable,
    datasource_variable,
    finish,
    prometheus_query,
    query_variable,
    stat_panel,
    thresholds,
    timeseries_panel,
)
from engine.generate.rules import (
    BUDGET_REMAINING_METRIC,
    OBJECTIVE_METRIC,
    bad_events_metric,
    base_window,
    burn_rate_metric,
    decimal_text,
    error_ratio_metric,
    group_variable,
    rolling_windows,
    total_events_metric,
)
from engine.spec.durations import Duration
from engine.spec.models import SLO

_PAGE_COLOR, _TICKET_COLOR = "red", "orange"
BurnSteps = list[tuple[float | None, str]]


def service_dashboard(service: str, slos: Sequence[SLO]) -> model.Dashboard:
    board = base_dashboard(
        service_dashboard_uid(service),
        f"SLOs — {service}",
        f"Service-level objectives of {service}: SLI, error budget, burn rates and alerts.",
        ["service", service],
    ).with_variable(datasource_variable())
    board = board.with_variable(custom_variable("slo", "SLO", [s.id for s in slos]))
    for label in sorted({label for s in slos for label in s.group_by}):
        board = board.with_variable(
            _group_variable(label, [s for s in slos if label in s.group_by])
        )
    for slo in slos:
        board = add_items(board, _slo_row(slo))
    board = add_items(board, anomaly_items(slos))
    return finish(board)


def _group_variable(label: str, slos: Sequence[SLO]) -> Builder:
    """The groups of `label` that have a recorded budget, over the SLOs grouped by it."""
    ids = [s.base_id for s in slos]
    matcher = f'slo="{ids[0]}"' if len(ids) == 1 else f'slo=~"{"|".join(ids)}"'
    return query_variable(
        group_variable(label),
        label,
        f"label_values({BUDGET_REMAINING_METRIC}{{{matcher}}}, {label})",
    )


def _group_matchers(slo: SLO) -> str:
    """`, route=~"${route:regex}"`: the groups chosen in the dashboard's variables."""
    return "".join(
        f', {label}=~"${{{group_variable(label)}:regex}}"' for label in sorted(slo.group_by)
    )


def _group_legend(slo: SLO) -> str:
    """`{{route}}`: names a grouped SLO's series in legends; empty for ungrouped SLOs."""
    return " ".join(f"{{{{{label}}}}}" for label in sorted(slo.group_by))


def _slo_row(slo: SLO) -> list[Builder]:
    policy = policy_for(slo)
    groups, legend = _group_matchers(slo), _group_legend(slo)
    # The objective is one series per SLO, without group labels: not filtered by group.
    slo_sel = f'{{slo="{slo.base_id}", slo=~"${{slo:regex}}"}}'
    sel = f'{{slo="{slo.base_id}", slo=~"${{slo:regex}}"{groups}}}'
    base, period = base_window(policy), policy.period
    burn_steps = _burn_steps(policy)
    alert_matchers = f'slo="{slo.base_id}", alertstate="firing"{groups}'
    objective_text = f"{decimal_text(slo.objective_percent)}% over {period}"

    def named(text: str) -> str:
        return f"{text} {legend}" if legend else text

    return [
        dash.Row(f"{slo.name} — {objective_text}"),
        *_slo_stats(slo, policy, sel, burn_steps, objective_text, alert_matchers),
        timeseries_panel(
            "SLI vs objective",
            [
                (f"1 - {error_ratio_metric(base)}{sel}", named(f"SLI ({base})")),
                (f"1 - {error_ratio_metric(period)}{sel}", named(f"SLI ({period})")),
                (f"{OBJECTIVE_METRIC}{slo_sel}", "objective"),
            ],
            "percentunit",
        )
        .height(5)
        .span(8),
        _burn_down_panel(period, sel, named("budget remaining")),
        _burn_rate_panel(policy, sel, burn_steps, named),
        _alert_state_panel(slo, alert_matchers),
        *_event_panels(policy, base, sel, named),
    ]


def _burn_steps(policy: AlertPolicy) -> BurnSteps:
    """Threshold steps at the policy's factors: red where a page starts, orange a ticket."""
    page_factors = sorted({float(r.factor) for r in policy.rules_for("page")})
    ticket_factors = sorted({float(r.factor) for r in policy.rules_for("ticket")})
    burn_steps: BurnSteps = [(None, "green")]
    burn_steps += [(f, _TICKET_COLOR) for f in ticket_factors if f not in page_factors]
    burn_steps += [(f, _PAGE_COLOR) for f in page_factors]
    return burn_steps


def _slo_stats(
    slo: SLO,
    policy: AlertPolicy,
    sel: str,
    burn_steps: BurnSteps,
    objective_text: str,
    alert_matchers: str,
) -> list[Builder]:
    """The row's first line: SLI over the period, budget left, burn rate, firing alerts."""
    base, period = base_window(policy), policy.period
    objective = float(slo.objective)
    first_long = min((r.long_window for r in policy.rules), default=base)
    legend = _group_legend(slo)
    sli_stat = stat_panel(
        f"SLI over {period}",
        f"1 - {error_ratio_metric(period)}{sel}",
        "percentunit",
        ((None, "red"), (objective, "green")),
        legend,
    ).decimals(3)
    return [
        sli_stat.description(slo.description or objective_text).height(5).span(4),
        stat_panel(
            "Error budget remaining",
            f"{BUDGET_REMAINING_METRIC}{sel}",
            "percentunit",
            BUDGET_STEPS,
            legend,
        )
        .height(5)
        .span(4),
        stat_panel(
            f"Burn rate ({first_long})",
            f"{burn_rate_metric(first_long)}{sel}",
            "x",
            burn_steps,
            legend,
        )
        .height(5)
        .span(4),
        stat_panel(
            "Firing alerts",
            f"count(ALERTS{{{alert_matchers}}}) or vector(0)",
            "none",
            ((None, "green"), (1.0, "red")),
        )
        .height(5)
        .span(4),
    ]


def _burn_down_panel(period: Duration, sel: str, legend: str) -> Builder:
    return (
        timeseries_panel(
            f"Error budget burn-down ({period})",
            [(f"{BUDGET_REMAINING_METRIC}{sel}", legend)],
            "percentunit",
            "Share of the period's error budget still unspent; below 0 the SLO is broken.",
        )
        .time_from(str(period))
        .thresholds(thresholds(*BUDGET_STEPS))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
        )
        .height(8)
        .span(8)
    )


def _burn_rate_panel(
    policy: AlertPolicy, sel: str, burn_steps: BurnSteps, named: Callable[[str], str]
) -> Builder:
    return (
        timeseries_panel(
            "Burn rate per window",
            [(f"{burn_rate_metric(w)}{sel}", named(str(w))) for w in rolling_windows(policy)],
            "x",
            "Dashed lines: the alert factors (red = page, orange = ticket). A rule fires when "
            "both its long and its short window are above its factor.",
        )
        .thresholds(thresholds(*sorted(burn_steps, key=lambda s: -1 if s[0] is None else s[0])))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
        .min(0)
        .height(8)
        .span(8)
    )


def _alert_state_panel(slo: SLO, alert_matchers: str) -> Builder:
    groups = sorted(slo.group_by)
    by = ", ".join(["severity", "long_window", "short_window", *groups])
    legend = " ".join(
        ["{{severity}} {{long_window}}/{{short_window}}", *(f"{{{{{g}}}}}" for g in groups)]
    )
    no_data = f"max by ({', '.join(groups)}) " if groups else "max"
    return (
        statetimeline.Panel()
        .title("Alert state")
        .datasource(DATASOURCE)
        .with_target(
            prometheus_query(
                f'max by ({by}) (ALERTS{{alertname="{burn_alert_name(slo)}", {alert_matchers}}})',
                legend,
                "A",
            )
        )
        .with_target(
            prometheus_query(
                f'{no_data}(ALERTS{{alertname="{NO_DATA_ALERT}", {alert_matchers}}})',
                " ".join(["no data", *(f"{{{{{g}}}}}" for g in groups)]),
                "B",
            )
        )
        .mappings(
            [model.ValueMap(options={"1": model.ValueMappingResult(text="firing", color="red")})]
        )
        .thresholds(thresholds((None, "red")))
        .show_value(common.VisibilityMode.NEVER)
        .height(8)
        .span(8)
    )


def _event_panels(
    policy: AlertPolicy, base: Duration, sel: str, named: Callable[[str], str]
) -> list[Builder]:
    return [
        timeseries_panel(
            "Events per second",
            [
                (f"{total_events_metric(base)}{sel}", named(f"total ({base})")),
                (f"{bad_events_metric(base)}{sel}", named(f"bad ({base})")),
            ],
            "short",
        )
        .height(6)
        .span(12),
        timeseries_panel(
            "Error ratio per window",
            [(f"{error_ratio_metric(w)}{sel}", named(str(w))) for w in rolling_windows(policy)],
            "percentunit",
        )
        .height(6)
        .span(12),
    ]
