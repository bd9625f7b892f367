"""Wiring a daemon: from a `DaemonConfig` to the object graph a `Runtime` runs on.

Order matters only where a failure must stop start-up before anything is written: the specs
are loaded (and must be valid) before the store is opened, and every receiver's secret file
is read here, so a broken configuration fails at start rather than on the first page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import trace

from engine.daemon.anomaly import DaemonAnomalies
from engine.daemon.budgets import policy_receiver_problems
from engine.daemon.config import DaemonConfig
from engine.daemon.datasources import configured_source, datasource_problems
from engine.daemon.groups import daemon_groups
from engine.daemon.maintenance import DaemonMaintenance
from engine.daemon.metrics import DaemonMetrics
from engine.daemon.self_telemetry import telemetry_from_config
from engine.daemon.source_guard import GuardedSource
from engine.daemon.specs import DaemonSpecs, SpecsInvalid, SpecWatcher, load_startup_specs
from engine.evaluation.evaluator import Evaluator
from engine.evaluation.resolution import ResolutionError
from engine.evaluation.source import EventSource
from engine.incidents.engine import IncidentEngine
from engine.notify.base import Notifier
from engine.notify.delivery import Deliverer
from engine.notify.factory import build_notifiers
from engine.retry import CircuitBreaker
from engine.spec.loader import LoadResult
from engine.spec.models import SLO
from engine.store.base import IncidentStore
from engine.store.open import open_store
from engine.telemetry import Telemetry

if TYPE_CHECKING:
    from engine.daemon.fleet import Fleet
    from engine.daemon.replicas import ReplicaSet

# These lines logged under the Runtime's name before it was split; operators filter on it.
log = logging.getLogger("engine.daemon.runtime")


@dataclass
class RuntimeParts:
    """What a Runtime holds, wired and ready."""

    telemetry: Telemetry
    tracer: trace.Tracer
    metrics: DaemonMetrics
    loaded: LoadResult  # the start-up specs
    specs: DaemonSpecs
    source: GuardedSource
    evaluator: Evaluator
    anomalies: DaemonAnomalies
    store: IncidentStore
    engine: IncidentEngine
    notifiers: dict[str, Notifier]
    deliverer: Deliverer
    # With a PostgreSQL store (several replicas): membership, lease and what is published.
    replicas: ReplicaSet | None = None
    fleet: Fleet | None = None
    # Maintenance windows declared through the API (engine.daemon.maintenance).
    maintenance: DaemonMaintenance | None = None


def build_runtime(
    config: DaemonConfig,
    *,
    clock: Callable[[], float],
    source: EventSource | None,
    telemetry: Telemetry | None,
    notifiers: dict[str, Notifier] | None,
    config_dir: Path | None,
) -> RuntimeParts:
    """Build everything; `source`, `telemetry` and `notifiers` default to the config's.
    Raises `SpecsInvalid` (nothing to run on), `StoreError`, notifier `ConfigError`."""
    if telemetry is None:
        telemetry = telemetry_from_config(config)
    tracer = telemetry.tracer
    receivers = [r.name for r in config.incident_config().receivers]
    watcher = SpecWatcher(
        config.specs,
        lambda slos: [
            *datasource_problems(slos, config),
            *policy_receiver_problems(slos, receivers),
        ],
    )
    loaded = load_startup_specs(watcher)
    now = clock()
    metrics = DaemonMetrics(telemetry.meter)
    raw = configured_source(config) if source is None else source
    breaker = CircuitBreaker(
        config.source_breaker.failures,
        config.source_breaker.cooldown.seconds,
        clock=clock,
    )
    guarded = GuardedSource(raw, breaker, tracer, metrics)
    evaluator = _evaluator(loaded.slos, guarded, config)
    # The raw source: anomaly fetches stay off the burn-rate path's breaker (see there).
    anomalies = _anomalies(loaded.slos, raw, tracer, metrics, config)
    # Grouped SLOs: the evaluator gets their instances, discovered from the first cycle on.
    groups = daemon_groups(config, raw, metrics, tracer)
    groups.attach(loaded.slos, evaluator, anomalies)
    specs = DaemonSpecs(watcher, loaded, now, evaluator, anomalies, metrics, tracer, groups)

    store = open_store(config.store, Path(config.state_dir), config.store_password_file)
    engine = _incident_engine(config, store, now)
    if notifiers is None:
        notifiers = build_notifiers(config.all_notifiers(), base_dir=config_dir, clock=clock)
    parts = RuntimeParts(
        telemetry=telemetry,
        tracer=tracer,
        metrics=metrics,
        loaded=loaded,
        specs=specs,
        source=guarded,
        evaluator=evaluator,
        anomalies=anomalies,
        store=store,
        engine=engine,
        notifiers=notifiers,
        deliverer=Deliverer(store, notifiers, clock=clock),
    )
    opener = getattr(store, "maintenance_windows", None)
    parts.maintenance = DaemonMaintenance(opener() if callable(opener) else None, evaluator)
    if config.shared_store:
        _wire_replicas(parts, config, clock)
    return parts


def _evaluator(slos: Sequence[SLO], source: EventSource, config: DaemonConfig) -> Evaluator:
    try:
        if config.shared_store:  # a replica evaluates its shard (engine.daemon.shards)
            from engine.daemon.shards import ShardEvaluator

            return ShardEvaluator(slos, source, scrape_interval=config.scrape_interval)
        return Evaluator(slos, source, scrape_interval=config.scrape_interval)
    except ResolutionError as exc:
        # The specs' windows cannot be measured at this scrape interval: nothing to run.
        raise SpecsInvalid([str(exc)]) from None


def _anomalies(
    slos: Sequence[SLO],
    source: EventSource,
    tracer: trace.Tracer,
    metrics: DaemonMetrics,
    config: DaemonConfig,
) -> DaemonAnomalies:
    if config.shared_store:
        from engine.daemon.shards import ShardAnomalies

        return ShardAnomalies(source, slos, tracer, metrics, config.scrape_interval)
    return DaemonAnomalies(source, slos, tracer, metrics, config.scrape_interval)


def _wire_replicas(parts: RuntimeParts, config: DaemonConfig, clock: Callable[[], float]) -> None:
    """One replica of several: its membership and lease, its shard, publishing, and a
    deliverer that sends only while this replica leads (docs/replicas.md)."""
    # Imported here: a SQLite daemon never loads the replica machinery (or psycopg).
    from engine.daemon.fleet import Fleet
    from engine.daemon.leader_delivery import LeaderDeliverer
    from engine.daemon.replicas import ReplicaSet, default_replica_id
    from engine.daemon.shards import Assignment, ShardAnomalies, ShardEvaluator
    from engine.store.coordination import PostgreSQLCoordination
    from engine.store.postgresql import PostgreSQLStore

    assert isinstance(parts.store, PostgreSQLStore)
    assert isinstance(parts.evaluator, ShardEvaluator)
    assert isinstance(parts.anomalies, ShardAnomalies)
    evaluator, anomalies = parts.evaluator, parts.anomalies

    def reassign(assignment: Assignment) -> None:
        evaluator.reassign(assignment)
        anomalies.reassign(assignment)

    coordination = PostgreSQLCoordination(parts.store)
    replicas = ReplicaSet(
        coordination,
        config.replica_id or default_replica_id(),
        config.interval.seconds,
        on_assignment=reassign,
    )
    parts.replicas = replicas
    parts.fleet = Fleet(coordination, replicas, evaluator, parts.engine)
    parts.deliverer = LeaderDeliverer(
        parts.store, parts.notifiers, clock=clock, leading=replicas.leading
    )


def _incident_engine(config: DaemonConfig, store: IncidentStore, now: float) -> IncidentEngine:
    engine = IncidentEngine(config.incident_config(), state=store.load_state(now))
    template_errors = engine.renderer.check()
    if template_errors:
        # Overrides fall back to the built-in templates at render time; say so now.
        for problem in template_errors:
            log.warning("template override: %s", problem)
    return engine
