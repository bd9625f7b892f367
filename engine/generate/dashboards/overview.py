"""`slo-overview`: every SLO, worst first — budget remaining, burn rates, firing alerts.

Grouped SLOs add a table of their groups, each with its budget and burn rate, worst
first, one column per group label."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, table
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from engine.alerting.alerts import burn_alert_name
from engine.alerting.links import OVERVIEW_UID
from engine.evaluation.policy import AlertPolicy, policy_for
from engine.generate.alert_rules import BURN_ALERT, NO_DATA_ALERT
from engine.generate.dashboards.panels import (
    BUDGET_STEPS,
    DATASOURCE,
    add_items,
    base_dashboard,
    custom_variable,
    datasource_variable,
    finish,
    organize,
    prometheus_query,
    refs,
    stat_panel,
    thresholds,
    timeseries_panel,
    with_targets,
)
from engine.generate.rules import (
    BUDGET_REMAINING_METRIC,
    OBJECTIVE_METRIC,
    burn_rate_metric,
    rolling_windows,
)
from engine.spec.durations import Duration
from engine.spec.models import SLO


def _union_windows(policies: Sequence[AlertPolicy]) -> list[Duration]:
    return sorted({w for p in policies for w in rolling_windows(p)})


def overview_dashboard(slos: Sequence[SLO]) -> model.Dashboard:
    services = sorted({s.service for s in slos})
    windows = _union_windows([policy_for(s) for s in slos])
    sel = '{service=~"$service"}'
    alerts = _firing_alert_matchers(slos)
    board = (
        base_dashboard(
            OVERVIEW_UID,
            "SLO overview",
            "Every SLO generated from slo_specs/: error budget left, burn rates and firing "
            "alerts, worst first.",
            ["overview"],
        )
        .with_variable(datasource_variable())
        .with_variable(custom_variable("service", "Service", services))
    )
    panels = [
        *_headline_stats(sel, alerts),
        _budget_gauge(sel),
        _burn_gauge(windows, sel),
        _overview_table(windows, sel),
        *_groups_table(slos, windows),
        _firing_alerts_table(alerts),
        *_trends(sel),
    ]
    return finish(add_items(board, panels))


def _firing_alert_matchers(slos: Sequence[SLO]) -> str:
    # Specs may name their burn-rate alerts (alerting.name): match every name in use.
    burn = "|".join(sorted({burn_alert_name(s) for s in slos} or {BURN_ALERT}))
    return f'alertname=~"{burn}|{NO_DATA_ALERT}", alertstate="firing", service=~"$service"'


def _headline_stats(sel: str, alerts: str) -> list[Builder]:
    """The top line: how many SLOs, how many broken, the lowest budget, what is firing."""

    def count(matchers: str) -> str:
        return f"count(ALERTS{{{matchers}}}) or vector(0)"

    zero_good = ((None, "green"), (1.0, "red"))
    return [
        stat_panel("SLOs", f"count({OBJECTIVE_METRIC}{sel})", "none", ((None, "blue"),)).span(4),
        stat_panel(
            "Budgets exhausted",
            f"count({BUDGET_REMAINING_METRIC}{sel} <= 0) or vector(0)",
            "none",
            zero_good,
        ).span(4),
        stat_panel(
            "Lowest budget left",
            f"min({BUDGET_REMAINING_METRIC}{sel})",
            "percentunit",
            BUDGET_STEPS,
        ).span(4),
        stat_panel("Pages firing", count(f'{alerts}, severity="page"'), "none", zero_good).span(4),
        stat_panel(
            "Tickets firing",
            count(f'{alerts}, severity="ticket", alertname!="{NO_DATA_ALERT}"'),
            "none",
            ((None, "green"), (1.0, "orange")),
        ).span(4),
        stat_panel(
            "SLOs without data",
            count(f'{alerts}, alertname="{NO_DATA_ALERT}"'),
            "none",
            ((None, "green"), (1.0, "orange")),
        ).span(4),
    ]


def _budget_gauge(sel: str) -> Builder:
    return (
        bargauge.Panel()
        .title("Error budget remaining — worst first")
        .datasource(DATASOURCE)
        .with_target(
            prometheus_query(
                f"sort({BUDGET_REMAINING_METRIC}{sel})", "{{slo}}", instant=True
            ).format(PromQueryFormat.TIME_SERIES)
        )
        .unit("percentunit")
        .min(-1)
        .max(1)
        .thresholds(thresholds(*BUDGET_STEPS))
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .height(10)
        .span(12)
    )


def _burn_gauge(windows: Sequence[Duration], sel: str) -> Builder:
    return (
        bargauge.Panel()
        .title(f"Burn rate over {windows[0] if windows else '5m'} — highest first")
        .description("1 spends exactly the budget over the period; pages start at 6–14.4.")
        .datasource(DATASOURCE)
        .with_target(
            prometheus_query(
                f"sort_desc({burn_rate_metric(windows[0] if windows else Duration.parse('5m'))}{sel})",
                "{{slo}}",
                instant=True,
            ).format(PromQueryFormat.TIME_SERIES)
        )
        .unit("x")
        .min(0)
        .thresholds(thresholds((None, "green"), (1.0, "yellow"), (6.0, "orange"), (14.4, "red")))
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .height(10)
        .span(12)
    )


def _overview_table(windows: Sequence[Duration], sel: str) -> table.Panel:
    # One unit for the whole table: field overrides by name do not pass the dashboard
    # schema, so shares are shown in percent and every column says its unit.
    columns = [
        (f"sort({BUDGET_REMAINING_METRIC}{sel}) * 100", "Budget left %"),
        (f"{OBJECTIVE_METRIC}{sel} * 100", "Objective %"),
        *((f"{burn_rate_metric(w)}{sel}", f"Burn {w} ×") for w in windows),
    ]
    column_refs = refs(len(columns))
    panel = (
        table.Panel()
        .title("SLOs — worst budget first")
        .datasource(DATASOURCE)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            organize(
                {
                    f"Value #{ref}": name
                    for ref, (_, name) in zip(column_refs, columns, strict=True)
                },
                exclude=("Time", "__name__"),
            )
        )
        .sort_by([common_builders.TableSortByFieldState().display_name("Budget left %")])
        .unit("none")
        .decimals(2)
        .height(10)
        .span(24)
    )
    return with_targets(panel, [(expr, "") for expr, _ in columns], instant=True)


def _groups_table(slos: Sequence[SLO], windows: Sequence[Duration]) -> list[Builder]:
    """The groups of every grouped SLO with their budget left, worst first; nothing when no
    SLO is grouped."""
    grouped = sorted({s.base_id for s in slos if s.group_by})
    if not grouped:
        return []
    sel = f'{{service=~"$service", slo=~"{"|".join(grouped)}"}}'
    columns = [
        (f"sort({BUDGET_REMAINING_METRIC}{sel}) * 100", "Budget left %"),
        *((f"{burn_rate_metric(w)}{sel}", f"Burn {w} ×") for w in windows[:1]),
    ]
    labels = sorted({label for s in slos for label in s.group_by})
    column_refs = refs(len(columns))
    panel = (
        table.Panel()
        .title("Groups of grouped SLOs — worst budget first")
        .description(f"One row per group ({', '.join(labels)}) of each SLO with group_by.")
        .datasource(DATASOURCE)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            organize(
                {
                    f"Value #{ref}": name
                    for ref, (_, name) in zip(column_refs, columns, strict=True)
                },
                exclude=("Time", "__name__", "tier"),
            )
        )
        .sort_by([common_builders.TableSortByFieldState().display_name("Budget left %")])
        .unit("none")
        .decimals(2)
        .height(10)
        .span(24)
    )
    return [with_targets(panel, [(expr, "") for expr, _ in columns], instant=True)]


def _firing_alerts_table(alerts: str) -> Builder:
    return (
        table.Panel()
        .title("Firing SLO alerts")
        .datasource(DATASOURCE)
        .with_target(prometheus_query(f"ALERTS{{{alerts}}}", instant=True))
        .with_transformation(
            organize(
                {
                    "alertname": "Alert",
                    "long_window": "Long window",
                    "short_window": "Short window",
                },
                exclude=("Time", "Value", "__name__", "alertstate"),
            )
        )
        .sort_by([common_builders.TableSortByFieldState().display_name("severity")])
        .no_value("No SLO alert is firing")
        .height(8)
        .span(24)
    )


def _trends(sel: str) -> list[Builder]:
    return [
        timeseries_panel(
            "Error budget remaining",
            [(f"{BUDGET_REMAINING_METRIC}{sel}", "{{slo}}")],
            "percentunit",
        )
        .thresholds(thresholds(*BUDGET_STEPS))
        .height(8)
        .span(12),
        timeseries_panel(
            "Burn rate over 1h",
            [(f"{burn_rate_metric(Duration.parse('1h'))}{sel}", "{{slo}}")],
            "x",
        )
        .height(8)
        .span(12),
    ]
