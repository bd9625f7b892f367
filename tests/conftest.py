"""Shared fixtures. Keep additions small and additive: several areas use this file."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from engine.demo.scenario import Scenario, write_openmetrics
from engine.source.localprom import LocalPrometheus, backfill, skip_reason
from engine.source.localprom import free_port as _free_port


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (`engine.source.localprom.free_port`)."""
    return _free_port()


PrometheusFactory = Callable[..., LocalPrometheus]


def _prometheus_factory(
    tmp_path_factory: pytest.TempPathFactory, started: list[LocalPrometheus]
) -> PrometheusFactory:
    def factory(
        source: Scenario | str | Path,
        rule_files: Sequence[str | Path] = (),
        **kwargs: object,
    ) -> LocalPrometheus:
        reason = skip_reason()
        if reason:
            pytest.skip(reason)
        workdir = tmp_path_factory.mktemp("prometheus")
        if isinstance(source, Scenario):
            source = write_openmetrics(source, workdir / "backfill.om")
        tsdb = backfill(source, workdir / "tsdb")
        server = LocalPrometheus(tsdb, rule_files=rule_files, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    return factory


@pytest.fixture
def prometheus_for(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusFactory]:
    """Factory: `prometheus_for(scenario_or_openmetrics_path, rule_files=(), **kwargs)`.

    Backfills the data into a fresh TSDB directory, starts a real Prometheus on a free
    loopback port (kwargs go to `LocalPrometheus`), and stops every server it started when
    the test ends. Skips the test when prometheus or promtool is not installed.
    """
    started: list[LocalPrometheus] = []
    yield _prometheus_factory(tmp_path_factory, started)
    for server in started:
        server.cleanup()


@pytest.fixture(scope="module")
def module_prometheus_for(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusFactory]:
    """`prometheus_for` for module-scoped fixtures: one backfill and one server shared by
    every test of a module, stopped when the module ends."""
    started: list[LocalPrometheus] = []
    yield _prometheus_factory(tmp_path_factory, started)
    for server in started:
        server.cleanup()


# ------------------------------------------------------------------ PostgreSQL

from harness.localpg import Database, LocalPostgreSQL  # noqa: E402
from harness.localpg import skip_reason as postgresql_skip_reason  # noqa: E402


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[LocalPostgreSQL]:
    """One real PostgreSQL on loopback for the whole session (`harness.localpg`); skips
    when the server binaries or psycopg are not installed."""
    reason = postgresql_skip_reason()
    if reason:
        pytest.skip(reason)
    server = LocalPostgreSQL().start()
    yield server
    server.cleanup()


@pytest.fixture
def postgresql_database(postgresql_server: LocalPostgreSQL) -> Iterator[Database]:
    """A fresh, empty database for one test (`.dsn` + `.password_file`), dropped after it, so
    tests stay independent while sharing one server."""
    database = postgresql_server.create_database()
    yield database
    postgresql_server.drop_database(database.name)
