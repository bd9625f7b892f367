"""Real Alertmanager receivers and the route tree, from `generate.yml`'s `alertmanager:`.

Every receiver reads its secret from a file at run time (`routing_key_file`,
`api_url_file`, a webhook's `authorization.credentials_file`), so the generated config can
be committed and `generate --check` keeps working in CI for a real setup.

The route tree: one route per `routes:` entry, first match wins, each splitting into a
page and a ticket child so a team route never sends a page to a ticket receiver; then the
default page and ticket routes. A route by `team` or `owner` matches the services that
team or owner has *at generation time* (`service=~"a|b"`): the alerts carry `service` and
`tier`, not the owner, and the next `generate --check` notices a new service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.generate.config import AlertmanagerSettings, Receiver, Route
from engine.spec.models import SLO

PAGE = 'severity="page"'
TICKET = 'severity="ticket"'


class RouteError(ValueError):
    """A route that matches no service of the specs."""


def receiver_entry(name: str, receiver: Receiver) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    if receiver.pagerduty is not None:
        pagerduty: dict[str, Any] = {"routing_key_file": receiver.pagerduty.routing_key_file}
        if receiver.pagerduty.url:
            pagerduty["url"] = receiver.pagerduty.url
        entry["pagerduty_configs"] = [{**pagerduty, "send_resolved": True}]
    if receiver.slack is not None:
        slack: dict[str, Any] = {"api_url_file": receiver.slack.api_url_file}
        if receiver.slack.channel:
            slack["channel"] = receiver.slack.channel
        entry["slack_configs"] = [{**slack, "send_resolved": True}]
    if receiver.webhook is not None:
        webhook: dict[str, Any] = {"url": receiver.webhook.url, "send_resolved": True}
        if receiver.webhook.bearer_token_file:
            webhook["http_config"] = {
                "authorization": {"credentials_file": receiver.webhook.bearer_token_file}
            }
        entry["webhook_configs"] = [webhook]
    return entry


def _route_services(route: Route, slos: Sequence[SLO]) -> list[str] | None:
    """The services a route's service/team/owner selectors pick (None: it names none)."""
    if not (route.service or route.team or route.owner):
        return None
    picked = {
        slo.service
        for slo in slos
        if (route.service is None or slo.service == route.service)
        and (route.team is None or slo.labels.get("team") == route.team)
        and (route.owner is None or slo.owner == route.owner)
    }
    return sorted(picked)


def _describe(route: Route) -> str:
    parts = [f"{k}={v}" for k, v in route.model_dump().items() if v and k in _SELECTORS]
    return ", ".join(parts)


_SELECTORS = ("tier", "team", "owner", "service")


def route_matchers(route: Route, slos: Sequence[SLO]) -> list[str]:
    matchers: list[str] = []
    if route.tier is not None:
        if not any(str(slo.tier) == route.tier for slo in slos):
            raise RouteError(f"route ({_describe(route)}) matches no service of the specs")
        matchers.append(f'tier="{route.tier}"')
    services = _route_services(route, slos)
    if services is not None:
        if not services:
            raise RouteError(f"route ({_describe(route)}) matches no service of the specs")
        matchers.append(
            f'service="{services[0]}"' if len(services) == 1 else f'service=~"{"|".join(services)}"'
        )
    return matchers


def route_tree(slos: Sequence[SLO], settings: AlertmanagerSettings) -> dict[str, Any]:
    routes: list[dict[str, Any]] = [
        {
            "matchers": route_matchers(route, slos),
            "routes": [
                {"receiver": route.page or settings.page, "matchers": [PAGE]},
                {"receiver": route.ticket or settings.ticket, "matchers": [TICKET]},
            ],
        }
        for route in settings.routes
    ]
    routes += [
        {"receiver": settings.page, "matchers": [PAGE]},
        {"receiver": settings.ticket, "matchers": [TICKET]},
    ]
    return {
        "receiver": settings.ticket,
        "group_by": ["service", "slo"],
        "group_wait": settings.group_wait,
        "group_interval": settings.group_interval,
        "repeat_interval": settings.repeat_interval,
        "routes": routes,
    }


def receivers(settings: AlertmanagerSettings) -> list[dict[str, Any]]:
    return [receiver_entry(name, settings.receivers[name]) for name in sorted(settings.receivers)]
