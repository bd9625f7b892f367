"""`slo-engine generate`: Prometheus rules, Alertmanager config and Grafana dashboards.

Exit codes (docs/cli.md): 0 written (or, with --check, everything up to date); 1 --check
found files that differ, are missing or are stale, or the specs or generate.yml are invalid
(nothing written); 2 usage (a bad flag, a path that does not exist); 4 internal error.

generate.yml (beside the specs, or --config) names the real receivers, routes, Grafana
datasource and folder (engine/generate/config.py); --format and --naming override its
`format` and `naming`.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from engine.commands.app import app
from engine.commands.exit_codes import ExitCode
from engine.generate.alert_rules import DEFAULT_GRAFANA_URL
from engine.generate.config import (
    GenerateConfig,
    GenerateConfigError,
    config_beside,
    load_generate_config,
)
from engine.generate.pipeline import GeneratedFile, GenerateError, Root, generate
from engine.generate.writer import check, write
from engine.spec.loader import load_specs


class RuleFormat(StrEnum):
    rules = "rules"
    prometheusrule = "prometheusrule"


class Naming(StrEnum):
    native = "native"
    sloth = "sloth"


@app.command(name="generate")
def generate_command(
    specs: list[Path] = typer.Option(
        [Path("slo_specs")], "--specs", help="Spec files or directories (repeatable)."
    ),
    rules_dir: Path = typer.Option(
        Path("alerts"),
        "--rules-dir",
        metavar="DIR",
        help="Where <service>.rules.yml and alertmanager.yml go.",
    ),
    dashboards_dir: Path = typer.Option(
        Path("dashboards"),
        "--dashboards-dir",
        metavar="DIR",
        help="Where dashboards and provisioning go.",
    ),
    grafana_url: str = typer.Option(
        DEFAULT_GRAFANA_URL,
        "--grafana-url",
        metavar="URL",
        help="Base URL for alerts' dashboard_url links.",
    ),
    check_only: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 and list files that are not up to date."
    ),
    config_file: Path | None = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="Generation config: receivers, routes, Grafana (default: generate.yml beside the "
        "specs).",
    ),
    rule_format: RuleFormat | None = typer.Option(
        None,
        "--format",
        help="Rule files, or one prometheus-operator PrometheusRule per service (default: rules).",
    ),
    naming: Naming | None = typer.Option(
        None,
        "--naming",
        help="Also record Sloth's series names and labels, for Sloth dashboards (default: native).",
    ),
) -> None:
    """Generate Prometheus rules, Alertmanager config and Grafana dashboards from SLO specs."""
    missing = [p for p in [*specs, *([config_file] if config_file else [])] if not p.exists()]
    for path in missing:
        typer.echo(f"error: no such file or directory: {path}", err=True)
    if missing:
        raise typer.Exit(ExitCode.USAGE)
    config = _config(config_file or config_beside(specs), rule_format, naming)
    loaded = load_specs(specs)
    if not loaded.ok:
        for problem in loaded.errors:
            typer.echo(str(problem), err=True)
        typer.echo("error: fix the specs (see `slo-engine validate`) before generating", err=True)
        raise typer.Exit(ExitCode.FINDINGS)
    try:
        files = generate(loaded.slos, grafana_url=grafana_url, config=config)
    except GenerateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.FINDINGS) from None
    roots: dict[Root, Path] = {"rules": rules_dir, "dashboards": dashboards_dir}

    if check_only:
        _check(files, roots)
        return
    drift = write(files, roots)
    for line in drift.lines():
        typer.echo(line.replace("missing:", "created:").replace("extra:  ", "removed:"))
    typer.echo(
        f"ok: {len(loaded.slos)} SLOs → {len(files)} files "
        f"({len(drift.changed) + len(drift.missing)} written, {len(drift.extra)} removed)"
    )


def _check(files: list[GeneratedFile], roots: dict[Root, Path]) -> None:
    """--check: nothing written; drift listed and exit 1."""
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
    raise typer.Exit(ExitCode.FINDINGS)


def _config(
    path: Path | None, rule_format: RuleFormat | None, naming: Naming | None
) -> GenerateConfig:
    """generate.yml (or the defaults) with the flags given applied; exit 1 when invalid."""
    try:
        config = load_generate_config(path) if path is not None else GenerateConfig()
        flags = (("format", rule_format), ("naming", naming))
        given = {key: flag.value for key, flag in flags if flag is not None}
        return GenerateConfig.model_validate({**config.model_dump(), **given}) if given else config
    except GenerateConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
    except ValueError as exc:  # a flag's value (pydantic's ValidationError is a ValueError)
        for error in getattr(exc, "errors", lambda: [])():
            flag = "--" + str(error["loc"][0])
            typer.echo(f"error: {flag}: {error['msg']}", err=True)
    raise typer.Exit(ExitCode.FINDINGS)
