"""The daemon's REAL Runtime for API tests, status-page previews and the API benchmark.

    source = SampleSource(T0)                               # optional: to script it later
    runtime = sample_runtime(tmp_path, clock, T0, source=source)
    ...                                                     # one cycle at T0 has run
    runtime.close()

`sample_runtime` builds an `engine.daemon.runtime.Runtime` on spec files (slo_specs/ unless
told otherwise), with its SQLite state under `directory`, and runs one cycle at `at`. Only
the metrics source is scripted: `SampleSource` answers every SLO with a burn-rate history
chosen so that the cycle evaluates it to one status of `SHAPES` (by the SLO's position in
the specs: page, ticket, ok, exhausted, no data, error) with round numbers. Everything after
the source — evaluator, policy, incident engine, store, readiness, metrics — is the daemon's
own code, so the API is tested against what the daemon really does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.daemon.config import DaemonConfig, load_config
from engine.daemon.runtime import Runtime
from engine.evaluation.result import AlertSignal, SLOEvaluation, Status, WindowValue
from engine.evaluation.source import SourceUnavailable, StepRates
from engine.incidents.config import IncidentConfig
from engine.spec.durations import Duration
from engine.spec.loader import load_specs
from engine.spec.models import SLO

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "slo_specs"
# Events per second of every scripted SLO: enough that the low-traffic guard holds no alert,
# even of a 99.999 % objective (its 1h page threshold must expect ≥ 10 bad events).
TRAFFIC = 100.0


class FakeClock:
    """A clock that moves only when told to (rate limits, idempotency expiry, silences)."""

    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---------------------------------------------------------------------- the scripted source


@dataclass(frozen=True)
class Shape:
    """What one SLO looks like at the sample instant, and the history that makes it so.

    `recent` is the burn rate over the newest spans, newest first: ("1h", 18.0) means 18×
    the sustainable rate over the last hour. Before them the SLO burns at the constant rate
    that leaves `budget` of its error budget at the instant. With the instant on a whole hour
    (T0), span edges sit on whole hours too, so every cache tier (1m, 5m, 1h steps) sees the
    same history and the numbers come out exact.
    `budget` None: no data at all; `error`: every query for the SLO fails with that message.
    """

    status: Status
    budget: float | None = None
    recent: tuple[tuple[str, float], ...] = ()
    error: str | None = None

    def burn(self, ages: np.ndarray, period: float) -> np.ndarray:
        """Burn rate of the steps ending `ages` seconds before the instant (steps after the
        instant keep the newest rate)."""
        assert self.budget is not None
        spans = [(Duration.parse(span).seconds, rate) for span, rate in self.recent]
        recent_seconds = sum(span for span, _ in spans)
        spent = sum(span * rate for span, rate in spans)
        background = ((1.0 - self.budget) * period - spent) / (period - recent_seconds)
        ends = np.cumsum([span for span, _ in spans])
        return np.select(
            [ages < end for end in ends], [rate for _, rate in spans], default=background
        )


SHAPES: tuple[Shape, ...] = (
    # 1h at 18× pages (1h and 5m above 14.4×); 16.8 h until the 42 % left are gone.
    Shape("page", budget=0.42, recent=(("1h", 18.0),)),
    # A day at 3.5× fires both ticket rules (3× over 1d/2h, 1× over 3d/6h), no page rule.
    Shape("ticket", budget=0.63, recent=(("1d", 3.5),)),
    Shape("ok", budget=0.97, recent=(("1h", 0.2),)),
    # Overspent long ago; the last 3 days are calm enough that no ticket rule fires.
    Shape("exhausted", budget=-0.12, recent=(("1h", 1.4), ("71h", 0.5))),
    Shape("no_data"),
    Shape("error", error="source unavailable: http://127.0.0.1:9/ refused"),
)


# For SLOs the source was not told about.
DEFAULT_SHAPE = SHAPES[2]


def shapes_for(slos: Sequence[SLO]) -> dict[str, Shape]:
    """SLO id → shape, cycling through `SHAPES` in the SLOs' order."""
    return {slo.id: SHAPES[i % len(SHAPES)] for i, slo in enumerate(slos)}


class SampleSource:
    """An `EventSource` scripted by `Shape`s, relative to the instant `at`.

    Set `down` to a message to make the whole source unreachable (fetches and probes fail
    with it), None to bring it back.
    """

    def __init__(self, at: float, shapes: Mapping[str, Shape] | None = None) -> None:
        self.at = at
        self.shapes: dict[str, Shape] = dict(shapes or {})
        self.down: str | None = None

    def fetch(self, slos: Sequence[SLO], step: Duration, start: float, end: float) -> StepRates:
        if self.down is not None:
            raise SourceUnavailable(self.down)
        n = round((end - start) / step.seconds) + 1 if end >= start else 0
        times = start + step.seconds * np.arange(n, dtype=np.float64)
        bad = np.full((len(slos), n), np.nan)
        total = np.full((len(slos), n), np.nan)
        errors: dict[str, str] = {}
        for row, slo in enumerate(slos):
            shape = self.shapes.get(slo.id, DEFAULT_SHAPE)
            if shape.error is not None:
                errors[slo.id] = shape.error
            elif shape.budget is not None:
                burn = shape.burn(self.at - times, slo.period.seconds)
                total[row] = TRAFFIC
                bad[row] = burn * float(slo.error_budget) * TRAFFIC
        return StepRates(step=step, times=times, bad=bad, total=total, errors=errors)

    def query_instant(self, query: str, at: float) -> list[dict[str, Any]]:
        """The daemon's probe between cache steps."""
        if self.down is not None:
            raise ConnectionError(self.down)
        return [{"metric": {}, "value": [at, "1"]}]


# ---------------------------------------------------------------------- specs and the runtime


def spec_documents(specs: Path = SPECS) -> dict[str, dict[str, Any]]:
    """File name → parsed spec document, for tests that need edited copies."""
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(specs.glob("*.yaml"))}


def write_specs(directory: Path, documents: Mapping[str, dict[str, Any]]) -> Path:
    """Write spec documents (file name → document) to `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in documents.items():
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)
        (directory / name).write_text(text)
    return directory


def specs_with_descriptions(directory: Path, descriptions: Mapping[str, str]) -> Path:
    """A copy of slo_specs/ in `directory` with the descriptions of some SLOs (by id) replaced
    (e.g. markup a spec author wrote, to see that it stays text)."""
    documents = spec_documents()
    for document in documents.values():
        for slo in document["slos"]:
            slo_id = f"{document['service']}/{slo['name']}"
            if slo_id in descriptions:
                slo["description"] = descriptions[slo_id]
    return write_specs(directory, documents)


def daemon_config(
    directory: Path, specs: Path = SPECS, receivers: Sequence[str] = (), **settings: Any
) -> DaemonConfig:
    """The daemon's config for a runtime with its state under `directory`: no receivers
    but `receivers` (budget-policy ones: no incident severity), no dependency hold-down (it
    would only delay the sample's incident), `settings` on top."""
    incidents: dict[str, Any] = {}
    if receivers:
        incidents["receivers"] = [{"name": r, "severities": []} for r in receivers]
    if "dependency_wait" in IncidentConfig.model_fields:
        incidents["dependency_wait"] = "0s"
    values: dict[str, Any] = {
        "specs": [str(specs)],
        "prometheus_url": "http://127.0.0.1:9",
        "state_dir": str(directory / "state"),
        "interval": "60s",
        "incidents": incidents,
        **settings,
    }
    return load_config(None, values)


def scripted_runtime(
    directory: Path,
    clock: Callable[[], float],
    source: SampleSource,
    *,
    specs: Path = SPECS,
    receivers: Sequence[str] = (),
) -> Runtime:
    """The daemon's Runtime on `specs` and `source`, its state in `directory`, no cycle run
    yet. The caller closes it."""
    config = daemon_config(directory, specs, receivers)
    return Runtime(config, clock=clock, source=source, notifiers={})


def sample_runtime(
    directory: Path,
    clock: Callable[[], float],
    at: float,
    *,
    specs: Path = SPECS,
    source: SampleSource | None = None,
    receivers: Sequence[str] = (),
) -> Runtime:
    """A Runtime on `specs` with its state in `directory`, after one cycle at `at`: each SLO
    has its `SHAPES` status, and every service with a paging or ticketing SLO has an open
    incident. The caller closes it."""
    if source is None:
        source = SampleSource(at)
    if not source.shapes:
        source.shapes = shapes_for(load_specs([specs]).slos)
    runtime = scripted_runtime(directory, clock, source, specs=specs, receivers=receivers)
    try:
        runtime.run_cycle(at)
        got = {r.slo.id: r.status for r in runtime.slo_results()}
        wanted = {slo_id: source.shapes.get(slo_id, DEFAULT_SHAPE).status for slo_id in got}
        if got != wanted:
            raise AssertionError(f"the sample cycle evaluated {got}, not {wanted}")
    except BaseException:
        runtime.close()
        raise
    return runtime


# ---------------------------------------------------------------------- pure evaluations


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
    `status`, for tests of pure code (the status page's view builder) that need no runtime."""
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


# ---------------------------------------------------------------------- serving


@contextmanager
def serve(
    app: Any,
    port: int | None = None,
    *,
    trusted_proxies: Sequence[str] = (),
    access_log: bool = True,
    log_level: str = "warning",
) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread, with the daemon's server
    settings (engine.api.server: proxy headers only from `trusted_proxies`, redacted uvicorn
    logs); yields the base URL."""
    import uvicorn

    from engine.api.server import server_config
    from engine.source.localprom import free_port

    config = server_config(
        app,
        trusted_proxies=trusted_proxies,
        access_log=access_log,
        host="127.0.0.1",
        port=port or free_port(),
        log_level=log_level,
        lifespan="off",
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
