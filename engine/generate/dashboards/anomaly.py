"""The service dashboard's anomaly row: for each signal the daemon's anomaly detector
watches on the service (`engine.anomaly.series.anomaly_series`: traffic, errors, latency),
the observed value against the band its profile expects, the profile in use and the score.

The panels read the daemon's own gauges (`/metrics`, engine/daemon/anomaly_metrics.py),
not recorded rules: anomaly detection runs in the daemon (docs/anomaly.md says why). The
band is its two edges as dashed lines (see `_names` for why not a filled area).
On a service whose anomaly detection is off, the row is there but collapsed and says how
to turn it on, with the panels the service would get: its series stay empty until then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from engine.anomaly.series import AnomalySeries, anomaly_series
from engine.generate.dashboards.panels import (
    DATASOURCE,
    prometheus_query,
    stat_panel,
    thresholds,
    timeseries_panel,
)
from engine.spec.models import SLO

# The daemon's gauge names (engine/daemon/anomaly_metrics.py; a layer above this one, so
# tests/test_anomaly_panel.py checks these against the daemon's registry).
OBSERVED = "slo_engine_anomaly_observed"
EXPECTED = "slo_engine_anomaly_expected"
BAND_LOWER = "slo_engine_anomaly_band_lower"
BAND_UPPER = "slo_engine_anomaly_band_upper"
SCORE = "slo_engine_anomaly_score"
PROFILE = "slo_engine_anomaly_profile"

ROW_TITLE = "Anomalies — observed vs expected band"
_UNITS = {"traffic": "reqps", "errors": "percentunit", "latency": "percentunit"}
_WHAT = {
    "traffic": "requests per second",
    "errors": "the error ratio",
    "latency": "the share of requests slower than the SLO's threshold",
}
_HARMFUL_EDGE = {"traffic": "lower", "errors": "upper", "latency": "upper"}
_BAND_COLOR = "green"
_DASHED = {"fill": "dash", "dash": [10, 10]}
_DOTTED = {"fill": "dot", "dash": [0, 10]}


def anomaly_items(slos: Sequence[SLO]) -> list[Builder]:
    """The anomaly row and its panels for one service's SLOs (none without a signal).

    Grouped SLOs are left out: their anomaly series is one per SLO, not per group, where
    every other panel of theirs shows one series per group."""
    slos = [s for s in slos if not s.group_by]
    watched = anomaly_series(slos)
    if watched:
        return [dash.Row(ROW_TITLE), *(p for s in watched for p in _series_panels(s))]
    would_watch = anomaly_series(
        [replace(s, anomaly=s.anomaly.model_copy(update={"enabled": True})) for s in slos]
    )
    if not would_watch:
        return []
    row = dash.Row(f"{ROW_TITLE} (detection off: set anomaly.enabled in the spec)").collapsed(True)
    for series in would_watch:
        for panel in _series_panels(series):
            row = row.with_panel(panel)
    return [row]


def selector(series: AnomalySeries) -> str:
    slo = series.slo
    return f'{{slo="{slo.id}", service="{slo.service}", signal="{series.signal}"}}'


def _series_panels(series: AnomalySeries) -> list[Builder]:
    slo, signal = series.slo, series.signal
    sel = selector(series)
    edge = _HARMFUL_EDGE[signal]
    sensitivity = slo.anomaly.sensitivity
    band = (
        timeseries_panel(
            f"{signal.capitalize()} — {slo.name}: observed vs expected",
            [
                (f"{OBSERVED}{sel}", "observed"),
                (f"{EXPECTED}{sel}", "expected"),
                (f"{BAND_LOWER}{sel}", "band lower"),
                (f"{BAND_UPPER}{sel}", "band upper"),
            ],
            _UNITS[signal],
            f"The newest 5-minute slot of {_WHAT[signal]} (observed) against its profile's "
            f"expectation (dotted) and the band within {sensitivity:g} robust deviations of "
            f"it (the dashed edges). Only the {edge} edge raises an anomaly, once crossed for "
            f"{slo.anomaly.min_duration}; the other edge is drawn for reading.",
        )
        .with_override(
            _names("band lower", "band upper"),
            [_value("custom.lineStyle", _DASHED), _fixed_color(_BAND_COLOR)],
        )
        .with_override(
            _names("expected"), [_value("custom.lineStyle", _DOTTED), _fixed_color("text")]
        )
        .with_override(_names("observed"), [_fixed_color("blue")])
        .min(0)
        .height(8)
        .span(16)
    )
    # Instant: a range query would also list the profile of earlier slots, after a switch.
    profile = (
        stat.Panel()
        .title("Profile in use")
        .datasource(DATASOURCE)
        .with_target(
            prometheus_query(f"max by (profile) ({PROFILE}{sel})", "{{profile}}").instant()
        )
        .thresholds(thresholds((None, "blue")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .text_mode(common.BigValueTextMode.NAME)
        .description(
            "The profile that scored the newest slot: recent (a few hours of history), "
            "daily (2–3 days) or weekly (3 weeks) — the richest its history supports."
        )
        .height(8)
        .span(4)
    )
    score = (
        stat_panel(
            "Anomaly score",
            f"{SCORE}{sel}",
            "none",
            ((None, "green"), (sensitivity, "red")),
        )
        .decimals(1)
        .description(
            f"Robust z-score of the newest slot, positive = harmful; anomalous from "
            f"{sensitivity:g} (the service's anomaly.sensitivity)."
        )
        .height(8)
        .span(4)
    )
    return [band, profile, score]


def _names(*names: str) -> model.MatcherConfig:
    # `byNames` (options an object) rather than `byName` (options a string): the dashboard
    # schema the tests validate against types matcher options and override values as
    # objects. For the same reason the band is two dashed edges, not a "fill below to"
    # area: that override's value is a series name, a string.
    return model.MatcherConfig(
        id_val="byNames", options={"mode": "include", "names": list(names), "readOnly": True}
    )


def _value(key: str, value: dict[str, Any]) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=key, value=value)


def _fixed_color(color: str) -> model.DynamicConfigValue:
    return _value("color", {"mode": "fixed", "fixedColor": color})
