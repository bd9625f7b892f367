"""`slo-engine generate`: Prometheus rules, Alertmanager config and Grafana dashboards.

Exit codes: 0 written (or, with --check, everything up to date); 1 --check found files that
differ, are missing or are stale; 2 the specs are invalid or a path does not exist.
"""

from __future__ import annotations

from pathlib import Path

import typer

from engine.commands.app import app
from engine.generate.alert_rules import DEFAULT_GRAFANA_URL
from engine.generate.pipeline import GenerateError, generate
from engine.generate.writer import check, write
from engine.spec.loader import load_specs


@app.command(name="generate")
def generate_command(
    specs: list[Path] = typer.Option(
        [Path("slo_specs")], "--specs", help="Spec files or directories (repeatable)."
    ),
    rules_dir: Path = typer.Option(
        Path("alerts"), "--rules-dir", help="Where <service>.rules.yml and alertmanager.yml go."
    ),
    dashboards_dir: Path = typer.Option(
        Path("dashboards"), "--dashboards-dir", help="Where dashboards and provisioning go."
    ),
    grafana_url: str = typer.Option(
        DEFAULT_GRAFANA_URL, "--grafana-url", help="Base URL for alerts' dashboard_url links."
    ),
    check_only: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 and list files that are not up to date."
    ),
) -> None:
    """Generate Prometheus rules, Alertmanager config and Grafana dashboards from SLO specs."""
    missing = [p for p in specs if not p.exists()]
    for path in missing:
        typer.echo(f"error: no such file or directory: {path}", err=True)
    if missing:
        raise typer.Exit(2)
    loaded = load_specs(specs)
    if not loaded.ok:
        for problem in loaded.errors:
            typer.echo(str(problem), err=True)
        typer.echo("error: fix the specs (see `slo-engine validate`) before generating", err=True)
        raise typer.Exit(2)
    try:
        files = generate(loaded.slos, grafana_url=grafana_url)
    except GenerateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    roots = {"rules": rules_dir, "dashboards": dashboards_dir}

    if check_only:
        drift = check(files, roots)
        if drift.clean:
            typer.echo(f"ok: {len(files)} generated files are up to date")
            return
        for line in drift.lines():
            typer.echo(line)
        typer.echo(
            "error: generated files are out of date — run `slo-engine generate` and commit",
            err=True,
        )
        raise typer.Exit(1)

    drift = write(files, roots)
    for line in drift.lines():
        typer.echo(line.replace("missing:", "created:").replace("extra:  ", "removed:"))
    typer.echo(
        f"ok: {len(loaded.slos)} SLOs → {len(files)} files "
        f"({len(drift.changed) + len(drift.missing)} written, {len(drift.extra)} removed)"
    )
