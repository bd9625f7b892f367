"""Grafana dashboards, built with grafana-foundation-sdk (pinned build for Grafana 11.6).

- `slo-overview`: every SLO, worst first — budget remaining, burn rates, firing alerts.
- `slo-<service>`: per SLO of the service, the SLI against its objective, the budget
  burn-down over the period, the burn rate per window with the policy's thresholds drawn,
  the alert state and the event rates.
- `golden-signals-<service>`: latency percentiles (from the histograms the latency SLIs
  name), traffic, errors, saturation (process CPU and memory of the jobs the SLIs select).

SLO panels read the recorded `slo:*` series, so they show exactly what the alerts see; the
golden signals read the raw metrics. Thresholds come from `policy_for`, never a copy.
Every panel and query uses the `datasource` variable, never an import placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, text, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from engine.alerting.alerts import burn_alert_name
from engine.alerting.links import OVERVIEW_UID, golden_signals_uid, service_dashboard_uid
from engine.evaluation.policy import AlertPolicy, policy_for
from engine.generate.alert_rules import BURN_ALERT, NO_DATA_ALERT
from engine.generate.provisioning import DATASOURCE_NAME, DATASOURCE_UID
from engine.generate.rules import (
    BUDGET_REMAINING_METRIC,
    OBJECTIVE_METRIC,
    bad_events_metric,
    base_window,
    burn_rate_metric,
    decimal_text,
    error_ratio_metric,
    rolling_windows,
    total_events_metric,
)
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import bad_rate, total_rate

TAG = "slo-engine"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The SLI query builders take a Duration; this one is rendered once and swapped for
# Grafana's `$__rate_interval`, so panels reuse the exact SLI PromQL of the rules.
_SENTINEL = Duration(1_234_567)
_JOB_RE = re.compile(r'\bjob\s*=\s*"([^"]+)"')
PERCENTILES = ("0.5", "0.9", "0.99")
_PAGE_COLOR, _TICKET_COLOR = "red", "orange"


# ---------------------------------------------------------------------------------------
# Building blocks


def _query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prom.Dataquery:
    query = prom.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant().format(PromQueryFormat.TABLE)
    return query


def _refs(n: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"Q{i}" for i in range(n)]


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


_BUDGET_STEPS = ((None, "red"), (0.0, "orange"), (0.25, "yellow"), (0.5, "green"))


def _datasource_variable() -> dash.DatasourceVariable:
    return (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def _custom_variable(name: str, label: str, values: Sequence[str]) -> dash.CustomVariable:
    return (
        dash.CustomVariable(name)
        .label(label)
        .values(",".join(values))
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(text="All", value="$__all"))
        .options(
            [
                model.VariableOption(text="All", value="$__all", selected=True),
                *(model.VariableOption(text=v, value=v, selected=False) for v in values),
            ]
        )
    )


def _dashboard(uid: str, title: str, description: str, tags: list[str]) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, *tags])
        .readonly()
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("SLO dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )


def _finish(builder: dash.Dashboard) -> model.Dashboard:
    """Build and number the panels 1..n in layout order, so ids are stable across runs."""
    board = builder.build()
    next_id = 1
    for panel in board.panels or []:
        panel.id_val = next_id
        next_id += 1
        for child in getattr(panel, "panels", None) or []:
            child.id_val = next_id
            next_id += 1
    return board


def _targets(panel: Any, queries: Sequence[tuple[str, str]], instant: bool = False) -> Any:
    for ref, (expr, legend) in zip(_refs(len(queries)), queries, strict=True):
        panel = panel.with_target(_query(expr, legend, ref, instant))
    return panel


def _stat(title: str, expr: str, unit: str, steps: Sequence[tuple[float | None, str]]) -> Builder:
    return (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(_query(expr))
        .unit(unit)
        .thresholds(_thresholds(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def _timeseries(
    title: str, queries: Sequence[tuple[str, str]], unit: str, description: str = ""
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    if description:
        panel = panel.description(description)
    return _targets(panel, queries)


def _organize(rename: dict[str, str], exclude: Sequence[str] = ()) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {name: True for name in exclude},
            "renameByName": rename,
            "indexByName": {},
        },
    )


# ---------------------------------------------------------------------------------------
# Overview


def _union_windows(policies: Sequence[AlertPolicy]) -> list[Duration]:
    return sorted({w for p in policies for w in rolling_windows(p)})


def overview_dashboard(slos: Sequence[SLO]) -> model.Dashboard:
    services = sorted({s.service for s in slos})
    windows = _union_windows([policy_for(s) for s in slos])
    sel = '{service=~"$service"}'
    # Specs may name their burn-rate alerts (alerting.name): match every name in use.
    burn = "|".join(sorted({burn_alert_name(s) for s in slos} or {BURN_ALERT}))
    alerts = f'alertname=~"{burn}|{NO_DATA_ALERT}", alertstate="firing", service=~"$service"'

    def count(matchers: str) -> str:
        return f"count(ALERTS{{{matchers}}}) or vector(0)"

    zero_good = ((None, "green"), (1.0, "red"))
    board = (
        _dashboard(
            OVERVIEW_UID,
            "SLO overview",
            "Every SLO generated from slo_specs/: error budget left, burn rates and firing "
            "alerts, worst first.",
            ["overview"],
        )
        .with_variable(_datasource_variable())
        .with_variable(_custom_variable("service", "Service", services))
        .with_panel(
            _stat("SLOs", f"count({OBJECTIVE_METRIC}{sel})", "none", ((None, "blue"),)).span(4)
        )
        .with_panel(
            _stat(
                "Budgets exhausted",
                f"count({BUDGET_REMAINING_METRIC}{sel} <= 0) or vector(0)",
                "none",
                zero_good,
            ).span(4)
        )
        .with_panel(
            _stat(
                "Lowest budget left",
                f"min({BUDGET_REMAINING_METRIC}{sel})",
                "percentunit",
                _BUDGET_STEPS,
            ).span(4)
        )
        .with_panel(
            _stat("Pages firing", count(f'{alerts}, severity="page"'), "none", zero_good).span(4)
        )
        .with_panel(
            _stat(
                "Tickets firing",
                count(f'{alerts}, severity="ticket", alertname!="{NO_DATA_ALERT}"'),
                "none",
                ((None, "green"), (1.0, "orange")),
            ).span(4)
        )
        .with_panel(
            _stat(
                "SLOs without data",
                count(f'{alerts}, alertname="{NO_DATA_ALERT}"'),
                "none",
                ((None, "green"), (1.0, "orange")),
            ).span(4)
        )
        .with_panel(
            bargauge.Panel()
            .title("Error budget remaining — worst first")
            .datasource(DATASOURCE)
            .with_target(
                _query(f"sort({BUDGET_REMAINING_METRIC}{sel})", "{{slo}}", instant=True).format(
                    PromQueryFormat.TIME_SERIES
                )
            )
            .unit("percentunit")
            .min(-1)
            .max(1)
            .thresholds(_thresholds(*_BUDGET_STEPS))
            .display_mode(common.BarGaugeDisplayMode.GRADIENT)
            .orientation(common.VizOrientation.HORIZONTAL)
            .reduce_options(
                common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
            )
            .height(10)
            .span(12)
        )
        .with_panel(
            bargauge.Panel()
            .title(f"Burn rate over {windows[0] if windows else '5m'} — highest first")
            .description("1 spends exactly the budget over the period; pages start at 6–14.4.")
            .datasource(DATASOURCE)
            .with_target(
                _query(
                    f"sort_desc({burn_rate_metric(windows[0] if windows else Duration.parse('5m'))}{sel})",
                    "{{slo}}",
                    instant=True,
                ).format(PromQueryFormat.TIME_SERIES)
            )
            .unit("x")
            .min(0)
            .thresholds(
                _thresholds((None, "green"), (1.0, "yellow"), (6.0, "orange"), (14.4, "red"))
            )
            .display_mode(common.BarGaugeDisplayMode.GRADIENT)
            .orientation(common.VizOrientation.HORIZONTAL)
            .reduce_options(
                common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)
            )
            .height(10)
            .span(12)
        )
        .with_panel(_overview_table(windows, sel))
        .with_panel(
            table.Panel()
            .title("Firing SLO alerts")
            .datasource(DATASOURCE)
            .with_target(_query(f"ALERTS{{{alerts}}}", instant=True))
            .with_transformation(
                _organize(
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
        .with_panel(
            _timeseries(
                "Error budget remaining",
                [(f"{BUDGET_REMAINING_METRIC}{sel}", "{{slo}}")],
                "percentunit",
            )
            .thresholds(_thresholds(*_BUDGET_STEPS))
            .height(8)
            .span(12)
        )
        .with_panel(
            _timeseries(
                "Burn rate over 1h",
                [(f"{burn_rate_metric(Duration.parse('1h'))}{sel}", "{{slo}}")],
                "x",
            )
            .height(8)
            .span(12)
        )
    )
    return _finish(board)


def _overview_table(windows: Sequence[Duration], sel: str) -> table.Panel:
    # One unit for the whole table: field overrides by name do not pass the dashboard
    # schema, so shares are shown in percent and every column says its unit.
    columns = [
        (f"sort({BUDGET_REMAINING_METRIC}{sel}) * 100", "Budget left %"),
        (f"{OBJECTIVE_METRIC}{sel} * 100", "Objective %"),
        *((f"{burn_rate_metric(w)}{sel}", f"Burn {w} ×") for w in windows),
    ]
    refs = _refs(len(columns))
    panel = (
        table.Panel()
        .title("SLOs — worst budget first")
        .datasource(DATASOURCE)
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            _organize(
                {f"Value #{ref}": name for ref, (_, name) in zip(refs, columns, strict=True)},
                exclude=("Time", "__name__"),
            )
        )
        .sort_by([common_builders.TableSortByFieldState().display_name("Budget left %")])
        .unit("none")
        .decimals(2)
        .height(10)
        .span(24)
    )
    return _targets(panel, [(expr, "") for expr, _ in columns], instant=True)


# ---------------------------------------------------------------------------------------
# Per-service SLO detail


def _slo_row(slo: SLO) -> list[Builder]:
    policy = policy_for(slo)
    sel = f'{{slo="{slo.id}", slo=~"${{slo:regex}}"}}'
    base, period = base_window(policy), policy.period
    objective = float(slo.objective)
    page_factors = sorted({float(r.factor) for r in policy.rules_for("page")})
    ticket_factors = sorted({float(r.factor) for r in policy.rules_for("ticket")})
    first_long = min((r.long_window for r in policy.rules), default=base)
    burn_steps: list[tuple[float | None, str]] = [(None, "green")]
    burn_steps += [(f, _TICKET_COLOR) for f in ticket_factors if f not in page_factors]
    burn_steps += [(f, _PAGE_COLOR) for f in page_factors]
    alert_matchers = f'slo="{slo.id}", alertstate="firing"'
    objective_text = f"{decimal_text(slo.objective_percent)}% over {period}"

    sli_stat = _stat(
        f"SLI over {period}",
        f"1 - {error_ratio_metric(period)}{sel}",
        "percentunit",
        ((None, "red"), (objective, "green")),
    ).decimals(3)
    burn_panel = (
        _timeseries(
            "Burn rate per window",
            [(f"{burn_rate_metric(w)}{sel}", str(w)) for w in rolling_windows(policy)],
            "x",
            "Dashed lines: the alert factors (red = page, orange = ticket). A rule fires when "
            "both its long and its short window are above its factor.",
        )
        .thresholds(_thresholds(*sorted(burn_steps, key=lambda s: -1 if s[0] is None else s[0])))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
        .min(0)
        .height(8)
        .span(8)
    )
    return [
        dash.Row(f"{slo.name} — {objective_text}"),
        sli_stat.description(slo.description or objective_text).height(5).span(4),
        _stat(
            "Error budget remaining",
            f"{BUDGET_REMAINING_METRIC}{sel}",
            "percentunit",
            _BUDGET_STEPS,
        )
        .height(5)
        .span(4),
        _stat(
            f"Burn rate ({first_long})",
            f"{burn_rate_metric(first_long)}{sel}",
            "x",
            burn_steps,
        )
        .height(5)
        .span(4),
        _stat(
            "Firing alerts",
            f"count(ALERTS{{{alert_matchers}}}) or vector(0)",
            "none",
            ((None, "green"), (1.0, "red")),
        )
        .height(5)
        .span(4),
        _timeseries(
            "SLI vs objective",
            [
                (f"1 - {error_ratio_metric(base)}{sel}", f"SLI ({base})"),
                (f"1 - {error_ratio_metric(period)}{sel}", f"SLI ({period})"),
                (f"{OBJECTIVE_METRIC}{sel}", "objective"),
            ],
            "percentunit",
        )
        .height(5)
        .span(8),
        _timeseries(
            f"Error budget burn-down ({period})",
            [(f"{BUDGET_REMAINING_METRIC}{sel}", "budget remaining")],
            "percentunit",
            "Share of the period's error budget still unspent; below 0 the SLO is broken.",
        )
        .time_from(str(period))
        .thresholds(_thresholds(*_BUDGET_STEPS))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)
        )
        .height(8)
        .span(8),
        burn_panel,
        statetimeline.Panel()
        .title("Alert state")
        .datasource(DATASOURCE)
        .with_target(
            _query(
                f'max by (severity, long_window, short_window) (ALERTS{{alertname="{burn_alert_name(slo)}", {alert_matchers}}})',
                "{{severity}} {{long_window}}/{{short_window}}",
                "A",
            )
        )
        .with_target(
            _query(f'max(ALERTS{{alertname="{NO_DATA_ALERT}", {alert_matchers}}})', "no data", "B")
        )
        .mappings(
            [model.ValueMap(options={"1": model.ValueMappingResult(text="firing", color="red")})]
        )
        .thresholds(_thresholds((None, "red")))
        .show_value(common.VisibilityMode.NEVER)
        .height(8)
        .span(8),
        _timeseries(
            "Events per second",
            [
                (f"{total_events_metric(base)}{sel}", f"total ({base})"),
                (f"{bad_events_metric(base)}{sel}", f"bad ({base})"),
            ],
            "short",
        )
        .height(6)
        .span(12),
        _timeseries(
            "Error ratio per window",
            [(f"{error_ratio_metric(w)}{sel}", str(w)) for w in rolling_windows(policy)],
            "percentunit",
        )
        .height(6)
        .span(12),
    ]


def service_dashboard(service: str, slos: Sequence[SLO]) -> model.Dashboard:
    board = _dashboard(
        service_dashboard_uid(service),
        f"SLOs — {service}",
        f"Service-level objectives of {service}: SLI, error budget, burn rates and alerts.",
        ["service", service],
    ).with_variable(_datasource_variable())
    board = board.with_variable(_custom_variable("slo", "SLO", [s.id for s in slos]))
    for slo in slos:
        for item in _slo_row(slo):
            board = board.with_row(item) if isinstance(item, dash.Row) else board.with_panel(item)
    return _finish(board)


# ---------------------------------------------------------------------------------------
# Golden signals


def _per_interval(query: str) -> str:
    return query.replace(str(_SENTINEL), "$__rate_interval")


def _jobs(slos: Sequence[SLO]) -> list[str]:
    text = []
    for slo in slos:
        sli = slo.sli
        if sli.events is not None:
            text += [sli.events.total, sli.events.bad or "", sli.events.good or ""]
        elif sli.latency is not None:
            text.append(sli.latency.selector)
        elif sli.availability is not None:
            text.append(sli.availability.metric)
    return sorted({job for chunk in text for job in _JOB_RE.findall(chunk)})


def golden_signals_dashboard(service: str, slos: Sequence[SLO]) -> model.Dashboard:
    rated = [s for s in slos if s.sli.kind in ("events", "latency")]
    histograms = sorted(
        {(s.sli.latency.histogram, s.sli.latency.selector) for s in slos if s.sli.latency}
    )
    availability = [s for s in slos if s.sli.availability is not None]
    board = _dashboard(
        golden_signals_uid(service),
        f"Golden signals — {service}",
        f"Latency, traffic, errors and saturation of {service}, from the raw metrics its SLIs use.",
        ["golden-signals", service],
    ).with_variable(_datasource_variable())
    board = board.with_row(dash.Row("Latency"))
    for histogram, matchers in histograms:
        selector = "{" + matchers + "}"
        board = board.with_panel(
            _timeseries(
                f"Latency percentiles — {histogram}{selector if matchers else ''}",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{selector}[$__rate_interval])))",
                        f"p{decimal_text(Decimal(q) * 100)}",
                    )
                    for q in PERCENTILES
                ],
                "s",
            )
            .height(8)
            .span(24 // max(1, min(2, len(histograms))))
        )
    if not histograms:
        board = board.with_panel(_note("No latency SLI names a histogram for this service."))
    board = board.with_row(dash.Row("Traffic and errors"))
    if rated:
        board = board.with_panel(
            _timeseries(
                "Traffic (events per second)",
                [(_per_interval(f"sum({total_rate(s.sli, _SENTINEL)})"), s.name) for s in rated],
                "short",
            )
            .height(8)
            .span(12)
        ).with_panel(
            _timeseries(
                "Errors (bad events ÷ events)",
                [
                    (
                        _per_interval(
                            f"sum({bad_rate(s.sli, _SENTINEL)}) / sum({total_rate(s.sli, _SENTINEL)})"
                        ),
                        s.name,
                    )
                    for s in rated
                ],
                "percentunit",
            )
            .height(8)
            .span(12)
        )
    for slo in availability:
        assert slo.sli.availability is not None
        board = board.with_panel(
            _timeseries(
                f"{slo.name}: {slo.sli.availability.metric}",
                [(slo.sli.availability.metric, slo.name)],
                "short",
            )
            .height(8)
            .span(12)
        )
    jobs = _jobs(slos)
    board = board.with_row(dash.Row("Saturation"))
    for job in jobs:
        board = board.with_panel(
            _timeseries(
                f"CPU — job {job}",
                [
                    (
                        f'sum(rate(process_cpu_seconds_total{{job="{job}"}}[$__rate_interval]))',
                        "cores",
                    )
                ],
                "short",
            )
            .height(6)
            .span(12)
        ).with_panel(
            _timeseries(
                f"Memory — job {job}",
                [(f'sum(process_resident_memory_bytes{{job="{job}"}})', "resident")],
                "bytes",
            )
            .height(6)
            .span(12)
        )
    if not jobs:
        board = board.with_panel(
            _note("No SLI query selects a job, so no saturation metric is known.")
        )
    return _finish(board)


def _note(message: str) -> Builder:
    return text.Panel().title("").content(message).height(3).span(24)


# ---------------------------------------------------------------------------------------


def dashboards(slos: Sequence[SLO]) -> list[tuple[str, model.Dashboard]]:
    """(file name, dashboard) for every dashboard, overview first, services sorted."""
    services: dict[str, list[SLO]] = {}
    for slo in slos:
        services.setdefault(slo.service, []).append(slo)
    out: list[tuple[str, model.Dashboard]] = [("slo-overview.json", overview_dashboard(slos))]
    for service in sorted(services):
        out.append((f"slo-{service}.json", service_dashboard(service, services[service])))
        out.append(
            (f"golden-signals-{service}.json", golden_signals_dashboard(service, services[service]))
        )
    return out
