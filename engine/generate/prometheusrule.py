"""prometheus-operator output: one `PrometheusRule` (monitoring.coreos.com/v1) per service.

The Prometheus resource loads the rules its `ruleSelector` matches, so the object's labels
come from generate.yml (`prometheusrule.labels`, default `role: alert-rules` as in the
operator's own example; kube-prometheus-stack wants `release: <release name>`). `spec` holds
exactly the groups a plain rule file would: `promtool check rules` on `{groups: spec.groups}`
checks them.
"""

from __future__ import annotations

import re
from typing import Any

from engine.generate.config import PrometheusRuleSettings

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"
MANAGED_BY = {"app.kubernetes.io/managed-by": "slo-engine"}


def object_name(service: str) -> str:
    """A DNS-1123 subdomain name: lowercase alphanumerics and '-', at most 253 characters."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"slo-engine-{service}".lower()).strip("-")
    return name[:253].rstrip("-")


def prometheus_rule(
    service: str, groups: list[dict[str, Any]], settings: PrometheusRuleSettings
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": object_name(service)}
    if settings.namespace:
        metadata["namespace"] = settings.namespace
    metadata["labels"] = {**MANAGED_BY, **settings.labels}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"groups": groups},
    }
