"""The building blocks every dashboard shares: the dashboard frame, its variables, and the
stat, time-series and table panels, all reading through the `datasource` variable."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, text, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from engine.generate.provisioning import DATASOURCE_NAME, DATASOURCE_UID

TAG = "slo-engine"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
BUDGET_STEPS = ((None, "red"), (0.0, "orange"), (0.25, "yellow"), (0.5, "green"))


def prometheus_query(
    expr: str, legend: str = "", ref: str = "A", instant: bool = False
) -> prom.Dataquery:
    query = prom.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant().format(PromQueryFormat.TABLE)
    return query


def refs(n: int) -> list[str]:
    return [chr(ord("A") + i) if i < 26 else f"Q{i}" for i in range(n)]


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


def datasource_variable() -> dash.DatasourceVariable:
    return (
        dash.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(model.VariableOption(text=DATASOURCE_NAME, value=DATASOURCE_UID))
    )


def custom_variable(name: str, label: str, values: Sequence[str]) -> dash.CustomVariable:
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


def query_variable(name: str, label: str, query: str) -> dash.QueryVariable:
    """A multi-value variable whose values Prometheus lists (`label_values(...)`), All by
    default; `${name:regex}` in a matcher selects the chosen values."""
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(text="All", value="$__all"))
    )


def base_dashboard(uid: str, title: str, description: str, tags: list[str]) -> dash.Dashboard:
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


def add_items(board: dash.Dashboard, items: Iterable[Builder]) -> dash.Dashboard:
    """Rows and panels in layout order; the builder places each after the previous one."""
    for item in items:
        board = board.with_row(item) if isinstance(item, dash.Row) else board.with_panel(item)
    return board


def finish(builder: dash.Dashboard) -> model.Dashboard:
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


def with_targets(panel: Any, queries: Sequence[tuple[str, str]], instant: bool = False) -> Any:
    for ref, (expr, legend) in zip(refs(len(queries)), queries, strict=True):
        panel = panel.with_target(prometheus_query(expr, legend, ref, instant))
    return panel


def stat_panel(
    title: str,
    expr: str,
    unit: str,
    steps: Sequence[tuple[float | None, str]],
    legend: str = "",
) -> Builder:
    return (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .with_target(prometheus_query(expr, legend))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def timeseries_panel(
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
    return with_targets(panel, queries)


def organize(rename: dict[str, str], exclude: Sequence[str] = ()) -> model.DataTransformerConfig:
    return model.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {name: True for name in exclude},
            "renameByName": rename,
            "indexByName": {},
        },
    )


def note_panel(message: str) -> Builder:
    return text.Panel().title("").content(message).height(3).span(24)
