"""The incident configuration in the form the engine consults it on every alert.

`IncidentConfig` is what an operator writes (durations, receivers, dependency edges);
`Settings` is that config resolved once per engine: durations in seconds, the escalation
chain with its receivers filtered, and the template renderer. The engine's concern modules
take it as their first argument wherever a rule depends on the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.alerting.alerts import Alert
from engine.incidents.config import EscalationLevel, IncidentConfig
from engine.incidents.incident import Severity
from engine.incidents.render import TemplateRenderer


@dataclass(frozen=True)
class Settings:
    config: IncidentConfig
    renderer: TemplateRenderer
    # Response target per severity, seconds: escalation starts once it is missed.
    targets: dict[Severity, float]
    chain: list[EscalationLevel]
    group_window: float
    resolve_after: float
    repeat: float
    depends_on: dict[str, tuple[str, ...]]
    dependency_wait: float
    hold_severities: frozenset[Severity]
    # Incident response: where each severity's chain starts, what stops it, recovery time
    # per tier, update cadence per severity (seconds).
    from_open: frozenset[Severity]
    stops_on: frozenset[str]
    rto: dict[str, float]
    cadence: dict[Severity, float]

    @classmethod
    def of(cls, config: IncidentConfig, renderer: TemplateRenderer | None = None) -> Settings:
        targets = {s: d.seconds for s, d in config.response_targets.items()}
        cadence = {s: d.seconds for s, d in config.update_cadence.items() if d.seconds > 0}
        return cls(
            config=config,
            renderer=renderer
            or TemplateRenderer(
                config.templates_dir,
                response_targets=targets,
                status_page_url=config.status_page_url,
                update_cadence=cadence,
            ),
            targets=targets,
            chain=config.escalation_chain(),
            group_window=config.group_window.seconds,
            resolve_after=config.resolve_after.seconds,
            repeat=config.repeat_interval.seconds,
            depends_on={k: tuple(v) for k, v in config.depends_on.items()},
            dependency_wait=config.dependency_wait.seconds,
            hold_severities=frozenset(config.dependency_wait_severities),
            from_open=config.from_open(),
            stops_on=frozenset(config.escalation_stops_on),
            rto={t.value: d.seconds for t, d in config.recovery_time_objectives.items()},
            cadence=cadence,
        )

    def deps(self, alert: Alert) -> set[str]:
        """The services the alert's service depends on: its spec's plus the config's edges."""
        return set(alert.depends_on) | set(self.depends_on.get(alert.service, ()))

    def routed(self, severity: Severity) -> list[str]:
        """The receivers that hear of incidents at this severity."""
        return [r.name for r in self.config.receivers if severity in r.severities]
