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

from opentelemetry import trace

from engine.daemon.anomaly import DaemonAnomalies
from engine.daemon.config import DaemonConfig, read_headers_file
from engine.daemon.datasources import configured_source, datasource_problems
from engine.daemon.metrics import DaemonMetrics
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
from engine.store.sqlite import SQLiteStore
from engine.telemetry import Telemetry, setup_telemetry

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
    store: SQLiteStore
    engine: IncidentEngine
    notifiers: dict[str, Notifier]
    deliverer: Deliverer


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
    watcher = SpecWatcher(config.specs, lambda slos: datasource_problems(slos, config))
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
    anomalies = DaemonAnomalies(raw, loaded.slos, tracer, metrics)
    specs = DaemonSpecs(watcher, loaded, now, evaluator, anomalies, metrics, tracer)

    store = SQLiteStore.in_state_dir(Path(config.state_dir))
    engine = _incident_engine(config, store, now)
    if notifiers is None:
        notifiers = build_notifiers(config.all_notifiers(), base_dir=config_dir, clock=clock)
    return RuntimeParts(
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


def telemetry_from_config(config: DaemonConfig) -> Telemetry:
    t = config.telemetry
    headers = read_headers_file(t.headers_file) if t.headers_file else None
    return setup_telemetry(
        endpoint=t.otlp_endpoint,
        protocol=t.otlp_protocol,
        headers=headers,
        service_name=t.service_name,
        export_interval_s=t.export_interval.seconds,
    )


def _evaluator(slos: Sequence[SLO], source: EventSource, config: DaemonConfig) -> Evaluator:
    try:
        return Evaluator(slos, source, scrape_interval=config.scrape_interval)
    except ResolutionError as exc:
        # The specs' windows cannot be measured at this scrape interval: nothing to run.
        raise SpecsInvalid([str(exc)]) from None


def _incident_engine(config: DaemonConfig, store: SQLiteStore, now: float) -> IncidentEngine:
    engine = IncidentEngine(config.incident_config(), state=store.load_state(now))
    template_errors = engine.renderer.check()
    if template_errors:
        # Overrides fall back to the built-in templates at render time; say so now.
        for problem in template_errors:
            log.warning("template override: %s", problem)
    return engine
