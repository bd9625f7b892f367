"""One rule for secrets in text: whatever reaches a log line, an error message, `/readyz`, the
API or a span goes through `redact()` first.

It removes what a URL can carry that is a credential, wherever the URL sits in the text:

- userinfo: `https://user:PASS@host/` → `https://***@host/`;
- the value of a query parameter whose name says it is one (token, key, secret, password,
  auth, signature, session, credential — `?access_token=abc` → `?access_token=***`);
- a `Bearer …` / `Basic …` credential quoted from a header;
- and any value the caller knows is secret (a routing key read from a file).

Why a rule on text rather than on URL objects: secrets leak through messages built far from
the URL (a library's exception text, a proxy's error page echoing the request), so the last
step before text leaves the process is the one place that sees them all. Over-redaction is
harmless; a missed secret is not.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"

# scheme://userinfo@ — up to the last '@' before the path, query, fragment or whitespace (a
# password may itself hold an '@').
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s]+@")
# A query (or fragment) parameter whose name marks a credential; the value runs to the next
# separator or quote.
_SECRET_PARAM = re.compile(
    r"(?i)([?&;#]"
    r"[\w.\-\[\]]*(?:token|key|secret|passw(?:or)?d|pwd|auth|signature|sig|credential|session)"
    r"[\w.\-\[\]]*=)[^&;#\s\"'<>]*"
)
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without URL credentials, secret query values, header credentials, and every
    non-empty value of `secrets` (each replaced by "***")."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    text = _SECRET_PARAM.sub(rf"\1{MASK}", text)
    return _AUTH_SCHEME.sub(rf"\1 {MASK}", text)


def has_userinfo(url: str) -> bool:
    """Whether `url` carries `user[:password]@` before its host."""
    return _USERINFO.match(url.strip()) is not None


class RedactingFilter(logging.Filter):
    """A logging filter that applies `redact()` to a record's message, arguments and
    traceback text before any handler formats it.

    Installed on a logger (e.g. uvicorn's access log) it rewrites that logger's records for
    every handler; installed on a handler it covers everything that handler writes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redacted_arg(value) for key, value in record.args.items()}
        if record.exc_info and not record.exc_text:
            # Format the traceback now, redacted; handlers reuse exc_text as it is.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _redacted_arg(value: object) -> object:
    """Strings are redacted; other values only when their text would show a secret (then the
    redacted text replaces them — `%d` of a number is never affected)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def redact_logger(name: str) -> None:
    """Redact every record logged on logger `name` (before any handler sees it, a test's
    log capture included). For loggers that print request lines: uvicorn's access log."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


def redact_handlers(name: str = "") -> None:
    """Redact everything the handlers of logger `name` (the root: every log line of the
    process) write, whichever logger a record comes from."""
    for handler in logging.getLogger(name).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
