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
from pathlib import Path
from typing import Any

import requests
import yaml
from rich.console import Console
from rich.table import Table

from engine.demo.webhook_sink import Received, WebhookSink
from engine.incidents.config import IncidentConfig
from engine.source.localprom import LocalPrometheus, backfill, free_port

REPO = Path(__file__).resolve().parents[2]
HISTORY_DAYS = 30
INTERVAL = "10s"
# Piped (CI, a log file): no terminal width to respect; keep lines whole.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


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


def _alive(proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    if proc.poll() is not None:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise DemoError(f"{name} exited with code {proc.returncode}:\n{tail}")


def _step(text: str) -> None:
    console.print(f"[bold cyan]▶[/bold cyan] {text}")


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


def _slo_table(slos: list[dict[str, Any]]) -> Table:
    table = Table(title="SLOs (from GET /api/v1/slos)", header_style="bold")
    for column in ("SLO", "status", "burn 5m", "burn 1h", "budget left"):
        table.add_column(column, justify="left" if column in ("SLO", "status") else "right")
    style = {"ok": "green", "ticket": "yellow", "page": "bold red", "exhausted": "magenta"}
    for slo in slos:
        burn = slo.get("burn_rate") or {}

        def cell(value: float | None, fmt: str, suffix: str = "×") -> str:
            return "—" if value is None else format(value, fmt) + suffix

        table.add_row(
            slo["id"],
            f"[{style.get(slo['status'], 'dim')}]{slo['status']}[/]",
            cell(burn.get("5m"), ".1f"),
            cell(burn.get("1h"), ".1f"),
            cell(
                None
                if slo.get("error_budget_remaining") is None
                else slo["error_budget_remaining"] * 100,
                ".2f",
                "%",
            ),
        )
    return table


def _print_notification(item: Received) -> None:
    incident = item.incident
    console.print(
        f"  [bold magenta]webhook ←[/bold magenta] {item.event:<12} {incident.get('id')} "
        f"[bold]{incident.get('severity')}[/bold] {incident.get('service')}: "
        f"{incident.get('summary')}"
    )


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
    python = sys.executable

    _step("generated rules and dashboards")
    rules_dir, dashboards_dir = _rules(work)
    rule_files = sorted(rules_dir.glob("*.rules.yml"))
    if not rule_files:
        raise DemoError(f"no *.rules.yml in {rules_dir}")

    sim_port = free_port()
    sim_log = work / "simulator.log"
    _step(f"starting the traffic simulator on http://127.0.0.1:{sim_port}/metrics")
    simulator = processes.popen(
        "simulator",
        [
            python,
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

    _step("injecting a complete outage of the critical `api` service (all requests fail)")
    injected = requests.post(
        f"http://127.0.0.1:{sim_port}/inject",
        params={"service": "api", "error_ratio": "1", "duration": "15m"},
        timeout=5,
    )
    if injected.status_code != 200:
        raise DemoError(f"the simulator refused the outage: {injected.text}")
    injected_at = time.monotonic()
    console.print("  every api request fails from now on, for 15 minutes")

    _step(f"writing {HISTORY_DAYS} days of traffic history and backfilling it (promtool)")
    history = work / "history.om"
    done = subprocess.run(
        [
            python,
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

    api_port = free_port()
    _step("starting Prometheus (backfilled history + live scrape + generated rules)")
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

    sink = WebhookSink(on_receive=_print_notification).start()
    processes.add("webhook sink", sink.stop)
    token = secrets.token_hex(20)
    tokens = work / "api-tokens"
    tokens.write_text(token + "\n")
    tokens.chmod(0o600)
    config = {
        "specs": str(REPO / "slo_specs"),
        "prometheus_url": prometheus.url,
        "state_dir": str(work / "state"),
        "listen": f"127.0.0.1:{api_port}",
        "interval": INTERVAL,
        "api_token_file": str(tokens),
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
    api = f"http://127.0.0.1:{api_port}"
    _step(f"starting `slo-engine run` (interval {INTERVAL}), webhook sink at {sink.url}")
    daemon = processes.popen(
        "slo-engine", [python, "-m", "engine", "run", "--config", str(config_file)], daemon_log
    )

    def ready() -> bool:
        _alive(daemon, "slo-engine", daemon_log)
        response = _get(f"{api}/readyz")
        return response is not None and response.status_code == 200

    _wait("slo-engine to become ready (first evaluation cycle)", ready, 90, daemon_log)
    slos = _get(f"{api}/api/v1/slos").json()["slos"]  # type: ignore[union-attr]
    console.print(_slo_table(slos))
    console.print(
        "  waiting for the page: the 1h window must lose 1.44 % of its requests (14.4× the "
        "budget rate; about a minute of outage) while the 5m window confirms it…"
    )

    def incident() -> dict[str, Any] | None:
        _alive(daemon, "slo-engine", daemon_log)
        response = _get(f"{api}/api/v1/incidents", params={"status": "open"})
        if response is None or response.status_code != 200:
            return None
        found = [i for i in response.json()["incidents"] if i["service"] == "api"]
        return found[0] if found else None

    opened = _wait("an api incident", incident, 240, daemon_log)
    console.print(
        f"  incident {opened['id']} opened ({opened['severity']}) after "
        f"{time.monotonic() - injected_at:.0f}s of outage, "
        f"{time.monotonic() - started:.0f}s since the demo started"
    )

    def notified() -> bool:
        _alive(daemon, "slo-engine", daemon_log)
        return bool(sink.events("triggered", service="api"))

    _wait("the page to reach the webhook sink", notified, 120, daemon_log)
    console.print(f"  paged {time.monotonic() - started:.0f}s since the demo started")
    time.sleep(1)
    detail = _get(f"{api}/api/v1/incidents/{opened['id']}").json()  # type: ignore[union-attr]
    slos = _get(f"{api}/api/v1/slos").json()["slos"]  # type: ignore[union-attr]
    console.print(_slo_table(slos))
    console.print(
        f"[bold red]{detail['id']}[/bold red] [bold]{detail['severity']}[/bold] "
        f"{detail['service']} — {detail['summary']}"
    )
    for entry in detail["timeline"]:
        console.print(f"  {entry['time']}  {entry['kind']:<16} {entry['message']}")
    pages = sink.events(service="api")
    console.print(f"  notifications received by the webhook sink: {len(pages)}")

    console.print()
    console.print("[bold]Where things are[/bold]")
    console.print(f"  API            {api}/api/v1/slos   {api}/api/v1/incidents   {api}/docs")
    console.print(f"  status page    {api}/status")
    console.print(f"  metrics        {api}/metrics   (readiness: {api}/readyz)")
    console.print(f"  Prometheus     {prometheus.url}/alerts  (generated rules: {rules_dir})")
    console.print(
        f"  dashboards     {dashboards_dir}  (Grafana JSON; `docker compose up` serves them)"
    )
    console.print(f"  simulator      http://127.0.0.1:{sim_port}/metrics   (POST /inject for more)")
    console.print(f"  logs           {work}")
    console.print(
        f"  acknowledge:   curl -X POST -H 'Authorization: Bearer {token}' "
        f"-H 'Content-Type: application/json' -d '{{\"by\": \"you\"}}' "
        f"{api}/api/v1/incidents/{detail['id']}/ack"
    )
    console.print()
    if duration is None:
        console.print("[bold]Running. Ctrl-C stops everything.[/bold]")
        while True:
            _alive(daemon, "slo-engine", daemon_log)
            time.sleep(1)
    remaining = duration - (time.monotonic() - started)
    console.print(f"[bold]Running for {max(remaining, 0):.0f}s more (DEMO_DURATION).[/bold]")
    while time.monotonic() - started < duration:
        _alive(daemon, "slo-engine", daemon_log)
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
