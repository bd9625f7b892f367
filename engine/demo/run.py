"""`make demo`: the whole loop on one machine, in about two minutes.

    python -m engine.demo                 # until Ctrl-C
    DEMO_DURATION=180 python -m engine.demo   # or --duration 180: stop by itself

What it does, in order (each step says what failed if it fails):
1. starts the traffic simulator (live api + database metrics) and injects a complete `api`
   outage into it right away, so the outage runs while the rest starts up;
2. writes the scenario's last 30 days as OpenMetrics and backfills them with promtool (the
   live metrics continue that history without a counter reset);
3. starts Prometheus on the backfilled data, scraping the simulator every 5s, with the
   generated rules (alerts/*.rules.yml) loaded;
4. starts a local webhook sink (prints what arrives) and `slo-engine run` (10s interval);
5. prints the SLO table, then the incident with its severity, timeline and notifications as
   soon as the page arrives, and where the API, status page, rules and dashboards are.

Everything it starts runs in its own process group and is stopped by pid on Ctrl-C, on
SIGTERM, at the end of DEMO_DURATION, or on any failure.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from engine.demo.screen import (
    console,
    print_incident,
    print_notification,
    print_where,
    slo_table,
    step,
)
from engine.demo.webhook_sink import WebhookSink
from engine.incidents.config import IncidentConfig
from engine.source.localprom import LocalPrometheus, backfill, free_port

REPO = Path(__file__).resolve().parents[2]
HISTORY_DAYS = 30
INTERVAL = "10s"


class DemoError(RuntimeError):
    """A step failed; the message says which and what to do."""


class Processes:
    """Everything the demo started, stopped in reverse order, each by its own pid."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._stopped = False

    def add(self, name: str, stop: Callable[[], None]) -> None:
        with self._lock:
            self._stops.append((name, stop))

    def popen(self, name: str, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Own session: Ctrl-C reaches the demo only, which stops children in order.
                start_new_session=True,
                cwd=REPO,
            )

        def stop() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)

        self.add(name, stop)
        return proc

    def stop_all(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            stops = list(reversed(self._stops))
        for name, stop in stops:
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                console.print(f"[yellow]could not stop {name}: {exc}[/yellow]")


def _wait(what: str, condition: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def _get(url: str, **kw: Any) -> requests.Response | None:
    try:
        return requests.get(url, timeout=3, **kw)
    except requests.RequestException:
        return None


def _api_get(daemon: _Daemon, path: str, **kw: Any) -> requests.Response | None:
    """GET from the daemon's API with its token (every API read needs the read role)."""
    return _get(f"{daemon.api}{path}", headers={"Authorization": f"Bearer {daemon.token}"}, **kw)


def _alive(proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    if proc.poll() is not None:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise DemoError(f"{name} exited with code {proc.returncode}:\n{tail}")


def _rules(work: Path) -> tuple[Path, Path]:
    """The repository's generated rules when they match the specs, else fresh ones in `work`."""
    slo_engine = [sys.executable, "-m", "engine"]
    check = subprocess.run(
        [*slo_engine, "generate", "--check"], cwd=REPO, capture_output=True, text=True
    )
    if check.returncode == 0:
        return REPO / "alerts", REPO / "dashboards"
    rules, dashboards = work / "alerts", work / "dashboards"
    done = subprocess.run(
        [*slo_engine, "generate", "--rules-dir", str(rules), "--dashboards-dir", str(dashboards)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise DemoError(f"`slo-engine generate` failed:\n{done.stderr or done.stdout}")
    return rules, dashboards


def run(duration: float | None, keep: bool) -> int:
    started = time.monotonic()
    missing = [b for b in ("prometheus", "promtool") if shutil.which(b) is None]
    if missing:
        raise DemoError(
            f"missing {', '.join(missing)} — install with: sudo apt-get install -y prometheus "
            "(or run `make deps` as root)"
        )
    work = Path(tempfile.mkdtemp(prefix="slo-engine-demo-"))
    processes = Processes()
    atexit.register(processes.stop_all)
    if not keep:
        atexit.register(shutil.rmtree, work, True)

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    console.print(f"[bold]slo-engine demo[/bold] — working directory {work}")
    try:
        return _run(work, processes, started, duration)
    except KeyboardInterrupt:
        console.print("\n[bold]stopping…[/bold]")
        return 0
    finally:
        processes.stop_all()
        console.print("stopped everything the demo started.")


def _run(work: Path, processes: Processes, started: float, duration: float | None) -> int:
    """The demo's phases, in order; each raises DemoError saying what failed."""
    rules_dir, dashboards_dir, rule_files = _generated_rules(work)
    sim_port = _start_simulator(work, processes)
    injected_at = _inject_outage(sim_port)
    tsdb = _backfill_history(work)
    api_port = free_port()
    prometheus = _start_prometheus(tsdb, rule_files, sim_port, api_port, processes)
    daemon = _start_daemon(work, processes, prometheus.url, api_port)
    console.print(slo_table(_api_get(daemon, "/api/v1/slos").json()["slos"]))  # type: ignore[union-attr]
    opened = _wait_for_page(daemon, started, injected_at)
    detail = _print_incident(daemon, opened["id"])
    print_where(
        daemon.api,
        daemon.token,
        detail["id"],
        prometheus.url,
        rules_dir,
        dashboards_dir,
        sim_port,
        work,
    )
    return _keep_running(daemon, started, duration)


def _generated_rules(work: Path) -> tuple[Path, Path, list[Path]]:
    step("generated rules and dashboards")
    rules_dir, dashboards_dir = _rules(work)
    rule_files = sorted(rules_dir.glob("*.rules.yml"))
    if not rule_files:
        raise DemoError(f"no *.rules.yml in {rules_dir}")
    return rules_dir, dashboards_dir, rule_files


def _start_simulator(work: Path, processes: Processes) -> int:
    """The live traffic simulator on a free port, once it answers /healthz; its port."""
    sim_port = free_port()
    sim_log = work / "simulator.log"
    step(f"starting the traffic simulator on http://127.0.0.1:{sim_port}/metrics")
    simulator = processes.popen(
        "simulator",
        [
            sys.executable,
            "-m",
            "engine.demo.simulator",
            f"--port={sim_port}",
            f"--history-days={HISTORY_DAYS}",
        ],
        sim_log,
    )
    _wait(
        "the simulator",
        lambda: (
            _alive(simulator, "the simulator", sim_log)
            or _get(f"http://127.0.0.1:{sim_port}/healthz")
        ),
        20,
        sim_log,
    )
    return sim_port


def _inject_outage(sim_port: int) -> float:
    """Every api request fails from now on; when the outage started (monotonic)."""
    step("injecting a complete outage of the critical `api` service (all requests fail)")
    injected = requests.post(
        f"http://127.0.0.1:{sim_port}/inject",
        params={"service": "api", "error_ratio": "1", "duration": "15m"},
        timeout=5,
    )
    if injected.status_code != 200:
        raise DemoError(f"the simulator refused the outage: {injected.text}")
    injected_at = time.monotonic()
    console.print("  every api request fails from now on, for 15 minutes")
    return injected_at


def _backfill_history(work: Path) -> Path:
    """The scenario's last HISTORY_DAYS days as OpenMetrics, backfilled; the TSDB directory."""
    step(f"writing {HISTORY_DAYS} days of traffic history and backfilling it (promtool)")
    history = work / "history.om"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.demo.simulator",
            f"--history-days={HISTORY_DAYS}",
            f"--write-history={history}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise DemoError(f"writing the history failed:\n{done.stderr}")
    tsdb = backfill(history, work / "tsdb")
    history.unlink()
    return tsdb


def _start_prometheus(
    tsdb: Path, rule_files: list[Path], sim_port: int, api_port: int, processes: Processes
) -> LocalPrometheus:
    step("starting Prometheus (backfilled history + live scrape + generated rules)")
    prometheus = LocalPrometheus(
        tsdb,
        rule_files=rule_files,
        scrape_configs=[
            {
                "job_name": "simulator",
                "honor_labels": True,
                "scrape_interval": "5s",
                "static_configs": [{"targets": [f"127.0.0.1:{sim_port}"]}],
            },
            {
                "job_name": "slo-engine",
                "scrape_interval": "10s",
                "static_configs": [{"targets": [f"127.0.0.1:{api_port}"]}],
            },
        ],
    )
    processes.add("prometheus", prometheus.stop)
    try:
        prometheus.start()
    except Exception as exc:
        raise DemoError(f"Prometheus did not start: {exc}") from None
    return prometheus


@dataclass(frozen=True)
class _Daemon:
    """The running `slo-engine run`: its API, its log, its token and the sink it notifies."""

    proc: subprocess.Popen[bytes]
    log: Path
    api: str
    token: str
    sink: WebhookSink

    def check_alive(self) -> None:
        _alive(self.proc, "slo-engine", self.log)


def _start_daemon(work: Path, processes: Processes, prometheus_url: str, api_port: int) -> _Daemon:
    """A webhook sink, then `slo-engine run` notifying it, once its first cycle is done."""
    sink = WebhookSink(on_receive=print_notification).start()
    processes.add("webhook sink", sink.stop)
    token = secrets.token_hex(20)
    tokens = work / "api-tokens"
    tokens.write_text(token + "\n")
    tokens.chmod(0o600)
    config = {
        "specs": str(REPO / "slo_specs"),
        "prometheus_url": prometheus_url,
        "state_dir": str(work / "state"),
        "listen": f"127.0.0.1:{api_port}",
        "interval": INTERVAL,
        "api_token_file": str(tokens),
        # The printed /status link opens in a browser without a token.
        "public_status_page": True,
        "webhooks": [sink.url],
        "dashboard_url": "http://127.0.0.1:3000",
    }
    if "dependency_wait" in IncidentConfig.model_fields:
        # api depends on database: its page waits for a database incident to take it over.
        # The runbook default is 1m; the demo waits 15s so the page comes sooner.
        config["incidents"] = {"dependency_wait": "15s"}
    config_file = work / "slo-engine.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    daemon_log = work / "slo-engine.log"
    step(f"starting `slo-engine run` (interval {INTERVAL}), webhook sink at {sink.url}")
    proc = processes.popen(
        "slo-engine",
        [sys.executable, "-m", "engine", "run", "--config", str(config_file)],
        daemon_log,
    )
    daemon = _Daemon(proc, daemon_log, f"http://127.0.0.1:{api_port}", token, sink)

    def ready() -> bool:
        daemon.check_alive()
        response = _get(f"{daemon.api}/readyz")
        return response is not None and response.status_code == 200

    _wait("slo-engine to become ready (first evaluation cycle)", ready, 90, daemon_log)
    return daemon


def _wait_for_page(daemon: _Daemon, started: float, injected_at: float) -> dict[str, Any]:
    """Until the api incident is open and its page reached the sink; the incident."""
    console.print(
        "  waiting for the page: the 1h window must lose 1.44 % of its requests (14.4× the "
        "budget rate; about a minute of outage) while the 5m window confirms it…"
    )

    def incident() -> dict[str, Any] | None:
        daemon.check_alive()
        response = _api_get(daemon, "/api/v1/incidents", params={"status": "open"})
        if response is None or response.status_code != 200:
            return None
        found = [i for i in response.json()["incidents"] if i["service"] == "api"]
        return found[0] if found else None

    opened: dict[str, Any] = _wait("an api incident", incident, 240, daemon.log)
    console.print(
        f"  incident {opened['id']} opened ({opened['severity']}) after "
        f"{time.monotonic() - injected_at:.0f}s of outage, "
        f"{time.monotonic() - started:.0f}s since the demo started"
    )

    def notified() -> bool:
        daemon.check_alive()
        return bool(daemon.sink.events("triggered", service="api"))

    _wait("the page to reach the webhook sink", notified, 120, daemon.log)
    console.print(f"  paged {time.monotonic() - started:.0f}s since the demo started")
    return opened


def _print_incident(daemon: _Daemon, incident_id: str) -> dict[str, Any]:
    """Fetch the incident and the SLOs again a second after the page, and print them."""
    time.sleep(1)
    detail: dict[str, Any] = _api_get(daemon, f"/api/v1/incidents/{incident_id}").json()  # type: ignore[union-attr]
    slos = _api_get(daemon, "/api/v1/slos").json()["slos"]  # type: ignore[union-attr]
    print_incident(detail, slos)
    pages = daemon.sink.events(service="api")
    console.print(f"  notifications received by the webhook sink: {len(pages)}")
    return detail


def _keep_running(daemon: _Daemon, started: float, duration: float | None) -> int:
    """Until Ctrl-C, or until `duration` seconds after the start; stops if the daemon dies."""
    if duration is None:
        console.print("[bold]Running. Ctrl-C stops everything.[/bold]")
        while True:
            daemon.check_alive()
            time.sleep(1)
    remaining = duration - (time.monotonic() - started)
    console.print(f"[bold]Running for {max(remaining, 0):.0f}s more (DEMO_DURATION).[/bold]")
    while time.monotonic() - started < duration:
        daemon.check_alive()
        time.sleep(1)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m engine.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=float(os.environ["DEMO_DURATION"]) if os.environ.get("DEMO_DURATION") else None,
        help="stop by itself after this many seconds (also DEMO_DURATION); default: Ctrl-C",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (logs, TSDB, state)"
    )
    args = parser.parse_args(argv)
    try:
        code = run(args.duration, args.keep)
    except DemoError as exc:
        console.print(f"[bold red]demo failed:[/bold red] {exc}")
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
