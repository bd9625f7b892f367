"""Incident engine configuration: receivers and routing, escalation chain, fatigue controls.

Pydantic-validated and usable as the `incidents:` section of the daemon's config file or as a
YAML file of its own (`load_incident_config`). Every default follows the runbook; see
docs/incidents.md for the table of keys.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from engine.incidents.incident import DEFAULT_RESPONSE_TARGETS, Severity
from engine.incidents.response import IncidentCategory
from engine.spec.durations import Duration
from engine.spec.models import DecimalField, DurationField, Strict, Tier

ALL_SEVERITIES = (Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4)
# The runbook pages the team lead at the opening of these.
RUNBOOK_FROM_OPEN = (Severity.SEV1, Severity.SEV2)


def _d(text: str) -> Duration:
    return Duration.parse(text)


class RateLimit(Strict):
    """At most `max_notifications` page-like notifications per receiver per `window`."""

    max_notifications: int = Field(default=20, ge=1)
    window: DurationField = _d("1h")


class ReceiverConfig(Strict):
    """Where notifications go. The notifier settings (URL, key file) live with the notifier;
    the engine only needs the name and what to route there."""

    name: str = Field(min_length=1)
    # Severities whose incidents are sent here on trigger (escalation names receivers itself).
    severities: list[Severity] = Field(default_factory=lambda: list(ALL_SEVERITIES))
    rate_limit: RateLimit | None = None


class EscalationLevel(Strict):
    """Notified `after` the chain's start while the incident is neither acknowledged nor
    mitigated. The chain starts when the incident opens for the severities in
    `IncidentConfig.escalate_from_open`, else when its response target is missed."""

    name: str
    after: DurationField
    receivers: list[str] = Field(default_factory=list)
    # Notified the moment a customer-facing incident opens at these severities (the
    # runbook: the CTO at once for a customer-facing SEV1).
    at_once_if_customer_facing: list[Severity] = Field(default_factory=list)


def default_escalation() -> list[EscalationLevel]:
    # The runbook: team lead 0–30 min, engineering manager 30–60 min, VP engineering 1–2 h,
    # CTO 2 h+ or at once if customer-facing.
    return [
        EscalationLevel(name="team-lead", after=_d("0s"), receivers=["team-lead"]),
        EscalationLevel(
            name="engineering-manager", after=_d("30m"), receivers=["engineering-manager"]
        ),
        EscalationLevel(name="vp-engineering", after=_d("1h"), receivers=["vp-engineering"]),
        EscalationLevel(
            name="cto",
            after=_d("2h"),
            receivers=["cto"],
            at_once_if_customer_facing=[Severity.SEV1],
        ),
    ]


# What ends an incident's escalation: an acknowledgement, or its status moving past
# investigating (mitigating or monitoring).
EscalationStop = Literal["acknowledged", "mitigating"]


class RunbookEntry(Strict):
    """One line of the runbook index: the runbook to execute for incidents it matches.

    The most specific entry wins: SLO, then service and category, service, category, and an
    entry naming none of them (the index itself)."""

    url: str = Field(min_length=1)
    title: str | None = None
    slo: str | None = None
    service: str | None = None
    category: IncidentCategory | None = None


class FlapConfig(Strict):
    """Nagios-style flap detection over the last 21 evaluations of an alert."""

    enabled: bool = True
    # Percent state change (weighted 0.75 → 1.25, oldest → newest). Nagios' service defaults.
    high_threshold: float = Field(default=30.0, gt=0, le=100)
    low_threshold: float = Field(default=20.0, ge=0, le=100)

    @model_validator(mode="after")
    def _order(self) -> FlapConfig:
        if self.low_threshold > self.high_threshold:
            raise ValueError("flap low_threshold must not exceed high_threshold")
        return self


class SeverityRules(Strict):
    """The runbook's severity rules, with their knobs. See `engine.incidents.classify`."""

    # A short-window error ratio at or above this is a complete outage. While a page rule
    # fires, so is the recent (newest-minute) error ratio — see classify.py.
    outage_error_ratio: DecimalField = Decimal("0.5")
    # The recent ratio counts only over at least this many events (requests), so one failed
    # request in a quiet minute cannot make a SEV1.
    outage_min_events: int = Field(default=10, ge=1)
    # Availability SLIs count probe samples, not requests (4 a minute at a 15 s scrape): the
    # newest minute shows availability 0 when all of at least this many samples are down.
    outage_min_samples: int = Field(default=2, ge=1)
    # Tiers where an outage or an exhausted budget is SEV1.
    sev1_tiers: list[Tier] = Field(default_factory=lambda: [Tier.critical])
    # An exhausted error budget (remaining ≤ 0) with a firing alert is SEV1 on sev1_tiers.
    budget_exhausted_is_sev1: bool = True
    # Tiers where a page-level burn is SEV2 (elsewhere a page is SEV3).
    sev2_page_tiers: list[Tier] = Field(default_factory=lambda: [Tier.critical, Tier.important])

    @field_validator("outage_error_ratio")
    @classmethod
    def _ratio(cls, value: Decimal) -> Decimal:
        if not (0 < value <= 1):
            raise ValueError("outage_error_ratio is a ratio: 0 < value ≤ 1 (e.g. 0.5)")
        return value


# What a ticket-level alert with no open incident to join does on a tier (`TicketIncidents`).
TicketHandling = Literal["incident", "notify"]


class TicketIncidents(Strict):
    """Per service tier: does a ticket-level alert that justifies SEV3/SEV4 open an incident,
    or only notify (no INC- id, no lifecycle; resolved when it clears)? See
    docs/incidents.md, "Tickets: incident or notification". A ticket that joins an open
    incident, or that the severity rules make SEV1/SEV2, is unaffected."""

    # Every tier opens an incident by default: a ticket is a budget that runs out within
    # days unless someone acts, and the incident gives that work an owner, a timeline, a
    # recovery objective and its line in the monthly report. `notify` is PagerDuty's and
    # Grafana OnCall's low-urgency handling, for teams whose lower tiers' tickets are FYI.
    critical: TicketHandling = "incident"
    important: TicketHandling = "incident"
    standard: TicketHandling = "incident"

    def mode(self, tier: str) -> TicketHandling:
        """The handling for an alert's tier (an unknown tier opens an incident)."""
        if tier not in Tier.__members__:
            return "incident"
        handling: TicketHandling = getattr(self, tier)
        return handling


class IncidentConfig(Strict):
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    # None = the runbook chain, using whichever of its receivers are configured.
    escalation: list[EscalationLevel] | None = None
    response_targets: dict[Severity, DurationField] = Field(
        default_factory=lambda: {
            s: Duration.of_seconds(t) for s, t in DEFAULT_RESPONSE_TARGETS.items()
        }
    )
    severity_rules: SeverityRules = Field(default_factory=SeverityRules)
    # Alerts of a service join its open incident if it opened no longer than this ago.
    group_window: DurationField = _d("1h")
    # An incident resolves once all its alerts have been clear this long.
    resolve_after: DurationField = _d("15m")
    # Unacknowledged incidents re-notify this often.
    repeat_interval: DurationField = _d("4h")
    flap: FlapConfig = Field(default_factory=FlapConfig)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    # Incidents at these severities carry a rendered customer notice.
    customer_notice_severities: list[Severity] = Field(
        default_factory=lambda: [Severity.SEV1, Severity.SEV2]
    )
    # Extra dependency edges (service -> services it depends on) on top of specs' depends_on.
    depends_on: dict[str, list[str]] = Field(default_factory=dict)
    # Dependency hold-down, like Alertmanager's group_wait: a new incident on a service with
    # dependencies holds its first page this long; if a dependency opens an incident within
    # it, the held incident folds into that root cause (one page). 0s disables.
    dependency_wait: DurationField = _d("60s")
    # Severities whose new incidents are held. SEV1 is held by default: a dependency outage
    # is the commonest cause of a critical service's complete outage, and a minute is small
    # against its 15-minute response target. Drop SEV1 here to page those at once.
    dependency_wait_severities: list[Severity] = Field(default_factory=lambda: list(ALL_SEVERITIES))
    # A dependency failing this long after a dependent's incident opened (past the wait,
    # after its page) takes that incident over as its root cause: one incident, an
    # `updated`, no second page (engine/incidents/root_cause.py). 10m covers a dependency
    # page trailing by minutes (low-traffic guard, slower objective) and stays inside SEV1's
    # 15-minute response target, before the on-call is deep into the wrong service. 0s: link.
    dependency_correlation_window: DurationField = _d("10m")
    # Directory whose *.j2 files override the default templates of the same name.
    templates_dir: Path | None = None
    status_page_url: str | None = None
    # --- incident response (issue 11; docs/incidents.md, "Incident response").
    # Severities whose escalation chain starts when the incident opens (the runbook's
    # minute 0); the others' starts at the missed response target. None: SEV1 and SEV2 with
    # the runbook chain, none with an `escalation:` of your own — whose `after` times have
    # always counted from the missed response target.
    escalate_from_open: list[Severity] | None = None
    escalation_stops_on: list[EscalationStop] = Field(
        default_factory=lambda: ["acknowledged", "mitigating"]
    )
    # Recovery time objective per service tier, from opening to resolution.
    recovery_time_objectives: dict[Tier, DurationField] = Field(
        default_factory=lambda: {
            Tier.critical: _d("1h"),
            Tier.important: _d("4h"),
            Tier.standard: _d("24h"),
        }
    )
    # A missed RTO notifies the responders and, if the chain has stopped (acknowledged or
    # mitigating), brings in its next level.
    rto_breach_escalates: bool = True
    # How often stakeholders hear from the responders; a severity not listed has none.
    update_cadence: dict[Severity, DurationField] = Field(
        default_factory=lambda: {
            Severity.SEV1: _d("30m"),
            Severity.SEV2: _d("1h"),
            Severity.SEV3: _d("4h"),
        }
    )
    runbooks: list[RunbookEntry] = Field(default_factory=list)
    # Resolved incidents at these severities stay in `review` until their post-incident
    # review is closed.
    review_severities: list[Severity] = Field(default_factory=list)
    # Per tier: a new ticket-level incident, or a notification only (`TicketIncidents`).
    ticket_incidents: TicketIncidents = Field(default_factory=TicketIncidents)

    @model_validator(mode="after")
    def _check(self) -> IncidentConfig:
        names = [r.name for r in self.receivers]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"receiver names must be unique; repeated: {', '.join(sorted(dupes))}")
        if self.escalation is not None:
            known = set(names)
            for level in self.escalation:
                missing = [r for r in level.receivers if r not in known]
                if missing:
                    raise ValueError(
                        f"escalation level {level.name!r} names unknown receivers "
                        f"{', '.join(missing)} — define them under `receivers`"
                    )
        missing_targets = [s for s in ALL_SEVERITIES if s not in self.response_targets]
        if missing_targets:
            raise ValueError(
                "response_targets needs every severity; missing " + ", ".join(missing_targets)
            )
        return self

    def escalation_chain(self) -> list[EscalationLevel]:
        if self.escalation is not None:
            return list(self.escalation)
        known = {r.name for r in self.receivers}
        return [
            level.model_copy(update={"receivers": [r for r in level.receivers if r in known]})
            for level in default_escalation()
        ]

    def from_open(self) -> frozenset[Severity]:
        """The severities whose escalation chain starts at the opening (see the key)."""
        if self.escalate_from_open is not None:
            return frozenset(self.escalate_from_open)
        return frozenset() if self.escalation is not None else frozenset(RUNBOOK_FROM_OPEN)

    def receiver(self, name: str) -> ReceiverConfig | None:
        return next((r for r in self.receivers if r.name == name), None)


def load_incident_config(path: Path | str) -> IncidentConfig:
    """Read an incident config YAML file (either the section itself or `incidents:` in it)."""
    text = Path(path).read_text(encoding="utf-8")
    data: Any = yaml.safe_load(text) or {}
    if isinstance(data, dict) and "incidents" in data:
        data = data["incidents"] or {}
    return IncidentConfig.model_validate(data)
