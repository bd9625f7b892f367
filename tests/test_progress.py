"""Long work says how far it got: a log line per history chunk in the daemon's cold start, a
progress line on a terminal during evaluate's cold fetch (the backtest report's progress is
in tests/test_backtest_plots.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from test_daemon_runtime import Clock, ScriptedSource, make_config

from engine.commands.evaluate import _fetch_progress, _WatchedSource
from engine.daemon.runtime import Runtime
from engine.demo.webhook_sink import WebhookSink
from engine.evaluation.source import StepRates
from engine.spec.durations import Duration


def test_daemon_cold_start_logs_each_history_chunk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with WebhookSink() as sink:
        clock, source = Clock(), ScriptedSource()
        runtime = Runtime(make_config(tmp_path, sink), clock=clock, source=source)
        try:
            with caplog.at_level(logging.INFO, logger="engine.daemon.source_guard"):
                runtime.run_cycle()
                cold = [
                    r.getMessage() for r in caplog.records if "history fetched" in r.getMessage()
                ]
                caplog.clear()
                runtime.run_cycle(clock.advance(60))  # warm: a few new steps, no line
                warm = [r for r in caplog.records if "history fetched" in r.getMessage()]
        finally:
            runtime.close()
    assert cold, "a cold start fetches history"
    assert all("days at" in line and "SLOs" in line for line in cold)
    assert warm == []


class _Inner:
    def fetch(self, slos, step, start, end) -> StepRates:  # type: ignore[no-untyped-def]
        times = np.arange(start, end + 1, step.seconds)
        empty = np.zeros((len(slos), times.size))
        return StepRates(step=step, times=times, bad=empty, total=empty)


def test_evaluate_reports_each_fetch_and_draws_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    source = _WatchedSource(_Inner())
    source.on_answer = seen.append
    source.fetch([], Duration.parse("1m"), 0.0, 2 * 86_400.0)
    assert seen == ["1 fetched: 0 SLOs × 2.0 d at 1m"]

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal
    with _fetch_progress() as update:
        update("1 fetched: 5 SLOs × 30.0 d at 1m")
    assert "fetching from Prometheus" in capsys.readouterr().err

    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    with _fetch_progress() as update:
        update("quiet")
    assert capsys.readouterr().err == ""  # not a terminal: CI logs stay clean
