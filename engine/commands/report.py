"""`slo-engine report --month 2026-11`: the monthly SLO report (docs/budgets.md).

Reads the compliance history the daemon keeps in its store (`--state-dir`, or `--store`
for PostgreSQL); with `--from-prometheus URL --specs DIR`, SLOs of the specs without stored
days are rebuilt from Prometheus history. Markdown, HTML (self-contained, with a trend
plot per SLO) or JSON, on stdout or into `--output`.

Exit codes: 0 written; 2 cannot run (bad month, no store, no specs, Prometheus down).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from engine.commands.app import app
from engine.evaluation.daily import month_days
from engine.evaluation.source import SourceUnavailable
from engine.incidents.incident import Incident
from engine.reports.monthly import Origin, build_report
from engine.reports.render import RENDERERS
from engine.store.base import StoreError
from engine.store.history import ComplianceDay


@app.command()
def report(
    month: Annotated[str, typer.Option("--month", help="The UTC month, YYYY-MM.")],
    service: Annotated[str | None, typer.Option("--service", help="One service only.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="md, html or json.")] = "md",
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="The daemon's state directory.")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="The daemon's `store:` (e.g. postgresql://…).")
    ] = None,
    from_prometheus: Annotated[
        str | None,
        typer.Option("--from-prometheus", help="Rebuild SLOs without stored days from here."),
    ] = None,
    specs: Annotated[
        list[Path] | None, typer.Option("--specs", help="Spec files/dirs (with Prometheus).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> None:
    """The monthly SLO report: objective, achieved, budget used, worst day, incidents."""
    if output_format not in RENDERERS:
        raise typer.BadParameter("md, html or json", param_hint="--format")
    try:
        days = month_days(month)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None
    if state_dir is None and store is None and from_prometheus is None:
        _fail("give --state-dir (or --store) and/or --from-prometheus URL --specs DIR")
    now = time.time()
    rows, incidents = _stored(store, state_dir, days, service)
    origins: dict[str, Origin] = {r.slo_id: "store" for r in rows}
    if from_prometheus is not None:
        rebuilt = _rebuilt(from_prometheus, specs or [], days, now, service, set(origins))
        origins.update({r.slo_id: "prometheus" for r in rebuilt})
        rows += rebuilt
    text = RENDERERS[output_format](build_report(month, rows, origins, incidents, now, service))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _stored(
    store: str | None, state_dir: Path | None, days: list[str], service: str | None
) -> tuple[list[ComplianceDay], list[Incident]]:
    if store is None and state_dir is None:
        return [], []
    from engine.store.open import open_store

    if store is None and state_dir is not None and not state_dir.is_dir():
        _fail(f"{state_dir}: no such state directory")
    try:
        opened = open_store(store, state_dir or Path("."))
        try:
            history = opened.compliance_history()  # type: ignore[attr-defined]
            rows = history.days(days[0], days[-1], service)
            incidents = opened.list_incidents()
        finally:
            opened.close()
    except StoreError as exc:
        _fail(str(exc))
    return rows, incidents


def _rebuilt(
    url: str,
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
        _fail("--from-prometheus needs --specs (which SLOs, and their queries)")
    loaded = load_specs(specs)
    if loaded.errors:
        _fail(f"the specs are invalid ({len(loaded.errors)} problems): run slo-engine validate")
    slos = [
        s
        for s in loaded.slos
        if s.id not in stored and (service is None or s.service == service) and not s.grouped
    ]
    try:
        return rebuild_days(PrometheusSource(url), slos, days, now)
    except SourceUnavailable as exc:
        _fail(f"Prometheus at {url}: {exc}")
    return []
