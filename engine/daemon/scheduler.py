"""APScheduler wiring: what runs when, and how it stops.

Three jobs, each `max_instances=1` and `coalesce=True` so a slow run is never overlapped by
the next and a backlog of missed runs collapses into one:

- evaluate every `interval` (first run at once): the cycle;
- deliver every `delivery_interval`: the outbox, so an API acknowledgement or a retry after
  backoff does not wait for the next cycle;
- escalate every `escalation_interval`: the incident timers (escalation, repeats), which
  must keep running even while a cycle is stuck on a slow source.

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
        # One thread per job: the three never wait for each other's thread.
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(3)},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        # (job, what it runs, its period, whether the first run is at start-up)
        jobs = (
            ("evaluate", runtime.run_cycle, config.interval.seconds, True),
            ("deliver", runtime.deliver, config.delivery_interval.seconds, False),
            ("escalate", runtime.tick, config.escalation_interval.seconds, False),
        )
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

    def start(self) -> None:
        # APScheduler logs every run at INFO; the cycle's own log line says what matters.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._scheduler.start()

    def stop(self) -> None:
        """Schedule nothing more; wait for the running jobs (the current cycle) to finish."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
