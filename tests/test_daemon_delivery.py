"""Delivery never blocks evaluation: the daemon's real Runtime and scheduler, on the wall
clock, paging three receivers on 127.0.0.1 — a healthy one, one that drips its answer one
byte every 2 s, one that accepts and never answers.

- cycles keep their interval (the cycle only enqueues; each receiver has its own worker);
- the healthy receiver gets the page within a second or so of the cycle that decided it;
- the slow ones are cut at their 4 s deadline, counted as failed attempts and retried with
  backoff — the same notification (Idempotency-Key) — and once they answer, each accepts it
  exactly once;
- SIGTERM with a hanging receiver: the daemon exits within shutdown_flush_timeout + ~1 s.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml
from harness.incidents import make_alert
from harness.stalling_receiver import StallingReceiver, wait_until
from test_daemon_runtime import ScriptedSource, make_config

from engine.daemon.config import load_config
from engine.daemon.runtime import CycleReport, Runtime
from engine.daemon.scheduler import DaemonScheduler
from engine.demo.webhook_sink import WebhookSink
from engine.incidents.engine import IncidentEngine
from engine.source.localprom import free_port
from engine.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(sys.executable).parent / "slo-engine"
INTERVAL = 2.0
DEADLINE = 4  # the slow receivers' timeout_seconds


class RecordingRuntime(Runtime):
    """The Runtime, remembering every cycle's report (its duration, what it queued)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reports: list[CycleReport] = []

    def run_cycle(self, now: float | None = None) -> CycleReport:
        report = super().run_cycle(now)
        self.reports.append(report)
        return report


def _slow_notifiers(drip: StallingReceiver, hang: StallingReceiver) -> dict[str, Any]:
    return {
        name: {"type": "webhook", "url": receiver.url, "timeout_seconds": DEADLINE}
        for name, receiver in (("drip", drip), ("hang", hang))
    }


def test_slow_and_hanging_receivers_never_stall_evaluation(tmp_path: Path) -> None:
    with (
        WebhookSink() as sink,
        StallingReceiver("drip", every=2.0) as drip,
        StallingReceiver("hang") as hang,
    ):
        config = make_config(
            tmp_path,
            sink,
            interval=f"{INTERVAL:g}s",
            delivery_interval="1s",
            escalation_interval="1h",
            notifiers=_slow_notifiers(drip, hang),
        )
        source = ScriptedSource()
        source.outage, source.outage_from = {"api/availability"}, time.time() - 600
        runtime = RecordingRuntime(config, clock=time.time, source=source)
        scheduler = DaemonScheduler(runtime)
        try:
            scheduler.start()
            sink.wait_for(lambda got: any(r.event == "triggered" for r in got), timeout=20)
            # The page may reach the receiver before run_cycle returns (delivery is woken
            # inside the cycle), so its report is recorded a moment later.
            wait_until(
                lambda: any(r.decision and r.decision.notifications for r in runtime.reports),
                10,
                "the paging cycle's report",
            )
            queued = next(r for r in runtime.reports if r.decision and r.decision.notifications)
            (page,) = sink.events("triggered", service="api")
            # Within a second or so of the decision, whatever the other receivers do.
            assert page.at - (queued.at + queued.duration) < 1.5

            wait_until(
                lambda: drip.attempts() >= 2 and hang.attempts() >= 2, 40, "two attempts each"
            )
            errors = {i.receiver: i.last_error or "" for i in runtime.store.outbox_items("pending")}
            for name in ("drip", "hang"):
                assert f"timed out after {DEADLINE}s (deadline" in errors[name], errors

            drip.healthy = hang.healthy = True
            wait_until(
                lambda: runtime.store.counts().get("pending", 0) == 0, 60, "the retries to land"
            )
        finally:
            scheduler.stop()
            runtime.close()

    durations = [r.duration for r in runtime.reports]
    assert max(durations) < INTERVAL, durations
    # Evaluation went on throughout, one cycle per interval (the scheduler's own jitter
    # aside) while the slow receivers were being cut and retried.
    starts = [r.at for r in runtime.reports]
    assert len(starts) >= 5, starts
    assert max(b - a for a, b in itertools.pairwise(starts)) < 1.5 * INTERVAL
    assert len(sink.events("triggered", service="api")) == 1
    for receiver in (drip, hang):
        assert receiver.answered == 1  # accepted once
        assert len(set(receiver.keys)) == 1  # every attempt: the same notification


def test_sigterm_with_a_hanging_receiver_exits_within_the_flush_timeout(tmp_path: Path) -> None:
    flush_timeout = 3.0
    with WebhookSink() as sink, StallingReceiver("hang") as hang:
        settings = {
            "specs": str(ROOT / "slo_specs"),
            "prometheus_url": f"http://127.0.0.1:{free_port()}",  # down: blind, no matter
            "state_dir": str(tmp_path / "state"),
            "listen": f"127.0.0.1:{free_port()}",
            "interval": "1h",
            "delivery_interval": "1h",
            "escalation_interval": "1h",
            "query_retries": 0,
            "shutdown_flush_timeout": f"{flush_timeout:g}s",
            "webhooks": [sink.url],
            # A request would be allowed 60 s: only the flush deadline can end it in time.
            "notifiers": {"hang": {"type": "webhook", "url": hang.url, "timeout_seconds": 60}},
        }
        config_file = tmp_path / "config.yml"
        config_file.write_text(yaml.safe_dump(settings))
        config = load_config(config_file)
        with SQLiteStore.in_state_dir(config.state_dir) as store:  # a page left queued
            engine = IncidentEngine(config.incident_config(), store.load_state())
            store.apply(engine.observe(time.time(), [make_alert(starts_at=time.time())]))

        log = tmp_path / "daemon.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(BINARY), "run", "--config", str(config_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            sink.wait_for(lambda got: [r.event for r in got] == ["triggered"], timeout=30)
            wait_until(lambda: hang.attempts() == 1, 10, "the hanging receiver's request")
            wait_until(lambda: _healthy(settings["listen"]), 20, "the API (signals handled)")
            signalled = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
            took = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
        text = log.read_text()
        assert took < flush_timeout + 1.5, f"exit took {took:.1f}s\n{text}"
        assert "receiver 'hang' still busy" in text
        assert "1 still pending" in text  # the hung page waits for the next start


def _healthy(listen: str) -> bool:
    try:
        return requests.get(f"http://{listen}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
