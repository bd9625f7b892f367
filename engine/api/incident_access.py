"""Who is acting, and who may see which incident — for the incident routes and the status page.

The actor of every incident-response change is the authenticated identity, never a name in
the request body: an identity's subject or name when the token carries one (OIDC, issue
13), else the token's stable label (`token:<digest prefix>`, as the rate limiter keys it).

Security incidents are visible only to identities with a security role. Until identities
carry roles beyond the token file's two, that is admin tokens: readers without one (or with
a read-only token) do not learn that a security incident exists — not in lists, not by id,
not on the status page, unless its responders publish an update to customers.
"""

from __future__ import annotations

from typing import Any

from engine.api.contract import Runtime
from engine.api.deps import Caller
from engine.incidents.incident import Incident
from engine.incidents.response import IncidentCategory

SECURITY_ROLES = frozenset({"admin", "security"})


def actor(caller: Caller) -> str:
    """The name recorded on the timeline for what `caller` does."""
    for source in (caller, caller.token):
        for attribute in ("subject", "name"):
            value = getattr(source, attribute, None)
            if isinstance(value, str) and value:
                return value
    return caller.key


def may_see_security(caller: Caller | None) -> bool:
    token = None if caller is None else caller.token
    if token is None:
        return False
    roles = set(getattr(token, "roles", ()) or ()) | {getattr(token, "role", "")}
    return bool(roles & SECURITY_ROLES)


def visible(caller: Caller | None, incident: Incident) -> bool:
    return incident.category is not IncidentCategory.security or may_see_security(caller)


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
