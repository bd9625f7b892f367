"""Partial responses from Prometheus-API backends, caught before they pass for data.

Thanos, Cortex/Mimir and VictoriaMetrics cluster answer HTTP 200 with the data they could
gather when a store or shard is down, and say so only in the envelope: a `warnings` list
(Prometheus API), or `isPartial: true` (VictoriaMetrics). prometheus-api-client returns just
`data.result`, so a response hook on the HTTP session reads the envelope and keeps what it
found for the request's thread. The source then reports the SLOs of that request as errors
— an incomplete answer is never evaluated (or cached) as if it were complete.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import requests

# The envelope's keys sit at its end; look only there before parsing the whole body.
_TAIL_BYTES = 4096


class PartialResponse(Exception):
    """The backend answered with incomplete data (the message says why)."""


class PartialResponseWatch:
    """`install(session)` once; around each request: `reset()`, send, `check()`."""

    def __init__(self) -> None:
        self._local = threading.local()

    def install(self, session: requests.Session) -> None:
        session.hooks["response"].append(self._hook)

    def reset(self) -> None:
        self._local.found = None

    def check(self) -> None:
        found = getattr(self._local, "found", None)
        if found:
            raise PartialResponse(found)

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code != 200:
            return
        tail = response.content[-_TAIL_BYTES:]
        if b'"warnings"' not in tail and b'"isPartial"' not in tail:
            return
        try:
            envelope = json.loads(response.content)
        except ValueError:
            return  # not JSON: the client reports that itself
        warnings = [str(w) for w in envelope.get("warnings") or ()]
        if envelope.get("isPartial") is True:
            warnings.append("the backend marked the response partial (isPartial)")
        if warnings:
            # Bounded: a backend listing every failed store must not flood logs and the API.
            self._local.found = "; ".join(warnings)[:500]
