"""A small Runtime for API tests and status-page previews: the REAL incident engine and SQLite
store, with SLO results handed in by the caller instead of a scheduler.

It follows the daemon's Runtime contract (engine/daemon/runtime.py): mutations go through
`IncidentEngine` and are applied to the store in one transaction, retried on a stale state;
unknown ids raise KeyError, impossible transitions ValueError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import prometheus_client

from engine.alerting.alerts import Alert, alerts_from_evaluations
from engine.evaluation.result import AlertSignal, SLOEvaluation, Status, WindowValue
from engine.incidents.config import IncidentConfig
from engine.incidents.engine import IncidentEngine, IncidentError
from engine.incidents.incident import Incident
from engine.incidents.silences import Matcher
from engine.incidents.state import Decision
from engine.spec.durations import Duration
from engine.spec.models import SLO
from engine.store.base import StaleStateError
from engine.store.sqlite import SQLiteStore

_STATUSES = ("ok", "ticket", "page", "exhausted", "no_data", "error")


class StoreRuntime:
    def __init__(
        self,
        store: SQLiteStore,
        config: IncidentConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config or IncidentConfig()
        self.clock = clock
        self.engine = IncidentEngine(self.config, store.load_state())
        self._lock = threading.Lock()
        self._results: list[SLOEvaluation] = []
        self.ready: tuple[bool, list[str]] = (True, [])
        self.specs: dict[str, Any] = {"loaded_at": None, "slos": 0, "files": 0, "last_error": None}
        self.metrics_registry = prometheus_client.CollectorRegistry()
        self._status = prometheus_client.Gauge(
            "slo_engine_slo_status",
            "1 for the SLO's current status.",
            ["slo", "status"],
            registry=self.metrics_registry,
        )
        self._budget = prometheus_client.Gauge(
            "slo_engine_error_budget_remaining",
            "Fraction of the error budget left.",
            ["slo"],
            registry=self.metrics_registry,
        )

    # ------------------------------------------------------------------ driving it (tests)

    def set_results(self, results: Sequence[SLOEvaluation]) -> None:
        with self._lock:
            self._results = list(results)
            for ev in results:
                for status in _STATUSES:
                    self._status.labels(ev.slo.id, status).set(1 if ev.status == status else 0)
                if ev.error_budget_remaining is not None:
                    self._budget.labels(ev.slo.id).set(ev.error_budget_remaining)

    def observe(self, alerts: Sequence[Alert], now: float | None = None) -> Decision:
        return self._apply(
            lambda engine, at: engine.observe(at if now is None else now, alerts, self._results)
        )

    # ------------------------------------------------------------------ the Runtime contract

    def slo_results(self) -> list[SLOEvaluation]:
        with self._lock:
            return list(self._results)

    def slo_result(self, slo_id: str) -> SLOEvaluation | None:
        return next((r for r in self.slo_results() if r.slo.id == slo_id), None)

    def list_incidents(self, status: str | None, severity: str | None) -> list[Incident]:
        return self.store.list_incidents(status=status, severity=severity)

    def get_incident(self, incident_id: str) -> Incident | None:
        return self.store.get_incident(incident_id)

    def _apply(self, action: Callable[[IncidentEngine, float], Decision]) -> Decision:
        with self._lock:
            for _ in range(5):
                try:
                    decision = action(self.engine, self.clock())
                    self.store.apply(decision)
                    return decision
                except StaleStateError:
                    self.engine.reset(self.store.load_state())
                except IncidentError:
                    # The engine moved its state only on success; resync with the store.
                    self.engine.reset(self.store.load_state())
                    raise
            raise RuntimeError("incident state kept changing underneath")

    def _incident_change(
        self, incident_id: str, action: Callable[[IncidentEngine, float], Decision]
    ) -> Incident:
        if self.store.get_incident(incident_id) is None:
            raise KeyError(f"no incident {incident_id}")
        self._apply(action)
        incident = self.store.get_incident(incident_id)
        assert incident is not None
        return incident

    def acknowledge(self, incident_id: str, by: str) -> Incident:
        return self._incident_change(
            incident_id, lambda e, now: e.acknowledge(now, incident_id, by)
        )

    def resolve(self, incident_id: str, by: str, note: str | None) -> Incident:
        return self._incident_change(
            incident_id, lambda e, now: e.resolve(now, incident_id, by, note or "")
        )

    def comment(self, incident_id: str, by: str, text: str) -> Incident:
        return self._incident_change(
            incident_id, lambda e, now: e.comment(now, incident_id, by, text)
        )

    def add_silence(
        self,
        matchers: list[dict],
        ends_at: float,
        created_by: str,
        comment: str,
        starts_at: float | None,
    ) -> dict:
        parsed = [Matcher.from_json(m) for m in matchers]
        decision = self._apply(
            lambda e, now: e.add_silence(
                now, parsed, now if starts_at is None else starts_at, ends_at, created_by, comment
            )
        )
        return decision.silences_upserted[0].to_json()

    def delete_silence(self, silence_id: str) -> bool:
        try:
            self._apply(lambda e, now: e.expire_silence(now, silence_id))
        except IncidentError:
            return False
        return True

    def list_silences(self) -> list[dict]:
        return [s.to_json() for s in self.store.list_silences(now=self.clock())]

    def readiness(self) -> tuple[bool, list[str]]:
        return self.ready

    def spec_status(self) -> dict:
        return dict(self.specs)

    def customer_notice(self, incident: Incident) -> str:
        return self.engine.renderer.customer_notice(incident)


class FakeClock:
    """A clock that moves only when told to (rate limits, idempotency expiry, silences)."""

    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def evaluation(
    slo: SLO,
    at: float,
    status: Status = "ok",
    budget: float | None = 0.9,
    burn_1h: float | None = 0.5,
    time_to_exhaustion: float | None = None,
    error: str | None = None,
) -> SLOEvaluation:
    """An evaluation as the burn math would report it, with page/ticket signals matching
    `status` (so `alerts_from_evaluations` derives the alerts the daemon would raise)."""
    hour, five = Duration.parse("1h"), Duration.parse("5m")
    if status in ("no_data", "error"):
        windows: dict[Duration, WindowValue] = {}
        budget = burn_1h = None
    else:
        ratio = None if burn_1h is None else burn_1h * float(slo.error_budget)
        total = 36_000.0
        bad = None if ratio is None else ratio * total
        windows = {
            hour: WindowValue(bad, total, ratio, burn_1h),
            five: WindowValue(None if bad is None else bad / 12, total / 12, ratio, burn_1h),
        }
    alerts: tuple[AlertSignal, ...] = ()
    if status == "page":
        alerts = (AlertSignal("page", hour, five, Decimal("14.4")),)
    elif status == "ticket":
        alerts = (AlertSignal("ticket", Duration.parse("1d"), Duration.parse("2h"), Decimal(3)),)
    return SLOEvaluation(
        slo=slo,
        evaluated_at=at,
        status=status,
        windows=windows,
        error_budget_remaining=budget,
        time_to_exhaustion=time_to_exhaustion,
        alerts=alerts,
        error=error,
    )


def sample_results(slos: Sequence[SLO], at: float) -> list[SLOEvaluation]:
    """One evaluation per SLO, cycling through every status a page can show, so previews and
    tests see page, ticket, ok, exhausted, no data and error side by side."""
    shapes: list[dict[str, Any]] = [
        {"status": "page", "budget": 0.42, "burn_1h": 18.0, "time_to_exhaustion": 3.2 * 3600},
        {"status": "ticket", "budget": 0.63, "burn_1h": 3.5, "time_to_exhaustion": 6 * 86400},
        {"status": "ok", "budget": 0.97, "burn_1h": 0.2},
        {"status": "exhausted", "budget": -0.12, "burn_1h": 1.4},
        {"status": "no_data"},
        {"status": "error", "error": "source unavailable: http://127.0.0.1:9/ refused"},
    ]
    return [
        evaluation(slo, at, **shapes[i % len(shapes)])  # type: ignore[arg-type]
        for i, slo in enumerate(slos)
    ]


def sample_runtime(
    database: str | Path, slos: Sequence[SLO], clock: Callable[[], float], at: float
) -> StoreRuntime:
    """A StoreRuntime on a fresh SQLite store at `database`, holding `sample_results(slos,
    at)` and the incidents their alerts opened at `at` (one per paging service)."""
    runtime = StoreRuntime(SQLiteStore(database), clock=clock)
    results = sample_results(slos, at)
    runtime.set_results(results)
    runtime.observe(alerts_from_evaluations(results), now=at)
    return runtime


@contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    from engine.source.localprom import free_port

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port or free_port(), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
