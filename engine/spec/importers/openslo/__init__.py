"""OpenSLO `apiVersion: openslo/v1` objects → native model input.

Objects are gathered from every loaded file first, because an SLO may name its SLI
(`indicatorRef`), its Service (`spec.service`) and a DataSource (`metricSourceRef`) that live
in other documents or files. Each SLO becomes one single-SLO unit (so a model error maps
back to exactly the documents it came from); the loader then groups units by service.

Supported: kind SLO with `indicator` (inline) or `indicatorRef` → kind SLI whose
`ratioMetric` has `good` or `bad` plus `total`, each a Prometheus `metricSource`
(`spec.query`); `budgetingMethod: Occurrences`; one rolling `timeWindow`; one objective
(`target` 0.999 or `targetPercent` 99.9). Everything else that changes the meaning of the
SLO is an error naming the part; `alertPolicies` and alerting kinds are ignored with a
warning (slo-engine alerts with its own multiwindow burn-rate policy).

Queries: OpenSLO has no window placeholder. A query that already uses `{{window}}` (or
Sloth's `{{.window}}`) is taken as written. For a counter (`counter: true`) written as a
plain selector or `sum[ by (...)](selector)`, the windowed rate is built:
`sum(rate(selector[{{window}}]))`. Any other query cannot be windowed safely: an error.

Service fields: labels `tier`, `owner` (else `team`) and `depends_on` (a list, or a
comma-separated string) on the Service object (else on the SLO) fill tier, owner and
depends_on; the remaining single-valued labels with valid Prometheus names become labels.

The importer's parts: `catalog` (objects by kind and name, shapes), `objective` (budgeting
method, period, objective), `indicator` (ratioMetric queries) and `convert` (one SLO → one
native unit, service fields).
"""

from engine.spec.importers.openslo.catalog import (
    API_VERSION,
    IGNORED_KINDS,
    KINDS,
    SHAPES,
    Catalog,
)
from engine.spec.importers.openslo.convert import convert_all

__all__ = ["API_VERSION", "IGNORED_KINDS", "KINDS", "SHAPES", "Catalog", "convert_all"]
