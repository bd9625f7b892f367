"""How the API is served: the uvicorn settings the daemon runs with (and the tests serve the
app with, so they exercise the same ones).

- Proxy headers (`X-Forwarded-For`, `X-Forwarded-Proto`) are believed only from the
  configured `trusted_proxies`. uvicorn's default believes them from 127.0.0.1, so anyone
  on the host (or a sidecar) could claim any client address and dodge the per-address rate
  limits and the failed-authentication lockout, or forge the address in the logs.
- uvicorn's own log lines go through `redact()`: its access log prints the request line,
  query string included, and a client may well send `?token=…` there.
- With `tls` (engine/api/tls.py) the listener speaks TLS 1.2+ only, with the context that
  follows the certificate files (uvicorn's own TLS options would read them once) and, for
  mTLS, requires a client certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import uvicorn

from engine.api.tls import ServerTLS
from engine.redact import redact_logger

# uvicorn's loggers that can print a request line.
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")


def server_config(
    app: Any,
    *,
    trusted_proxies: Sequence[object] = (),
    access_log: bool = False,
    tls: ServerTLS | None = None,
    **options: Any,
) -> uvicorn.Config:
    """A uvicorn config for `app`; `trusted_proxies` are addresses or CIDR networks (any
    objects whose str() is one). Other `options` go to uvicorn as they are."""
    for name in UVICORN_LOGGERS:
        redact_logger(name)
    proxies = [str(proxy) for proxy in trusted_proxies]
    config = uvicorn.Config(
        app,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or "",
        access_log=access_log,
        **options,
    )
    if tls is not None:
        # Loaded now so that the server keeps this context (it loads a config only once).
        config.load()
        config.ssl = tls.listener
    return config
