"""Benchmark: 3 replicas × 10,000 SLOs on one PostgreSQL and one Prometheus.

    .venv/bin/python bench/bench_replicas.py [--slos 10000] [--replicas 3] [--interval 15s]

Prints one JSON document. Not a test: figures depend on the machine and its load, which is
recorded alongside them.

Data: `bench_evaluate.py`'s synthetic services (`--jobs` jobs, `--days` of history at
`--scrape` seconds, backfilled with promtool) and its `--slos` SLO specs written as files,
plus one live service `live-0` served by the traffic simulator and scraped every second —
the outage. Every daemon is a real `slo-engine run` process (tests/harness/daemons.py) on a
real PostgreSQL (tests/harness/localpg.py), notifying a webhook sink.

Measured:
1. one replica alone on the database: warm cycle time (median / p95 / max of the
   `cycle at ... in Xs` lines after its first two cycles), RSS after them and its peak;
2. `--replicas` replicas on a fresh database: the same per replica (its shard's size, and
   whether it was the incident leader, whose cycle also decides for everyone);
3. failover: an outage starts on `live-0`; the replica that opens its incident is killed
   with -9 at once (its page just handed to delivery), then `--kills − 1` more leaders at a
   random moment of their cycle; each time, the seconds from the kill to the next leader's
   first decision; and how many `triggered` notifications the outage caused (deliveries and
   distinct notification ids: exactly one incident, one page).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the PostgreSQL and daemon harnesses

from bench_evaluate import machine, slo_documents, write_data  # noqa: E402
from harness.daemons import Daemon, wait_until  # noqa: E402
from harness.localpg import LocalPostgreSQL  # noqa: E402

from engine.demo.load import ServiceLoad  # noqa: E402
from engine.demo.scenario import Scenario  # noqa: E402
from engine.demo.simulator import Simulator, serve  # noqa: E402
from engine.demo.webhook_sink import WebhookSink  # noqa: E402
from engine.source.localprom import LocalPrometheus, backfill, free_port  # noqa: E402
from engine.spec.durations import Duration  # noqa: E402

LEADERSHIP = re.compile(r"is the incident leader now|lost the incident lease|was deposed")
CYCLE = re.compile(r"cycle at \S+: (\d+) SLOs .*? in ([\d.]+)s")
TAKEOVER = re.compile(r"first decision as incident leader \(token (\d+)\) at ([\d.]+)")
LIVE = "live-0"
LIVE_SPEC = {
    "apiVersion": "slo-engine/v1",
    "service": LIVE,
    "tier": "critical",
    "slos": [
        {
            "name": "availability",
            "objective": 99.99,
            "sli": {
                "events": {
                    "bad": f'sum(rate(http_requests_total{{job="{LIVE}",code="500"}}[{{{{window}}}}]))',
                    "total": f'sum(rate(http_requests_total{{job="{LIVE}"}}[{{{{window}}}}]))',
                }
            },
        }
    ],
}


# --------------------------------------------------------------------------- the stack


def write_specs(directory: Path, n: int, jobs: int) -> Path:
    """`bench_evaluate`'s SLOs as spec files. Its one-in-ten `sum without (code) (...)` is
    written `1 * sum(...)`: still a form the query planner does not decompose (the generic
    batches), and one the spec loader accepts without `group_by`."""
    directory.mkdir(parents=True, exist_ok=True)
    for document in [*slo_documents(n, jobs), LIVE_SPEC]:
        text = yaml.safe_dump(document, sort_keys=False)
        text = text.replace("sum without (code) (", "1 * sum(")
        (directory / f"{document['service']}.yaml").write_text(text)
    return directory


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.interval = Duration.parse(args.interval).seconds
        self.daemons: list[Daemon] = []

    def config(self, name: str, database: Any, prometheus: str, hook: str) -> Path:
        config = {
            "specs": str(self.workdir / "specs"),
            "prometheus_url": prometheus,
            "scrape_interval": f"{self.args.scrape}s",
            "state_dir": str(self.workdir / f"state-{name}"),
            "store": database.dsn,
            "store_password_file": str(database.password_file),
            "listen": f"127.0.0.1:{free_port()}",
            "interval": self.args.interval,
            "delivery_interval": "1s",
            "query_timeout": "60s",
            "webhooks": [hook],
            # The synthetic history burns ~1 SLO in 10: no rate limit may hold back the page.
            "incidents": {
                "resolve_after": "1h",
                "dependency_wait": "0s",
                "escalation": [],
                "rate_limit": {"max_notifications": 1_000_000, "window": "1h"},
            },
        }
        path = self.workdir / f"{name}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, config: Path, log_name: str) -> Daemon:
        port = int(yaml.safe_load(config.read_text())["listen"].rsplit(":", 1)[1])
        daemon = Daemon(config, self.workdir / f"{log_name}.log", port)
        self.daemons.append(daemon)
        daemon.start(wait=False)
        return daemon

    def stop_all(self) -> None:
        for daemon in self.daemons:
            daemon.stop()
        self.daemons = []


def rss_mib(daemon: Daemon) -> dict[str, float]:
    assert daemon.proc is not None
    found = {}
    for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": found["VmRSS"], "peak_rss_mib": found["VmHWM"]}


def leading(daemon: Daemon) -> bool:
    """From its log (its /metrics at 10,000 SLOs is too big to poll): the last change."""
    changes = LEADERSHIP.findall(daemon.output())
    return daemon.running and bool(changes) and changes[-1] == "is the incident leader now"


def cycles(daemon: Daemon) -> list[tuple[int, float]]:
    return [(int(m.group(1)), float(m.group(2))) for m in CYCLE.finditer(daemon.output())]


def warm_figures(daemon: Daemon, warm: int) -> dict[str, Any]:
    """Wait for `warm` cycles after the first two (cold fill, first shard change)."""
    wait_until(lambda: len(cycles(daemon)) >= warm + 2, 900, "warm cycles", every=1)
    done = cycles(daemon)[2 : warm + 2]
    times = [t for _, t in done]
    return {
        "slos_evaluated": done[-1][0],
        "leader": leading(daemon),
        "cold_cycle_s": cycles(daemon)[0][1],
        "warm_cycle_median_s": round(statistics.median(times), 3),
        "warm_cycle_p95_s": round(sorted(times)[max(0, math.ceil(0.95 * len(times)) - 1)], 3),
        "warm_cycle_max_s": round(max(times), 3),
        **rss_mib(daemon),
    }


# --------------------------------------------------------------------------- phases


def alone(bench: Bench, pg: LocalPostgreSQL, prometheus: str, sink: WebhookSink) -> dict:
    database = pg.create_database()
    daemon = bench.start(bench.config("alone", database, prometheus, sink.url), "alone")
    daemon.wait_healthy(600)
    figures = warm_figures(daemon, bench.args.warm_cycles)
    bench.stop_all()
    return figures


def fleet(
    bench: Bench, pg: LocalPostgreSQL, prometheus: str, sink: WebhookSink, sim: Simulator
) -> dict:
    database = pg.create_database()
    configs = [
        bench.config(f"replica-{i}", database, prometheus, sink.url)
        for i in range(bench.args.replicas)
    ]
    replicas = [bench.start(config, f"replica-{i}-0") for i, config in enumerate(configs)]
    for daemon in replicas:
        daemon.wait_healthy(600)
    per_replica = [warm_figures(daemon, bench.args.warm_cycles) for daemon in replicas]
    failovers, pages = failover(bench, sink, sim)
    return {"per_replica": per_replica, "failover_s": failovers, **pages}


def failover(bench: Bench, sink: WebhookSink, sim: Simulator) -> tuple[list[float], dict]:
    """Kill -9 the replica that opens the outage's incident, then more leaders."""
    sim.inject({"service": LIVE, "error_ratio": "1", "duration": "3600"})
    opened = re.compile(rf"incident \S+ opened: \S+ {LIVE} ")

    def opener() -> Daemon | None:
        return next((d for d in bench.daemons if d.running and opened.search(d.output())), None)

    victim = wait_until(opener, 300, "the outage's incident", every=0.1)
    failovers = []
    for kill in range(bench.args.kills):
        if kill:
            victim = wait_until(
                lambda: next((d for d in bench.daemons if leading(d)), None), 120, "a leader"
            )
            time.sleep(random.uniform(0, bench.interval))
        killed = victim.kill()
        failovers.append(round(next_takeover(bench, killed) - killed, 2))
        restarted = bench.start(victim.config, f"{victim.log.stem}-{kill}")
        restarted.wait_healthy(600)
        wait_until(lambda d=restarted: len(cycles(d)) >= 1, 600, "the restart's first cycle")
    time.sleep(3 * bench.interval)  # a duplicate would arrive by now
    live = [r for r in sink.events("triggered", service=LIVE)]
    return failovers, {
        "outage_triggered_deliveries": len(live),
        "outage_triggered_notifications": len({r.headers.get("Idempotency-Key") for r in live}),
        "outage_incidents": len({r.incident.get("id") for r in live}),
    }


def next_takeover(bench: Bench, killed: float) -> float:
    def found() -> float | None:
        times = [
            float(m.group(2))
            for d in bench.daemons
            if d.running
            for m in TAKEOVER.finditer(d.output())
            if float(m.group(2)) > killed
        ]
        return min(times, default=None)

    return float(wait_until(found, 10 * bench.interval, "a takeover", every=0.05))


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slos", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--days", type=float, default=2.0)
    parser.add_argument("--scrape", type=int, default=60)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--interval", default="15s")
    parser.add_argument("--warm-cycles", type=int, default=5)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": machine(),
        "load_before": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
        "slos": args.slos + 1,
        "interval": args.interval,
    }
    end = (int(time.time()) // 60 - 2) * 60
    om = workdir / "data.om"
    write_data(om, args.jobs, end - int(args.days * 86400), end, args.scrape)
    tsdb = backfill(om, workdir / "tsdb")
    om.unlink()
    write_specs(workdir / "specs", args.slos, args.jobs)

    live = Scenario(
        start=int(time.time()) - 3600,
        duration=30 * 86_400,
        services=[ServiceLoad(job=LIVE, rps=20.0, error_ratio=0.0, slow_ratio=0.0)],
    )
    sim = Simulator(live)
    sim_server = serve(sim, "127.0.0.1", free_port())
    threading.Thread(target=sim_server.serve_forever, daemon=True).start()
    scrape = {
        "job_name": "live",
        "honor_labels": True,
        "scrape_interval": "1s",
        "static_configs": [{"targets": [f"127.0.0.1:{sim_server.server_address[1]}"]}],
    }
    bench = Bench(args, workdir)
    with (
        LocalPrometheus(tsdb, scrape_configs=[scrape]) as prom,
        LocalPostgreSQL() as pg,
        WebhookSink() as sink,
    ):
        try:
            report["one_replica"] = alone(bench, pg, prom.url, sink)
            print(json.dumps(report["one_replica"]), file=sys.stderr)
            report["replicas"] = fleet(bench, pg, prom.url, sink, sim)
        finally:
            bench.stop_all()
    sim_server.shutdown()
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
