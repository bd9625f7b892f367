"""One replica on PostgreSQL behaves exactly like the SQLite daemon: the daemon's own
runtime tests (tests/test_daemon_runtime.py, tests/test_daemon_anomaly.py), run unchanged
with `store: postgresql://...`.

That one replica heartbeats, holds the incident lease, evaluates every SLO (its shard is
everything; anomaly detection too), publishes and decides over what it published — every
step of the replica path — and the same assertions hold: one page, missing data never
resolves, blindness, escalation, acks and silences, spec reloads, the metrics, anomaly
incidents.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_daemon_anomaly as anomaly
import test_daemon_runtime as single

pytest.importorskip("psycopg")
pytestmark = pytest.mark.postgresql

SAME_TESTS = [
    "test_outage_pages_once_and_missing_data_never_resolves",
    "test_clear_timer_restarts_while_data_is_missing",
    "test_circuit_breaker_stops_calling_a_dead_source_and_probes_after_cooldown",
    "test_probe_detects_a_dead_source_between_cache_steps",
    "test_spec_hot_reload_keeps_the_last_good_set",
    "test_api_mutations_follow_the_contract",
    "test_metrics_registry_after_a_cycle",
]
SAME_ANOMALY_TESTS = [
    "test_traffic_drop_opens_sev4_then_sev3_for_the_critical_service",
    "test_hot_reload_turning_anomaly_detection_off_drops_its_series",
]


@pytest.fixture
def on_postgresql(monkeypatch: pytest.MonkeyPatch, postgresql_database: Any) -> Iterator[None]:
    make_config = single.make_config
    used: list[Any] = []

    def postgresql_config(tmp_path: Path, sink: Any, **extra: Any) -> Any:
        store = {
            "store": postgresql_database.dsn,
            "store_password_file": str(postgresql_database.password_file),
        }
        config = make_config(tmp_path, sink, **store, **extra)
        assert config.shared_store
        used.append(config)
        return config

    for module in (single, anomaly):
        monkeypatch.setattr(module, "make_config", postgresql_config)
    yield
    assert used, "the runtime test never built a config"


@pytest.mark.parametrize("name", SAME_TESTS)
def test_one_postgresql_replica_passes_the_sqlite_daemons_tests(
    name: str, on_postgresql: None, tmp_path: Path, sink: Any, clock: Any, source: Any
) -> None:
    getattr(single, name)(tmp_path, sink, clock, source)


@pytest.mark.parametrize("name", SAME_ANOMALY_TESTS)
def test_one_postgresql_replica_passes_the_anomaly_tests(
    name: str, on_postgresql: None, tmp_path: Path, sink: Any
) -> None:
    getattr(anomaly, name)(tmp_path, sink)


sink = single.sink
clock = single.clock
source = single.source
