"""`slo-engine incidents list|show|ack|resolve --state-dir DIR` (or `--store DSN`): look at
and act on incidents in a daemon's store — its state directory's SQLite file, or the
PostgreSQL database its replicas share — while the daemon runs or not (which store:
engine/commands/incident_store.py). Incident response (declare,
status, severity, assign, update, review, action, close-review) is in
`engine.commands.incident_response`, on the same `incidents` command group.

ack and resolve go through the incident engine, so they notify the same receivers the daemon
would (queued in the outbox; the daemon's outbox worker delivers them). If the daemon
changes the state at the same moment, the store refuses the stale write and the command
reloads and retries.

Exit codes (docs/cli.md): 0 done; 1 no such open incident; 2 usage (a bad flag, no store in
--state-dir or a wrong --store, a bad incident config); 3 the store cannot be opened or its state kept changing
under every retry; 4 internal error.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.commands.app import app
from engine.commands.exit_codes import ExitCode
from engine.commands.incident_store import StateDir, StoreAt, StoreDsn, StorePasswordFile, fail
from engine.incidents.config import IncidentConfig, load_incident_config
from engine.incidents.engine import IncidentEngine, IncidentError
from engine.incidents.incident import Incident, IncidentStatus, Severity, iso
from engine.incidents.response import Role
from engine.incidents.rto import recovery
from engine.incidents.state import Decision
from engine.store.apply import StateKeptChanging, apply_with_retry
from engine.store.base import IncidentStore

EXIT_OK = ExitCode.OK
EXIT_NOT_FOUND = ExitCode.FINDINGS
EXIT_CANNOT_RUN = ExitCode.USAGE
EXIT_UNAVAILABLE = ExitCode.UNAVAILABLE


class IncidentFormat(StrEnum):
    table = "table"
    text = "text"  # the same table: the older spelling
    json = "json"


incidents_app = typer.Typer(
    help="List, show, acknowledge and resolve incidents in a state directory.",
    no_args_is_help=True,
)
app.add_typer(incidents_app, name="incidents")

_SEVERITY_STYLE = {"SEV1": "bold red", "SEV2": "red", "SEV3": "yellow", "SEV4": "cyan"}
_STATUS_STYLE = {
    "investigating": "bold",
    "mitigating": "yellow",
    "monitoring": "cyan",
    "resolved": "green",
    "review": "magenta",
}

Format = Annotated[IncidentFormat, typer.Option("--format", help="A table, or JSON.")]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Incident config YAML (receivers, escalation) — as the daemon uses.",
    ),
]
By = Annotated[
    str | None,
    typer.Option("--by", metavar="NAME", help="Who is acting (default: your user name)."),
]


_fail = fail


def _open_store(at: StoreAt) -> IncidentStore:
    return at.open()


def _when(ts: float | None) -> str:
    text = iso(ts)
    return "" if text is None else text[:16].replace("T", " ")


@incidents_app.command("list")
def list_incidents(
    status: Annotated[
        str,
        typer.Option(
            help="open (investigating, mitigating or monitoring), investigating, mitigating, "
            "monitoring, resolved, review or all."
        ),
    ] = "open",
    severity: Annotated[str | None, typer.Option(help="Only this severity, e.g. SEV1.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Incidents, newest first."""
    if status not in ("open", "all", *(s.value for s in IncidentStatus)):
        raise _fail(
            f"--status {status!r}: use open, "
            + ", ".join(s.value for s in IncidentStatus)
            + " or all",
            EXIT_CANNOT_RUN,
        )
    try:
        sev = None if severity is None else Severity(severity.upper())
    except ValueError:
        raise _fail(
            f"--severity {severity!r}: use SEV1, SEV2, SEV3 or SEV4", EXIT_CANNOT_RUN
        ) from None
    with _open_store(StoreAt(state_dir, dsn, password_file)) as store:
        exact = None if status in ("open", "all") else IncidentStatus(status)
        found = store.list_incidents(status=exact, severity=sev)
    if status == "open":
        found = [i for i in found if i.is_open]
    found = found[:limit]
    if fmt == "json":
        typer.echo(json.dumps([i.to_json(timeline=False) for i in found], indent=2))
        return
    console = Console()
    if not found:
        console.print(Text(f"No {'' if status == 'all' else status + ' '}incidents."))
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "SEV", "STATUS", "SERVICE", "OPENED (UTC)", "ACK", "SUMMARY"):
        table.add_column(column)
    for incident in found:
        table.add_row(
            Text(incident.id),
            Text(incident.severity.value, style=_SEVERITY_STYLE[incident.severity.value]),
            Text(
                incident.status.value + (" (flapping)" if incident.flapping else ""),
                style=_STATUS_STYLE[incident.status.value],
            ),
            Text(incident.service),
            Text(_when(incident.opened_at)),
            Text(incident.acknowledged_by or "—", style="" if incident.acknowledged_by else "dim"),
            Text(incident.summary),
        )
    console.print(table)


def _recovery(incident: Incident) -> str:
    found = recovery(incident, time.time())
    if found is None:
        return "—"
    objective = f"RTO {found.objective / 3600:g} h"
    if found.time_to_restore is not None:
        verdict = "met" if found.met else "missed"
        return f"{objective}: restored in {found.time_to_restore / 3600:.1f} h ({verdict})"
    if found.remaining is not None and found.remaining <= 0:
        return f"{objective}: missed ({-found.remaining / 3600:.1f} h over)"
    return f"{objective}: {(found.remaining or 0) / 3600:.1f} h left"


def _show(incident: Incident) -> None:
    console = Console()
    head = Text()
    head.append(f"{incident.id} ", style="bold")
    head.append(incident.severity.value, style=_SEVERITY_STYLE[incident.severity.value])
    head.append(f" {incident.status.value}", style=_STATUS_STYLE[incident.status.value])
    head.append(f" — {incident.service}: {incident.summary}")
    console.print(head)
    fields: list[tuple[str, Any]] = [
        ("opened", _when(incident.opened_at)),
        (
            "acknowledged",
            f"{_when(incident.acknowledged_at)} by {incident.acknowledged_by}"
            if incident.acknowledged_by
            else "not yet",
        ),
        ("commander", incident.commander or "unassigned"),
        *[
            (Role(r).label.lower(), who)
            for r, who in incident.role_holders().items()
            if r != "incident_commander"
        ],
        (
            "category",
            incident.category.value + (" · customer-facing" if incident.customer_facing else ""),
        ),
        ("declared by", incident.declared_by or "— (opened by an alert)"),
        ("recovery", _recovery(incident)),
        ("resolved", _when(incident.resolved_at) or "—"),
        ("SLOs", ", ".join(incident.slo_ids)),
        ("related services", ", ".join(incident.related_services) or "—"),
        ("escalation level", incident.escalation_level),
        ("flapping", "yes" if incident.flapping else "no"),
        ("runbook", incident.runbook_url or "—"),
        ("dashboard", incident.dashboard_url or "—"),
    ]
    if incident.suggested_severity is not None:
        fields.append(("alerts now justify", incident.suggested_severity.value))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for name, value in fields:
        grid.add_row(Text(name), Text(str(value)))
    console.print(grid)
    if incident.latest_update:
        update = incident.latest_update
        console.print(
            Text(f"\nLatest update ({_when(update['at'])} by {update['by']}):", style="bold")
        )
        for name in ("impact", "current_actions", "expected_resolution"):
            console.print(Text(f"  {name.replace('_', ' ')}: {update[name]}"))
    if incident.action_items:
        console.print(Text("\nAction items:", style="bold"))
        for item in incident.action_items:
            mark = "x" if item.status == "done" else " "
            console.print(Text(f"  [{mark}] {item.id} {item.text} — {item.owner or 'no owner'}"))
    if incident.customer_notice:
        console.print(Text("\nCustomer notice:", style="bold"))
        console.print(Text(incident.customer_notice))
    console.print(Text("\nTimeline:", style="bold"))
    timeline = Table(box=None, header_style="bold")
    for column in ("TIME (UTC)", "EVENT", "BY", "MESSAGE"):
        timeline.add_column(column)
    for entry in incident.timeline:
        timeline.add_row(
            Text(iso(entry.at)[:19].replace("T", " ") if entry.at else ""),
            Text(entry.kind),
            Text(entry.actor or ""),
            Text(entry.message),
        )
    console.print(timeline)


@incidents_app.command("show")
def show(
    incident_id: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="e.g. INC-2024-0001")],
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """One incident with its full timeline."""
    at = StoreAt(state_dir, dsn, password_file)
    with _open_store(at) as store:
        incident = store.get_incident(incident_id)
    if incident is None:
        raise _fail(f"no incident {incident_id} in {at.describe()}", EXIT_NOT_FOUND)
    if fmt == "json":
        typer.echo(json.dumps(incident.to_json(), indent=2))
    else:
        _show(incident)


def _config(path: Path | None) -> IncidentConfig:
    if path is None:
        return IncidentConfig()
    try:
        return load_incident_config(path)
    except (OSError, ValidationError, ValueError) as exc:
        raise _fail(f"{path}: {exc}", EXIT_CANNOT_RUN) from None


def _act(
    at: StoreAt,
    config_path: Path | None,
    incident_id: str,
    action: Callable[[IncidentEngine, float], Decision],
) -> Decision:
    config = _config(config_path)
    with _open_store(at) as store:
        engine = IncidentEngine(config, store.load_state())
        try:
            # The daemon may write in between: the stale write is reloaded and redone.
            return apply_with_retry(store, engine, action, time.time)
        except IncidentError as exc:
            raise _fail(str(exc), EXIT_NOT_FOUND) from None
        except StateKeptChanging:
            raise _fail(
                f"{incident_id}: the state kept changing underneath; try again", EXIT_CANNOT_RUN
            ) from None


def _report(decision: Decision, verb: str, fmt: str) -> None:
    incident = decision.incidents[0]
    if fmt == "json":
        typer.echo(
            json.dumps(
                {
                    "incident": incident.to_json(timeline=False),
                    "notifications": [n.id for n in decision.notifications],
                },
                indent=2,
            )
        )
        return
    told = sorted({n.receiver for n in decision.notifications})
    Console(soft_wrap=True).print(
        Text(
            f"{incident.id} {verb}."
            + (f" Notifying {', '.join(told)} (via the outbox)." if told else "")
        )
    )


@incidents_app.command("ack")
def ack(
    incident_id: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="e.g. INC-2024-0001")],
    by: By = None,
    commander: Annotated[
        str | None, typer.Option(help="Incident commander (default: whoever acks).")
    ] = None,
    config: ConfigFile = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Acknowledge an incident: stops escalation and repeat notifications."""
    who = by or getpass.getuser()
    decision = _act(
        StoreAt(state_dir, dsn, password_file),
        config,
        incident_id,
        lambda e, now: e.acknowledge(now, incident_id, who, commander),
    )
    _report(decision, f"acknowledged by {who}", fmt)


@incidents_app.command("resolve")
def resolve(
    incident_id: Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="e.g. INC-2024-0001")],
    by: By = None,
    note: Annotated[str, typer.Option(help="Resolution note for the timeline.")] = "",
    config: ConfigFile = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Resolve an incident by hand. Alerts still firing must clear before they page again."""
    who = by or getpass.getuser()
    decision = _act(
        StoreAt(state_dir, dsn, password_file),
        config,
        incident_id,
        lambda e, now: e.resolve(now, incident_id, who, note),
    )
    _report(decision, f"resolved by {who}", fmt)


# Registered on `incidents_app` when imported; imported last, it uses the helpers above.
from engine.commands import incident_response  # noqa: E402, F401
