"""APScheduler wiring: what runs when, and how it stops.

Four jobs, each `max_instances=1` and `coalesce=True` so a slow run is never overlapped by
the next and a backlog of missed runs collapses into one:

- evaluate every `interval` (first run at once): the cycle — evaluation and decisions only;
- deliver every `delivery_interval`: wakes the receivers' delivery workers
  (engine/notify/workers.py), so an API acknowledgement or a retry after backoff goes out
  without waiting for a cycle. It returns at once: delivery itself runs on the workers'
  threads (a cycle or tick that enqueued a page wakes them right away too), so no receiver
  can hold up a job;
- escalate every `escalation_interval`: the incident timers (escalation, repeats), which
  must keep running even while a cycle is stuck on a slow source;
- history every 15 minutes: recount today's and yesterday's events of every SLO into the
  compliance history (idempotent upserts: engine/daemon/budgets.py);
- with several replicas (a PostgreSQL store), a fifth: heartbeat every `interval / 3`
  (at most 5 s) — membership, shard and the incident lease (engine/daemon/replicas.py).

`misfire_grace_time` is one interval: a run late by less than that still runs (the daemon
was busy); later than that it is skipped and the next one is due soon anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from engine.daemon.runtime import Runtime

log = logging.getLogger(__name__)
# How often the day's events are recounted; the last count of a day lands within this much
# of midnight, and the first run after midnight finishes yesterday's.
HISTORY_INTERVAL_S = 900.0


def _guard(name: str, call: Callable[[], object]) -> Callable[[], None]:
    """APScheduler logs job exceptions with tracebacks at ERROR; one line says more."""

    def run() -> None:
        try:
            call()
        except Exception:
            log.exception("%s job failed", name)

    return run


class DaemonScheduler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        config = runtime.config
        # One thread per job: they never wait for each other's thread (the fifth is the
        # replicas' heartbeat, which must never queue behind a slow cycle).
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(5)},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        # (job, what it runs, its period, whether the first run is at start-up)
        jobs = (
            ("evaluate", runtime.run_cycle, config.interval.seconds, True),
            ("deliver", runtime.deliver, config.delivery_interval.seconds, False),
            ("escalate", runtime.tick, config.escalation_interval.seconds, False),
            # Compliance history: today's and yesterday's events (engine/daemon/budgets.py).
            ("history", runtime.budgets.record_days, HISTORY_INTERVAL_S, False),
        )
        replicas = getattr(runtime, "replicas", None)
        if replicas is not None:  # membership and the incident lease
            jobs += (("heartbeat", runtime.heartbeat, replicas.timings.heartbeat, True),)
        for name, call, seconds, at_start in jobs:
            self._scheduler.add_job(
                _guard(name, call),
                "interval",
                seconds=seconds,
                id=name,
                name=name,
                next_run_time=now if at_start else now + timedelta(seconds=seconds),
                misfire_grace_time=max(1, int(seconds)),
                # Never two runs of one job at once; missed runs collapse into one.
                max_instances=1,
                coalesce=True,
            )
        if replicas is not None:
            # Replicas started together see each other at their second heartbeat: their first
            # cycle waits for it rather than cold-filling every SLO while alone.
            first = now + timedelta(seconds=replicas.timings.heartbeat)
            self._scheduler.modify_job("evaluate", next_run_time=first)

    def start(self) -> None:
        # APScheduler logs every run at INFO; the cycle's own log line says what matters.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler.start()

    def stop(self) -> None:
        """Schedule nothing more. Returns at once: a cycle still running is given the
        shutdown flush time to finish (`Runtime.wait_idle`), not an unbounded wait."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
