"""`backtest --step` and `evaluate --scrape-interval` obey the daemon's grid rule: a step of at
least two scrape intervals dividing every window (engine.evaluation.resolution). Both refuse a
bad combination before contacting Prometheus."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engine.cli import _register, app

ROOT = Path(__file__).resolve().parents[1]
SPECS = str(ROOT / "slo_specs")
DEAD = "http://127.0.0.1:9"  # nothing listens: any request would fail differently

_register()
runner = CliRunner()


def backtest(*extra: str):
    return runner.invoke(
        app,
        [
            *("backtest", "--specs", SPECS, "--prometheus-url", DEAD),
            *("--start", "1704067200", "--end", "1704153600", "--format", "json"),
            *extra,
        ],
    )


def test_backtest_refuses_a_step_under_two_scrapes() -> None:
    result = backtest("--step", "1m", "--scrape-interval", "60s")
    assert result.exit_code == 2
    assert "shorter than 2 × the scrape interval" in result.output
    assert "--step 2m30s" in result.output


def test_backtest_refuses_a_step_not_dividing_the_windows() -> None:
    result = backtest("--step", "2m", "--scrape-interval", "60s")
    assert result.exit_code == 2
    assert "window 5m is not a whole number of 2m steps" in result.output


def test_backtest_without_step_uses_the_daemon_grid_and_gets_to_the_fetch() -> None:
    result = backtest("--scrape-interval", "60s", "--warmup", "3d")
    # Past the plan (2m30s steps are valid): it fails only at the unreachable Prometheus,
    # exit 3 — not the usage error (2) the refused steps above get.
    assert result.exit_code == 3
    assert "Prometheus is unavailable" in result.output


def test_evaluate_refuses_an_impossible_scrape_interval() -> None:
    result = runner.invoke(
        app,
        ["evaluate", "--specs", SPECS, "--prometheus-url", DEAD, "--scrape-interval", "5m"],
    )
    assert result.exit_code == 2
    assert "no evaluation step fits a 5m scrape interval" in result.output
