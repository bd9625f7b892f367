"""Live traffic simulator: the scenario's *current* metric values at /metrics.

The live counterpart of `Scenario`: counters are the same closed-form functions of time, so a
Prometheus scraping the simulator continues a history backfilled from the same scenario
(same `--start`) without a jump or a counter reset. Outages are injected while it runs:

    python -m engine.demo.simulator --port 9100
    curl -X POST 'http://127.0.0.1:9100/inject?service=api&error_ratio=1&duration=300'
    curl -X POST 'http://127.0.0.1:9100/inject?service=database&duration=600'   # pg_up 0
    curl -X POST 'http://127.0.0.1:9100/inject?service=backup&duration=1800'    # backups fail

An injection starts now (or `after` seconds from now) and is appended to the scenario; the
past is unchanged, so counters stay monotonic. Every metric carries its own `job` label:
scrape with `honor_labels: true`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from engine.demo.openmetrics import format_labels
from engine.demo.scenario import (
    LE_LABELS,
    DatabaseLoad,
    Incident,
    Scenario,
    ServiceLoad,
    to_seconds,
    write_openmetrics,
)

log = logging.getLogger(__name__)
Clock = Callable[[], float]
# Long enough that a demo never runs off the end of its scenario.
_LIVE_DURATION = 10 * 365 * 86_400
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def demo_scenario(start: int, duration: int = _LIVE_DURATION) -> Scenario:
    """The bundled platform: `api` (daily wave) and the `database` with its backup job.

    Its metric names are the ones slo_specs/ uses; `make demo` backfills history from this
    same function and points the simulator at the same `start`.
    """
    return Scenario(
        start=start,
        duration=duration,
        scrape_interval=15,
        services=[
            ServiceLoad(
                job="api", rps=20.0, error_ratio=0.0005, slow_ratio=0.02, daily_amplitude=0.3
            )
        ],
        database=DatabaseLoad(job="database", backup_interval=300, backup_check_interval=300),
    )


def history_start(now: float, days: int) -> int:
    """UTC midnight `days` days before `now`: a start two processes agree on without talking."""
    if days < 0:
        raise ValueError("days must be >= 0")
    return int(now // 86_400) * 86_400 - days * 86_400


class InjectionError(ValueError):
    """An /inject request that cannot be applied; the message says what to change."""


def _float(params: Mapping[str, str], name: str, default: float | None = None) -> float | None:
    if name not in params:
        return default
    try:
        value = float(params[name])
    except ValueError:
        raise InjectionError(f"{name} must be a number, got {params[name]!r}") from None
    if not math.isfinite(value):
        raise InjectionError(f"{name} must be finite")
    return value


def _seconds_param(params: Mapping[str, str], name: str, default: str) -> float:
    """Seconds from "300" or a duration such as "5m"."""
    text = params.get(name, default)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return to_seconds(text)
    except ValueError:
        raise InjectionError(
            f"{name} must be seconds or a duration like 5m, got {text!r}"
        ) from None


class Simulator:
    """Thread-safe holder of the live scenario; renders metrics at `clock()`."""

    def __init__(self, scenario: Scenario, clock: Clock = time.time) -> None:
        self._scenario = scenario
        self._clock = clock
        self._lock = threading.Lock()
        self.injections: list[dict[str, Any]] = []

    @property
    def scenario(self) -> Scenario:
        with self._lock:
            return self._scenario

    def inject(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Apply an outage from `service`, `duration` (seconds or "5m"), optional `after`
        and, for HTTP services, `error_ratio` / `rps_factor` / `slow_ratio`."""
        service = params.get("service", "")
        duration = _seconds_param(params, "duration", "300")
        after = _seconds_param(params, "after", "0")
        if duration <= 0 or after < 0:
            raise InjectionError("duration must be > 0 and after >= 0")
        with self._lock:
            sc = self._scenario
            begin = self._clock() - sc.start + after
            window = (begin, begin + duration)
            db = sc.database
            if db is not None and service in (db.job, db.backup_job):
                field = "outages" if service == db.job else "backup_failures"
                new_db = dataclasses.replace(db, **{field: (*getattr(db, field), window)})
                self._scenario = dataclasses.replace(sc, database=new_db)
                effect: dict[str, Any] = {field: True}
            else:
                try:
                    load = sc.service(service)
                except KeyError as exc:
                    raise InjectionError(str(exc.args[0])) from None
                effect = {
                    name: _float(params, name)
                    for name in ("error_ratio", "rps_factor", "slow_ratio")
                    if name in params
                }
                if not effect:
                    effect = {"error_ratio": 1.0}  # the default outage: every request fails
                try:
                    incident = Incident(start=window[0], end=window[1], **effect)
                except ValueError as exc:
                    raise InjectionError(str(exc)) from None
                new_load = dataclasses.replace(load, incidents=(*load.incidents, incident))
                services = tuple(new_load if s.job == service else s for s in sc.services)
                self._scenario = dataclasses.replace(sc, services=services)
            record = {
                "service": service,
                "starts_at": sc.start + window[0],
                "ends_at": sc.start + window[1],
                **effect,
            }
            self.injections.append(record)
        log.info("injected %s", record)
        return record

    def render(self) -> str:
        """Prometheus text exposition (0.0.4) of every metric at the current time."""
        sc = self.scenario
        now = min(self._clock(), sc.end)
        lines: list[str] = []
        if sc.services:
            lines += [
                "# HELP http_requests_total HTTP requests by status code.",
                "# TYPE http_requests_total counter",
            ]
            for s in sc.services:
                for code, kind in (("200", "ok"), ("500", "errors")):
                    value = int(sc.counter(s.job, now, kind)[0])
                    lines.append(
                        f"http_requests_total{format_labels({'job': s.job, 'code': code})} {value}"
                    )
            lines += [
                "# HELP http_request_duration_seconds HTTP request latency.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            for s in sc.services:
                buckets = [int(sc.bucket(s.job, le, now)[0]) for le in LE_LABELS]
                for le, value in zip(LE_LABELS, buckets, strict=True):
                    labels = format_labels({"job": s.job, "le": le})
                    lines.append(f"http_request_duration_seconds_bucket{labels} {value}")
                lines.append(
                    f"http_request_duration_seconds_count{format_labels({'job': s.job})} {buckets[-1]}"
                )
                lines.append(
                    f"http_request_duration_seconds_sum{format_labels({'job': s.job})} {float(sc.latency_sum(s.job, now)[0])}"
                )
        db = sc.database
        if db is not None:
            lines += [
                "# HELP pg_up Whether the database answers its probe.",
                "# TYPE pg_up gauge",
                f"pg_up{format_labels({'job': db.job})} {int(sc.pg_up(now)[0])}",
                "# HELP backup_verification_checks_total Backup verification checks by result.",
                "# TYPE backup_verification_checks_total counter",
            ]
            for result in ("success", "failed"):
                value = int(sc.counter(db.backup_job, now, f"checks_{result}")[0])
                labels = format_labels({"job": db.backup_job, "result": result})
                lines.append(f"backup_verification_checks_total{labels} {value}")
            lines += [
                "# HELP backup_last_success_timestamp_seconds Unix time of the latest successful backup.",
                "# TYPE backup_last_success_timestamp_seconds gauge",
                f"backup_last_success_timestamp_seconds{format_labels({'job': db.backup_job})} "
                f"{int(sc.backup_last_success(now)[0])}",
            ]
        return "\n".join(lines) + "\n"


def _handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "slo-engine-simulator"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: str, content_type: str = "application/json") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                self._send(200, sim.render(), CONTENT_TYPE)
            elif path in ("/healthz", "/-/healthy"):
                self._send(200, '{"status": "ok"}')
            elif path == "/injections":
                self._send(200, json.dumps(sim.injections))
            else:
                self._send(404, '{"error": "not found: try /metrics or POST /inject"}')

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/inject":
                self._send(404, '{"error": "not found"}')
                return
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                record = sim.inject(params)
            except InjectionError as exc:
                self._send(400, json.dumps({"error": str(exc)}))
                return
            self._send(200, json.dumps(record))

    return Handler


def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 9100) -> ThreadingHTTPServer:
    """Bind and return the server (not yet serving); call `serve_forever()` on it."""
    server = ThreadingHTTPServer((host, port), _handler(sim))
    server.daemon_threads = True
    return server


def _parse_inject(text: str) -> dict[str, str]:
    try:
        return dict(part.split("=", 1) for part in text.split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--inject {text!r}: write key=value pairs, e.g. service=api,error_ratio=1,duration=300,after=60"
        ) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m engine.demo.simulator",
        description="Serve the demo traffic scenario's live metrics at /metrics.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument(
        "--start",
        type=int,
        default=None,
        help="scenario start (Unix seconds); use the backfilled history's start to continue it",
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=None,
        help="start the scenario at UTC midnight this many days ago (overrides --start), so a "
        "backfilled history written with the same value continues seamlessly",
    )
    parser.add_argument(
        "--write-history",
        metavar="PATH",
        default=None,
        help="write the scenario from its start until a minute ago as OpenMetrics for "
        "`promtool tsdb create-blocks-from openmetrics`, then exit",
    )
    parser.add_argument(
        "--history-scrape-interval",
        type=int,
        default=60,
        help="sample spacing of --write-history in seconds (60 keeps 30 days near 50 MB)",
    )
    parser.add_argument(
        "--inject",
        type=_parse_inject,
        action="append",
        default=[],
        help="outage at start-up, e.g. service=api,error_ratio=1,duration=300,after=60 (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    now = int(time.time())
    start = args.start if args.start is not None else now
    if args.history_days is not None:
        start = history_start(now, args.history_days)
    if args.write_history:
        # Stop a minute short of now: Prometheus rejects backfill that reaches its head block.
        history = dataclasses.replace(
            demo_scenario(start),
            duration=max(now - 60 - start, args.history_scrape_interval),
            scrape_interval=args.history_scrape_interval,
        )
        write_openmetrics(history, args.write_history)
        log.info("wrote %s (%d … %d)", args.write_history, history.start, history.end)
        return
    sim = Simulator(demo_scenario(start))
    for params in args.inject:
        try:
            sim.inject(params)
        except InjectionError as exc:
            parser.error(f"--inject: {exc}")
    server = serve(sim, args.host, args.port)
    log.info(
        "traffic simulator on http://%s:%d/metrics (scenario start %d)", args.host, args.port, start
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
