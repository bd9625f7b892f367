"""PromQL queries sent as POST form bodies, with a one-way fall back to the client's GET.

prometheus-api-client puts the query in the URL even when it POSTs, so requests and urllib3
re-check and percent-encode a batched query of many kilobytes character by character, in
Python, on every request (`requote_uri`, `_encode_invalid_chars`): tens of milliseconds of
client CPU per cycle. A long URL can also breach a server's or proxy's URL length limit.
Prometheus' HTTP API (and VictoriaMetrics, Thanos, Mimir) read the same parameters from an
`application/x-www-form-urlencoded` POST body, which requests encodes in one `urlencode`
call and urllib3 sends as is.

The request is made exactly as the client would make it (its session with our hooks and
adapters, its headers, auth, TLS settings and timeout) and fails exactly as it fails
(`PrometheusApiClientException("HTTP Status Code N (b'…')")`, which
`engine.source.api_errors.parse_client_error` reads).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from engine.redact import redact

log = logging.getLogger(__name__)

# A backend (or a proxy in front of it) that does not take POST on the query endpoints:
# 405 Method Not Allowed, or 501 Not Implemented from servers that do not know the method.
# Prometheus answers neither for a query it read; were one the query's own failure, the GET
# would meet it again and report it as usual.
_POST_REFUSED = frozenset({405, 501})


class PostQueries:
    """`query(endpoint, form, get)`: POST `form` to /api/v1/<endpoint>; once the backend has
    refused a POST, every query of this instance goes by `get` (the client's GET) instead."""

    def __init__(self, client: PrometheusConnect, count: Callable[[], None]) -> None:
        self._client = client
        # Called for each extra HTTP request made here (the GET after a refused POST), so
        # the source's request count stays the number of requests actually sent.
        self._count = count
        # Set once, never cleared: a plain bool write, so concurrent queries need no lock
        # (a few of them may each see one 405 before the first sets it).
        self.get_only = False

    def query(
        self, endpoint: str, form: dict[str, str], get: Callable[[], list[dict]]
    ) -> list[dict]:
        """`data.result` of the answer; raises like the client for any other status."""
        if self.get_only:
            return get()
        response = self._post(endpoint, form)
        if response.status_code in _POST_REFUSED:
            log.info(
                "%s refused POST on /api/v1/%s (HTTP %d); querying by GET from now on",
                redact(self._client.url),
                endpoint,
                response.status_code,
            )
            self.get_only = True
            self._count()
            return get()
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP Status Code {response.status_code} ({response.content!r})"
            )
        return response.json()["data"]["result"]

    def _post(self, endpoint: str, form: dict[str, str]) -> requests.Response:
        # The same arguments as PrometheusConnect.custom_query, the parameters moved from
        # `params=` (the URL) to `data=` (the body; requests sets the Content-Type).
        client = self._client
        session: requests.Session = client._session
        return session.request(
            method="POST",
            url=f"{client.url}/api/v1/{endpoint}",
            data=form,
            verify=session.verify,
            headers=client.headers,
            auth=client.auth,
            cert=session.cert,
            timeout=client._timeout,
        )
