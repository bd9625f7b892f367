"""`slo-engine gate SERVICE --url URL`: the release gate for CI/CD pipelines.

Asks a running daemon (`GET /api/v1/gates/{service}`) whether the service may release.

Exit codes (docs/cli.md): 0 allowed; 1 closed — an SLO's error budget is frozen by its
policy, or (unless `--allow-unknown`) a guarding SLO's budget is unknown; 2 the gate was
asked wrongly (usage, an unreadable token file, a refused token, an unknown service: the
daemon's 4xx); 3 the daemon is unreachable or did not answer like its API (5xx, not JSON);
4 internal error. A pipeline that treats anything but 0 as "go" has no gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import requests
import typer

from engine.commands.app import app
from engine.commands.exit_codes import ExitCode
from engine.commands.options import TextFormat, duration_flag
from engine.spec.durations import Duration


@app.command()
def gate(
    service: Annotated[str, typer.Argument(help="The service about to release, e.g. api.")],
    url: Annotated[
        str,
        typer.Option("--url", metavar="URL", help="The daemon's API, e.g. http://slo-engine:8080."),
    ],
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", metavar="FILE", help="A file holding an API token with the read role."
        ),
    ] = None,
    allow_unknown: Annotated[
        bool,
        typer.Option(
            "--allow-unknown",
            help="Pass when no budget is frozen and the only reasons are unknown budgets "
            "(no data, source errors). Off by default: a blind gate stays closed.",
        ),
    ] = False,
    output: Annotated[
        TextFormat, typer.Option("--format", help="The verdict and reasons, or the JSON answer.")
    ] = TextFormat.text,
    timeout: Annotated[
        Duration,
        typer.Option(
            "--timeout", parser=duration_flag, metavar="DURATION", help="How long to wait."
        ),
    ] = Duration.parse("10s"),
) -> None:
    """Exit 0 when SERVICE may release, 1 when its error budget policy freezes releases."""
    body = _ask(url, service, _token(token_file), timeout.seconds)
    allowed = bool(body.get("allowed"))
    unknown_only = not allowed and not any(
        s.get("status") == "frozen" for s in body.get("slos", {}).values()
    )
    passed = allowed or (allow_unknown and unknown_only)
    if output is TextFormat.json:
        typer.echo(json.dumps(body, indent=2, sort_keys=True))
    else:
        verdict = "allowed" if allowed else ("allowed (unknown budgets)" if passed else "frozen")
        typer.echo(f"{service}: releases {verdict}")
        for reason in body.get("reasons", []):
            typer.echo(f"  - {reason}")
    raise typer.Exit(ExitCode.OK if passed else ExitCode.FINDINGS)


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: {path}: cannot read the token file: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    if not lines:
        typer.echo(f"error: {path}: the token file is empty", err=True)
        raise typer.Exit(ExitCode.USAGE)
    return lines[0]


def _ask(url: str, service: str, token: str | None, timeout: float) -> dict[str, Any]:
    """The gate's JSON (200 or 423). Not reached, or not answering like the API: exit 3;
    a 4xx (refused token, unknown service): exit 2 with the daemon's error."""
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    target = f"{url.rstrip('/')}/api/v1/gates/{service}"
    try:
        response = requests.get(target, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        typer.echo(f"error: cannot reach {target}: {type(exc).__name__}", err=True)
        raise typer.Exit(ExitCode.UNAVAILABLE) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code not in (200, 423) or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        typer.echo(f"error: {target} answered {response.status_code}: {error or '?'}", err=True)
        asked_wrongly = 400 <= response.status_code < 500 and response.status_code != 423
        raise typer.Exit(ExitCode.USAGE if asked_wrongly else ExitCode.UNAVAILABLE)
    return body
