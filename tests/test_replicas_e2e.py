"""Replicas for real: `slo-engine run` processes sharing one PostgreSQL, a real Prometheus
scraping the traffic simulator, real receivers on loopback.

1. A replica cut from the database (its connections go through a proxy that the test
   closes) sends nothing — no page, no Alertmanager re-post of its stale open incidents —
   once its lease has run out; the other replica takes over the paging.
2. Three replicas through a live outage: the incident leader is killed with -9 three times
   (right after it opened incidents, then right after each successor's first decision),
   then all replicas restart one by one while another outage starts. Every outage pages
   exactly once (one `triggered` per incident; a re-delivery after a kill between a send
   and its bookkeeping carries the same notification id, which receivers fold), none is
   lost, nothing resolves, and each takeover decides within two intervals of the kill.

The SLOs have a 99.99 % objective, so a complete outage pages at the first evaluation step
(1 minute) it is visible in; outages start 15 s or more before a minute boundary.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.daemons import Daemon, TcpProxy, wait_until

from engine.daemon.shards import owner
from engine.demo.load import Incident, ServiceLoad
from engine.demo.scenario import Scenario, write_openmetrics
from engine.demo.simulator import Simulator, serve
from engine.demo.webhook_sink import Received, WebhookSink
from engine.source.localprom import LocalPrometheus, backfill, free_port

pytest.importorskip("psycopg")
pytestmark = [pytest.mark.prometheus, pytest.mark.postgresql, pytest.mark.slow]

INTERVAL = 2.0
SERVICES = [f"svc-{i}" for i in range(9)]
BURNING = "svc-0"  # its outage began before the test: it pages at the first cycle
SPEC = """apiVersion: slo-engine/v1
service: {service}
tier: critical
slos:
  - name: availability
    objective: 99.99
    period: 30d
    sli:
      events:
        bad: sum(rate(http_requests_total{{job="{service}",code=~"5.."}}[{{{{window}}}}]))
        total: sum(rate(http_requests_total{{job="{service}"}}[{{{{window}}}}]))
"""
LEADER = r"first decision as incident leader \(token (\d+)\) at ([\d.]+)"


@dataclasses.dataclass
class Stack:
    prometheus: LocalPrometheus
    simulator: Simulator
    specs: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("needs the prometheus and promtool binaries (apt-get install prometheus)")
    work = tmp_path_factory.mktemp("replicas")
    now = int(time.time())
    start = (now - 3 * 3600) // 60 * 60
    burning = Incident(start=now - 600 - start, end=now - start + 86_400, error_ratio=1.0)
    services = [
        ServiceLoad(
            job=name,
            rps=20.0,
            error_ratio=0.0,
            slow_ratio=0.0,
            incidents=(burning,) if name == BURNING else (),
        )
        for name in SERVICES
    ]
    scenario = Scenario(start=start, duration=86_400 * 365, services=services)
    history = dataclasses.replace(scenario, duration=now - 60 - start)
    tsdb = backfill(write_openmetrics(history, work / "history.om"), work / "tsdb")
    simulator = Simulator(scenario)
    server = serve(simulator, "127.0.0.1", free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    prometheus = LocalPrometheus(
        tsdb,
        scrape_configs=[
            {
                "job_name": "simulator",
                "honor_labels": True,
                "scrape_interval": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{server.server_address[1]}"]}],
            }
        ],
    ).start()
    specs = work / "specs"
    specs.mkdir()
    for name in SERVICES:
        (specs / f"{name}.yaml").write_text(SPEC.format(service=name))
    try:
        yield Stack(prometheus, simulator, specs)
    finally:
        prometheus.cleanup()
        server.shutdown()
        server.server_close()


class Fleet:
    """The replicas of one test: configs, processes, and what they sent."""

    def __init__(self, stack: Stack, database: Any, tmp_path: Path, hooks: WebhookSink) -> None:
        self.stack, self.database, self.tmp_path, self.hooks = stack, database, tmp_path, hooks
        self.daemons: list[Daemon] = []

    def config(self, name: str, dsn: str, **extra: Any) -> Path:
        config = {
            "specs": str(self.stack.specs),
            "prometheus_url": self.stack.prometheus.url,
            "state_dir": str(self.tmp_path / f"state-{name}"),
            "store": dsn,
            "store_password_file": str(self.database.password_file),
            "listen": f"127.0.0.1:{free_port()}",
            "interval": f"{INTERVAL:g}s",
            "delivery_interval": "1s",
            "escalation_interval": "1s",
            "shutdown_flush_timeout": "2s",
            "query_timeout": "2s",
            "query_retries": 0,
            "webhooks": [f"http://127.0.0.1:{self.hooks.port}/{name}"],
            "incidents": {"resolve_after": "10m", "dependency_wait": "0s", "escalation": []},
            **extra,
        }
        path = self.tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, name: str, dsn: str | None = None, **extra: Any) -> Daemon:
        path = self.config(name, dsn or self.database.dsn, **extra)
        port = int(yaml.safe_load(path.read_text())["listen"].rsplit(":", 1)[1])
        return self._launch(Daemon(path, self.tmp_path / f"{name}-0.log", port), wait=True)

    def restart(self, old: Daemon, wait: bool) -> Daemon:
        """The same replica again (same config and port), as a new process and log."""
        log = old.log.with_name(f"{old.config.stem}-{len(self.daemons)}.log")
        return self._launch(Daemon(old.config, log, old.port), wait)

    def _launch(self, daemon: Daemon, wait: bool) -> Daemon:
        self.daemons.append(daemon)
        return daemon.start(wait=wait)

    def running(self) -> list[Daemon]:
        return [d for d in self.daemons if d.running]

    def leader(self) -> Daemon | None:
        leading = [d for d in self.running() if d.gauge("slo_engine_replica_leader")]
        return leading[0] if len(leading) == 1 else None

    def stop(self) -> None:
        for daemon in self.daemons:
            daemon.stop()


@pytest.fixture
def fleet(stack: Stack, postgresql_database: Any, tmp_path: Path) -> Iterator[Fleet]:
    with WebhookSink() as hooks:
        replicas = Fleet(stack, postgresql_database, tmp_path, hooks)
        try:
            yield replicas
        finally:
            replicas.stop()


def triggered(received: list[Received]) -> dict[str, list[Received]]:
    """Deliveries of `triggered` by incident (dedup_key)."""
    found: dict[str, list[Received]] = {}
    for r in received:
        if r.event == "triggered":
            found.setdefault(r.body["dedup_key"], []).append(r)
    return found


def paged(received: list[Received]) -> set[str]:
    """The services paged (wait_for conditions get the list: the sink's lock is held)."""
    return {r.incident["service"] for r in received if r.event == "triggered"}


def shards_settled(fleet: Fleet) -> bool:
    """Whether every running replica evaluates what `owner()` assigns it among them all."""
    owned: dict[str, float] = {}
    for daemon in fleet.running():
        for key, value in daemon.metrics().items():
            if key.startswith("slo_engine_replica_slos_owned{"):
                owned[key.split('replica="', 1)[1].split('"', 1)[0]] = value
    expected = Counter(owner(f"{s}/availability", list(owned)) for s in SERVICES)
    return len(owned) == len(fleet.running()) and all(
        owned[name] == expected.get(name, 0) for name in owned
    )


def inject_before_a_minute_boundary(stack: Stack, services: list[str]) -> float:
    """Start complete outages now if the next minute boundary is ≥ 15 s away (else wait
    for one that is): the first evaluation step after it sees them. Returns that boundary."""
    now = time.time()
    boundary = math.ceil(now / 60) * 60
    if boundary - now < 15:
        time.sleep(boundary - now + 0.5)
        boundary += 60
    for service in services:
        stack.simulator.inject({"service": service, "error_ratio": "1", "duration": "3600"})
    return boundary


def test_a_replica_cut_from_the_database_sends_nothing_after_its_lease(
    fleet: Fleet, postgresql_server: Any
) -> None:
    with WebhookSink() as alertmanager, TcpProxy(postgresql_server.port) as proxy:
        am = {"type": "alertmanager", "resend_interval": "1s"}
        cut_dsn = fleet.database.dsn.replace(f":{postgresql_server.port}/", f":{proxy.port}/")
        a = fleet.start(
            "a", cut_dsn, notifiers={"am": {**am, "url": f"http://127.0.0.1:{alertmanager.port}/a"}}
        )
        wait_until(lambda: a.gauge("slo_engine_replica_leader") == 1, 20, "a to lead")
        b = fleet.start(
            "b", notifiers={"am": {**am, "url": f"http://127.0.0.1:{alertmanager.port}/b"}}
        )
        fleet.hooks.wait_for(lambda got: any(r.path == "/a" for r in got), timeout=30)
        wait_until(
            lambda: any(r.path.startswith("/a/") for r in alertmanager.received), 20, "a sync"
        )

        cut = time.time()
        proxy.close()
        wait_until(lambda: b.gauge("slo_engine_replica_leader") == 1, 4 * INTERVAL, "b to lead")
        wait_until(
            lambda: any(r.path.startswith("/b/") and r.at > cut for r in alertmanager.received),
            4 * INTERVAL,
            "b to take over the Alertmanager sync",
        )
        time.sleep(3 * INTERVAL)  # a keeps running, cut off, with its stale incident memory

        sent = [*fleet.hooks.received, *alertmanager.received]
        from_a = [r.at for r in sent if r.path == "/a" or r.path.startswith("/a/")]
        # Its lease lasts one interval from its last renewal, which was before the cut.
        assert max(from_a) < cut + INTERVAL, f"a sent {max(from_a) - cut:.2f}s after the cut"
        assert a.running and a.gauge("slo_engine_replica_leader") == 0
        assert "cannot heartbeat" in a.output()
        (page,) = fleet.hooks.events("triggered")  # the burning service, paged once, by a
        assert page.incident["service"] == BURNING and page.path == "/a"


def _kill_at(fleet: Fleet, pattern: str, after: float, timeout: float) -> tuple[Daemon, float]:
    """Wait for `pattern` in a running replica's log at or after `after` (epoch); kill -9
    that replica at once. Returns it and the kill time."""

    def logged() -> Daemon | None:
        if time.time() < after:
            return None
        return next((d for d in fleet.running() if d.lines(pattern)), None)

    victim = wait_until(logged, timeout, f"{pattern!r} in a replica's log", every=0.02)
    return victim, victim.kill()


def _next_takeover(fleet: Fleet, killed_at: float, timeout: float) -> tuple[Daemon, float, int]:
    """The replica that decided first as leader after `killed_at`: it, when, its token."""

    def found() -> tuple[Daemon, float, int] | None:
        for daemon in fleet.running():
            for match in daemon.lines(LEADER):
                if float(match.group(2)) > killed_at:
                    return daemon, float(match.group(2)), int(match.group(1))
        return None

    return wait_until(found, timeout, "a new incident leader's first decision", every=0.05)


def test_three_replicas_kill_the_leader_three_times_then_restart_all(fleet: Fleet) -> None:
    stack, hooks = fleet.stack, fleet.hooks
    for name in ("r1", "r2", "r3"):
        fleet.start(name)
    wait_until(fleet.leader, 20, "one leader")
    wait_until(
        lambda: all(d.gauge("slo_engine_replica_members") == 3 for d in fleet.daemons),
        20,
        "three members everywhere",
    )
    # Each replica evaluates exactly the shard rendezvous hashing gives it among the three.
    wait_until(lambda: shards_settled(fleet), 10, "each replica to evaluate its shard")
    hooks.wait_for(lambda got: BURNING in paged(got), timeout=30)

    # A live outage on three more services. Kill 1: the leader, right after it opened one
    # of their incidents (its pages just handed to delivery). Kill 2: its successor, right
    # after its first decision. Kill 3: the next, somewhere in its cycle, once the killed
    # ones are back as followers. Each victim is restarted as a new process.
    boundary = inject_before_a_minute_boundary(stack, ["svc-1", "svc-2", "svc-3"])
    victim, killed = _kill_at(fleet, r"incident INC-\S+ opened: \S+ svc-[123] ", boundary, 90)
    takeovers, tokens = [], []
    for round_ in range(3):
        leader, decided, token = _next_takeover(fleet, killed, 6 * INTERVAL)
        takeovers.append(decided - killed)
        tokens.append(token)
        fleet.restart(victim, wait=False)
        if round_ == 0:
            victim, killed = leader, leader.kill()
        elif round_ == 1:
            for daemon in fleet.running():
                daemon.wait_healthy()
            wait_until(lambda d=leader: d.gauge("slo_engine_replica_members") == 3, 20, "members")
            time.sleep(random.uniform(0, INTERVAL))
            victim, killed = leader, leader.kill()
    hooks.wait_for(lambda got: {"svc-1", "svc-2", "svc-3"} <= paged(got), timeout=60)

    # Rolling restart of every replica while a fifth outage starts.
    boundary = inject_before_a_minute_boundary(stack, ["svc-4"])
    for daemon in fleet.running():
        daemon.wait_healthy()
        assert daemon.terminate() == 0, daemon.tail()
        fleet.restart(daemon, wait=True)
    hooks.wait_for(lambda got: "svc-4" in paged(got), timeout=90)
    time.sleep(2 * INTERVAL)  # anything late or doubled would arrive now

    pages = triggered(list(hooks.received))
    print(
        f"\ntakeovers after kill -9: {[round(t, 2) for t in takeovers]} s (tokens {tokens}); "
        f"triggered deliveries {sum(map(len, pages.values()))} for {len(pages)} incidents"
    )
    services = {r.incident["service"]: key for key, rs in pages.items() for r in rs}
    assert set(services) == {BURNING, "svc-1", "svc-2", "svc-3", "svc-4"}
    assert len(pages) == len(services), f"one incident per outage, got {list(pages)}"
    for dedup_key, deliveries in pages.items():
        # At least once: a kill between a send and its mark_sent re-sends the SAME
        # notification (same Idempotency-Key); a second page would carry a new one.
        assert len({r.headers.get("Idempotency-Key") for r in deliveries}) == 1, dedup_key
    assert hooks.events("resolved") == []
    assert all(t <= 2 * INTERVAL for t in takeovers), takeovers
    assert tokens == sorted(set(tokens))
