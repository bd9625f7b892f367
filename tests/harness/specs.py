"""Small SLO records for unit tests: one events SLI per SLO, built through the real spec
models (so defaults such as the 30d period and the alert policy are the shipped ones)."""

from __future__ import annotations

from collections.abc import Sequence
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


def http_events_spec(service: str, tier: str = "standard", depends_on: Sequence[str] = ()) -> str:
    """Spec YAML for a service of the synthetic scenario (`engine.demo.scenario`): one
    99.9 % availability SLO, bad = its `http_requests_total{job=service}` with code 500."""
    deps = f"depends_on: [{', '.join(depends_on)}]\n" if depends_on else ""
    return f"""apiVersion: slo-engine/v1
service: {service}
tier: {tier}
{deps}slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        bad: sum(rate(http_requests_total{{job="{service}",code="500"}}[{{{{window}}}}]))
        total: sum(rate(http_requests_total{{job="{service}"}}[{{{{window}}}}]))
"""


# The scenario's database (`DatabaseLoad`): a critical service whose SLI counts probe samples.
DATABASE_UP_SPEC = """apiVersion: slo-engine/v1
service: database
tier: critical
slos:
  - name: up
    objective: 99.9
    sli:
      availability:
        metric: pg_up{job="database"}
"""


# SLO bodies over the scenario's api and database metrics, one per SLI kind.
SCENARIO_ERRORS = {
    "name": "errors",
    "objective": 99.9,
    "sli": {
        "events": {
            "bad": 'sum(rate(http_requests_total{job="api",code="500"}[{{window}}]))',
            "total": 'sum(rate(http_requests_total{job="api"}[{{window}}]))',
        }
    },
}
SCENARIO_LATENCY = {
    "name": "latency",
    "objective": 99,
    "sli": {
        "latency": {
            "histogram": "http_request_duration_seconds",
            "selector": 'job="api"',
            "threshold": "500ms",
        }
    },
}
SCENARIO_DATABASE = {
    "name": "db",
    "objective": 99.5,
    "sli": {"availability": {"metric": 'pg_up{job="database"}'}},
}


def shop_slos(slos: Sequence[dict[str, Any]]) -> list[SLO]:
    """SLO records of one standard-tier service `shop` holding the given SLO bodies."""
    return ServiceSpec.model_validate(
        {"apiVersion": "slo-engine/v1", "service": "shop", "slos": list(slos)}
    ).slo_records()


def shop_errors_slos() -> list[SLO]:
    """`shop`'s one 99 % SLO on http_requests_total: bad = code="500", total = all."""
    return shop_slos(
        [
            {
                "name": "errors",
                "objective": 99,
                "sli": {
                    "events": {
                        "bad": 'sum(rate(http_requests_total{code="500"}[{{window}}]))',
                        "total": "sum(rate(http_requests_total[{{window}}]))",
                    }
                },
            }
        ]
    )
