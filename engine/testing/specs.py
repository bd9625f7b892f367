"""Small SLO records for unit tests: one events SLI per SLO, built through the real spec
models (so defaults such as the 30d period and the alert policy are the shipped ones)."""

from __future__ import annotations

from typing import Any

from engine.spec.models import SLO, ServiceSpec

# Plain selectors: tests of the burn-rate math never query them, they only need an SLI.
EVENTS_SLI = {"events": {"bad": "sum(rate(e[{{window}}]))", "total": "sum(rate(t[{{window}}]))"}}


def events_slo(
    name: str = "availability", objective: str = "99.9", service: str = "api", **extra: Any
) -> SLO:
    """One SLO of `service` on `EVENTS_SLI`; `extra` adds SLO fields (period, alerting…)."""
    body = {"name": name, "objective": objective, "sli": EVENTS_SLI, **extra}
    spec = ServiceSpec.model_validate(
        {"apiVersion": "slo-engine/v1", "service": service, "slos": [body]}
    )
    return spec.slo_records()[0]
