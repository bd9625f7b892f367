"""From evaluation results to alerts: the signals the incident engine turns into incidents.

One SLO evaluation yields at most one `page` and one `ticket` alert: both page rules (1h/5m
and 6h/30m) collapse into the same alert, so a burn that moves from one rule to the other
keeps its identity. Alerts held by the low-traffic guard are not alerts at all here.

An alert's identity is its fingerprint, computed exactly as Alertmanager does (FNV-1a 64-bit
over the label pairs sorted by name, each name and value followed by the byte 0xFF, printed
as 16 hex digits), so an incident can be matched to what Alertmanager shows.

The `slo` label is the SLO id, `<service>/<name>`, as on the generated Prometheus rules
(engine.generate.rules.slo_labels): an Alertmanager receiving alerts from both sees one
label scheme, and inhibition rules with `equal: [slo]` (alerts/alertmanager.yml) pair the
daemon's alerts of one SLO as they pair Prometheus'. A bare name would also make two
services' `availability` SLOs look like one. For an instance of a grouped SLO the label is
the base id and the group labels come on top (`slo="api/availability", route="/cart"`),
again as on the generated rules: `equal: [slo, route]` pairs one group's alerts, the
fingerprint tells the groups apart, and `Alert.slo_id` keeps the instance id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from engine.anomaly.live import AnomalyState
from engine.evaluation.maintenance import muted_by_maintenance
from engine.evaluation.result import SLOEvaluation
from engine.spec.labels import RENAMED_LABEL_PREFIX, RESERVED_ALERT_LABELS
from engine.spec.models import SLO

AlertSeverity = Literal["page", "ticket", "anomaly"]

ALERT_NAME = "SLOErrorBudgetBurn"


def burn_alert_name(slo: SLO) -> str:
    """The burn-rate alerts' name: the spec's `alerting.name` (Sloth's), else the default."""
    return slo.alerting.name or ALERT_NAME


def severity_labels(slo: SLO, severity: str) -> dict[str, str]:
    """The spec's extra labels for one severity (`page_labels` / `ticket_labels`), reserved
    names renamed to `spec_<name>`; a label the spec sets under that name itself wins.

    Shared by the daemon's alerts and the generated Prometheus rules, so both carry the
    same labels. Empty for SLOs without per-severity labels (fingerprints unchanged).
    """
    alerting = slo.alerting
    extra = {"page": alerting.page_labels, "ticket": alerting.ticket_labels}.get(severity, {})
    renamed = {
        f"{RENAMED_LABEL_PREFIX}{name}": value
        for name, value in extra.items()
        if name in RESERVED_ALERT_LABELS
    }
    kept = {name: value for name, value in extra.items() if name not in RESERVED_ALERT_LABELS}
    return dict(sorted({**renamed, **kept}.items()))


def severity_annotations(slo: SLO, severity: str) -> dict[str, str]:
    """The spec's extra annotations for one severity (`page_annotations` / ...)."""
    alerting = slo.alerting
    extra = {"page": alerting.page_annotations, "ticket": alerting.ticket_annotations}
    return dict(sorted(extra.get(severity, {}).items()))


_FNV64_OFFSET = 14695981039346656037
_FNV64_PRIME = 1099511628211
_MASK64 = (1 << 64) - 1
_SEPARATOR = b"\xff"


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert identity for a label set, as 16 lowercase hex digits."""
    return _fingerprint(tuple(sorted(labels.items())))


# The same few label sets are fingerprinted every cycle (and at every step of a backtest);
# the byte loop is pure Python, so remember recent answers.
@lru_cache(maxsize=65_536)
def _fingerprint(items: tuple[tuple[str, str], ...]) -> str:
    value = _FNV64_OFFSET
    for name, label in items:
        for chunk in (name.encode(), _SEPARATOR, label.encode(), _SEPARATOR):
            for byte in chunk:
                value = ((value ^ byte) * _FNV64_PRIME) & _MASK64
    return f"{value:016x}"


@dataclass(frozen=True)
class Alert:
    """One firing alert. `labels` decide identity; everything else is context."""

    labels: dict[str, str]
    severity: AlertSeverity
    slo_id: str
    service: str
    starts_at: float
    ends_at: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    tier: str = "standard"
    depends_on: tuple[str, ...] = ()
    # Evaluation context used by severity rules and templates. None = no data.
    short_error_ratio: float | None = None
    error_budget_remaining: float | None = None
    availability: float | None = None
    burn_rate: float | None = None
    long_window: str | None = None
    short_window: str | None = None
    # The freshest evidence (`SLOEvaluation.recent`, the newest minute): refines a page's
    # severity only (a complete outage is SEV1 from its first page; see classify.py).
    recent_error_ratio: float | None = None
    recent_events: float | None = None  # total events (availability: samples) in it
    recent_window: str | None = None
    recent_availability: float | None = None  # availability SLIs only: 1 − recent ratio
    runbook_url: str | None = None
    dashboard_url: str | None = None
    # Anomaly alerts only: active for at least the service's `anomaly.sustained` time
    # (raises a critical service's anomaly from SEV4 to SEV3; see classify.py).
    sustained: bool = False
    # The SLO's SLI kind (availability, events, latency) and its service's
    # `customer_facing` flag: an incident's category and escalation follow them.
    sli_kind: str | None = None
    customer_facing: bool = False
    # The spec's SLO, `<service>/<name>`: for an instance of a grouped SLO (`slo_id`
    # `api/availability{route="/cart"}`) its base; "" = the same as `slo_id`. Several groups
    # of one SLO failing together are one incident (engine.incidents.correlation).
    slo_base_id: str = ""
    # Raised inside a maintenance window of its SLO (or its grace): the incident engine
    # mutes it like a silence (engine.evaluation.maintenance).
    maintenance: bool = False
    fingerprint: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.severity not in ("page", "ticket", "anomaly"):
            raise ValueError(
                f"alert severity must be page, ticket or anomaly, not {self.severity!r}"
            )
        object.__setattr__(self, "fingerprint", fingerprint(self.labels))

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or f"{self.slo_id} {self.severity} alert"


def _ratio_text(value: float | None) -> str:
    return "no data" if value is None else f"{value:.2%}"


def burn_labels(slo: SLO, severity: str) -> dict[str, str]:
    """The labels (the identity) of a burn-rate alert of `slo` at `severity`."""
    return {
        **{k: v for k, v in slo.labels.items()},
        # Per-severity labels win over the SLO's, never over the reserved ones below.
        **severity_labels(slo, severity),
        "alertname": burn_alert_name(slo),
        "service": slo.service,
        "slo": slo.base_id,
        "severity": severity,
        "tier": slo.tier.value,
    }


def alerts_from_evaluation(
    evaluation: SLOEvaluation, dashboard_url: str | None = None
) -> list[Alert]:
    """The firing alerts of one evaluation: at most one per severity, held signals dropped.

    An evaluation without data (`no_data`, `error`) yields nothing; the engine is told about
    it separately so it neither opens nor resolves anything for that SLO.
    """
    if evaluation.status in ("no_data", "error"):
        return []
    slo = evaluation.slo
    alerts: list[Alert] = []
    for severity in ("page", "ticket"):
        signals = [a for a in evaluation.firing if a.severity == severity]
        if not signals:
            continue
        # The shortest short window shows the current state best: it is the first to clear
        # and the one an outage saturates first.
        strongest = max(signals, key=lambda a: a.factor)
        short = min((a.short_window for a in signals), key=lambda d: d.ms)
        short_ratio = evaluation.error_ratio(short)
        recent = evaluation.recent
        recent_ratio = None if recent is None else recent.error_ratio
        long_value = evaluation.windows.get(strongest.long_window)
        burn = None if long_value is None else long_value.burn_rate
        labels = burn_labels(slo, severity)
        burn_text = "no data" if burn is None else f"{burn:.1f}x"
        annotations = {
            **slo.alerting.annotations,
            **severity_annotations(slo, severity),
            "summary": f"{slo.id}: error budget burning at {burn_text} "
            f"({strongest.long_window}/{strongest.short_window} rule)",
            "description": (
                f"{slo.description or slo.id} — error ratio over {short}: "
                f"{_ratio_text(short_ratio)}, objective {slo.objective_percent}%, "
                f"budget remaining {_ratio_text(evaluation.error_budget_remaining)}"
            ),
        }
        if slo.alerting.runbook_url:
            annotations["runbook_url"] = slo.alerting.runbook_url
        alerts.append(
            Alert(
                labels=labels,
                severity=severity,  # type: ignore[arg-type]
                slo_id=slo.id,
                slo_base_id=slo.base_id,
                service=slo.service,
                starts_at=evaluation.evaluated_at,
                annotations=annotations,
                tier=slo.tier.value,
                depends_on=slo.depends_on,
                short_error_ratio=short_ratio,
                error_budget_remaining=evaluation.error_budget_remaining,
                availability=None
                if slo.sli.kind != "availability" or short_ratio is None
                else 1.0 - short_ratio,
                burn_rate=burn,
                long_window=str(strongest.long_window),
                short_window=str(short),
                recent_error_ratio=recent_ratio,
                recent_events=None if recent is None else recent.total,
                recent_window=None
                if evaluation.recent_window is None
                else str(evaluation.recent_window),
                recent_availability=None
                if slo.sli.kind != "availability" or recent_ratio is None
                else 1.0 - recent_ratio,
                runbook_url=slo.alerting.runbook_url,
                dashboard_url=dashboard_url,
                sli_kind=slo.sli.kind,
                customer_facing=slo.customer_facing,
                maintenance=muted_by_maintenance(slo, evaluation.evaluated_at),
            )
        )
    return alerts


def alerts_from_evaluations(evaluations: Iterable[SLOEvaluation]) -> list[Alert]:
    return [alert for ev in evaluations for alert in alerts_from_evaluation(ev)]


ANOMALY_ALERT_NAME = "SLOAnomaly"


def anomaly_alert(
    slo: SLO,
    signal: str,
    starts_at: float,
    score: float | None,
    sustained: bool,
    dashboard_url: str | None = None,
) -> Alert:
    """An active anomaly of one signal (traffic, errors, latency) derived from `slo`.

    The signal is part of the labels, so a traffic drop and an error spike on the same SLO
    are two alerts (two fingerprints) that still join the service's one incident.
    """
    labels = {
        **slo.labels,
        "alertname": ANOMALY_ALERT_NAME,
        "service": slo.service,
        "slo": slo.base_id,
        "severity": "anomaly",
        "signal": signal,
        "tier": slo.tier.value,
    }
    side = "below" if signal == "traffic" else "above"
    score_text = "" if score is None else f" (robust z {score:.1f})"
    annotations = {
        **slo.alerting.annotations,
        "summary": f"{slo.id}: {signal} {side} its seasonal norm{score_text}",
        "description": f"{signal} of {slo.description or slo.id} is anomalous for this time of "
        "the week; burn-rate alerts may not see it (e.g. traffic that never arrives).",
    }
    if slo.alerting.runbook_url:
        annotations["runbook_url"] = slo.alerting.runbook_url
    return Alert(
        labels=labels,
        severity="anomaly",
        slo_id=slo.id,
        slo_base_id=slo.base_id,
        service=slo.service,
        starts_at=starts_at,
        annotations=annotations,
        tier=slo.tier.value,
        depends_on=slo.depends_on,
        runbook_url=slo.alerting.runbook_url,
        dashboard_url=dashboard_url,
        sustained=sustained,
        customer_facing=slo.customer_facing,
    )


def anomaly_alerts(
    states: Iterable[AnomalyState],
    now: float,
    dashboard: Callable[[SLO], str | None] | None = None,
) -> list[Alert]:
    """The alerts of the active anomalies among `states` (daemon and backtest alike)."""
    return [
        anomaly_alert(
            s.series.slo,
            s.series.signal,
            now,
            s.score,
            s.sustained,
            None if dashboard is None else dashboard(s.series.slo),
        )
        for s in states
        if s.active
    ]


BLIND_ALERT_NAME = "SLOEvaluationBlind"
BLIND_SLO_ID = "slo-engine/evaluation"
SPECS_INVALID_ALERT_NAME = "SLOSpecsInvalid"
SPECS_INVALID_SLO_ID = "slo-engine/specs"
SELF_SERVICE = "slo-engine"

# What made a cycle evaluate nothing: the metrics source did not answer, or the engine's own
# evaluation raised (a bug, a value no bound foresaw) while the source may be fine.
FailureKind = Literal["source", "evaluation"]


@dataclass(frozen=True)
class CycleFailure:
    """Why one cycle evaluated nothing. `error` is the detail (already redacted);
    `error_class` the exception's class for an evaluation failure."""

    kind: FailureKind
    error: str
    error_class: str = ""

    @property
    def headline(self) -> str:
        """What failed, in a few words: `source unreachable`, `evaluation failed: KeyError`."""
        if self.kind == "source":
            return "source unreachable"
        return f"evaluation failed: {self.error_class or 'error'}"

    @property
    def reason(self) -> str:
        """One line with the detail: readiness, logs and the SLOs' `error` say this."""
        return f"{self.headline}: {self.error}"


def blind_alert(since: float, cycles: int, failure: CycleFailure | None) -> Alert:
    """The meta-alert raised while the engine cannot see its SLOs.

    Paging-level on an "important" tier: the runbook makes that SEV2 — losing sight of every
    SLO is serious, but it is not itself a customer-facing outage. The summary says what
    failed: an on-call told "the metrics source" while Prometheus is healthy and the engine
    is what broke would look in the wrong place first.
    """
    headline = "cycles failed" if failure is None else failure.headline
    if failure is not None and failure.kind == "evaluation":
        cause = "The engine's own evaluation failed (the metrics source may be fine)"
    else:
        cause = "The metrics source did not answer"
    return Alert(
        labels={
            "alertname": BLIND_ALERT_NAME,
            "service": SELF_SERVICE,
            "severity": "page",
            "tier": "important",
        },
        severity="page",
        slo_id=BLIND_SLO_ID,
        service=SELF_SERVICE,
        starts_at=since,
        tier="important",
        annotations={
            "summary": f"SLO evaluation blind for {cycles} consecutive cycles: {headline}",
            "description": f"{cause}: no SLO can be evaluated; incidents are held open, none "
            f"resolve on missing data. Last error: {failure.reason if failure else 'unknown'}",
        },
    )


# Longest first error quoted in the invalid-specs alert (its `file:line:col:` comes first).
_SPEC_ERROR_SHOWN = 240


def specs_invalid_alert(since: float, first_error: str, errors: int, grace: str) -> Alert:
    """The meta-alert raised when a reload left the spec files invalid for over `grace`.

    The daemon keeps evaluating the last good set, so nothing is blind — but every edit to
    the SLOs since is silently not in effect. A ticket on an "important" tier (SEV3): someone
    should fix the file today, nobody needs waking. It clears on the first valid reload.
    """
    shown = first_error
    if len(shown) > _SPEC_ERROR_SHOWN:
        shown = shown[: _SPEC_ERROR_SHOWN - 1] + "…"
    more = f" (and {errors - 1} more)" if errors > 1 else ""
    return Alert(
        labels={
            "alertname": SPECS_INVALID_ALERT_NAME,
            "service": SELF_SERVICE,
            "severity": "ticket",
            "tier": "important",
        },
        severity="ticket",
        slo_id=SPECS_INVALID_SLO_ID,
        service=SELF_SERVICE,
        starts_at=since,
        tier="important",
        annotations={
            "summary": f"SLO specs invalid for over {grace}: {shown}{more}",
            "description": "A reload of the spec files was rejected; the daemon still "
            "evaluates the last good set, so the changes since are not in effect. Fix the "
            "files (`slo-engine validate` lists every error); this clears on the next valid "
            f"reload. First error: {shown}{more}",
        },
    )
