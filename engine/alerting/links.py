"""Stable dashboard uids and the URLs alerts link to.

Grafana uids may hold at most 40 characters of [a-zA-Z0-9_-]. They are derived from the
service name (itself [a-z0-9_-], up to 64 characters): short names are used as they are, so
links stay readable; long ones are cut and suffixed with a hash of the full name, so two
services never share a uid and a uid never changes between runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from urllib.parse import quote_plus

UID_MAX = 40
OVERVIEW_UID = "slo-overview"


def _uid(prefix: str, name: str) -> str:
    uid = f"{prefix}{name}"
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{uid[: UID_MAX - 9]}-{digest}"


def service_dashboard_uid(service: str) -> str:
    return _uid("slo-", service)


def golden_signals_uid(service: str) -> str:
    return _uid("golden-", service)


def group_variable(label: str) -> str:
    """The dashboard variable of a group label: its own name, unless the dashboards
    already use it (`datasource`). The same rule as engine.generate.rules.group_variable,
    which names the variables the generated dashboards define."""
    return f"group_{label}" if label == "datasource" else label


def slo_dashboard_url(
    grafana_url: str, service: str, slo_id: str, group: Mapping[str, str] | None = None
) -> str:
    """The SLO's row of its service dashboard. For an instance of a grouped SLO, `slo_id`
    is the base id and `group` its labels: `&var-route=%2Fcart` selects the group, as the
    generated rules' links do (Go's `urlquery` and `quote_plus` escape alike)."""
    url = f"{grafana_url.rstrip('/')}/d/{service_dashboard_uid(service)}?var-slo={slo_id}"
    return url + "".join(
        f"&var-{group_variable(label)}={quote_plus(value, safe='')}"
        for label, value in sorted((group or {}).items())
    )
