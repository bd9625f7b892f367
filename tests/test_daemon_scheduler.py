"""The scheduler's promises: one run of a job at a time, missed runs collapse into one, a
misfire is forgiven for one period, and the first evaluation happens at start-up."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from engine.daemon.scheduler import DaemonScheduler
from engine.spec.durations import Duration


def _runtime() -> SimpleNamespace:
    config = SimpleNamespace(
        interval=Duration.parse("30s"),
        delivery_interval=Duration.parse("5s"),
        escalation_interval=Duration.parse("15s"),
    )
    return SimpleNamespace(
        config=config,
        run_cycle=lambda: None,
        deliver=lambda: None,
        tick=lambda: None,
        budgets=SimpleNamespace(record_days=lambda: None),
    )


def test_jobs_run_one_at_a_time_coalesce_and_start_with_an_evaluation() -> None:
    scheduler = DaemonScheduler(_runtime())  # type: ignore[arg-type]
    jobs = {job.id: job for job in scheduler._scheduler.get_jobs()}
    assert set(jobs) == {"evaluate", "deliver", "escalate", "history"}
    periods = {"evaluate": 30, "deliver": 5, "escalate": 15, "history": 900}
    for name, job in jobs.items():
        assert job.max_instances == 1
        assert job.coalesce is True
        assert job.trigger.interval == timedelta(seconds=periods[name])
        assert job.misfire_grace_time == periods[name]
    evaluate_first = jobs["evaluate"].next_run_time
    assert jobs["deliver"].next_run_time - evaluate_first == timedelta(seconds=5)
    assert jobs["escalate"].next_run_time - evaluate_first == timedelta(seconds=15)
