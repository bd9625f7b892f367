"""How the Prometheus HTTP API reports failures, and how requests name times and secrets:
helpers of `engine.source.prometheus` (and of the remote-read client next to it).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from prometheus_api_client import PrometheusApiClientException

from engine.evaluation.source import SourceUnavailable

_STATUS_RE = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)


def read_secret(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        # Name the file, never its content.
        raise SourceUnavailable(f"cannot read {what} file {path}: {exc.strerror}") from None


def seconds_param(value: float) -> str:
    return f"{value:.3f}"


def error_text(status: int, body: str) -> str:
    """Prometheus' own error message when the body is its JSON envelope."""
    try:
        payload = json.loads(body)
        return f"{payload.get('errorType', 'error')}: {payload['error']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {status}: {body[:300]}"


def parse_client_error(exc: PrometheusApiClientException) -> tuple[int, str]:
    """prometheus-api-client reports failures as 'HTTP Status Code N (b'<body>')'."""
    match = _STATUS_RE.match(str(exc))
    if match is None:
        return 0, str(exc)
    status = int(match.group(1))
    raw = match.group(2)
    try:
        body = ast.literal_eval(raw)
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    except (ValueError, SyntaxError):
        text = raw
    return status, error_text(status, text)
