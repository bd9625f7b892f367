"""Stable dashboard uids and the URLs alerts link to.

Grafana uids may hold at most 40 characters of [a-zA-Z0-9_-]. They are derived from the
service name (itself [a-z0-9_-], up to 64 characters): short names are used as they are, so
links stay readable; long ones are cut and suffixed with a hash of the full name, so two
services never share a uid and a uid never changes between runs.
"""

from __future__ import annotations

import hashlib

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


def slo_dashboard_url(grafana_url: str, service: str, slo_id: str) -> str:
    return f"{grafana_url.rstrip('/')}/d/{service_dashboard_uid(service)}?var-slo={slo_id}"
