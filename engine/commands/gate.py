"""`slo-engine gate SERVICE --url URL`: the release gate for CI/CD pipelines.

Asks a running daemon (`GET /api/v1/gates/{service}`) whether the service may release.

Exit codes: 0 allowed; 1 closed — an SLO's error budget is frozen by its policy, or (unless
`--allow-unknown`) a guarding SLO's budget is unknown; 2 the gate could not be asked (usage,
unreachable daemon, refused token, unknown service). A pipeline that treats 2 as "go" has
no gate: fail on anything but 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import requests
import typer

from engine.commands.app import app


@app.command()
def gate(
    service: Annotated[str, typer.Argument(help="The service about to release, e.g. api.")],
    url: Annotated[
        str, typer.Option("--url", help="The daemon's API, e.g. http://slo-engine:8080.")
    ],
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="A file holding an API token with the read role."),
    ] = None,
    allow_unknown: Annotated[
        bool,
        typer.Option(
            "--allow-unknown",
            help="Pass when no budget is frozen and the only reasons are unknown budgets "
            "(no data, source errors). Off by default: a blind gate stays closed.",
        ),
    ] = False,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 10.0,
) -> None:
    """Exit 0 when SERVICE may release, 1 when its error budget policy freezes releases."""
    if output not in ("text", "json"):
        raise typer.BadParameter("text or json", param_hint="--format")
    body = _ask(url, service, _token(token_file), timeout)
    allowed = bool(body.get("allowed"))
    unknown_only = not allowed and not any(
        s.get("status") == "frozen" for s in body.get("slos", {}).values()
    )
    passed = allowed or (allow_unknown and unknown_only)
    if output == "json":
        typer.echo(json.dumps(body, indent=2, sort_keys=True))
    else:
        verdict = "allowed" if allowed else ("allowed (unknown budgets)" if passed else "frozen")
        typer.echo(f"{service}: releases {verdict}")
        for reason in body.get("reasons", []):
            typer.echo(f"  - {reason}")
    raise typer.Exit(0 if passed else 1)


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"error: {path}: cannot read the token file: {exc}", err=True)
        raise typer.Exit(2) from None
    if not lines:
        typer.echo(f"error: {path}: the token file is empty", err=True)
        raise typer.Exit(2)
    return lines[0]


def _ask(url: str, service: str, token: str | None, timeout: float) -> dict[str, Any]:
    """The gate's JSON (200 or 423); anything else exits 2 with the daemon's error."""
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    target = f"{url.rstrip('/')}/api/v1/gates/{service}"
    try:
        response = requests.get(target, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        typer.echo(f"error: cannot reach {target}: {type(exc).__name__}", err=True)
        raise typer.Exit(2) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code not in (200, 423) or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        typer.echo(f"error: {target} answered {response.status_code}: {error or '?'}", err=True)
        raise typer.Exit(2)
    return body
