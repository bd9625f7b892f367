"""`slo-engine validate PATH...`: check SLO specs and point at every problem.

Exit codes (docs/cli.md): 0 all valid, 1 any spec invalid, 2 usage error (no path, or a
path that does not exist), 4 internal error. Warnings (e.g. `depends_on` naming an unloaded service) never fail the run.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

from engine.commands.app import app
from engine.commands.exit_codes import ExitCode
from engine.spec.loader import load_specs


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


PROMTOOL_MISSING = (
    "note: promtool not found — PromQL was checked for balanced brackets/quotes and the "
    "{{window}} placeholder only; install Debian's prometheus package for a full parse"
)


@app.command()
def validate(
    paths: list[Path] = typer.Argument(
        None,
        metavar="PATH",
        help="Spec files or directories (searched recursively for *.yml / *.yaml).",
    ),
    output: OutputFormat = typer.Option(
        OutputFormat.text, "--format", "-f", help="text: one line per problem; json: a report."
    ),
) -> None:
    """Validate SLO specs (native, Sloth prometheus/v1, OpenSLO v1)."""
    if not paths:
        typer.echo("error: give at least one spec file or directory, e.g. slo_specs/", err=True)
        raise typer.Exit(ExitCode.USAGE)
    missing = [p for p in paths if not p.exists()]
    if missing:
        for path in missing:
            typer.echo(f"error: no such file or directory: {path}", err=True)
        raise typer.Exit(ExitCode.USAGE)

    result = load_specs(paths)
    if output is OutputFormat.json:
        report = {
            "valid": result.ok,
            "slos": [slo.id for slo in result.slos],
            "errors": [e.to_json() for e in result.errors],
            "warnings": [e.to_json() for e in result.warnings],
            "promql_parsed": result.promql_parsed,
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        for problem in result.problems:
            typer.echo(str(problem))
        if not result.promql_parsed:
            typer.echo(PROMTOOL_MISSING, err=True)
        if result.ok:
            typer.echo(f"ok: {len(result.slos)} SLOs in {len(result.files)} files")
        else:
            errors, files = len(result.errors), len({e.file for e in result.errors})
            typer.echo(
                f"invalid: {errors} error{'s' * (errors != 1)} in {files} file{'s' * (files != 1)}",
                err=True,
            )
    raise typer.Exit(ExitCode.OK if result.ok else ExitCode.FINDINGS)
