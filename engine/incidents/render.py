"""Communication templates: the runbook's internal notification and customer notice.

Rendered with Jinja2's `SandboxedEnvironment` because override templates are user input:
the sandbox blocks attribute tricks that would reach Python internals, and templates only
ever see plain dicts and strings. `*.html.j2` templates are autoescaped (status page); text
templates are not (they go into JSON bodies and chat messages, which encode on their own).

Overrides: put a file with the same name (e.g. `internal_notification.txt.j2`) into
`IncidentConfig.templates_dir`. A broken override must never cost a page, so a render error
falls back to the built-in template and says so in the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from engine.incidents.incident import Incident, IncidentStatus, Severity, iso
from engine.incidents.response import Role
from engine.incidents.rto import recovery

TEMPLATE_NAMES = (
    "title.txt.j2",
    "internal_notification.txt.j2",
    "customer_notice.txt.j2",
    "customer_notice.html.j2",
    "rate_limit_summary.txt.j2",
    "review.md.j2",
)

# How often stakeholders hear from us while an incident is open (the runbook's update
# cadence; `IncidentConfig.update_cadence` may override it), in seconds.
UPDATE_CADENCE: dict[Severity, float] = {
    Severity.SEV1: 30 * 60.0,
    Severity.SEV2: 3600.0,
    Severity.SEV3: 4 * 3600.0,
}


def _human(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} minutes"
    hours = minutes / 60
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def _span(seconds: float) -> str:
    """A duration people read at a glance: "45 minutes", "1 hour 30 minutes", "2 days"."""
    minutes = max(0, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    text = f"{hours} hour{'s' if hours != 1 else ''}"
    return text + (f" {rest} minute{'s' if rest != 1 else ''}" if rest else "")


def recovery_context(incident: Incident, now: float | None) -> dict[str, Any] | None:
    """The RTO as templates show it (plain strings and a flag)."""
    at = now if now is not None else (incident.resolved_at or incident.opened_at)
    found = recovery(incident, at)
    if found is None:
        return None
    return {
        "objective": _span(found.objective),
        "deadline": iso(found.deadline),
        "remaining": None if found.remaining is None else _span(found.remaining),
        "breached": found.breached_at is not None
        or (found.remaining is not None and found.remaining <= 0),
        "time_to_restore": None if found.time_to_restore is None else _span(found.time_to_restore),
        "met": found.met,
    }


def _when(value: str | None) -> str:
    """ "2024-03-01T10:15:00.000Z" -> "2024-03-01 10:15 UTC" (what people read)."""
    if not value:
        return ""
    return value[:16].replace("T", " ") + " UTC"


def _environment(loader: Any) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=loader,
        autoescape=select_autoescape(
            enabled_extensions=("html.j2", "html"), default_for_string=False
        ),
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=False,
    )
    env.filters["when"] = _when
    env.filters["span"] = _span
    return env


class TemplateRenderer:
    def __init__(
        self,
        override_dir: Path | None = None,
        response_targets: dict[Severity, float] | None = None,
        status_page_url: str | None = None,
        update_cadence: dict[Severity, float] | None = None,
    ) -> None:
        self._builtin = _environment(PackageLoader("engine.incidents", "templates"))
        self._env = (
            _environment(
                ChoiceLoader(
                    [
                        FileSystemLoader(str(override_dir)),
                        PackageLoader("engine.incidents", "templates"),
                    ]
                )
            )
            if override_dir is not None
            else self._builtin
        )
        self._targets = response_targets or {s: s.response_target for s in Severity}
        self._status_page_url = status_page_url
        self._cadence = UPDATE_CADENCE if update_cadence is None else update_cadence

    def _context(
        self, incident: Incident, event: str, now: float | None = None, **extra: Any
    ) -> dict[str, Any]:
        snapshot = incident.webhook_snapshot()
        cadence = self._cadence.get(incident.severity)
        update = incident.latest_update
        return {
            "incident": snapshot,
            "event": event,
            "response_target": _human(self._targets[incident.severity]),
            "update_cadence": _human(cadence) if cadence else "",
            "next_update": _next_update(incident, cadence),
            "status_page_url": self._status_page_url,
            "recent": [
                {"time": iso(e.at), "kind": e.kind, "message": e.message}
                for e in incident.timeline[-5:]
            ],
            "escalated_to": "",
            "reason": "",
            # Roles besides the commander (who has a line of its own), runbook order.
            "roles": [
                (Role(role).label, person)
                for role, person in incident.role_holders().items()
                if role != Role.incident_commander.value
            ],
            "recovery": recovery_context(incident, now),
            "update": update,
            # What customers may read of the latest update (the customer templates).
            "public_update": update if update and update.get("public") else None,
            **extra,
        }

    def render(self, name: str, context: dict[str, Any]) -> str:
        try:
            return self._env.get_template(name).render(context).strip()
        except TemplateError as exc:
            if self._env is self._builtin:
                raise
            text = self._builtin.get_template(name).render(context).strip()
            return f"{text}\n(template override {name} failed: {exc}; built-in template used)"

    def title(self, incident: Incident, event: str) -> str:
        return self.render("title.txt.j2", self._context(incident, event))

    def internal_notification(
        self,
        incident: Incident,
        event: str,
        escalated_to: str = "",
        now: float | None = None,
        **extra: Any,
    ) -> str:
        return self.render(
            "internal_notification.txt.j2",
            self._context(incident, event, now, escalated_to=escalated_to, **extra),
        )

    def review(self, review: dict[str, Any]) -> str:
        """The post-incident review draft (Markdown) from `review.review_context`."""
        return self.render("review.md.j2", review)

    def customer_notice(self, incident: Incident, html: bool = False) -> str:
        name = "customer_notice.html.j2" if html else "customer_notice.txt.j2"
        return self.render(name, self._context(incident, "updated"))

    def rate_limit_summary(
        self, receiver: str, limit: int, window: str, suppressed: list[str], severity: str
    ) -> str:
        return self.render(
            "rate_limit_summary.txt.j2",
            {
                "receiver": receiver,
                "limit": limit,
                "window": window,
                "suppressed": suppressed,
                "severity": severity,
            },
        )

    def check(self) -> list[str]:
        """Render every template against a sample incident; return the errors (for startup
        validation of an override directory)."""
        sample = Incident(
            id="INC-2000-0001",
            service="example",
            severity=Severity.SEV2,
            status=IncidentStatus.investigating,
            summary="example",
            opened_at=0.0,
        )
        errors: list[str] = []
        for name in TEMPLATE_NAMES:
            try:
                if name.startswith("rate_limit"):
                    self._env.get_template(name).render(
                        receiver="r", limit=1, window="1h", suppressed=["x"], severity="SEV1"
                    )
                elif name.startswith("review"):
                    # Imported here: review builds on this module.
                    from engine.incidents.review import review_context

                    self._env.get_template(name).render(review_context(sample, 0.0))
                else:
                    self._env.get_template(name).render(self._context(sample, "triggered"))
            except TemplateError as exc:
                errors.append(f"{name}: {exc}")
        return errors


def _next_update(incident: Incident, cadence: float | None) -> str:
    """When stakeholders hear next: the time the last update promised, else the cadence."""
    if incident.next_update_at is not None:
        return f"by {(iso(incident.next_update_at) or '')[:16].replace('T', ' ')} UTC"
    return f"within {_human(cadence)}" if cadence else ""
