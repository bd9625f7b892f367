"""Runbook routing: which runbook an incident's responders execute.

The runbook index (`IncidentConfig.runbooks`) maps an SLO, a service, a category, or a
combination, to a runbook URL; the most specific entry that matches wins, in this order:
an entry for one of the incident's SLOs, the SLO spec's own `runbook_url`, service and
category, service, category, and an entry that names none (the index page itself). The URL
is fixed on the incident when it opens, so every notification and template links it.

Alerts get their category from what they measure: latency SLIs are performance, the
engine's own blindness is monitoring, everything else availability. Declared incidents
name theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.alerting.alerts import SELF_SERVICE, Alert
from engine.incidents.config import RunbookEntry
from engine.incidents.response import IncidentCategory

# Specificity of a match: higher wins; equal ones go to the entry listed first.
_SLO, _SPEC, _SERVICE, _CATEGORY = 8, 4, 2, 1


def category_of(alert: Alert) -> IncidentCategory:
    if alert.service == SELF_SERVICE:
        return IncidentCategory.monitoring
    if alert.sli_kind == "latency" or alert.labels.get("signal") == "latency":
        return IncidentCategory.performance
    return IncidentCategory.availability


def runbook_for(
    index: Sequence[RunbookEntry],
    service: str,
    category: IncidentCategory,
    slo_ids: Sequence[str] = (),
    spec_url: str | None = None,
) -> str | None:
    """The runbook to execute for an incident (see the module's order), or None."""
    best: tuple[int, str] | None = (_SPEC, spec_url) if spec_url else None
    for entry in index:
        if entry.slo is not None and entry.slo not in slo_ids:
            continue
        if entry.service is not None and entry.service != service:
            continue
        if entry.category is not None and entry.category != category:
            continue
        rank = (
            (_SLO if entry.slo else 0)
            + (_SERVICE if entry.service else 0)
            + (_CATEGORY if entry.category else 0)
        )
        if best is None or rank > best[0]:
            best = (rank, entry.url)
    return None if best is None else best[1]
