"""TLS settings `requests` has no switch for: checking the backend's certificate against a
name other than the URL's host (Prometheus' `tls_config.server_name`), e.g. a Prometheus
reached by IP or through a tunnel whose certificate names its service DNS name."""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter


class ServerNameAdapter(HTTPAdapter):
    """Connects to the URL's host; sends `server_name` as SNI and requires the certificate
    to be valid for it (instead of for the host)."""

    def __init__(self, server_name: str, **kwargs: Any) -> None:
        self.server_name = server_name
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **pool_kwargs: Any) -> None:
        # urllib3 keys its pools by these too, so each pool is made with them.
        pool_kwargs["server_hostname"] = self.server_name
        pool_kwargs["assert_hostname"] = self.server_name
        super().init_poolmanager(*args, **pool_kwargs)
