"""`slo-engine report --month 2026-11`: the monthly SLO report (docs/budgets.md).

Reads the compliance history the daemon keeps in its store (`--state-dir`, or `--store`
for PostgreSQL); with `--from-prometheus URL --specs DIR`, SLOs of the specs without stored
days are rebuilt from Prometheus history. Markdown, HTML (self-contained, with a trend
plot per SLO) or JSON, on stdout or into `--output`.

Exit codes (docs/cli.md): 0 written; 1 the specs are invalid; 2 usage (a bad month, no
store or state directory given or there, no specs); 3 the store or Prometheus cannot be
read; 4 internal error.
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from engine.commands.app import app
from engine.commands.exit_codes import ExitCode
from engine.commands.options import (
    BasicAuthPasswordFile,
    BasicAuthUser,
    BearerTokenFile,
    CaBundle,
    ClientCert,
    ClientKey,
    prometheus_access,
)
from engine.evaluation.daily import month_days
from engine.evaluation.source import SourceUnavailable
from engine.incidents.incident import Incident
from engine.reports.monthly import Origin, build_report
from engine.reports.render import RENDERERS
from engine.store.base import StoreError
from engine.store.history import ComplianceDay


class ReportFormat(StrEnum):
    md = "md"
    html = "html"
    json = "json"


@app.command()
def report(
    month: Annotated[
        str, typer.Option("--month", metavar="YYYY-MM", help="The UTC month, YYYY-MM.")
    ],
    service: Annotated[str | None, typer.Option("--service", help="One service only.")] = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", help="Markdown, self-contained HTML, or JSON.")
    ] = ReportFormat.md,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", metavar="DIR", help="The daemon's state directory."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", metavar="URL", help="The daemon's `store:` (e.g. postgresql://…)."),
    ] = None,
    from_prometheus: Annotated[
        str | None,
        typer.Option(
            "--from-prometheus",
            metavar="URL",
            help="Rebuild SLOs without stored days from this Prometheus.",
        ),
    ] = None,
    specs: Annotated[
        list[Path] | None, typer.Option("--specs", help="Spec files/dirs (with Prometheus).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write here.")
    ] = None,
    bearer_token_file: BearerTokenFile = None,
    basic_auth_user: BasicAuthUser = None,
    basic_auth_password_file: BasicAuthPasswordFile = None,
    ca_bundle: CaBundle = None,
    client_cert: ClientCert = None,
    client_key: ClientKey = None,
) -> None:
    """The monthly SLO report: objective, achieved, budget used, worst day, incidents."""
    access = prometheus_access(
        bearer_token_file,
        basic_auth_user,
        basic_auth_password_file,
        ca_bundle,
        client_cert,
        client_key,
    )
    try:
        days = month_days(month)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None
    if state_dir is None and store is None and from_prometheus is None:
        _fail(
            "give --state-dir (or --store) and/or --from-prometheus URL --specs DIR", ExitCode.USAGE
        )
    now = time.time()
    rows, incidents = _stored(store, state_dir, days, service)
    origins: dict[str, Origin] = {r.slo_id: "store" for r in rows}
    if from_prometheus is not None:
        rebuilt = _rebuilt(from_prometheus, access, specs or [], days, now, service, set(origins))
        origins.update({r.slo_id: "prometheus" for r in rebuilt})
        rows += rebuilt
    text = RENDERERS[output_format.value](
        build_report(month, rows, origins, incidents, now, service)
    )
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def _fail(message: str, code: ExitCode) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _stored(
    store: str | None, state_dir: Path | None, days: list[str], service: str | None
) -> tuple[list[ComplianceDay], list[Incident]]:
    if store is None and state_dir is None:
        return [], []
    from engine.store.open import open_store

    if store is None and state_dir is not None and not state_dir.is_dir():
        _fail(f"{state_dir}: no such state directory", ExitCode.USAGE)
    try:
        opened = open_store(store, state_dir or Path("."))
        try:
            history = opened.compliance_history()  # type: ignore[attr-defined]
            rows = history.days(days[0], days[-1], service)
            incidents = opened.list_incidents()
        finally:
            opened.close()
    except StoreError as exc:
        _fail(str(exc), ExitCode.UNAVAILABLE)
    return rows, incidents


def _rebuilt(
    url: str,
    access: dict[str, Any],
    specs: list[Path],
    days: list[str],
    now: float,
    service: str | None,
    stored: set[str],
) -> list[ComplianceDay]:
    from engine.reports.rebuild import rebuild_days
    from engine.source.prometheus import PrometheusSource
    from engine.spec.loader import load_specs

    if not specs:
        _fail("--from-prometheus needs --specs (which SLOs, and their queries)", ExitCode.USAGE)
    missing = [str(p) for p in specs if not p.exists()]
    if missing:
        _fail("no such file or directory: " + ", ".join(missing), ExitCode.USAGE)
    loaded = load_specs(specs)
    if loaded.errors:
        _fail(
            f"the specs are invalid ({len(loaded.errors)} problems): run slo-engine validate",
            ExitCode.FINDINGS,
        )
    slos = [
        s
        for s in loaded.slos
        if s.id not in stored and (service is None or s.service == service) and not s.grouped
    ]
    try:
        source = PrometheusSource(url, **access)
    except (ValueError, OSError) as exc:
        _fail(str(exc), ExitCode.USAGE)
    try:
        return rebuild_days(source, slos, days, now)
    except SourceUnavailable as exc:
        _fail(f"Prometheus at {url}: {exc}", ExitCode.UNAVAILABLE)
