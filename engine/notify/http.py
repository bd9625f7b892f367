"""One JSON POST to a receiver, with its outcome classified for the retry policy.

Built on `urllib.request` on purpose: unlike requests/urllib3 it never logs the request
line, and a Slack webhook URL *is* a credential. Proxy environment variables
(`HTTPS_PROXY`, `NO_PROXY`) are honoured as usual.

`timeout` is a TOTAL deadline — resolve, connect, send, and the whole response — not a
socket timeout: a socket timeout restarts with every byte, so a receiver dripping one byte
every 3 s would hold a 10 s timeout for minutes. The exchange runs in its own short-lived
thread (engine/notify/exchange.py); at the deadline the caller stops waiting and the
connection is shut, which ends that thread too.
"""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from engine.notify.base import PermanentDeliveryError, RetryableDeliveryError
from engine.notify.exchange import Exchange, ExchangeTimeout, HttpResponse
from engine.redact import redact

__all__ = ["USER_AGENT", "HttpResponse", "encode_json", "parse_retry_after", "post_json"]

USER_AGENT = "slo-engine-notifier/1"

# 408 is the server saying *it* timed out waiting for us: as transient as our own timeout.
_RETRYABLE_4XX = frozenset({408, 429})
_RESPONSE_EXCERPT = 300


def encode_json(payload: Any) -> bytes:
    """Compact, key-stable JSON so that an HMAC signature covers exactly the bytes sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, sort_keys=False).encode(
        "utf-8"
    )


def parse_retry_after(value: str | None, response_date: str | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: either delta-seconds or an HTTP-date.

    An HTTP-date is measured against the response's own Date header so that clock skew
    between us and the receiver does not matter; without a Date header it is ignored.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        sent = email.utils.parsedate_to_datetime(response_date) if response_date else None
    except (TypeError, ValueError):
        return None
    if sent is None:
        return None
    return max(0.0, (when - sent).total_seconds())


def post_json(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    secrets: Iterable[str] = (),
    what: str = "receiver",
    tls: ssl.SSLContext | None = None,
) -> HttpResponse:
    """POST `body` and return a 2xx response, or raise a classified delivery error.

    `timeout` bounds the whole exchange (see the module docstring). `secrets` are scrubbed
    from every error message (they end up in logs and in the outbox's last_error column).
    `what` names the receiver in messages without the URL, which may itself be a secret.
    `tls`: the receiver's CA bundle and client certificate (engine/notify/tls.py).
    """
    secrets = tuple(secrets)
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        response = Exchange(request, timeout, tls).run()
    except ExchangeTimeout:
        raise RetryableDeliveryError(
            f"{what} timed out after {timeout:g}s (deadline for connect, send and the whole "
            "response)"
        ) from None
    except TimeoutError:
        raise RetryableDeliveryError(f"{what} timed out after {timeout:g}s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise RetryableDeliveryError(f"{what} timed out after {timeout:g}s") from None
        if isinstance(reason, OSError):
            # Connection refused / reset / DNS failure: the receiver may come back.
            detail = redact(f"{type(reason).__name__}: {reason.strerror or reason}", secrets)
            raise RetryableDeliveryError(f"{what} unreachable ({detail})") from None
        # Unknown URL scheme and the like: retrying will not fix the configuration.
        raise PermanentDeliveryError(redact(f"{what} request invalid: {reason}", secrets)) from None
    except (ConnectionError, OSError) as exc:
        detail = redact(f"{type(exc).__name__}: {exc}", secrets)
        raise RetryableDeliveryError(f"{what} connection failed ({detail})") from None
    except ValueError as exc:
        # urllib raises ValueError for malformed URLs ("unknown url type").
        raise PermanentDeliveryError(redact(f"{what} URL is invalid: {exc}", secrets)) from None
    if 200 <= response.status < 300:
        return response
    raise _refused(response, secrets, what)


def _refused(
    response: HttpResponse, secrets: tuple[str, ...], what: str
) -> RetryableDeliveryError | PermanentDeliveryError:
    """The error for a non-2xx answer: retryable for 5xx, 408 and 429, else permanent."""
    status = response.status
    # Redact before truncating: a cut could leave half a secret unmatched.
    text = response.body.decode("utf-8", "replace")
    excerpt = redact(text, secrets)[:_RESPONSE_EXCERPT]
    message = f"{what} answered HTTP {status}: {excerpt}".strip()
    if status >= 500 or status in _RETRYABLE_4XX:
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), response.headers.get("Date")
        )
        return RetryableDeliveryError(message, status=status, retry_after=retry_after)
    return PermanentDeliveryError(message, status=status)
