"""The status page: what a person sees at `/status`, built from the runtime's latest results.

Building the view is pure (results, incidents and a time in; plain strings and numbers out)
so every number on the page is formatted and range-checked here, and the template only
places already-safe values. Jinja2 autoescapes every string anyway: SLO descriptions come
from spec files, incident summaries from alert annotations and updates from API comments.
Internal details (error messages with URLs, responders' names, runbooks, the alert's summary
with its SLO ids and burn rates) stay off the page — unless it is the internal view (a
reader's request): then each incident also shows its summary, roles, recovery time
objective and runbook. The public page shows what the customer template shows (the notice,
the customer messages of public updates) and the responders' comments, which are how they
talk to the page. Security incidents appear on the public page only once their responders
published an update to customers, and then without their comments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined

from engine.api.status_maintenance import MaintenanceNote, maintenance_note, service_windows
from engine.api.status_policy import GateBadge, PolicyBadge, gate_badge, policy_badge
from engine.daemon.policy_since import FrozenSince
from engine.evaluation.result import SLOEvaluation, Status, is_partial
from engine.incidents.incident import Incident, Severity
from engine.incidents.response import IncidentCategory, Role
from engine.incidents.rto import recovery

# Text beside every colour, so the page reads the same for colour-blind people and in print.
STATUS_LABEL: dict[Status, str] = {
    "ok": "OK",
    "ticket": "Ticket",
    "page": "Page",
    "exhausted": "Budget exhausted",
    "no_data": "No data",
    "error": "Error",
}
STATUS_MEANING: dict[Status, str] = {
    "ok": "within objective",
    "ticket": "burning error budget slowly",
    "page": "burning error budget fast",
    "exhausted": "error budget used up",
    "no_data": "no measurements in the window",
    "error": "could not be evaluated",
}
# Order for "worst status" of a service: a page outranks everything, unknowns outrank ok.
_RANK: dict[Status, int] = {
    "ok": 0,
    "no_data": 1,
    "error": 2,
    "ticket": 3,
    "exhausted": 4,
    "page": 5,
}


def when(ts: float | None) -> str:
    if ts is None or not math.isfinite(ts):
        return "—"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration_text(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _percent(ratio: float, digits: int = 1) -> str:
    text = f"{ratio * 100:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class SLORow:
    id: str
    name: str
    description: str
    objective: str
    period: str
    status: Status
    label: str
    meaning: str
    # Fraction of the error budget left, clamped to [0, 1] for the <meter>; None = unknown.
    budget_fraction: float | None
    budget_text: str
    budget_level: str  # "good" | "low" | "critical" | "unknown": the bar's CSS class
    exhaustion_text: str | None
    # Set when the budget is computed over part of its period (a young service, a long gap):
    # e.g. "partial: measured over 11 % of the 28d period". None for a full period or no data.
    partial_text: str | None = None
    # The windows measured over part of their length, shortest first (at most three), e.g.
    # "data for 50 % of the last 1h, 25 % of the last 2h": a status read from half an hour
    # of data says so. None when every window with data is full.
    coverage_text: str | None = None
    # The error-budget policy's state (engine/api/status_policy.py); None without a policy.
    policy: PolicyBadge | None = None


@dataclass(frozen=True)
class ServiceBlock:
    name: str
    tier: str
    status: Status
    label: str
    slos: list[SLORow]
    # Set while the service's release gate is closed (frozen, or a guarding budget unknown).
    gate: GateBadge | None = None
    # A planned maintenance window in progress or starting within 24 h (status_maintenance).
    maintenance: MaintenanceNote | None = None


@dataclass(frozen=True)
class IncidentCard:
    id: str
    service: str
    severity: str
    status: str
    summary: str
    opened: str
    notice: str
    updates: list[tuple[str, str]] = field(default_factory=list)
    # The internal view only (empty on the public page).
    roles: list[tuple[str, str]] = field(default_factory=list)
    recovery: str = ""
    runbook: str = ""


@dataclass(frozen=True)
class StatusView:
    generated: str
    evaluated: str
    overall: str
    overall_class: str
    services: list[ServiceBlock]
    incidents: list[IncidentCard]
    degraded: bool


def _budget(ev: SLOEvaluation) -> tuple[float | None, str, str]:
    remaining = ev.error_budget_remaining
    if remaining is None or not math.isfinite(remaining):
        return None, "no data", "unknown"
    fraction = min(1.0, max(0.0, float(remaining)))
    if remaining <= 0:
        return fraction, f"exhausted ({_percent(remaining)} %)", "critical"
    level = "good" if remaining >= 0.5 else "low" if remaining >= 0.25 else "critical"
    return fraction, f"{_percent(remaining)} % left", level


def slo_row(ev: SLOEvaluation, freezes: Mapping[str, FrozenSince] | None = None) -> SLORow:
    fraction, budget_text, level = _budget(ev)
    tte = ev.time_to_exhaustion
    exhaustion = (
        f"budget gone in {_duration_text(tte)} at the current burn rate"
        if tte is not None and math.isfinite(tte) and tte > 0 and ev.status != "exhausted"
        else None
    )
    return SLORow(
        id=ev.slo.id,
        name=ev.slo.name,
        description=ev.slo.description,
        objective=f"{_percent(float(ev.slo.objective), 3)} %",
        period=str(ev.slo.period),
        status=ev.status,
        label=STATUS_LABEL[ev.status],
        meaning=STATUS_MEANING[ev.status],
        budget_fraction=fraction,
        budget_text=budget_text,
        budget_level=level,
        exhaustion_text=exhaustion,
        partial_text=_partial_text(ev),
        coverage_text=_coverage_text(ev),
        policy=policy_badge(ev, freezes or {}, when),
    )


def _coverage_text(ev: SLOEvaluation) -> str | None:
    """The partial windows other than the period (its label is the budget's)."""
    partial = [
        f"{_percent(value.coverage)} % of the last {window}"
        for window, value in sorted(ev.windows.items())
        if window != ev.slo.period and value.coverage is not None and is_partial(value.coverage)
    ]
    return "data for " + ", ".join(partial[:3]) if partial else None


def _partial_text(ev: SLOEvaluation) -> str | None:
    """The budget's partial label (engine.evaluation.coverage), None when not partial."""
    coverage = ev.budget_coverage
    if not ev.budget_partial or coverage is None:
        return None
    return f"partial: measured over {_percent(coverage)} % of the {ev.slo.period} period"


def build_view(
    results: Sequence[SLOEvaluation],
    incidents: Sequence[Incident],
    notice: Callable[[Incident], str],
    now: float,
    ready: bool,
    internal: Callable[[Incident], bool] | None = None,
    freezes: Mapping[str, FrozenSince] | None = None,
) -> StatusView:
    """`internal` tells which incidents this reader sees in the internal view (None: the
    public page for all); `freezes` since when each frozen SLO has been (the daemon's)."""
    freezes = freezes or {}
    services: dict[str, list[SLOEvaluation]] = {}
    for ev in results:
        services.setdefault(ev.slo.service, []).append(ev)
    blocks = []
    for name in sorted(services):
        evs = services[name]
        worst = max((ev.status for ev in evs), key=_RANK.__getitem__)
        blocks.append(
            ServiceBlock(
                name=name,
                tier=evs[0].slo.tier.value,
                status=worst,
                label=STATUS_LABEL[worst],
                slos=[slo_row(ev, freezes) for ev in evs],
                gate=gate_badge(name, evs, freezes, when),
                maintenance=maintenance_note(service_windows(evs), now),
            )
        )
    open_incidents = sorted(
        (i for i in incidents if i.is_open), key=lambda i: (i.severity.level, -i.opened_at)
    )
    cards = [
        incident_card(i, notice, now, internal is not None and internal(i)) for i in open_incidents
    ]
    worst_rank = max((_RANK[ev.status] for ev in results), default=0)
    if any(i.severity in (Severity.SEV1, Severity.SEV2) for i in open_incidents) or worst_rank >= 5:
        overall, css = "Service disruption", "page"
    elif open_incidents or worst_rank >= 3:
        overall, css = "Degraded performance", "ticket"
    elif not results:
        overall, css = "No evaluation yet", "no_data"
    elif worst_rank >= 1:
        overall, css = "Some objectives cannot be measured right now", "no_data"
    else:
        overall, css = "All services operating normally", "ok"
    evaluated = max((ev.evaluated_at for ev in results), default=None)
    return StatusView(
        generated=when(now),
        evaluated=when(evaluated),
        overall=overall,
        overall_class=css,
        services=blocks,
        incidents=cards,
        degraded=not ready,
    )


def incident_card(
    incident: Incident, notice: Callable[[Incident], str], now: float, internal: bool
) -> IncidentCard:
    secret = incident.category is IncidentCategory.security and not internal
    updates = []
    for e in incident.timeline:
        # Comments and posted updates are how responders tell the page; names stay internal.
        if e.kind == "commented" and not secret:
            updates.append((when(e.at), e.message))
        elif e.kind == "update_posted" and (e.data.get("public") or internal):
            text = e.data.get("customer_message") if not internal else None
            updates.append((when(e.at), text or _update_text(e.data, internal)))
    card = IncidentCard(
        id=incident.id,
        service=incident.service,
        severity=incident.severity.value,
        status=incident.status.value,
        summary=incident.summary if internal else "",
        opened=when(incident.opened_at),
        notice=notice(incident),
        updates=updates[::-1],
    )
    if not internal:
        return card
    found = recovery(incident, now)
    return IncidentCard(
        **{
            **card.__dict__,
            "roles": [(Role(r).label, who) for r, who in incident.role_holders().items()],
            "recovery": "" if found is None else _recovery_text(found.objective, found.remaining),
            "runbook": incident.runbook_url or "",
        }
    )


def _update_text(data: dict[str, object], internal: bool) -> str:
    if internal:
        return (
            f"Impact: {data.get('impact')} · Current actions: {data.get('current_actions')} · "
            f"Expected resolution: {data.get('expected_resolution')}"
        )
    return f"Expected resolution: {data.get('expected_resolution')}"


def _recovery_text(objective: float, remaining: float | None) -> str:
    if remaining is None:
        return f"recovery time objective {_duration_text(objective)}"
    if remaining <= 0:
        return f"recovery time objective {_duration_text(objective)} missed"
    return f"recovery time objective {_duration_text(objective)}: {_duration_text(remaining)} left"


_env = Environment(
    loader=PackageLoader("engine.api", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_status_page(view: StatusView) -> str:
    return _env.get_template("status.html.j2").render(view=view)
