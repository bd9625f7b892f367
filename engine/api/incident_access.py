"""Who is acting, and who may see which incident — for the incident routes and the status page.

The actor of every change is the authenticated identity, never a name in the request body:
an OIDC token's subject (or configured name claim), a static token's name, else the token's
stable label (`token:<digest prefix>`, as the rate limiter keys it).

Security incidents are visible only to identities with the `security` role (a bare token of
the token file has every role): others do not learn that a security incident exists — not
in lists, not by id, not on the status page, unless its responders publish an update to
customers — and cannot act on one (404, as for an incident that does not exist).
"""

from __future__ import annotations

from typing import Any

from engine.api.contract import Runtime
from engine.api.deps import Caller
from engine.api.errors import ApiError
from engine.incidents.incident import Incident
from engine.incidents.response import IncidentCategory


def actor(caller: Caller) -> str:
    """The name recorded on the timeline for what `caller` does."""
    return caller.identity.name if caller.identity is not None else caller.key


def may_see_security(caller: Caller | None) -> bool:
    return caller is not None and caller.identity is not None and caller.identity.has("security")


def visible(caller: Caller | None, incident: Incident) -> bool:
    return incident.category is not IncidentCategory.security or may_see_security(caller)


def require_visible(runtime: Runtime, caller: Caller, incident_id: str) -> None:
    """ApiError(404) when `caller` may not see the incident: a change to a security incident
    by someone without the security role looks like a change to one that does not exist.
    An incident that does not exist is left to the change itself (its own 404)."""
    incident = runtime.get_incident(incident_id)
    if incident is not None and not visible(caller, incident):
        raise ApiError(404, f"no incident {incident_id}")


def publicly_visible(incident: Incident) -> bool:
    """On the public status page: every incident but a security incident whose responders
    have published nothing to customers yet."""
    if incident.category is not IncidentCategory.security:
        return True
    update = incident.latest_update or {}
    return bool(update.get("public"))


def incident_json(runtime: Runtime, incident: Incident, timeline: bool = True) -> dict[str, Any]:
    """The incident as the API shows it: its JSON plus where it stands against its recovery
    time objective right now (time to restore, time left)."""
    return {**incident.to_json(timeline=timeline), "recovery": runtime.recovery(incident)}
