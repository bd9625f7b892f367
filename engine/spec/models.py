"""The SLO model: the one typed shape every input format is converted into.

Native YAML (`apiVersion: slo-engine/v1`), Sloth and OpenSLO files all end up as
`ServiceSpec` objects; evaluation, rule generation, incidents and backtests only ever see
the flattened `SLO` records built by `ServiceSpec.slo_records()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.spec.bounds import (
    MAX_EXPECTED_BAD_EVENTS,
    MAX_FACTOR,
    MAX_MIN_BAD_EVENTS,
    at_most,
    in_range,
    objective_places,
)
from engine.spec.budget_policy import BudgetPolicySpec
from engine.spec.calendar import CalendarPeriod, calendar_spelling
from engine.spec.composite import CompositeSLI
from engine.spec.durations import Duration
from engine.spec.fields import DecimalField, DurationField, ranged
from engine.spec.group_labels import (
    DEFAULT_MAX_GROUPS,
    GroupLabel,
    check_max_groups,
    label_set_text,
    unique_group_labels,
)
from engine.spec.maintenance import MaintenanceWindow
from engine.spec.timeslices import TimeSlices

WINDOW_PLACEHOLDER = "{{window}}"
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,62}[a-z0-9])?$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _datasource_name(value: str | None) -> str | None:
    if value is not None and not NAME_RE.match(value):
        raise ValueError(
            f"datasource {value!r} is not a valid name — lowercase letters, digits, '-' and '_', "
            "as the key under the daemon's `datasources:`"
        )
    return value


class Tier(StrEnum):
    critical = "critical"
    important = "important"
    standard = "standard"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_promql_placeholder(value: str) -> str:
    if WINDOW_PLACEHOLDER not in value:
        raise ValueError(
            "query has no {{window}} placeholder — write the range as [{{window}}], "
            'e.g. sum(rate(http_requests_total{code=~"5.."}[{{window}}]))'
        )
    return value


class EventsSLI(Strict):
    """Bad (or good) and total events, as PromQL with a `{{window}}` range placeholder."""

    bad: str | None = None
    good: str | None = None
    total: str

    @field_validator("bad", "good", "total")
    @classmethod
    def _placeholder(cls, value: str | None) -> str | None:
        return None if value is None else _check_promql_placeholder(value)

    @model_validator(mode="after")
    def _bad_xor_good(self) -> EventsSLI:
        if (self.bad is None) == (self.good is None):
            raise ValueError("give exactly one of `bad` or `good` next to `total`")
        return self


class LatencySLI(Strict):
    """Requests faster than `threshold` are good; a bucket bound unless `native` (any value)."""

    histogram: str = Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    selector: str = ""
    threshold: DurationField
    native: bool = False  # a native histogram (engine.spec.sli)

    @field_validator("histogram")
    @classmethod
    def _base_name(cls, value: str) -> str:
        for suffix in ("_bucket", "_count", "_sum"):
            if value.endswith(suffix):
                raise ValueError(
                    f"give the histogram's base name without {suffix!r}, e.g. "
                    f"{value.removesuffix(suffix)!r}"
                )
        return value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        # Accept both `job="api"` and `{job="api"}`; store the bare matcher list.
        value = value.strip()
        if value.startswith("{") and value.endswith("}"):
            value = value[1:-1].strip()
        return value

    @field_validator("threshold")
    @classmethod
    def _positive(cls, value: Duration) -> Duration:
        if value.ms <= 0:
            raise ValueError("threshold must be longer than 0s, e.g. 500ms")
        return in_range("threshold", value)


class AvailabilitySLI(Strict):
    """A 0/1 gauge (e.g. `up{job="db"}`); the SLI is the share of samples equal to 1."""

    metric: str = Field(min_length=1)


class SLI(Strict):
    events: EventsSLI | None = None
    latency: LatencySLI | None = None
    availability: AvailabilitySLI | None = None
    composite: CompositeSLI | None = None  # events of other SLOs (composite.py)

    @model_validator(mode="after")
    def _exactly_one(self) -> SLI:
        kinds = ("events", "latency", "availability", "composite")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an sli has exactly one kind: events, latency or availability"
                + (" (or composite)" if "composite" in given else "")
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> Literal["events", "latency", "availability", "composite"]:
        if self.events is not None:
            return "events"
        if self.latency is not None:
            return "latency"
        return "availability" if self.composite is None else "composite"


class BurnRateRuleSpec(Strict):
    """One multiwindow rule. Give `budget_share` (preferred: period-independent) or `factor`."""

    severity: Literal["page", "ticket"]
    long_window: DurationField
    short_window: DurationField
    budget_share: DecimalField | None = None
    factor: DecimalField | None = None

    _windows_range = field_validator("long_window", "short_window")(ranged)

    @model_validator(mode="after")
    def _share_xor_factor(self) -> BurnRateRuleSpec:
        if (self.budget_share is None) == (self.factor is None):
            raise ValueError(
                "give exactly one of `budget_share` (e.g. 0.02) or `factor` (e.g. 14.4)"
            )
        if self.short_window >= self.long_window:
            raise ValueError("short_window must be shorter than long_window (usually long ÷ 12)")
        if self.budget_share is not None and not (0 < self.budget_share <= 1):
            raise ValueError("budget_share is a fraction of the budget: 0 < budget_share ≤ 1")
        if self.factor is not None and self.factor <= 0:
            raise ValueError("factor must be positive")
        at_most("factor", self.factor or 0, MAX_FACTOR)
        return self


class LowTrafficSpec(Strict):
    """The low-traffic guard: a page needs statistical evidence, not one unlucky request."""

    enabled: bool = True
    confidence: DecimalField = Decimal("0.99")
    min_bad_events: int = Field(default=2, ge=1, le=MAX_MIN_BAD_EVENTS)
    # The guard only applies while the long window holds so few events that fewer than this
    # many bad events would be expected at the alert threshold.
    expected_bad_events: DecimalField = Decimal("10")

    @field_validator("confidence")
    @classmethod
    def _confidence(cls, value: Decimal) -> Decimal:
        if not (Decimal("0.5") <= value < 1):
            raise ValueError("confidence is a probability: 0.5 ≤ confidence < 1, e.g. 0.99")
        return value

    @field_validator("expected_bad_events")
    @classmethod
    def _expected(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("expected_bad_events must be positive, e.g. 10")
        at_most("expected_bad_events", value, MAX_EXPECTED_BAD_EVENTS)
        return value


class AlertingSpec(Strict):
    page: bool = True
    ticket: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    runbook_url: str | None = None
    burn_rates: list[BurnRateRuleSpec] | None = None
    low_traffic: LowTrafficSpec = Field(default_factory=LowTrafficSpec)
    # Alert name for this SLO's burn-rate alerts (Sloth's `alerting.name`); None = generator default.
    name: str | None = Field(default=None, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
    # Extra labels/annotations on one severity only, e.g. routing pages to a pager channel
    # (Sloth's page_alert/ticket_alert). Merged over `labels`/`annotations`.
    page_labels: dict[str, str] = Field(default_factory=dict)
    page_annotations: dict[str, str] = Field(default_factory=dict)
    ticket_labels: dict[str, str] = Field(default_factory=dict)
    ticket_annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels", "page_labels", "ticket_labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not LABEL_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a valid Prometheus label name")
        return value


class AnomalySpec(Strict):
    """Seasonal anomaly detection for a service (engine/anomaly/scoring.py; docs/anomaly.md).

    Signals come from the service's SLOs: `traffic` = total event rate, `errors` = error
    ratio of events SLIs, `latency` = share of slow requests of latency SLIs.
    """

    enabled: bool = False
    signals: list[Literal["traffic", "errors", "latency"]] = Field(
        default_factory=lambda: ["traffic", "errors", "latency"], min_length=1
    )
    # Robust z-score a slot must reach in the harmful direction (4 ≈ far outside noise).
    sensitivity: float = Field(default=4.0, gt=0, le=100)
    min_duration: DurationField = Duration.parse("10m")
    # Weeks of same-slot history in the weekly profile.
    history: DurationField = Duration.parse("3w")
    # An anomaly active this long on a critical service is raised from SEV4 to SEV3.
    sustained: DurationField = Duration.parse("30m")

    _durations_range = field_validator("min_duration", "sustained", "history")(ranged)

    @field_validator("signals")
    @classmethod
    def _unique_signals(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("list each signal once: traffic, errors, latency")
        return value

    @field_validator("history")
    @classmethod
    def _whole_weeks(cls, value: Duration) -> Duration:
        week = Duration.parse("1w")
        if value < week or value.ms % week.ms:
            raise ValueError("history is a whole number of weeks, at least 1w (e.g. 3w)")
        return value


class SLOSpec(Strict):
    name: str
    objective: DecimalField
    period: DurationField = Duration.parse("30d")
    description: str = ""
    sli: SLI
    alerting: AlertingSpec = Field(default_factory=AlertingSpec)
    # None: the service's group_by applies; [] turns a service default off for this SLO.
    group_by: list[GroupLabel] | None = None
    max_groups: int | None = None
    budget_policy: BudgetPolicySpec | None = None  # replaces the service's (budget_policy.py)
    # `period: calendar-month` + `timezone:` (calendar.py); period is then the nominal length.
    calendar: CalendarPeriod | None = None
    _calendar = model_validator(mode="before")(calendar_spelling)
    timeslices: TimeSlices | None = None  # a time-slice SLO (timeslices.py)

    _unique_group_by = field_validator("group_by")(unique_group_labels)
    _max_groups_range = field_validator("max_groups")(check_max_groups)
    # The backend to read this SLO from (a name under the daemon's `datasources:`); the
    # service's, else the configured default, when absent.
    datasource: str | None = None

    @field_validator("datasource")
    @classmethod
    def _datasource(cls, value: str | None) -> str | None:
        return _datasource_name(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                f"{value!r} is not a valid name — use lowercase letters, digits, '-' and '_' "
                "(e.g. availability, latency-p95)"
            )
        return value

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: Decimal) -> Decimal:
        if not (0 < value < 100):
            raise ValueError(
                f"objective {value} is out of range — it is a percentage, 0 < objective < 100 "
                "(write 99.9, not 0.999)"
            )
        return objective_places(value)

    @field_validator("period")
    @classmethod
    def _period(cls, value: Duration) -> Duration:
        if value < Duration.parse("1h"):
            raise ValueError("period is the rolling SLO window, at least 1h (usually 28d or 30d)")
        return in_range("period", value)


class ServiceSpec(Strict):
    api_version: Literal["slo-engine/v1"] = Field(alias="apiVersion")
    service: str
    tier: Tier = Tier.standard
    owner: str = ""
    depends_on: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    # Default backend of the service's SLOs (see SLOSpec.datasource).
    datasource: str | None = None
    # Customers see its failures: incidents publish to the status page, and a SEV1 calls
    # the CTO at once (the runbook's escalation).
    customer_facing: bool = False
    slos: list[SLOSpec] = Field(min_length=1)

    @field_validator("datasource")
    @classmethod
    def _datasource(cls, value: str | None) -> str | None:
        return _datasource_name(value)

    anomaly: AnomalySpec = Field(default_factory=AnomalySpec)
    # Defaults for the SLOs that do not set their own.
    group_by: list[GroupLabel] = Field(default_factory=list)
    max_groups: int = DEFAULT_MAX_GROUPS
    budget_policy: BudgetPolicySpec | None = None
    maintenance: tuple[MaintenanceWindow, ...] = ()  # planned windows (maintenance.py)

    _unique_group_by = field_validator("group_by")(unique_group_labels)
    _max_groups_range = field_validator("max_groups")(check_max_groups)

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                f"{value!r} is not a valid service name — lowercase letters, digits, '-' and '_'"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        return AlertingSpec._label_names(value)

    @model_validator(mode="after")
    def _unique_slo_names(self) -> ServiceSpec:
        seen: set[str] = set()
        for slo in self.slos:
            if slo.name in seen:
                raise ValueError(f"SLO name {slo.name!r} appears twice in service {self.service!r}")
            seen.add(slo.name)
        return self

    def slo_records(self, source: str = "") -> list[SLO]:
        return [
            SLO(
                service=self.service,
                name=s.name,
                tier=self.tier,
                owner=self.owner,
                depends_on=tuple(self.depends_on),
                labels={**self.labels, **s.alerting.labels},
                objective_percent=s.objective,
                period=s.period,
                description=s.description,
                sli=s.sli,
                alerting=s.alerting,
                source=source,
                anomaly=self.anomaly,
                datasource=s.datasource or self.datasource,
                group_by=tuple(self.group_by if s.group_by is None else s.group_by),
                max_groups=self.max_groups if s.max_groups is None else s.max_groups,
                customer_facing=self.customer_facing,
                budget_policy=s.budget_policy or self.budget_policy,
                maintenance=self.maintenance,
                timeslices=s.timeslices,
                calendar=s.calendar,
            )
            for s in self.slos
        ]


@dataclass(frozen=True)
class SLO:
    """One SLO with its service context: what every consumer works with."""

    service: str
    name: str
    tier: Tier
    owner: str
    depends_on: tuple[str, ...]
    labels: dict[str, str]
    objective_percent: Decimal
    period: Duration
    description: str
    sli: SLI
    alerting: AlertingSpec
    source: str = field(default="", compare=False)
    # The service's anomaly-detection settings (shared by all its SLOs).
    anomaly: AnomalySpec = field(default_factory=AnomalySpec, compare=False)
    # Named backend (None: the daemon's default datasource).
    datasource: str | None = None
    # Grouped SLOs: the labels whose values make instances (effective: the SLO's own
    # group_by, else the service's), and at most how many instances to evaluate.
    group_by: tuple[str, ...] = ()
    max_groups: int = DEFAULT_MAX_GROUPS
    # One instance's (label, value) pairs, sorted by label (engine.spec.groups.instantiate);
    # empty for the spec-level record of a grouped SLO and for ungrouped SLOs.
    group: tuple[tuple[str, str], ...] = ()
    # The service's `customer_facing` flag (incident response).
    customer_facing: bool = field(default=False, compare=False)
    # The error-budget policy (the SLO's own, else the service's; None: none).
    budget_policy: BudgetPolicySpec | None = field(default=None, compare=False)
    # The service's planned maintenance windows (engine.evaluation.maintenance).
    maintenance: tuple[MaintenanceWindow, ...] = field(default=(), compare=False)
    # Counted in slices, not events (engine.evaluation.timeslices); None: events.
    timeslices: TimeSlices | None = None
    # A calendar period (engine.spec.calendar); None: `period` is rolling.
    calendar: CalendarPeriod | None = field(default=None, compare=False)

    @property
    def base_id(self) -> str:
        """`<service>/<name>`: the spec's SLO, shared by all its instances."""
        return f"{self.service}/{self.name}"

    @property
    def id(self) -> str:
        """`<service>/<name>`, and for an instance its group in Prometheus' text form:
        `api/availability{route="/cart"}`."""
        return self.base_id + label_set_text(self.group) if self.group else self.base_id

    @property
    def group_labels(self) -> dict[str, str]:
        return dict(self.group)

    @property
    def grouped(self) -> bool:
        """Whether the spec declares group_by (true for its instances too)."""
        return bool(self.group_by)

    @property
    def objective(self) -> Decimal:
        """The objective as a ratio: 99.9 -> Decimal('0.999')."""
        return self.objective_percent / 100

    @property
    def error_budget(self) -> Decimal:
        """The allowed error ratio: 99.9 -> Decimal('0.001')."""
        return 1 - self.objective

    def __hash__(self) -> int:
        return hash(self.id)
