"""`golden-signals-<service>`: latency percentiles (from the histograms the latency SLIs
name), traffic, errors, saturation (process CPU and memory of the jobs the SLIs select).

Unlike the SLO panels, these read the raw metrics, not the recorded `slo:*` series."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model

from engine.alerting.links import golden_signals_uid
from engine.generate.dashboards.panels import (
    add_items,
    base_dashboard,
    datasource_variable,
    finish,
    note_panel,
    timeseries_panel,
)
from engine.generate.rules import decimal_text
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.spec.sli import bad_rate, total_rate

# The SLI query builders take a Duration; this one is rendered once and swapped for
# Grafana's `$__rate_interval`, so panels reuse the exact SLI PromQL of the rules.
_SENTINEL = Duration(1_234_567)
_JOB_RE = re.compile(r'\bjob\s*=\s*"([^"]+)"')
PERCENTILES = ("0.5", "0.9", "0.99")


def golden_signals_dashboard(service: str, slos: Sequence[SLO]) -> model.Dashboard:
    board = base_dashboard(
        golden_signals_uid(service),
        f"Golden signals — {service}",
        f"Latency, traffic, errors and saturation of {service}, from the raw metrics its SLIs use.",
        ["golden-signals", service],
    ).with_variable(datasource_variable())
    items = [
        dash.Row("Latency"),
        *_latency_panels(slos),
        dash.Row("Traffic and errors"),
        *_traffic_panels(slos),
        dash.Row("Saturation"),
        *_saturation_panels(slos),
    ]
    return finish(add_items(board, items))


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


def _latency_panels(slos: Sequence[SLO]) -> list[Builder]:
    histograms = sorted(
        {
            (s.sli.latency.histogram, s.sli.latency.selector, s.sli.latency.native)
            for s in slos
            if s.sli.latency
        }
    )
    if not histograms:
        return [note_panel("No latency SLI names a histogram for this service.")]
    panels = []
    for histogram, matchers, native in histograms:
        selector = "{" + matchers + "}"
        # A native histogram is one series: summed without `le`, no _bucket suffix.
        rated = (
            f"sum(rate({histogram}{selector}[$__rate_interval]))"
            if native
            else f"sum by (le) (rate({histogram}_bucket{selector}[$__rate_interval]))"
        )
        panels.append(
            timeseries_panel(
                f"Latency percentiles — {histogram}{selector if matchers else ''}",
                [
                    (
                        f"histogram_quantile({q}, {rated})",
                        f"p{decimal_text(Decimal(q) * 100)}",
                    )
                    for q in PERCENTILES
                ],
                "s",
            )
            .height(8)
            .span(24 // max(1, min(2, len(histograms))))
        )
    return panels


def _traffic_panels(slos: Sequence[SLO]) -> list[Builder]:
    """Traffic and error ratio of the event and latency SLIs; availability gauges as is."""
    rated = [s for s in slos if s.sli.kind in ("events", "latency")]
    panels: list[Builder] = []
    if rated:
        panels.append(
            timeseries_panel(
                "Traffic (events per second)",
                [(_per_interval(f"sum({total_rate(s.sli, _SENTINEL)})"), s.name) for s in rated],
                "short",
            )
            .height(8)
            .span(12)
        )
        panels.append(
            timeseries_panel(
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
    for slo in slos:
        if slo.sli.availability is None:
            continue
        panels.append(
            timeseries_panel(
                f"{slo.name}: {slo.sli.availability.metric}",
                [(slo.sli.availability.metric, slo.name)],
                "short",
            )
            .height(8)
            .span(12)
        )
    return panels


def _saturation_panels(slos: Sequence[SLO]) -> list[Builder]:
    jobs = _jobs(slos)
    if not jobs:
        return [note_panel("No SLI query selects a job, so no saturation metric is known.")]
    panels: list[Builder] = []
    for job in jobs:
        panels.append(
            timeseries_panel(
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
        )
        panels.append(
            timeseries_panel(
                f"Memory — job {job}",
                [(f'sum(process_resident_memory_bytes{{job="{job}"}})', "resident")],
                "bytes",
            )
            .height(6)
            .span(12)
        )
    return panels
