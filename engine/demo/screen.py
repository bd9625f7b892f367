"""What the demo prints: its steps, the SLO table, the notifications as they arrive, the
incident once paged and where everything it started can be reached."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.demo.webhook_sink import Received

# Piped (CI, a log file): no terminal width to respect; keep lines whole.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def step(text: str) -> None:
    console.print(f"[bold cyan]▶[/bold cyan] {text}")


def slo_table(slos: list[dict[str, Any]]) -> Table:
    table = Table(title="SLOs (from GET /api/v1/slos)", header_style="bold")
    for column in ("SLO", "status", "burn 5m", "burn 1h", "budget left"):
        table.add_column(column, justify="left" if column in ("SLO", "status") else "right")
    style = {"ok": "green", "ticket": "yellow", "page": "bold red", "exhausted": "magenta"}
    for slo in slos:
        burn = slo.get("burn_rate") or {}

        def cell(value: float | None, fmt: str, suffix: str = "×") -> str:
            return "—" if value is None else format(value, fmt) + suffix

        table.add_row(
            slo["id"],
            f"[{style.get(slo['status'], 'dim')}]{slo['status']}[/]",
            cell(burn.get("5m"), ".1f"),
            cell(burn.get("1h"), ".1f"),
            cell(
                None
                if slo.get("error_budget_remaining") is None
                else slo["error_budget_remaining"] * 100,
                ".2f",
                "%",
            ),
        )
    return table


def print_notification(item: Received) -> None:
    incident = item.incident
    console.print(
        f"  [bold magenta]webhook ←[/bold magenta] {item.event:<12} {incident.get('id')} "
        f"[bold]{incident.get('severity')}[/bold] {incident.get('service')}: "
        f"{incident.get('summary')}"
    )


def print_incident(detail: dict[str, Any], slos: list[dict[str, Any]]) -> None:
    """The SLO table again, then the incident: severity and timeline."""
    console.print(slo_table(slos))
    console.print(
        f"[bold red]{detail['id']}[/bold red] [bold]{detail['severity']}[/bold] "
        f"{detail['service']} — {detail['summary']}"
    )
    for entry in detail["timeline"]:
        console.print(f"  {entry['time']}  {entry['kind']:<16} {entry['message']}")


def print_where(
    api: str,
    token: str,
    incident_id: str,
    prometheus_url: str,
    rules_dir: Path,
    dashboards_dir: Path,
    sim_port: int,
    work: Path,
) -> None:
    """Where the API, status page, Prometheus, rules, dashboards and logs are, and how to ack."""
    console.print()
    console.print("[bold]Where things are[/bold]")
    console.print(f"  API            {api}/api/v1/slos   {api}/api/v1/incidents   {api}/docs")
    console.print(f"  status page    {api}/status")
    console.print(f"  metrics        {api}/metrics   (readiness: {api}/readyz)")
    console.print(f"  Prometheus     {prometheus_url}/alerts  (generated rules: {rules_dir})")
    console.print(
        f"  dashboards     {dashboards_dir}  (Grafana JSON; `docker compose up` serves them)"
    )
    console.print(f"  simulator      http://127.0.0.1:{sim_port}/metrics   (POST /inject for more)")
    console.print(f"  logs           {work}")
    console.print(
        f"  acknowledge:   curl -X POST -H 'Authorization: Bearer {token}' "
        f"-H 'Content-Type: application/json' -d '{{}}' "
        f"{api}/api/v1/incidents/{incident_id}/ack"
    )
    console.print()
