"""Grafana dashboards, built with grafana-foundation-sdk (pinned build for Grafana 11.6).

- `slo-overview` (`overview`): every SLO, worst first — budget remaining, burn rates,
  firing alerts.
- `slo-<service>` (`service`): per SLO of the service, the SLI against its objective, the
  budget burn-down over the period, the burn rate per window with the policy's thresholds
  drawn, the alert state and the event rates.
- `golden-signals-<service>` (`golden_signals`): latency percentiles (from the histograms
  the latency SLIs name), traffic, errors, saturation (process CPU and memory of the jobs
  the SLIs select).

SLO panels read the recorded `slo:*` series, so they show exactly what the alerts see; the
golden signals read the raw metrics. Thresholds come from `policy_for`, never a copy.
Every panel and query uses the `datasource` variable, never an import placeholder
(`panels` holds the building blocks they share).
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.models import dashboard as model

from engine.generate.dashboards.golden_signals import golden_signals_dashboard
from engine.generate.dashboards.overview import overview_dashboard
from engine.generate.dashboards.service import service_dashboard
from engine.spec.models import SLO

__all__ = ["dashboards", "golden_signals_dashboard", "overview_dashboard", "service_dashboard"]


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
