"""Options several commands share, declared once so they read the same everywhere
(docs/cli.md): how to reach Prometheus (auth and TLS), time and duration values, output
formats.

Values are parsed here, at the flag, so a bad one is a usage error (exit 2) naming the flag,
before anything is loaded or fetched.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.spec.durations import Duration, DurationError

TIME_HELP = "Unix seconds or RFC 3339 (2024-01-03T10:00:00Z)"


def parse_time(text: str) -> float:
    """Unix seconds or RFC 3339 with a zone (2024-01-03T10:00:00Z); ValueError otherwise."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # float() also reads "nan" and "inf": no instant is either.
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{text!r} is not a time — Unix seconds are finite and ≥ 0")
        return seconds
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time — use Unix seconds or RFC 3339 like 2024-01-03T10:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone — add Z or +00:00")
    return parsed.timestamp()


def time_flag(text: str) -> float:
    """`parse_time` for a flag: a bad value is a usage error naming the flag."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def duration_flag(text: str | Duration) -> Duration:
    """A Prometheus duration (30s, 5m, 1h, 28d) for a flag; bare numbers are refused: "30"
    could be seconds, minutes or days depending on who wrote it. (A default is already a
    Duration: Click converts defaults too.)"""
    if isinstance(text, Duration):
        return text
    try:
        value = Duration.parse(text)
    except DurationError as exc:
        raise typer.BadParameter(str(exc)) from None
    if value.ms == 0:
        raise typer.BadParameter(f"{text!r}: a duration here must be longer than 0")
    return value


def duration_text_flag(text: str) -> str:
    """`duration_flag` for options passed on as text (to a config that parses them again)."""
    duration_flag(text)
    return text


class TableFormat(StrEnum):
    table = "table"
    json = "json"


class TextFormat(StrEnum):
    text = "text"
    json = "json"


class DocumentFormat(StrEnum):
    md = "md"
    json = "json"


SpecsOption = Annotated[
    list[Path], typer.Option("--specs", help="SLO spec file or directory (repeatable).")
]
PrometheusUrlOption = Annotated[
    str,
    typer.Option(
        "--prometheus-url", metavar="URL", help="Prometheus base URL holding the history."
    ),
]
TimeoutOption = Annotated[
    Duration,
    typer.Option(parser=duration_flag, metavar="DURATION", help="Per-request timeout."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        metavar="N", help="Processes evaluating SLO groups in parallel (default: CPUs, ≤ 4)."
    ),
]

# How to reach Prometheus: the same flags on every command that reads it (evaluate,
# backtest, suggest, report, run). Secrets come from files, never from the command line.
BearerTokenFile = Annotated[
    Path | None,
    typer.Option(
        "--bearer-token-file", metavar="FILE", help="File holding a bearer token for Prometheus."
    ),
]
BasicAuthUser = Annotated[
    str | None,
    typer.Option("--basic-auth-user", metavar="USER", help="Basic auth user name for Prometheus."),
]
BasicAuthPasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--basic-auth-password-file",
        metavar="FILE",
        help="File holding the basic auth password (needs --basic-auth-user).",
    ),
]
CaBundle = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle", metavar="FILE", help="CA bundle (PEM) to verify Prometheus' certificate."
    ),
]
ClientCert = Annotated[
    Path | None,
    typer.Option("--client-cert", metavar="FILE", help="Client certificate (PEM) for mutual TLS."),
]
ClientKey = Annotated[
    Path | None,
    typer.Option(
        "--client-key", metavar="FILE", help="Key of the client certificate (needs --client-cert)."
    ),
]


def prometheus_access(
    bearer_token_file: Path | None,
    basic_auth_user: str | None,
    basic_auth_password_file: Path | None,
    ca_bundle: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
) -> dict[str, Any]:
    """The auth and TLS flags as PrometheusSource's keyword arguments (paths as text)."""
    return {
        "bearer_token_file": _text(bearer_token_file),
        "basic_auth_user": basic_auth_user,
        "basic_auth_password_file": _text(basic_auth_password_file),
        "ca_bundle": _text(ca_bundle),
        "client_cert": _text(client_cert),
        "client_key": _text(client_key),
    }


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)
