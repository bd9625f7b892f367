"""Alertmanager configuration: routing by severity, and inhibition between alerts.

- `severity="page"` goes to the pager receiver, `severity="ticket"` to the ticket receiver,
  grouped by service and SLO so one incident is one notification, however many windows fire.
- A page silences the tickets of the same SLO (`equal: [slo]`): nobody needs a ticket for a
  burn someone is already paged for. With grouped SLOs, of the same group too (`equal`
  lists the group labels; an alert without one has it empty, so ungrouped SLOs pair as
  before): a page for one route must not hide a slow burn on another. Routing still
  groups by `slo` alone, so several groups of one SLO failing at once are one
  notification listing them.
- Dependencies: for every edge "S depends on D", alerts on D silence alerts on S, one inhibit
  rule per edge and severity (source and target matched by their `service` label; no `equal`,
  the two alerts share no SLO). A page on D silences every alert on S; a ticket on D silences
  only S's tickets — a slow burn downstream must never hide an outage upstream.
  Alertmanager lets a muted alert still inhibit others, so a chain storage → database → api
  silences api while database is firing, without transitive rules.

Without `alertmanager:` in generate.yml the receivers are webhooks to placeholders on the
local host; with it, the real receivers and route tree of engine/generate/receivers.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.generate.config import AlertmanagerSettings
from engine.generate.receivers import receivers, route_tree
from engine.spec.models import SLO

PAGER_RECEIVER = "pager"
TICKET_RECEIVER = "ticket"
# Documented placeholders (docs/generate.md); nothing listens there by default.
PAGER_WEBHOOK_URL = "http://127.0.0.1:9095/alerts/page"
TICKET_WEBHOOK_URL = "http://127.0.0.1:9095/alerts/ticket"


def dependency_edges(slos: Sequence[SLO]) -> list[tuple[str, str]]:
    """(dependent, dependency) pairs from the services' `depends_on`, sorted, no repeats."""
    edges = {(slo.service, dep) for slo in slos for dep in slo.depends_on if dep != slo.service}
    return sorted(edges)


def group_labels(slos: Sequence[SLO]) -> list[str]:
    """Every label some SLO groups by, sorted."""
    return sorted({label for slo in slos for label in slo.group_by})


def inhibit_rules(slos: Sequence[SLO]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {
            "source_matchers": ['severity="page"'],
            "target_matchers": ['severity="ticket"'],
            "equal": ["slo", *group_labels(slos)],
        }
    ]
    for dependent, dependency in dependency_edges(slos):
        rules.append(
            {
                "source_matchers": [f'service="{dependency}"', 'severity="page"'],
                "target_matchers": [f'service="{dependent}"'],
            }
        )
        rules.append(
            {
                "source_matchers": [f'service="{dependency}"', 'severity="ticket"'],
                "target_matchers": [f'service="{dependent}"', 'severity="ticket"'],
            }
        )
    return rules


def alertmanager_config(
    slos: Sequence[SLO], settings: AlertmanagerSettings | None = None
) -> dict[str, Any]:
    if settings is not None:
        return {
            "route": route_tree(slos, settings),
            "inhibit_rules": inhibit_rules(slos),
            "receivers": receivers(settings),
        }
    return {
        "route": {
            "receiver": TICKET_RECEIVER,
            "group_by": ["service", "slo"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"receiver": PAGER_RECEIVER, "matchers": ['severity="page"']},
                {"receiver": TICKET_RECEIVER, "matchers": ['severity="ticket"']},
            ],
        },
        "inhibit_rules": inhibit_rules(slos),
        "receivers": [
            {
                "name": PAGER_RECEIVER,
                "webhook_configs": [{"url": PAGER_WEBHOOK_URL, "send_resolved": True}],
            },
            {
                "name": TICKET_RECEIVER,
                "webhook_configs": [{"url": TICKET_WEBHOOK_URL, "send_resolved": True}],
            },
        ],
    }
