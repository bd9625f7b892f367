"""`slo-engine incidents declare|status|severity|assign|update|review|action|close-review`:
incident response from the command line, on a daemon's store — `--state-dir DIR`, or the
daemon's `--store DSN` (PostgreSQL with replicas) — (issue 11).

Like `ack` and `resolve` (engine/commands/incidents.py): every change goes through the
incident engine and the store's stale-safe write, so it notifies whom the daemon would
(give `--config`, the daemon's incident config) and works while the daemon runs. The actor
is `--by`, default your user name. `review` only reads: it drafts the post-incident review.

Exit codes (docs/cli.md): 0 done; 1 no such incident (or action item), or not possible in
its state; 2 usage (no store, bad config or option); 3 the store cannot be opened or its
state kept changing under every retry; 4 internal error.
"""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from engine.commands.incident_store import StoreAt, StoreDsn, StorePasswordFile
from engine.commands.incidents import (
    EXIT_CANNOT_RUN,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    By,
    ConfigFile,
    Format,
    IncidentFormat,
    StateDir,
    _config,
    _fail,
    _open_store,
    _report,
    incidents_app,
)
from engine.commands.options import DocumentFormat, duration_flag
from engine.incidents.actions import KEEP
from engine.incidents.engine import Declaration, IncidentEngine, IncidentError
from engine.incidents.incident import Incident, IncidentStatus, Severity
from engine.incidents.response import ActionStatus, IncidentCategory, Role, UpdateContent
from engine.incidents.review import review_context
from engine.incidents.state import Decision
from engine.spec.durations import Duration
from engine.store.apply import StateKeptChanging, apply_with_retry
from engine.store.base import IncidentStore

IncidentId = Annotated[str, typer.Argument(metavar="INCIDENT_ID", help="e.g. INC-2024-0001")]
Action = Callable[[IncidentEngine, float, IncidentStore], Decision]

action_app = typer.Typer(
    help="Action items of an incident's post-incident review: add, done, reopen, assign.",
    no_args_is_help=True,
)
incidents_app.add_typer(action_app, name="action")


def _decide(at: StoreAt, config_path: Path | None, what: str, action: Action) -> Decision:
    """Decide with the engine on the stored state, write with the stale-safe retry."""
    config = _config(config_path)
    with _open_store(at) as store:
        engine = IncidentEngine(config, store.load_state())
        try:
            return apply_with_retry(store, engine, lambda e, now: action(e, now, store), time.time)
        except (IncidentError, ValueError) as exc:
            raise _fail(str(exc), EXIT_NOT_FOUND) from None
        except StateKeptChanging:
            raise _fail(
                f"{what}: the state kept changing underneath; try again", EXIT_UNAVAILABLE
            ) from None


def _choice(value: str, kind: type, what: str) -> str:
    try:
        return str(kind(value))
    except ValueError:
        names = ", ".join(str(v.value) for v in kind)  # type: ignore[attr-defined]
        raise _fail(f"{what} {value!r}: use one of {names}", EXIT_CANNOT_RUN) from None


def _who(by: str | None) -> str:
    return by or getpass.getuser()


@incidents_app.command("declare")
def declare(
    service: Annotated[str, typer.Option(help="The affected service, e.g. api.")],
    severity: Annotated[str, typer.Option(help="SEV1, SEV2, SEV3 or SEV4.")],
    title: Annotated[str, typer.Option(help="What is happening, in one line.")],
    category: Annotated[
        str,
        typer.Option(
            help="availability, performance, security, data, infrastructure or monitoring."
        ),
    ],
    customer_facing: Annotated[
        bool, typer.Option(help="Customers see it: status page, the CTO at once for a SEV1.")
    ] = False,
    tier: Annotated[
        str | None,
        typer.Option(help="critical, important or standard (the RTO); default by severity."),
    ] = None,
    commander: Annotated[
        str | None, typer.Option(help="Incident commander (default: whoever declares).")
    ] = None,
    note: Annotated[str, typer.Option(help="More context for the timeline.")] = "",
    by: By = None,
    config: ConfigFile = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Declare an incident by hand: a breach, leaked keys, a DDoS — what no SLO sees."""
    if tier is not None and tier not in ("critical", "important", "standard"):
        raise _fail(f"--tier {tier!r}: use critical, important or standard", EXIT_CANNOT_RUN)
    declaration = Declaration(
        service=service,
        severity=Severity(_choice(severity.upper(), Severity, "--severity")),
        title=title,
        category=IncidentCategory(_choice(category.lower(), IncidentCategory, "--category")),
        customer_facing=customer_facing,
        tier=tier,
        commander=commander,
        note=note,
    )
    who = _who(by)
    decision = _decide(
        StoreAt(state_dir, dsn, password_file),
        config,
        "declare",
        lambda e, now, _: e.declare(now, declaration, who),
    )
    _report(decision, f"declared by {who}", fmt)


@incidents_app.command("status")
def status(
    incident_id: IncidentId,
    to: Annotated[str, typer.Argument(help="investigating, mitigating, monitoring or resolved.")],
    note: Annotated[str, typer.Option(help="What changed (required: the runbook asks for it).")],
    by: By = None,
    config: ConfigFile = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Move an incident along the runbook's workflow, with a note."""
    target = _choice(to.lower(), IncidentStatus, "status")
    if not note.strip():
        raise _fail("--note: say what changed", EXIT_CANNOT_RUN)
    who = _who(by)
    decision = _decide(
        StoreAt(state_dir, dsn, password_file),
        config,
        incident_id,
        lambda e, now, _: e.set_status(now, incident_id, target, who, note),
    )
    _report(decision, f"is {decision.incidents[0].status.value} ({who})", fmt)


@incidents_app.command("severity")
def severity(
    incident_id: IncidentId,
    to: Annotated[str, typer.Argument(help="SEV1, SEV2, SEV3 or SEV4.")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    by: By = None,
    config: ConfigFile = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Raise or lower an incident's severity, with the reason."""
    level = _choice(to.upper(), Severity, "severity")
    if not reason.strip():
        raise _fail("--reason: say why", EXIT_CANNOT_RUN)
    who = _who(by)
    decision = _decide(
        StoreAt(state_dir, dsn, password_file),
        config,
        incident_id,
        lambda e, now, _: e.set_severity(now, incident_id, level, who, reason),
    )
    _report(decision, f"is {level} ({who})", fmt)


@incidents_app.command("assign")
def assign(
    incident_id: IncidentId,
    role: Annotated[
        str,
        typer.Argument(
            help="incident-commander, technical-lead, communications-lead or security-lead."
        ),
    ],
    person: Annotated[str, typer.Argument(help="Who takes the role.")],
    by: By = None,
    config: ConfigFile = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Assign a role, or hand it over from whoever holds it."""
    try:
        parsed = Role.parse(role)
    except ValueError as exc:
        raise _fail(str(exc), EXIT_CANNOT_RUN) from None
    who = _who(by)
    decision = _decide(
        StoreAt(state_dir, dsn, password_file),
        config,
        incident_id,
        lambda e, now, _: e.assign_role(now, incident_id, parsed, person, who),
    )
    _report(decision, f"{parsed.label.lower()}: {person}", fmt)


@incidents_app.command("update")
def update(
    incident_id: IncidentId,
    impact: Annotated[str, typer.Option(help="Who and what is affected.")],
    actions: Annotated[str, typer.Option("--actions", help="What the responders are doing.")],
    expected_resolution: Annotated[str, typer.Option(help="When it should be over.")],
    next_update: Annotated[
        Duration | None,
        typer.Option(
            parser=duration_flag,
            metavar="DURATION",
            help="When the next update comes, e.g. 20m (default: cadence).",
        ),
    ] = None,
    customer_message: Annotated[
        str | None, typer.Option(help="What customers read on the status page.")
    ] = None,
    public: Annotated[
        bool | None,
        typer.Option(
            "--public/--internal", help="Publish to the status page (default: customer-facing)."
        ),
    ] = None,
    by: By = None,
    config: ConfigFile = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Post a stakeholder update: to the receivers, and to the status page when public."""
    after = None if next_update is None else next_update.seconds
    content = UpdateContent(impact, actions, expected_resolution, after, customer_message, public)
    who = _who(by)
    decision = _decide(
        StoreAt(state_dir, dsn, password_file),
        config,
        incident_id,
        lambda e, now, _: e.post_update(now, incident_id, who, content),
    )
    _report(decision, f"updated by {who}", fmt)


@incidents_app.command("review")
def review(
    incident_id: IncidentId,
    config: ConfigFile = None,
    fmt: Annotated[
        DocumentFormat, typer.Option("--format", help="Markdown, or JSON.")
    ] = DocumentFormat.md,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Draft the post-incident review: timeline, impact, responders, action items."""
    at = StoreAt(state_dir, dsn, password_file)
    with _open_store(at) as store:
        incident = store.get_incident(incident_id)
    if incident is None:
        raise _fail(f"no incident {incident_id} in {at.describe()}", EXIT_NOT_FOUND)
    draft = review_context(incident, time.time())
    if fmt == "json":
        typer.echo(json.dumps(draft, indent=2))
    else:
        typer.echo(IncidentEngine(_config(config)).renderer.review(draft))


@incidents_app.command("close-review")
def close_review(
    incident_id: IncidentId,
    note: Annotated[str, typer.Option(help="Where the review lives, what came of it.")] = "",
    by: By = None,
    config: ConfigFile = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Close the post-incident review: an incident in `review` is resolved."""
    who = _who(by)
    decision = _decide(
        StoreAt(state_dir, dsn, password_file),
        config,
        incident_id,
        lambda e, now, store: e.close_review(
            now, incident_id, who, note, _stored(store, incident_id)
        ),
    )
    _report(decision, f"review closed by {who}", fmt)


def _stored(store: IncidentStore, incident_id: str) -> Incident | None:
    return store.get_incident(incident_id)


@action_app.command("add")
def action_add(
    incident_id: IncidentId,
    text: Annotated[str, typer.Argument(help="What is to be done.")],
    owner: Annotated[str | None, typer.Option(help="Who owns it.")] = None,
    by: By = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Add an action item (open) to an incident, open or closed."""
    who = _who(by)
    decision = _decide(
        StoreAt(state_dir, dsn, password_file),
        None,
        incident_id,
        lambda e, now, store: e.add_action_item(
            now, incident_id, text, owner, who, _stored(store, incident_id)
        ),
    )
    item = decision.incidents[0].action_items[-1]
    _report(decision, f"has action item {item.id} ({item.owner or 'no owner'})", fmt)


def _change_item(
    incident_id: str,
    item_id: str,
    at: StoreAt,
    by: str | None,
    fmt: str,
    status: ActionStatus | None = None,
    owner: str | None = KEEP,
) -> None:
    who = _who(by)
    decision = _decide(
        at,
        None,
        incident_id,
        lambda e, now, store: e.change_action_item(
            now, incident_id, item_id, who, status, owner, _stored(store, incident_id)
        ),
    )
    item = next(a for a in decision.incidents[0].action_items if a.id == item_id)
    _report(decision, f"{item.id} is {item.status} ({item.owner or 'no owner'})", fmt)


ItemId = Annotated[str, typer.Argument(help="e.g. AI-1")]


@action_app.command("done")
def action_done(
    incident_id: IncidentId,
    item_id: ItemId,
    by: By = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Mark an action item done."""
    _change_item(
        incident_id, item_id, StoreAt(state_dir, dsn, password_file), by, fmt, status="done"
    )


@action_app.command("reopen")
def action_reopen(
    incident_id: IncidentId,
    item_id: ItemId,
    by: By = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Open a done action item again."""
    _change_item(
        incident_id, item_id, StoreAt(state_dir, dsn, password_file), by, fmt, status="open"
    )


@action_app.command("assign")
def action_assign(
    incident_id: IncidentId,
    item_id: ItemId,
    owner: Annotated[str, typer.Argument(help="Who owns it now.")],
    by: By = None,
    fmt: Format = IncidentFormat.table,
    state_dir: StateDir = None,
    dsn: StoreDsn = None,
    password_file: StorePasswordFile = None,
) -> None:
    """Give an action item to someone."""
    _change_item(incident_id, item_id, StoreAt(state_dir, dsn, password_file), by, fmt, owner=owner)
